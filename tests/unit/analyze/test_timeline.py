"""The analyzer on hand-made journals: every state field at known sequence numbers."""

from __future__ import annotations

import itertools
import json
import sqlite3

import pytest

from roboframe.analyze import analyze
from roboframe.analyze.model import Curve
from roboframe.analyze.tables import TABLES
from roboframe.plugins import build_plugin_manager, build_registry, hookimpl
from tests.unit.analyze.journals import SI, at, scripted_events, scripted_spec, write_journal

CASH = 1_000_000.0


@pytest.fixture
def journal(tmp_path):
    path = tmp_path / "runs" / "r1.journal"
    path.parent.mkdir()
    write_journal(path, scripted_spec(), scripted_events())
    return path


def rows(db, sql, *params):
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute(sql, params)]


def test_state_after_each_event(journal, tmp_path):
    db = tmp_path / "a.db"
    result = analyze([journal], db=str(db))
    assert result.problems == [] and result.warnings == []
    states = {r["seq"]: r for r in rows(db, "SELECT * FROM states ORDER BY seq")}
    assert sorted(states) == list(range(1, 11))
    # seq 4: long 2 @ 101, last price 100 (the bar's close), fee 1
    s = states[4]
    assert (s["realized_pnl"], s["unrealized_pnl"], s["fees"]) == (0.0, -2.0, 1.0)
    assert s["equity"] == CASH - 2 - 1
    assert s["open_orders"] == 0 and s["robot_state"] == "ACTIVE"
    # seq 2 and 3: the buy is open, nothing filled yet
    assert states[2]["open_orders"] == 1 and states[3]["open_orders"] == 1
    assert states[2]["equity"] == CASH
    # seq 7: bar at 111 with 2 long @ 101 and the sell limit resting
    assert states[7]["unrealized_pnl"] == 20.0 and states[7]["open_orders"] == 1
    # seq 8: sold 1 @ 110: 9 realized, 1 long @ 101 marked at 111
    s = states[8]
    assert (s["realized_pnl"], s["unrealized_pnl"], s["fees"], s["open_orders"]) == (
        9.0,
        10.0,
        1.5,
        0,
    )
    assert states[9]["unrealized_pnl"] == 7.0 and states[9]["equity"] == CASH + 9 + 7 - 1.5
    assert states[10]["robot_state"] == "STOPPED"


def test_positions_as_of_each_change(journal, tmp_path):
    db = tmp_path / "a.db"
    analyze([journal], db=str(db))
    pos = {r["seq"]: r for r in rows(db, "SELECT * FROM positions WHERE symbol = ?", SI)}
    assert sorted(pos) == [2, 4, 5, 7, 8, 9]  # the symbol's bars and fills
    assert pos[2]["position"] == 0 and pos[2]["avg_price"] is None
    assert pos[2]["last_price"] == 100.0
    assert (pos[4]["position"], pos[4]["avg_price"], pos[4]["last_price"]) == (2, 101.0, 100.0)
    assert (pos[8]["position"], pos[8]["avg_price"]) == (1, 101.0)
    assert (pos[8]["realized_pnl"], pos[8]["unrealized_pnl"]) == (9.0, 10.0)
    assert pos[9]["last_price"] == 108.0 and pos[9]["unrealized_pnl"] == 7.0
    # "position at a time": the last change at or before it
    as_of = rows(
        db,
        "SELECT position FROM positions WHERE symbol = ? AND seq <= "
        "(SELECT max(seq) FROM events WHERE ts <= ?) ORDER BY seq DESC LIMIT 1",
        SI,
        at(2),
    )
    assert as_of == [{"position": 2}]


