"""Strategy timers: asked for through the context, fired on event time,
journaled, and reproduced by replays."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from roboframe.backtest.engine import Backtest
from roboframe.core.events import Timer
from roboframe.core.strategy import Strategy
from roboframe.errors import StrategyError
from roboframe.journal import JournalReader
from roboframe.replay import iter_events, verify
from roboframe.testing.helpers import MINUTE_NS, T0, NullJournal, bar, make_spec, run_events

SI = "Si-12.26"


class Clockwork(Strategy):
    """Every 2 minutes after start it notes the time; once, at T0 + 5m, it buys."""

    def __init__(self, params) -> None:
        super().__init__(params)
        self.fired: list = []
        self.count = 0

    def on_start(self, event, ctx):
        ctx.set_timer("tick", every="2m")
        ctx.set_timer("entry", at=T0 + 5 * MINUTE_NS)

    def on_timer(self, timer, ctx):
        self.fired.append((timer.name, timer.ts, ctx.time))
        self.count += 1
        if timer.name == "entry":
            return [ctx.buy(SI, 1)]
        return None


def spec(**over):
    return make_spec(strategy={"plugin": "tests.unit.core.test_timers:Clockwork", "params": {}},
                     **over)  # fmt: skip


def test_the_kernel_keeps_timers_and_reschedules_them():
    kernel, _ = run_events(spec(), [])
    assert kernel.timers == {"tick": (T0 + 2 * MINUTE_NS, 2 * MINUTE_NS),
                             "entry": (T0 + 5 * MINUTE_NS, None)}  # fmt: skip
    assert kernel.next_due == T0 + 2 * MINUTE_NS
    assert kernel.due_timers(T0 + 5 * MINUTE_NS) == [
        Timer("tick", T0 + 2 * MINUTE_NS),
        Timer("entry", T0 + 5 * MINUTE_NS),
    ]
    kernel.handle(Timer("entry", T0 + 5 * MINUTE_NS))
    assert "entry" not in kernel.timers  # a one-shot timer is gone
    kernel.handle(Timer("tick", T0 + 7 * MINUTE_NS))  # late by 5 minutes
    assert kernel.timers["tick"][0] == T0 + 8 * MINUTE_NS  # once, then on the grid
    assert kernel.snapshot()["timers"] == {"tick": T0 + 8 * MINUTE_NS}
    kernel.ctx.cancel_timer("tick")
    assert kernel.timers == {} and kernel.next_due > T0 * 5  # never


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({}, "needs at="), ({"every": "0s"}, "not a positive"), ({"every": "soon"}, "not a positive")],
)
def test_bad_timer_requests_are_strategy_errors(kwargs, message):
    kernel, _ = run_events(make_spec(), [])
    with pytest.raises(StrategyError, match=message):
        kernel.ctx.set_timer("x", **kwargs)


def test_backtest_fires_timers_at_their_own_time_and_journals_them(tmp_path):
    bars = [bar(SI, m, 92_000 + m) for m in range(1, 12)] + [bar(SI, 20, 92_050)]
    spec_ = spec(journal={"dir": str(tmp_path)})
    result = Backtest(spec_, iter(bars), cash=Decimal(10**6), journal_dir=tmp_path).run()
    strategy = result.kernel.strategy
    ticks = [ts for name, ts, _ in strategy.fired if name == "tick"]
    # every 2 minutes from the start (T0 + 1m, the first bar), also across the gap to minute 20
    assert ticks == [T0 + (1 + 2 * k) * MINUTE_NS for k in range(1, 10)]
    assert all(ts == now for _, ts, now in strategy.fired)  # the event's time is the timer's
    assert ("entry", T0 + 5 * MINUTE_NS, T0 + 5 * MINUTE_NS) in strategy.fired
    assert result.kernel.counters["fills"] == 1  # the entry's order filled on the next bar
    journaled = [
        (e.name, e.ts) for _seq, e, _rec in iter_events(JournalReader(result.journal))
        if isinstance(e, Timer)
    ]  # fmt: skip
    assert journaled == [(n, ts) for n, ts, _ in strategy.fired]
    assert verify(result.journal).ok


def test_two_backtests_with_timers_write_identical_journals(tmp_path):
    bars = [bar(SI, m, 92_000 + (m * 7) % 13) for m in range(1, 30)]
    paths = []
    for n in (1, 2):
        folder = tmp_path / str(n)
        result = Backtest(spec(), iter(bars), cash=Decimal(10**6), journal_dir=folder).run()
        paths.append(result.journal)
    assert Path(paths[0]).read_bytes() == Path(paths[1]).read_bytes()


class EveryFive(Strategy):
    """Meant a timer every five seconds."""

    def on_start(self, event, ctx):
        ctx.set_timer("poll", every=5)
        ctx.set_timer("poll", every=5)  # said once
        ctx.set_timer("slow", every=60_000)  # a minute: said nowhere


def test_a_bare_number_period_under_a_second_is_said_to_be_milliseconds(caplog):
    """``every=5`` is 5 ms: a 100-bar backtest wrote over a million timer events,
    without a word."""
    spec = make_spec(strategy={"plugin": "tests.unit.core.test_timers:EveryFive", "params": {}})
    with caplog.at_level("WARNING", logger="roboframe.core.kernel"):
        run_events(spec, [])
    said = [r.getMessage() for r in caplog.records if "bare number" in r.getMessage()]
    assert said == [
        "timer 'poll' every=5: a bare number is milliseconds (5 ms); write every=\"5s\" for seconds"
    ]


class CancelsTheOther(Strategy):
    """Timers a and b, due together: a's handler cancels b, moves c later."""

    def __init__(self, params) -> None:
        super().__init__(params)
        self.fired: list[tuple[str, int]] = []

    def on_start(self, event, ctx):
        ctx.set_timer("a", at=T0 + 2 * MINUTE_NS)
        ctx.set_timer("b", at=T0 + 2 * MINUTE_NS)
        ctx.set_timer("c", at=T0 + 2 * MINUTE_NS)

    def on_timer(self, timer, ctx):
        self.fired.append((timer.name, timer.ts))
        if timer.name == "a":
            ctx.cancel_timer("b")
            ctx.set_timer("c", at=T0 + 5 * MINUTE_NS)


