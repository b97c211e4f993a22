"""The PostgreSQL analysis database against a real server (fixture: pg_url),
checked row for row against the built-in SQLite one."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import psycopg
import pytest
from roboframe_postgres.analysis import PgAnalysisStore
from roboframe_postgres.store import split_schema

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


def _rows(query, table: str) -> list[tuple]:
    order = ", ".join(KEYS[table])
    return [tuple(r) for r in query(f"SELECT * FROM {table} ORDER BY {order}")]


def test_scheme_selects_the_backend(pg_url):
    store = open_analysis_store(pg_url)
    assert isinstance(store, PgAnalysisStore)
    store.close()


def test_same_rows_as_sqlite_and_no_duplicates(pg_url, journal, tmp_path):
    lite = analyze([journal], db=str(tmp_path / "a.db"))
    first = analyze([journal], db=pg_url)
    again = analyze([journal], db=pg_url)  # replaces the run, adds nothing
    assert lite.problems == first.problems == again.problems == []
    sq = sqlite3.connect(tmp_path / "a.db")
    pg = PgAnalysisStore(pg_url)
    try:
        for table in TABLES:
            expected = _rows(lambda sql: sq.execute(sql).fetchall(), table)
            assert expected, table
            assert _rows(pg.query, table) == expected, table
        (stats,) = pg.query("SELECT stats FROM runs")[0]
        assert json.loads(stats) == first.runs[0].stats == again.runs[0].stats
        last = pg.query("SELECT * FROM states ORDER BY seq DESC LIMIT 1")
        assert last == sq.execute("SELECT * FROM states ORDER BY seq DESC LIMIT 1").fetchall()
        types = dict(
            pg.query(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = 'trades'"
            )
        )
        assert types["pnl"] == "double precision" and types["n"] == "bigint"
    finally:
        pg.close()
        sq.close()


def test_an_aborted_run_leaves_the_previous_analysis(pg_url, journal):
    analyze([journal], db=pg_url)
    store = open_analysis_store(pg_url)
    try:
        (run,) = store.query("SELECT run FROM runs")[0]
        before = store.query("SELECT count(*) FROM events")
        store.begin_run(run)
        store.write("events", [(run, 10**6, 1, 2, "control", None, "{}")])
        store.abort_run()
        assert store.query("SELECT count(*) FROM events") == before
        assert store.query("SELECT count(*) FROM runs") == [(1,)]
    finally:
        store.close()


def test_a_run_is_invisible_until_committed(pg_url):
    writer = open_analysis_store(pg_url)
    reader = PgAnalysisStore(pg_url)
    try:
        writer.begin_run(7)
        writer.write("trades", [(7, 1, "SI", "long", 1, 10, 1.5, 20, 2.5, 1.0, 0)])
        assert reader.query("SELECT count(*) FROM trades") == [(0,)]
        writer.commit_run()
        assert reader.query("SELECT pnl FROM trades WHERE run = 7") == [(1.0,)]
    finally:
        writer.close()
        reader.close()


def test_a_value_of_the_wrong_type_is_a_roboframe_error(pg_url):
    store = open_analysis_store(pg_url)
    try:
        store.begin_run(7)
        with pytest.raises(RoboframeError, match="trades"):
            store.write("trades", [(7, 1.5, "SI", "long", 1, 10, 1.5, 20, 2.5, 1.0, 0)])
        store.abort_run()
        assert store.query("SELECT count(*) FROM trades") == [(0,)]
    finally:
        store.close()


def test_foreign_tables_of_the_same_name_are_refused(pg_url):
    dsn, schema = split_schema(pg_url)
    conn = psycopg.connect(dsn, autocommit=True)
    conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    conn.execute(f'CREATE TABLE "{schema}".events (id serial, what text)')
    conn.close()
    with pytest.raises(RoboframeError, match=r"table 'events'.*schema of its own"):
        open_analysis_store(pg_url)


def test_unreachable_server_is_a_roboframe_error():
    with pytest.raises(RoboframeError, match=r"cannot connect") as err:
        PgAnalysisStore("postgresql://postgres:secret@127.0.0.1:1/test")
    assert "secret" not in str(err.value)