def test_events_actions_fills_orders_and_trades(journal, tmp_path):
    db = tmp_path / "a.db"
    analyze([journal], db=str(db))
    events = rows(db, "SELECT seq, kind, symbol, data FROM events ORDER BY seq")
    assert [e["kind"] for e in events] == [
        "control", "bar", "order", "fill", "bar", "order", "bar", "fill", "bar", "control",
    ]  # fmt: skip
    assert json.loads(events[1]["data"])["close"] == 100.0
    assert json.loads(events[9]["data"])["args"] == {"reason": "test over"}
    actions = rows(db, "SELECT seq, kind, client_id, side, qty, order_type, price FROM actions")
    assert actions == [
        {"seq": 2, "kind": "new", "client_id": "test-robot-r1-1", "side": "buy", "qty": 2,
         "order_type": "market", "price": None},
        {"seq": 5, "kind": "new", "client_id": "test-robot-r1-2", "side": "sell", "qty": 1,
         "order_type": "limit", "price": 110.0},
    ]  # fmt: skip
    fills = rows(db, "SELECT seq, trade_id, qty, price, fee FROM fills ORDER BY seq")
    assert fills == [
        {"seq": 4, "trade_id": "T1", "qty": 2, "price": 101.0, "fee": 1.0},
        {"seq": 8, "trade_id": "T2", "qty": 1, "price": 110.0, "fee": 0.5},
    ]
    orders = rows(db, "SELECT client_id, seq, status, filled, done_seq FROM orders ORDER BY seq")
    assert orders == [
        {"client_id": "test-robot-r1-1", "seq": 2, "status": "filled", "filled": 2, "done_seq": 4},
        {"client_id": "test-robot-r1-2", "seq": 5, "status": "filled", "filled": 1, "done_seq": 8},
    ]
    trades = rows(db, "SELECT side, qty, entry_price, exit_price, pnl, open_at_end FROM trades")
    assert trades == [
        {"side": "long", "qty": 1, "entry_price": 101.0, "exit_price": 110.0, "pnl": 8.0,
         "open_at_end": 0},
        {"side": "long", "qty": 1, "entry_price": 101.0, "exit_price": 108.0, "pnl": 6.5,
         "open_at_end": 1},
    ]  # fmt: skip


def test_strategy_state_rows_only_when_it_changes(journal, tmp_path):
    db = tmp_path / "a.db"
    analyze([journal], db=str(db))
    got = rows(db, "SELECT seq, state FROM strategy_states ORDER BY seq")
    states = {r["seq"]: json.loads(r["state"]) for r in got}
    assert sorted(states) == [1, 2, 5, 7, 9]  # start, then each bar
    assert states[1] == {"bars": 0, "last_close": 0}  # no _hidden, no params
    assert states[7] == {"bars": 3, "last_close": 111}


def test_run_row_and_statistics(journal, tmp_path):
    db = tmp_path / "a.db"
    result = analyze([journal], db=str(db))
    (run,) = rows(db, "SELECT * FROM runs")
    assert (run["robot"], run["run_id"], run["mode"]) == ("test-robot", "r1", "live")
    assert (run["first_seq"], run["last_seq"], run["events"]) == (1, 10, 10)
    assert (run["start_ts"], run["end_ts"]) == (at(1), at(4))
    assert run["complete"] == 1 and run["verified"] == 1
    stats = json.loads(run["stats"])
    assert stats == result.runs[0].stats
    assert stats["trades"] == 2 and stats["open_trades_at_end"] == 1
    assert stats["win_rate_pct"] == 100.0
    assert stats["net_pnl"] == 9 + 7 - 1.5
    assert stats["exposure_pct"] == 75.0  # in the market after 3 of 4 bars


def test_analysing_twice_duplicates_nothing(journal, tmp_path):
    db = tmp_path / "a.db"
    analyze([journal], db=str(db))
    first = {t: rows(db, f"SELECT * FROM {t}") for t in TABLES}
    analyze([journal, journal.parent], db=str(db))  # the file and its folder: one journal
    again = {t: rows(db, f"SELECT * FROM {t}") for t in TABLES}
    assert again == first
    assert len(again["runs"]) == 1


def test_a_growing_journal_is_analysed_to_its_last_frame_then_replaced(tmp_path):
    db = tmp_path / "a.db"
    events = scripted_events(stop=False)
    path = tmp_path / "live.journal"
    write_journal(path, scripted_spec(), events[:5])
    with open(path, "ab") as f:
        f.write(b"\x40\x00\x00\x00half a frame")  # a frame being written
    report = analyze([path], db=str(db)).runs[0]
    assert not report.complete
    (run,) = rows(db, "SELECT events, complete FROM runs")
    assert run == {"events": 5, "complete": 0}
    path.unlink()  # the same run (same header), written on to its end
    write_journal(path, scripted_spec(), scripted_events())
    analyze([path], db=str(db))
    assert rows(db, "SELECT events, complete FROM runs") == [{"events": 10, "complete": 1}]
    assert rows(db, "SELECT count(*) AS n FROM states") == [{"n": 10}]


