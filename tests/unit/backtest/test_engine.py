"""The backtest engine's order of events: answers reach the kernel in the order
the exchange gave them, as in a live run."""

from __future__ import annotations

from decimal import Decimal

import pytest

from roboframe.backtest.engine import Backtest
from roboframe.core.strategy import Strategy
from roboframe.errors import StrategyError
from roboframe.replay import verify
from roboframe.testing.helpers import NullJournal, bar, make_spec

SI = "Si-12.26"


class CancelsTheSecond(Strategy):
    """On the first bar, two buy limits A and B; when A is accepted, cancel B."""

    def __init__(self, params) -> None:
        super().__init__(params)
        self.sent: list[str] = []
        self.updates: list[tuple[str, str]] = []

    def on_bar(self, bar, ctx):
        if not self.sent:
            orders = [ctx.buy(SI, 1, price=bar.close - 50), ctx.buy(SI, 1, price=bar.close - 60)]
            self.sent = [order.client_id for order in orders]
            return orders
        return None

    def on_order(self, update, ctx):
        self.updates.append((update.client_id, update.status))
        if update.client_id == self.sent[0] and update.status == "accepted":
            return [ctx.cancel(self.sent[1])]
        return None


class OrdersOnEveryAnswer(Strategy):
    """A bug in a strategy: every answer brings a new order, without end."""

    def on_bar(self, bar, ctx):
        return [ctx.buy(SI, 1, price=bar.close - 50)]

    def on_order(self, update, ctx):
        return [ctx.buy(SI, 1, price=90_000)]


def backtest(tmp_path, cls: str) -> Backtest:
    spec = make_spec(
        strategy={"plugin": f"tests.unit.backtest.test_engine:{cls}", "params": {}},
        journal={"dir": str(tmp_path)},
    )
    bars = [bar(SI, m, 92_000) for m in range(1, 6)]
    return Backtest(spec, iter(bars), cash=Decimal(10**6), journal_dir=tmp_path)


def test_an_order_reacting_to_an_answer_goes_after_the_orders_sent_before_it(tmp_path):
    """A's acceptance cancels B. Live, B reaches the exchange before that cancel
    (one event's orders go out together); so it must in a backtest, or the
    exchange refuses the cancel of an order it has not seen, the kernel takes
    B for rejected, and B rests unseen on the exchange."""
    run = backtest(tmp_path, "CancelsTheSecond")
    result = run.run()
    a, b = result.kernel.strategy.sent
    assert result.kernel.strategy.updates == [
        (a, "accepted"),
        (b, "accepted"),
        (b, "cancelled"),
    ]
    assert result.kernel.orders.orders[b].status == "cancelled"
    assert list(run.exchange.open_orders) == list(result.kernel.orders.open) == [a]
    assert result.kernel.orders.anomalies == 0
    assert verify(result.journal).ok


def test_a_strategy_that_orders_on_every_answer_is_stopped_with_a_clear_error(tmp_path):
    with pytest.raises(StrategyError, match="answers to orders within one market event"):
        backtest(tmp_path, "OrdersOnEveryAnswer").run()


def test_a_time_past_2262_from_a_plugin_feed_is_an_error_not_an_endless_loop(tmp_path):
    """No timer is ever due after such a time: the engine spun on it for good."""
    from roboframe.core.events import Bar
    from roboframe.errors import ConfigError

    spec = make_spec(journal={"dir": str(tmp_path)})
    first = bar(SI, 1, 92_000)
    far = Bar(SI, 2**63 + 5, 92_000, 92_000, 92_000, 92_000)
    run = Backtest(spec, iter([first, far]), cash=Decimal(10**6), journal_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"past 2262, out of the 64-bit time range"):
        run.run()


class BuysRtsOnSi(Strategy):
    """On the first Si bar, a market buy of RTS."""

    def __init__(self, params) -> None:
        super().__init__(params)
        self.sent = False

    def on_bar(self, bar, ctx):
        if bar.symbol == SI and not self.sent:
            self.sent = True
            return [ctx.buy(RTS, 1)]
        return None


