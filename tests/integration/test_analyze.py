"""``roboframe analyze``: the command, the backtest's own statistics, and
reconciliation against a real order store with planted differences."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

from roboframe.analyze import analyze
from roboframe.backtest import run_backtest
from roboframe.backtest.stats import order_counts
from roboframe.config import load_robot
from roboframe.core.events import Fill
from roboframe.store import open_store
from tests.integration.conftest import ROOT, roboframe_cmd
from tests.unit.analyze.journals import SI, at, scripted_events, scripted_spec, write_journal


@pytest.mark.parametrize("fill_at", ["next", "close"])
@pytest.mark.parametrize("robot", ["si.yaml", "rts-breakout.yaml"])
def test_statistics_equal_the_backtests_own(tmp_path, robot, fill_at):
    """The analyzer recomputes equity, drawdown and exposure event by event from
    the journal; the backtest keeps them on its own fast path (one symbol:
    coefficients changed by fills only; several: per-symbol contributions).
    Both mark a bar after its answers: at the close, its own orders' fills."""
    spec = load_robot(ROOT / "robots" / robot)
    result = run_backtest(spec, journal_dir=tmp_path / "runs", fill_at=fill_at)
    report = analyze([result.journal], db=str(tmp_path / "a.db")).runs[0]
    # and the orders sent and refused, as backtest --json gives them
    assert report.stats == {**result.stats, **order_counts(result.kernel)}
    assert report.stats["orders"] == result.kernel.counters["orders"] > 0
    assert report.complete and report.mode == "backtest"
    with sqlite3.connect(tmp_path / "a.db") as db:
        trades = db.execute("SELECT count(*) FROM trades").fetchone()[0]
        last = db.execute("SELECT equity FROM states ORDER BY seq DESC LIMIT 1").fetchone()[0]
    assert trades == result.stats["trades"]
    assert round(last, 2) == result.stats["equity_final"]