def test_a_bad_journal_is_reported_and_the_others_analysed(journal, tmp_path):
    bad = journal.parent / "bad.journal"
    bad.write_bytes(b"not a journal at all")
    result = analyze([journal.parent], db=str(tmp_path / "a.db"))
    assert [r.run_id for r in result.runs] == ["r1"]
    assert len(result.problems) == 1 and "bad.journal" in result.problems[0]
    assert "not a roboframe journal" in result.problems[0]


def test_a_changed_strategy_is_a_warning(journal, tmp_path, monkeypatch):
    from tests.unit.analyze import journals

    monkeypatch.setattr(journals.Scripted, "on_bar", lambda self, bar, ctx: None)
    result = analyze([journal], db=str(tmp_path / "a.db"))
    assert len(result.warnings) == 1
    assert "seq 2" in result.warnings[0] and "differs from the journal" in result.warnings[0]
    assert rows(tmp_path / "a.db", "SELECT verified FROM runs") == [{"verified": 0}]


class CountBars:
    def __init__(self) -> None:
        self.n = 0

    def on_event(self, event, kernel) -> None:
        if type(event).__name__ == "Bar":
            self.n += 1

    def result(self):
        return {"bars": self.n}


def test_plugin_statistics_are_added(journal, tmp_path):
    class Plugin:
        @hookimpl
        def roboframe_register_statistics(self, register):
            register("bar_count", CountBars)

    registry = build_registry(build_plugin_manager(entry_points=False, extra=[Plugin()]))
    result = analyze([journal], db=str(tmp_path / "a.db"), registry=registry)
    assert result.runs[0].stats["bar_count"] == {"bars": 4}
    (run,) = rows(tmp_path / "a.db", "SELECT stats FROM runs")
    assert json.loads(run["stats"])["bar_count"]["bars"] == 4


class RaisesOnSecondBar(CountBars):
    def on_event(self, event, kernel) -> None:
        super().on_event(event, kernel)
        if self.n == 2:
            raise KeyError("stat exploded")


class NotJson(CountBars):
    def result(self):
        return object()


class NoStart(CountBars):
    def __init__(self) -> None:
        raise RuntimeError("no config")


def test_a_plugin_statistic_that_raises_is_left_out_and_the_rest_goes_on(journal, tmp_path):
    """A statistic's own bug -- in on_event, in result() (not JSON), on start --
    costs that statistic alone: the run and every other statistic are stored,
    its error in its place (analyze said nothing else before: a traceback)."""

    class Plugin:
        @hookimpl
        def roboframe_register_statistics(self, register):
            register("bar_count", CountBars)
            register("exploding", RaisesOnSecondBar)
            register("not_json", NotJson)
            register("no_start", NoStart)

    registry = build_registry(build_plugin_manager(entry_points=False, extra=[Plugin()]))
    result = analyze([journal], db=str(tmp_path / "a.db"), registry=registry)
    assert len(result.runs) == 1 and not result.problems
    stats = result.runs[0].stats
    assert stats["bar_count"] == {"bars": 4}
    assert stats["exploding"]["error"].startswith(
        "statistic 'exploding' on_event raised KeyError: 'stat exploded' (test_timeline.py:"
    )
    assert stats["not_json"]["error"].startswith("statistic 'not_json' result() raised TypeError")
    assert stats["no_start"]["error"].startswith(
        "statistic 'no_start' on start raised RuntimeError: no config"
    )
    (run,) = rows(tmp_path / "a.db", "SELECT stats FROM runs")
    assert json.loads(run["stats"])["exploding"] == stats["exploding"]