RTS = "RTS-12.26"


@pytest.mark.parametrize("si_first", [True, False])
def test_an_order_fills_at_the_next_bar_of_its_symbol_whichever_file_comes_first(
    tmp_path, si_first
):
    """An RTS order decided on the Si bar closing at minute 1 filled at the open
    of the RTS bar closing at minute 1 -- opened a minute before the decision --
    when Si's file came first, and at the next one's when RTS's did."""
    spec = make_spec(
        strategy={"plugin": "tests.unit.backtest.test_engine:BuysRtsOnSi", "params": {}},
        journal={"dir": str(tmp_path)},
    )
    events = []
    for m in range(1, 4):
        pair = [bar(SI, m, 92_000), bar(RTS, m, 110_000 + 100 * m, open=110_000 + 100 * m - 50)]
        events += pair if si_first else pair[::-1]
    run = Backtest(spec, iter(events), cash=Decimal(10**6), journal_dir=tmp_path, keep_trades=True)
    (trade,) = run.run().trades
    minute_2 = events[3 if si_first else 2]
    assert (minute_2.symbol, minute_2.open) == (RTS, 110_150)
    assert (trade["entry_ts"], trade["entry_price"]) == (minute_2.ts, "1101500")  # tick 10


class TimesItsStart(Strategy):
    """Sets a timer "an hour after the start" and notes when it fires."""

    def __init__(self, params) -> None:
        super().__init__(params)
        self.start_time = None
        self.fired_at = None

    def on_start(self, event, ctx):
        self.start_time = ctx.time
        ctx.set_timer("later", at=ctx.time + 3600 * 10**9)

    def on_timer(self, timer, ctx):
        self.fired_at = ctx.time


def test_the_start_comes_before_any_market_time_as_in_a_live_run(tmp_path):
    """A live run on recorded data starts at robot time 0 (no market event yet);
    a backtest started at its first bar's time, so a timer set in on_start "an
    hour from now" fired an hour into the data there and at the first bar live."""
    from roboframe.core.kernel import Kernel
    from roboframe.core.loop import RoboLoop

    spec = make_spec(
        strategy={"plugin": "tests.unit.backtest.test_engine:TimesItsStart", "params": {}},
        journal={"dir": str(tmp_path)},
    )
    bars = [bar(SI, m, 92_000) for m in range(1, 120)]
    result = Backtest(spec, iter(bars), cash=Decimal(10**6), journal_dir=tmp_path).run()
    strategy = result.kernel.strategy
    live = Kernel(spec, "r1", TimesItsStart({}))

    RoboLoop(live, NullJournal(), None, wall_clock=False).start()
    assert strategy.start_time == live.strategy.start_time == 0
    assert strategy.fired_at <= bars[0].ts  # by the first bar, as live; not an hour in


class FlatOnStop(Strategy):
    """Long one lot on the first bar; flat again when the run stops."""

    def on_bar(self, bar, ctx):
        return ctx.order_target(SI, 1)

    def on_stop(self, event, ctx):
        return ctx.order_target(SI, 0)


def test_a_fill_after_the_last_market_event_counts_in_the_drawdown(tmp_path):
    """Closing on stop at the last close (fill_at: close) costs its fee after the
    last equity sample: the final equity was 0.2% under the start, the only
    peak, and the maximum drawdown said 0.1%."""
    spec = make_spec(
        strategy={"plugin": "tests.unit.backtest.test_engine:FlatOnStop", "params": {}},
        gateway={"plugin": "paper", "params": {"commission": 10}},
    )
    bars = [bar(SI, m, 92_000) for m in range(1, 4)]
    stats = Backtest(spec, iter(bars), cash=Decimal(10_000), fill_at="close", journal=False)
    stats = stats.run().stats
    assert (stats["trades"], stats["open_trades_at_end"], stats["fees"]) == (1, 0, 20.0)
    assert (stats["equity_final"], stats["equity_peak"]) == (9_980.0, 10_000.0)
    assert stats["max_drawdown_pct"] == -0.2