def test_the_command_json_report_and_exit_codes(tmp_path):
    runs = tmp_path / "runs" / "si"
    spec = load_robot(ROOT / "robots" / "si.yaml")
    run_backtest(spec, journal_dir=runs)
    write_journal(runs / "hand.journal", scripted_spec(), scripted_events())
    db, html = tmp_path / "out" / "a.db", tmp_path / "report.html"
    pattern = str(tmp_path / "runs" / "**" / "*.journal")
    proc = roboframe_cmd("analyze", pattern, "--db", str(db), "--report", str(html), "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert sorted(r["robot"] for r in out) == ["si-trend", "test-robot"]
    for run in out:
        assert {"trades", "equity_final", "return_pct", "max_drawdown_pct"} <= set(run["stats"])
    text = html.read_text()
    assert text.count("<svg") >= 4 and "si-trend" in text and "test-robot" in text
    # again, human output; nothing duplicated
    proc = roboframe_cmd("analyze", str(tmp_path / "runs"), "--db", str(db))
    assert proc.returncode == 0 and "Net PnL" in proc.stdout
    assert re.search(r"^orders +\d+ sent, 0 rejected by risk$", proc.stdout, re.M)
    quiet = roboframe_cmd("-q", "analyze", str(tmp_path / "runs"), "--db", str(db))
    assert quiet.returncode == 0 and quiet.stdout == ""  # the tables are in the database
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 2
    # a broken journal: the others are analysed, the exit code says something failed
    (runs / "broken.journal").write_bytes(b"RFJOURNL")
    proc = roboframe_cmd("analyze", str(runs), "--db", str(db))
    assert proc.returncode == 1
    assert "broken.journal" in proc.stderr and "Traceback" not in proc.stderr
    assert "2 run(s) analysed" in proc.stderr
    # the same backtest written twice: one run, analysed once, and said so
    (runs / "broken.journal").unlink()
    again = Path(run_backtest(spec, journal_dir=runs).journal)
    proc = roboframe_cmd("analyze", str(runs), "--db", str(db), "--json")
    assert proc.returncode == 0, proc.stderr
    assert sorted(r["robot"] for r in json.loads(proc.stdout)) == ["si-trend", "test-robot"]
    assert "the same run as" in proc.stderr and again.name in proc.stderr
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 2


def test_nothing_to_analyse_is_a_clear_error(tmp_path):
    proc = roboframe_cmd("analyze", str(tmp_path / "nowhere" / "*.journal"))
    assert proc.returncode == 2
    assert "no journals found" in proc.stderr and "Traceback" not in proc.stderr
    proc = roboframe_cmd("analyze", str(tmp_path), "--robot", "x")
    assert proc.returncode == 2 and "--store" in proc.stderr


def plant(url, unheard_of=True):
    """The store's view of run r1 of test-robot: the robot's two orders and
    their fills, then (``unheard_of``) a third fill the robot never heard of."""
    store = open_store(url)
    store.setup()
    spec = scripted_spec()
    orders = []
    for action in write_journal_orders(spec):
        store.insert_order("test-robot", "r1", action, at(1))
        orders.append(action)
    ids = [
        store.record_fill("test-robot", Fill(orders[0].client_id, at(1), SI, "buy", 2, 101, "", "1")),  # noqa: E501
        store.record_fill("test-robot", Fill(orders[1].client_id, at(3), SI, "sell", 1, 110, "", "0.5")),  # noqa: E501
    ]  # fmt: skip
    if unheard_of:
        ids.append(
            store.record_fill(
                "test-robot", Fill(orders[1].client_id, at(4), SI, "sell", 1, 109, "", "0")
            )
        )
    store.close()
    return [str(i) for i in ids]


def write_journal_orders(spec):
    from roboframe.core.events import NewOrder

    return [
        NewOrder("test-robot-r1-1", SI, "buy", 2),
        NewOrder("test-robot-r1-2", SI, "sell", 1, "limit", 110),
    ]


def journal_with_trade_ids(path, ids, second_price):
    events = scripted_events()
    first, second = events[3], events[7]

    def with_id(make, trade_id, price=None):
        def build(sent):
            f = make(sent)
            return Fill(f.client_id, f.ts, f.symbol, f.side, f.qty, price or f.price, trade_id,
                        f.fee)  # fmt: skip

        return build

    events[3] = with_id(first, ids[0])
    events[7] = with_id(second, ids[1], second_price)
    write_journal(path, scripted_spec(), events)


@pytest.mark.parametrize("url_fixture", ["pg_url", "mongo_url"])
def test_reconciliation_finds_planted_differences(tmp_path, request, url_fixture):
    url = request.getfixturevalue(url_fixture)
    ids = plant(url)
    path = tmp_path / "r1.journal"
    journal_with_trade_ids(path, ids, second_price=111)  # the store says 110
    report = analyze([path], db=str(tmp_path / "a.db"), store_url=url, robot="test-robot")
    diffs = report.runs[0].reconciliation
    assert [(d["kind"], d["trade_id"]) for d in diffs] == [
        ("different", ids[1]),
        ("missing_in_journal", ids[2]),
        ("overfilled", ids[2]),  # the sell of 1 filled twice in the store
    ]
    assert diffs[0]["detail"] == "price 111 in the journal, 110 in the store"
    assert "test-robot-r1-2 sell 1 Si-12.26 @ 109" in diffs[1]["detail"]
    assert diffs[2]["detail"] == (
        f"the store has 2 filled of an order of 1 (trades {ids[1]}, {ids[2]})"
    )
    # the command: differences are printed and fail the exit code
    proc = roboframe_cmd(
        "analyze",
        str(path),
        "--db",
        str(tmp_path / "b.db"),
        "--store",
        url,
        "--robot",
        "test-robot",
    )
    assert proc.returncode == 1, proc.stderr
    assert "reconciliation: 3 difference(s)" in proc.stdout


@pytest.mark.parametrize("url_fixture", ["pg_url"])
def test_reconciliation_agrees_when_nothing_differs(tmp_path, request, url_fixture):
    url = request.getfixturevalue(url_fixture)
    ids = plant(url, unheard_of=False)
    path = tmp_path / "r1.journal"
    journal_with_trade_ids(path, ids, second_price=None)
    report = analyze([path], db=str(tmp_path / "a.db"), store_url=url, robot="test-robot")
    assert report.runs[0].reconciliation == []
    proc = roboframe_cmd("analyze", str(path), "--db", str(tmp_path / "c.db"), "--store", url)
    assert proc.returncode == 0, proc.stderr
    assert "reconciliation: store and journal agree" in proc.stdout
    # a backtest of the robot written into its live folder: its paper fills were never
    # in the store, and read as "missing in store" they looked like lost fills
    spec = load_robot(ROOT / "robots" / "si.yaml")
    bt = run_backtest(spec, journal_dir=tmp_path)
    report = analyze([bt.journal], db=str(tmp_path / "a.db"), store_url=url, robot="si-trend")
    assert report.runs[0].mode == "backtest" and report.runs[0].reconciliation is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--db", "{tmp}/file/sub/a.db"], "--db: cannot open the analysis database"),
        (["--report", "{tmp}/file/r.html"], "cannot write the report"),
        (["--store", "postgresql://postgres@127.0.0.1:1/x"], "--store postgresql://"),
    ],
)
def test_unusable_outputs_are_clear_errors(tmp_path, args, message):
    (tmp_path / "file").write_text("a file where a folder should be")
    journal = tmp_path / "r1.journal"
    write_journal(journal, scripted_spec(), scripted_events())
    args = [a.format(tmp=tmp_path) for a in args]
    db = [] if "--db" in args else ["--db", str(tmp_path / "a.db")]
    proc = roboframe_cmd("analyze", str(journal), *db, *args)
    assert proc.returncode == 1
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_of_two_journals_of_one_run_the_longer_is_analysed(tmp_path):
    """A copy of a journal taken while its run went on has the run's header, so
    the run's key: one of the two is analysed -- the longer, whatever the names."""
    spec = scripted_spec()
    write_journal(tmp_path / "a-copy.journal", spec, scripted_events()[:5])
    write_journal(tmp_path / "b.journal", spec, scripted_events())
    result = analyze([tmp_path], db=str(tmp_path / "a.db"))
    (report,) = result.runs
    assert report.journal == str(tmp_path / "b.journal") and report.complete
    (said,) = result.warnings
    assert said.startswith(f"{tmp_path / 'a-copy.journal'}: the same run as")
