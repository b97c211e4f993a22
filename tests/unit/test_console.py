"""The run summary as a person reads it: what a strategy error left behind."""

from __future__ import annotations

from roboframe.console import format_summary

FAILED = {
    "robot": "rests",
    "run_id": "r1",
    "journal": "runs/rests/r1.journal",
    "state": "STOPPED",
    "stop_reason": "strategy error",
    "error": "ValueError: lost the hedge leg",
    "error_seq": 21,
    "events": 21,
    "messages": 21,
    "malformed": {},
    "orders": 2,
    "fills": 0,
    "rejections": 0,
    "last_rejection": None,
    "cancels": 0,
    "stale_bars": 0,
    "stale_ticks": 0,
    "open_orders": 2,
    "positions": {},
    "net_pnl": "0",
    "duration_s": 1.0,
    "cancelled_on_error": None,
}


def test_a_failed_run_names_its_error_and_the_event():
    text = format_summary(FAILED)
    assert "error      ValueError: lost the hedge leg (event seq 21)" in text
    assert "open_orders_on_error" not in text  # the orders were left working


def test_a_failed_run_that_cancelled_its_orders_says_how_many_closed():
    text = format_summary({**FAILED, "cancelled_on_error": {"asked": 2, "still_open": ["x"]}})
    assert "open orders cancelled (open_orders_on_error): 1 of 2 closed" in text


def test_a_resumed_run_says_which_events_this_process_handled():
    """After a resume the run's event count goes on from its journal, while the
    message count is this process's: "events 279 in 121 messages" mixed them."""
    text = format_summary({**FAILED, "events": 279, "process_events": 158, "messages": 121})
    assert "events     279 in the run; 158 in this process, in 121 messages" in text
    assert "events     21 in 21 messages" in format_summary({**FAILED, "process_events": 21})