def test_curves_stay_bounded_and_keep_the_end():
    curve = Curve(limit=100)
    for i in range(100_000):
        curve.add(i, float(i))
    points = curve.finished()
    assert len(points) <= 101
    assert points[0] == (0, 0.0) and points[-1] == (99_999, 99_999.0)
    steps = {b[0] - a[0] for a, b in itertools.pairwise(points[:-1])}
    assert len(steps) == 1  # evenly thinned


def test_a_journal_cut_before_its_last_actions_is_not_a_divergence(tmp_path):
    from roboframe.journal import JournalReader
    from roboframe.replay import verify

    path = tmp_path / "cut.journal"
    write_journal(path, scripted_spec(), scripted_events(stop=False)[:2])  # bar 1 buys
    last = list(JournalReader(path).records())[-1]
    assert last.kind == 2  # the ACTIONS record of that buy
    with open(path, "r+b") as f:
        f.truncate(last.offset)  # the writer died between the message and its actions
    assert verify(path).ok and verify(path).unjournaled == 1
    result = analyze([path], db=str(tmp_path / "a.db"))
    assert result.warnings == []  # the same judgement as replay --verify
    assert rows(tmp_path / "a.db", "SELECT verified FROM runs") == [{"verified": 1}]


def test_refused_cancels_and_replaces_leave_one_order_row_per_order(tmp_path):
    """A cancel or replace that risk refuses names an order with its own row: the
    analysis neither writes that row early nor twice (it used to stop on a
    duplicate key)."""
    from roboframe.core.events import Control, OrderUpdate
    from roboframe.testing.helpers import bar, make_spec

    spec = make_spec(
        strategy={"plugin": "tests.unit.analyze.journals:Canceller", "params": {}},
        risk={"max_order_qty": 10},
    )
    events = [
        Control("start", at(0)),
        bar(SI, 1, 100),
        lambda sent: OrderUpdate(sent[0].client_id, at(1), "accepted"),
        bar(SI, 2, 100),
        lambda sent: OrderUpdate(sent[0].client_id, at(2), "cancelled"),
        bar(SI, 3, 100),
        bar(SI, 4, 100),
        Control("stop", at(5)),
    ]
    write_journal(tmp_path / "c.journal", spec, events)
    analyze([str(tmp_path / "c.journal")], db=str(tmp_path / "a.db"))
    with sqlite3.connect(tmp_path / "a.db") as db:
        orders = db.execute("SELECT client_id, status, seq, done_seq, reason FROM orders")
        orders = orders.fetchall()
        actions = db.execute("SELECT seq, kind, reason FROM actions ORDER BY seq, n").fetchall()
        prices = db.execute("SELECT kind, order_type, price FROM actions WHERE seq = 2")
        prices = prices.fetchall()
    first, big = "test-robot-r1-1", "test-robot-r1-2"
    # a refused limit order keeps its price, as a new one has it
    assert sorted(prices) == [("new", "limit", 90.0), ("rejected", "limit", 95.0)]
    assert sorted(orders) == [
        (first, "cancelled", 2, 5, None),
        (big, "rejected", 2, 2, "quantity 50 exceeds max_order_qty 10"),
    ]
    assert actions == [
        (2, "new", None),
        (2, "rejected", "risk: quantity 50 exceeds max_order_qty 10"),
        (4, "cancel", None),
        (4, "cancel_rejected", "risk: cancel already pending"),
        (6, "cancel_rejected", "risk: order is not open"),
        (7, "replace_rejected", "risk: replace: order is not open"),
    ]


def test_a_fill_whose_fee_is_no_number_is_analysed_as_the_robot_booked_it(tmp_path):
    """A bridge's ``1,5``: the robot books the fill without its fee (an anomaly);
    the analysis of its journal raised at it instead."""
    from roboframe.testing.helpers import fill

    events = scripted_events()
    events[3] = lambda sent: fill(sent[0], 101, trade_id="T1", ts=at(1) + 1, fee="1,5")
    path = tmp_path / "runs" / "r1.journal"
    path.parent.mkdir()
    write_journal(path, scripted_spec(), events)
    db = tmp_path / "a.db"
    analyze([path], db=str(db))
    fills = rows(db, "SELECT trade_id, fee FROM fills ORDER BY seq")
    assert fills == [{"trade_id": "T1", "fee": 0.0}, {"trade_id": "T2", "fee": 0.5}]