@pytest.mark.parametrize("where", ["backtest", "live loop"])
def test_a_timer_cancelled_or_moved_by_another_in_the_same_round_does_not_fire(where, tmp_path):
    """The round's due timers were listed first and all fired: b, cancelled by a's
    handler, fired all the same, and c, moved later, fired at its old time and
    its new one."""
    spec = make_spec(strategy={"plugin": "tests.unit.core.test_timers:CancelsTheOther"})
    bars = [bar(SI, m, 100) for m in range(1, 8)]
    if where == "backtest":
        from decimal import Decimal

        from roboframe.backtest.engine import Backtest

        bt = Backtest(spec, iter(bars), cash=Decimal(10**6), journal=False)
        bt.run()
        fired = bt.kernel.strategy.fired
    else:
        fired = _live_loop_fired(spec, bars, tmp_path)
    assert [name for name, _ in fired] == ["a", "c"]
    assert fired[1][1] >= T0 + 5 * MINUTE_NS  # c at its new time only


def _live_loop_fired(spec, bars, tmp_path):
    from roboframe.core.kernel import Kernel
    from roboframe.core.loop import RoboLoop
    from roboframe.core.robot import make_strategy

    strategy, _, _ = make_strategy(spec)
    kernel = Kernel(spec, "r1", strategy)

    loop = RoboLoop(kernel, NullJournal(), None, wall_clock=False)
    loop.start()
    for event in bars:
        loop.inject(event)
        loop.fire_timers()  # as the loop does after each message
    return strategy.fired


class BuysOnATimer(Strategy):
    def on_start(self, event, ctx):
        ctx.set_timer("buy", every="1s")

    def on_timer(self, timer, ctx):
        if timer.name == "buy" and not ctx.open_orders() and not ctx.position(SI):
            return [ctx.buy(SI, 1)]
        return None


def test_on_the_hosts_clock_a_timers_order_fills_against_older_data():
    """A live feed's data carry their own (older) times while a timer fires on
    the host's clock: the paper exchange took the order as placed then, after
    every bar to come, and never filled it."""
    import zmq

    from roboframe.builtin.paper import PaperGateway
    from roboframe.core.gateway import Runtime
    from roboframe.core.kernel import Kernel
    from roboframe.core.loop import RoboLoop

    spec = make_spec(strategy={"plugin": "tests.unit.core.test_timers:BuysOnATimer"})
    strategy = BuysOnATimer({})
    kernel = Kernel(spec, "r1", strategy)
    gateway = PaperGateway({}, kernel.instruments, robot="test-robot")
    runtime = Runtime("test-robot", "r1", zmq.Context.instance(), "inproc://x", None)
    runtime.in_step = True
    gateway.open(runtime)

    clock = [T0 + 7 * 24 * 3600 * 10**9]  # the host's: a week after the data
    loop = RoboLoop(kernel, NullJournal(), gateway, clock=lambda: clock[0], wall_clock=True)
    loop.start()
    loop.inject(bar(SI, 1, 100))
    clock[0] += 2 * 10**9
    loop.fire_timers()  # the timer's buy, stamped with the host's clock
    assert len(kernel.orders.open) == 1
    loop.inject(bar(SI, 2, 101))  # the next bar of the feed fills it at its open
    assert kernel.book.positions[SI].qty == 1


def test_on_the_hosts_clock_a_timers_order_at_the_close_waits_for_the_next_price():
    """fill_at close on a live feed: a timer's market order filled at once at the
    last close -- Friday's, on a Monday morning -- stamped before it existed, as
    the backtest no longer does. It waits for the next price, as in a backtest."""
    import zmq

    from roboframe.builtin.paper import PaperGateway
    from roboframe.core.gateway import Runtime
    from roboframe.core.kernel import Kernel
    from roboframe.core.loop import RoboLoop

    spec = make_spec(strategy={"plugin": "tests.unit.core.test_timers:BuysOnATimer"})
    kernel = Kernel(spec, "r1", BuysOnATimer({}))
    gateway = PaperGateway({"fill_at": "close"}, kernel.instruments, robot="test-robot")
    runtime = Runtime("test-robot", "r1", zmq.Context.instance(), "inproc://x", None)
    runtime.in_step = True
    gateway.open(runtime)
    clock = [T0 + 3 * 24 * 3600 * 10**9]  # the host's: after the weekend
    loop = RoboLoop(kernel, NullJournal(), gateway, clock=lambda: clock[0], wall_clock=True)
    loop.start()
    loop.inject(bar(SI, 1, 100))  # Friday's last
    clock[0] += 2 * 10**9
    loop.fire_timers()
    assert len(kernel.orders.open) == 1 and kernel.book.positions[SI].qty == 0
    loop.inject(bar(SI, 2, 107, open=105))  # Monday's first bar fills it at its open
    pos = kernel.book.positions[SI]
    assert (pos.qty, pos.cash) == (1, -105)
