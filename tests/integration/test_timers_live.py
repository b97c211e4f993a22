"""Strategy timers in a live run: fired by the loop, journaled, replayed."""

from __future__ import annotations

import itertools

from roboframe.config import load_robot
from roboframe.core.events import Timer
from roboframe.core.robot import LiveRobot, RunOptions
from roboframe.journal import JournalReader
from roboframe.replay import iter_events, verify
from roboframe.testing.helpers import T0

MINUTE_NS = 60 * 10**9


def test_live_loop_fires_timers_on_data_time(robot_file):
    path = robot_file(bars=120, rate=2000)
    text = path.read_text().replace(
        "  plugin: sma-crossover\n  params: {fast: 3, slow: 8, qty: 1}",
        "  plugin: tests.unit.core.test_timers:Clockwork\n  params: {}",
    )
    assert "Clockwork" in text
    path.write_text(text)
    summary = LiveRobot(load_robot(path), RunOptions()).run()
    assert summary["error"] is None
    events = [e for _s, e, _r in iter_events(JournalReader(summary["journal"])) if e is not None]
    first_bar = next(e.ts for e in events if type(e).__name__ == "Bar")
    timers = [e for e in events if isinstance(e, Timer)]
    ticks = [t.ts for t in timers if t.name == "tick"]
    # 120 one-minute bars: a "tick" roughly every 2 minutes of data time, never early
    assert 50 <= len(ticks) <= 60
    assert all(b - a >= 2 * MINUTE_NS for a, b in itertools.pairwise(ticks))
    assert ticks[0] >= first_bar + 2 * MINUTE_NS  # asked for at start: from the first event
    entry = [t for t in timers if t.name == "entry"]
    # the one-shot "entry" time lies before this data: it fires before the first bar,
    # at its own time, as in a backtest (the loop steps the paper exchange)
    assert [t.ts for t in entry] == [T0 + 5 * MINUTE_NS]
    assert entry[0].ts < first_bar
    assert summary["orders"] == 1
    result = verify(summary["journal"])
    assert result.ok, str(result.divergence)
    assert result.kernel.strategy.count == len(timers)
    # and the backtest of the same robot fires the very same timers
    from decimal import Decimal

    from roboframe.backtest import run_backtest

    bt = run_backtest(load_robot(path), cash=Decimal(10**6), journal_dir=path.parent / "bt")
    in_backtest = [
        e for _s, e, _r in iter_events(JournalReader(bt.journal)) if isinstance(e, Timer)
    ]
    assert in_backtest == timers
