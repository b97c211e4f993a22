"""The MongoDB analysis database through real pymongo against SecantusDB,
checked document for row against the built-in SQLite one."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pymongo
import pytest
from roboframe_mongo.analysis import MongoAnalysisStore

from roboframe.analyze import analyze, open_analysis_store
from roboframe.analyze.tables import KEYS, TABLES
from roboframe.errors import RoboframeError

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def journal(tmp_path_factory) -> Path:
    from roboframe.backtest import run_backtest
    from roboframe.config import load_robot

    out = tmp_path_factory.mktemp("journal")
    return Path(run_backtest(load_robot(ROOT / "robots/si.yaml"), journal_dir=out).journal)


@pytest.fixture
def db(mongo_url):
    client = pymongo.MongoClient(mongo_url)
    yield client.get_default_database()
    client.close()


def _docs(db, table: str) -> list[tuple]:
    """A collection's documents as rows in key order, as SQLite has them."""
    docs = db[table].find({}, {"_id": 0}).sort([(c, 1) for c in KEYS[table]])
    out = []
    for doc in docs:
        assert set(doc) == set(TABLES[table])
        if table == "runs":
            doc["stats"] = json.dumps(doc["stats"], sort_keys=True)
        out.append(tuple(doc[c] for c in TABLES[table]))
    return out


def test_scheme_selects_the_backend(mongo_url):
    store = open_analysis_store(mongo_url)
    assert isinstance(store, MongoAnalysisStore)
    store.close()


def test_same_rows_as_sqlite_and_no_duplicates(mongo_url, db, journal, tmp_path):
    lite = analyze([journal], db=str(tmp_path / "a.db"))
    first = analyze([journal], db=mongo_url)
    again = analyze([journal], db=mongo_url)  # replaces the run, adds nothing
    assert lite.problems == first.problems == again.problems == []
    sq = sqlite3.connect(tmp_path / "a.db")
    try:
        for table in TABLES:
            order = ", ".join(KEYS[table])
            expected = sq.execute(f"SELECT * FROM {table} ORDER BY {order}").fetchall()
            assert expected, table
            assert db[table].count_documents({}) == len(expected), table
            assert _docs(db, table) == expected, table
        last = sq.execute("SELECT * FROM states ORDER BY seq DESC LIMIT 1").fetchone()
        doc = db.states.find_one({"seq": last[1]}, {"_id": 0})
        assert tuple(doc[c] for c in TABLES["states"]) == last
    finally:
        sq.close()
    (run,) = db.runs.find()
    assert run["stats"] == first.runs[0].stats == again.runs[0].stats  # a sub-document
    assert db.runs.count_documents({"stats.trades": {"$gt": 0}}) == 1


def test_the_runs_document_comes_last_and_abort_removes_the_rest(mongo_url, db):
    store = open_analysis_store(mongo_url)
    try:
        store.begin_run(7)
        store.write("runs", [(7, "k", "j", "r", "id", "backtest", *[None] * 11, '{"a": 1}')])
        store.write("trades", [(7, 1, "SI", "long", 1, 10, 1.5, 20, 2.5, 1.0, 0)])
        assert db.runs.count_documents({}) == 0 and db.trades.count_documents({}) == 1
        store.abort_run()
        assert db.trades.count_documents({}) == 0 and db.runs.count_documents({}) == 0
        store.begin_run(7)
        store.write("runs", [(7, "k", "j", "r", "id", "backtest", *[None] * 11, '{"a": 1}')])
        store.commit_run()
        assert db.runs.find_one({}, {"_id": 0, "stats": 1}) == {"stats": {"a": 1}}
    finally:
        store.close()


def test_a_database_holding_an_order_store_is_refused(mongo_url, db):
    db.counters.insert_one({"_id": "orders", "seq": 1})
    with pytest.raises(RoboframeError, match="database of its own"):
        open_analysis_store(mongo_url)


def test_unreachable_server_is_a_roboframe_error():
    with pytest.raises(RoboframeError, match="cannot connect") as err:
        MongoAnalysisStore(
            "mongodb://u:secret@127.0.0.1:1/x?directConnection=true&serverSelectionTimeoutMS=300"
        )
    assert "secret" not in str(err.value)
