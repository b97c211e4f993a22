"""The pure kernel on hand-made event sequences: orders, state machine, PnL."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest

from roboframe.core.events import Cancel, Control, Fill, NewOrder, OrderUpdate, Tick
from roboframe.core.kernel import Kernel
from roboframe.core.strategy import Strategy
from roboframe.errors import StrategyError
from roboframe.testing.helpers import MINUTE_NS, T0, bar, fill, make_spec, run_events

SI = "Si-12.26"
RTS = "RTS-12.26"


class Scripted(Strategy):
    """Answers each bar with whatever ``script(bar, ctx)`` returns; records updates."""

    def __init__(self, script=None, on_order=None):
        super().__init__({})
        self.script = script or (lambda bar, ctx: None)
        self.react = on_order or (lambda upd, ctx: None)
        self.updates: list[OrderUpdate] = []
        self.fills: list[Fill] = []

    def on_bar(self, bar, ctx):
        return self.script(bar, ctx)

    def on_order(self, update, ctx):
        self.updates.append(update)
        return self.react(update, ctx)

    def on_fill(self, fill, ctx):
        self.fills.append(fill)


def kernel_with(script=None, on_order=None, **sections) -> tuple[Kernel, Scripted]:
    spec = make_spec(**sections)
    strategy = Scripted(script, on_order)
    kernel = Kernel(spec, "r1", strategy)
    kernel.handle(Control("start", T0))
    return kernel, strategy


def test_sma_crossover_orders_on_hand_made_bars():
    spec = make_spec(strategy={"plugin": "sma-crossover", "params": {"fast": 2, "slow": 3}})
    closes = [100, 100, 100, 103, 104, 90, 80]
    kernel, outputs = run_events(spec, [bar(SI, i, c) for i, c in enumerate(closes)])
    sent = [(e.close, a) for e, actions, _ in outputs[1:] for a in actions]
    # 100,100,100: averages equal, no signal; 103: fast above slow -> long 1
    assert sent[0] == (103, NewOrder("test-robot-r1-1", SI, "buy", 1))
    # the buy is still open (no fill came), so going short needs 2 lots: -1 - (+1 pending)
    assert sent[1] == (90, NewOrder("test-robot-r1-2", SI, "sell", 2))
    assert len(sent) == 2
    assert kernel.counters["orders"] == 2


def test_order_lifecycle_and_positions():
    kernel, strat = kernel_with(lambda b, ctx: [ctx.buy(SI, 3)] if b.close == 100 else None)
    (order,) = kernel.handle(bar(SI, 1, 100))
    own = kernel.orders.orders[order.client_id]
    assert own.status == "new"
    kernel.handle(OrderUpdate(order.client_id, T0, "accepted"))
    assert own.status == "accepted"
    kernel.handle(fill(order, 100, qty=1, trade_id="a"))
    assert (own.status, own.filled, kernel.ctx.position(SI)) == ("partially_filled", 1, 1)
    kernel.handle(fill(order, 102, qty=2, trade_id="b"))
    assert (own.status, own.filled, kernel.ctx.position(SI)) == ("filled", 3, 3)
    assert order.client_id not in kernel.orders.open
    assert kernel.ctx.avg_price(SI) == Fraction(304, 3)
    assert len(strat.fills) == 2


def test_duplicate_fill_is_ignored():
    kernel, _ = kernel_with(lambda b, ctx: [ctx.buy(SI, 1)])
    (order,) = kernel.handle(bar(SI, 1, 100))
    kernel.handle(fill(order, 100, trade_id="x"))
    kernel.handle(fill(order, 100, trade_id="x"))
    assert kernel.ctx.position(SI) == 1
    assert kernel.counters["duplicates"] == 1


def test_cancel_and_rejected_cancel():
    kernel, _ = kernel_with(lambda b, ctx: [ctx.buy(SI, 1, price=b.close - 5)])
    (order,) = kernel.handle(bar(SI, 1, 100))
    kernel.handle(OrderUpdate(order.client_id, T0, "accepted"))
    strategy_cancel = kernel._process([Cancel(order.client_id)], 0)
    assert strategy_cancel == [Cancel(order.client_id)]
    # a second cancel while one is pending is refused by the kernel itself
    assert kernel._process([Cancel(order.client_id)], 0) == []
    (refused,) = kernel.take_rejected()
    assert (refused.status, refused.reason) == ("cancel_rejected", "risk: cancel already pending")
    # the exchange refuses the cancel: the order stays accepted
    kernel.handle(OrderUpdate(order.client_id, T0, "cancel_rejected", "too late"))
    own = kernel.orders.orders[order.client_id]
    assert (own.status, own.cancel_pending) == ("accepted", False)
    # a gateway that says "rejected" for a refused cancel of an accepted order: the same
    kernel._process([Cancel(order.client_id)], 0)
    kernel.handle(OrderUpdate(order.client_id, T0, "rejected", "too late"))
    assert (own.status, own.cancel_pending) == ("accepted", False)
    kernel.handle(OrderUpdate(order.client_id, T0, "cancelled"))
    assert own.status == "cancelled" and not kernel.orders.open


@pytest.mark.parametrize("removes", [True, False])
def test_an_accepted_order_rejected_with_nothing_asked_of_it_is_finished(removes):
    """A bridge removes an accepted, partly filled buy of 3 with ``rejected``, no
    cancel or replace pending: nothing to refuse. Taken for a refused cancel, the
    order stayed open for good -- order_target(3) counted its lots as working and
    sent nothing. (Journals from before: it stays open.)"""
    kernel, _ = kernel_with(lambda b, ctx: [ctx.buy(SI, 3, price=b.close - 5)])
    kernel.orders.rejected_removes = removes
    (order,) = kernel.handle(bar(SI, 1, 100))
    kernel.handle(OrderUpdate(order.client_id, T0, "accepted"))
    kernel.handle(Fill(order.client_id, T0, SI, "buy", 1, 95, "t1"))
    kernel.handle(OrderUpdate(order.client_id, T0, "rejected", "removed by the exchange"))
    own = kernel.orders.orders[order.client_id]
    assert (own.client_id in kernel.orders.open) is not removes
    assert own.status == ("rejected" if removes else "partially_filled")
    assert kernel.ctx.position(SI) == 1
    wanted = kernel.ctx.order_target(SI, 3)
    assert [(a.side, a.qty) for a in wanted] == ([("buy", 2)] if removes else [])


def test_gateway_rejection_of_new_order():
    kernel, strat = kernel_with(lambda b, ctx: [ctx.sell(SI, 1)])
    (order,) = kernel.handle(bar(SI, 1, 100))
    kernel.handle(OrderUpdate(order.client_id, T0, "rejected", "no money"))
    assert kernel.orders.orders[order.client_id].status == "rejected"
    assert strat.updates[-1].reason == "no money"


def test_pnl_realized_unrealized_and_fees():
    kernel, _ = kernel_with()
    o = NewOrder("x-1", RTS, "buy", 2)
    kernel.orders.add(o, T0)
    kernel.handle(Fill("x-1", T0, RTS, "buy", 2, 11000, "t1", "4.00"))
    kernel.orders.add(NewOrder("x-2", RTS, "sell", 1), T0)
    kernel.handle(Fill("x-2", T0, RTS, "sell", 1, 11010, "t2", "2.00"))
    kernel.book.mark(RTS, 11020)
    snap = kernel.book.positions[RTS].snapshot()
    # RTS tick is 10 points at 1.3 RUB/point = 13 RUB per tick
    assert snap["position"] == 1
    assert snap["avg_price"] == "110000"
    assert snap["realized_pnl"] == "130.00"  # 1 lot x 10 ticks x 13
    assert snap["unrealized_pnl"] == "260.00"  # 1 lot x 20 ticks x 13
    assert snap["fees"] == "6.00"
    assert snap["net_pnl"] == "384.00"
    assert kernel.ctx.pnl(RTS) == Decimal("384.00")


def test_the_status_of_an_open_order_gives_its_limit_in_price_units_too():
    """Positions show prices in price units, open orders showed theirs in ticks
    alone: an RTS limit of 10595 ticks beside a last price of 106380."""
    kernel, _ = kernel_with()
    kernel.orders.add(NewOrder("x-1", RTS, "buy", 1, "limit", 10595), T0)
    kernel.orders.add(NewOrder("x-2", RTS, "buy", 1), T0)
    limit, market = kernel.snapshot()["open_orders"]
    assert (limit["price"], limit["limit_price"]) == (10595, "105950")
    assert market["limit_price"] is None


def test_reversal_through_zero_resets_average_price():
    kernel, _ = kernel_with()
    kernel.orders.add(NewOrder("a", SI, "buy", 1), T0)
    kernel.handle(Fill("a", T0, SI, "buy", 1, 100, "1"))
    kernel.orders.add(NewOrder("b", SI, "sell", 3), T0)
    kernel.handle(Fill("b", T0, SI, "sell", 3, 110, "2"))
    pos = kernel.book.positions[SI]
    assert pos.qty == -2 and pos.avg_price == 110
    assert pos.realized_ticks() == 10


def test_client_ids_are_robot_run_and_sequence():
    kernel, _ = kernel_with(lambda b, ctx: [ctx.buy(SI, 1), ctx.sell(RTS, 1)])
    actions = kernel.handle(bar(SI, 1, 100))
    assert [a.client_id for a in actions] == ["test-robot-r1-1", "test-robot-r1-2"]


def test_strategy_exception_names_the_event():
    def boom(b, ctx):
        raise ZeroDivisionError("oops")

    kernel, _ = kernel_with(boom)
    with pytest.raises(StrategyError, match=r"on_bar raised ZeroDivisionError: oops .*Bar\("):
        kernel.handle(bar(SI, 1, 100))


def test_strategy_returning_garbage_is_an_error():
    kernel, _ = kernel_with(lambda b, ctx: ["buy!"])
    with pytest.raises(StrategyError, match="expected NewOrder, Cancel or Replace"):
        kernel.handle(bar(SI, 1, 100))


def test_a_returned_string_or_nested_list_is_named_as_such():
    """``return "buy"`` was iterated: "returned 'b'"; ``[ctx.order_target(...)]``
    gave a message that did not say the list was nested."""
    kernel, _ = kernel_with(lambda b, ctx: "buy")
    with pytest.raises(StrategyError, match=r"returned 'buy'; expected a list of actions"):
        kernel.handle(bar(SI, 1, 100))
    kernel, _ = kernel_with(lambda b, ctx: [ctx.order_target(SI, 1)])
    with pytest.raises(StrategyError, match="a list inside the list"):
        kernel.handle(bar(SI, 1, 100))


def test_single_action_without_list_is_accepted():
    kernel, _ = kernel_with(lambda b, ctx: ctx.buy(SI, 1))
    assert len(kernel.handle(bar(SI, 1, 100))) == 1


def test_unknown_symbol_is_ignored_and_counted():
    kernel, _ = kernel_with(lambda b, ctx: [ctx.buy(SI, 1)])
    assert kernel.handle(bar("GAZP", 1, 100)) == []
    assert kernel.counters["ignored"] == 1


def test_stop_runs_on_stop_once_and_blocks_new_orders():
    class Flatten(Scripted):
        stops = 0

        def on_stop(self, event, ctx):
            self.stops += 1
            return [ctx.sell(SI, 1)]

    spec = make_spec()
    strat = Flatten(lambda b, ctx: [ctx.buy(SI, 1)])
    kernel = Kernel(spec, "r1", strat)
    kernel.handle(Control("start", T0))
    kernel.handle(bar(SI, 1, 100))
    out = kernel.handle(Control("stop", T0, {"reason": "test"}))
    assert [a.side for a in out] == ["sell"]  # on_stop orders still pass risk
    assert kernel.handle(Control("stop", T0)) == []
    assert strat.stops == 1
    assert kernel.risk.state == "STOPPED" and kernel.stop_reason == "test"
    assert kernel.handle(bar(SI, 2, 100)) == []  # not handed to the strategy
    assert kernel.take_rejected() == []
    assert kernel._process([kernel.ctx.buy(SI, 1)], 0) == []  # an order from on_fill, say
    assert kernel.take_rejected()[0].reason == "risk: robot is stopped"


def test_robot_time_never_goes_backwards():
    kernel, _ = kernel_with()
    kernel.handle(bar(SI, 10, 100))
    kernel.handle(OrderUpdate("nope", T0, "accepted"))
    assert kernel.now == bar(SI, 10, 100).ts


@pytest.mark.parametrize(("policy", "cancelled"), [("leave", []), ("cancel", [2])])
def test_open_orders_on_stop(policy, cancelled):
    from tests.unit.analyze.journals import scripted_spec

    spec = scripted_spec(loop={"open_orders_on_stop": policy})
    kernel, _ = run_events(spec, [bar("Si-12.26", 1, 100), bar("Si-12.26", 2, 105)])
    assert [o.client_id for o in kernel.orders.open.values()] == [
        "test-robot-r1-1",
        "test-robot-r1-2",
    ]
    kernel.handle(OrderUpdate("test-robot-r1-1", T0, "accepted"))
    kernel.handle(fill(kernel.orders.orders["test-robot-r1-1"], 100))  # the market order filled
    actions = kernel.handle(Control("stop", T0 + 10**12, {"reason": "down"}))
    assert actions == [Cancel(f"test-robot-r1-{n}") for n in cancelled]
    assert kernel.risk.state == "STOPPED"


def test_fill_and_order_handlers_are_called_however_the_strategy_defines_them():
    """The kernel skips ``on_fill``/``on_order`` only when the strategy leaves them to
    the base class: a method, an attribute set in ``__init__`` and a wrapped system
    method are all called, and their orders go through risk like any other."""
    seen = []

    class Method(Strategy):
        def on_fill(self, fill, ctx):
            seen.append(("method", fill.trade_id))
            return ctx.sell(SI, 1)

    class Attribute(Strategy):
        def __init__(self, params):
            super().__init__(params)
            self.on_fill = lambda fill, ctx: seen.append(("attribute", fill.trade_id))

    class Wrapped(Strategy):
        def handle_order(self, update, ctx):
            seen.append(("wrapped", update.status))
            return super().handle_order(update, ctx)

    for cls in (Method, Attribute, Wrapped, Strategy):
        kernel = Kernel(make_spec(), "r1", cls({}))
        kernel.handle(Control("start", T0))
        kernel.handle(bar(SI, 1, 100))
        order = NewOrder("test-robot-r1-9", SI, "buy", 1)
        kernel.orders.add(order, T0)
        kernel.handle(OrderUpdate(order.client_id, T0 + 1, "accepted"))
        actions = kernel.handle(fill(order, 100, trade_id="T1"))
        assert kernel.book.positions[SI].qty == 1  # the fill counts either way
        assert len(actions) == (1 if cls is Method else 0)
    assert seen == [("method", "T1"), ("attribute", "T1"), ("wrapped", "accepted")]


def test_cancel_on_stop_leaves_the_orders_on_stop_sends_working():
    """``open_orders_on_stop: cancel`` cancels the orders that were working when the
    stop came, not the exit orders the strategy's own on_stop just sent."""

    class ExitOnStop(Strategy):
        def on_stop(self, event, ctx):
            return [ctx.sell(SI, ctx.position(SI))]

    kernel = Kernel(make_spec(loop={"open_orders_on_stop": "cancel"}), "r1", ExitOnStop({}))
    kernel.handle(Control("start", T0))
    entry = NewOrder("test-robot-r1-90", SI, "buy", 2)
    take_profit = NewOrder("test-robot-r1-91", SI, "sell", 2, "limit", 110)
    for order in (entry, take_profit):
        kernel.orders.add(order, T0)
    kernel.handle(fill(entry, 100))
    actions = kernel.handle(Control("stop", T0 + 1, {"reason": "down"}))
    assert actions == [
        NewOrder("test-robot-r1-1", SI, "sell", 2),
        Cancel(take_profit.client_id),
    ]
    assert kernel.take_rejected() == []


def test_an_acknowledgement_after_the_fills_is_not_an_anomaly():
    """An exchange may fill before it acknowledges (its fills and answers can
    come by two ways): the late ``accepted`` changes nothing and is not odd."""
    kernel, _ = kernel_with(lambda b, ctx: [ctx.buy(SI, 1)] if b.close == 100 else None)
    (order,) = kernel.handle(bar(SI, 1, 100))
    kernel.handle(Fill(order.client_id, T0, SI, "buy", 1, 100, "t1"))
    kernel.handle(OrderUpdate(order.client_id, T0, "accepted"))
    assert kernel.orders.orders[order.client_id].status == "filled"
    assert kernel.orders.anomalies == 0
    kernel.handle(OrderUpdate(order.client_id, T0, "cancelled"))  # this one is odd
    assert kernel.orders.anomalies == 1


def test_a_bar_no_later_than_the_last_one_is_stale_and_not_shown_to_the_strategy():
    """A market-data publisher restarted from the start of its file sends the
    past again; a strategy fed it would trade on old prices as new ones."""
    seen = []
    kernel, _ = kernel_with(lambda b, ctx: seen.append((b.symbol, b.ts)))
    kernel.handle(bar(SI, 2, 100))
    kernel.handle(bar(RTS, 1, 100))  # another symbol may be behind
    kernel.handle(bar(SI, 2, 101))  # a repeat
    kernel.handle(bar(SI, 1, 99))  # the past
    kernel.handle(bar(SI, 3, 102))
    assert seen == [(SI, T0 + 2 * MINUTE_NS), (RTS, T0 + MINUTE_NS), (SI, T0 + 3 * MINUTE_NS)]
    assert kernel.counters["stale"] == 2
    assert kernel.book.positions[SI].last == 102


class TickRecorder(Strategy):
    def __init__(self):
        super().__init__({})
        self.seen: list[tuple[str, int, int]] = []

    def on_tick(self, tick, ctx):
        self.seen.append((tick.symbol, tick.ts, tick.price))


def test_a_tick_before_the_last_one_of_its_symbol_is_stale_and_not_shown_to_the_strategy():
    """A tick publisher restarted from the start of its file sends the morning's
    prices again: a strategy fed them would trade on them as the market now.
    Ticks at the same time as the last are trades of one instant and pass."""
    strategy = TickRecorder()
    kernel = Kernel(make_spec(), "r1", strategy)
    kernel.handle(Control("start", T0))
    for tick in [
        Tick(SI, T0 + 20, 100),
        Tick(SI, T0 + 20, 101),  # the same instant: a second trade
        Tick(RTS, T0 + 10, 5000),  # another symbol may be behind
        Tick(SI, T0 + 10, 90),  # the past again
        Tick(SI, T0 + 30, 102),
    ]:
        kernel.handle(tick)
    assert strategy.seen == [
        (SI, T0 + 20, 100),
        (SI, T0 + 20, 101),
        (RTS, T0 + 10, 5000),
        (SI, T0 + 30, 102),
    ]
    assert kernel.counters["stale_ticks"] == 1
    assert kernel.book.positions[SI].last == 102


def test_market_data_of_a_symbol_the_robot_does_not_trade_is_logged_once(caplog):
    """A publisher whose events name the exchange's ticker (``SPFB.Si``) under the
    robot symbol's topic: every event is ignored, and the robot sat idle without a
    word. The first one is now logged, naming the symbol and the robot's symbols."""
    seen = []
    kernel, _ = kernel_with(lambda b, ctx: seen.append(b.symbol))
    with caplog.at_level("WARNING", logger="roboframe.core.kernel"):
        kernel.handle(bar("SPFB.Si", 1, 100))
        kernel.handle(bar("SPFB.Si", 2, 101))
        kernel.handle(Tick("SPFB.Si", T0 + 3 * MINUTE_NS, 102))
        kernel.handle(bar(SI, 4, 100))
    assert seen == [SI]
    assert kernel.counters["ignored"] == 3
    logged = [r.getMessage() for r in caplog.records]
    assert len(logged) == 1, logged
    assert "SPFB.Si" in logged[0] and SI in logged[0] and RTS in logged[0]


def test_a_refused_cancel_of_an_order_not_yet_acknowledged_leaves_it_open():
    """A bridge may refuse a cancel ("order not found") before it acknowledges the
    order. ``cancel_rejected`` says so: the order stays open, and its late
    acknowledgement and fill are no anomaly; target sizing still counts it."""
    kernel, _ = kernel_with(lambda b, ctx: [ctx.buy(SI, 1, price=b.close - 5)])
    (order,) = kernel.handle(bar(SI, 1, 100))
    assert kernel._process([Cancel(order.client_id)], 0) == [Cancel(order.client_id)]
    kernel.handle(OrderUpdate(order.client_id, T0, "cancel_rejected", "order not found"))
    own = kernel.orders.orders[order.client_id]
    assert (own.status, own.cancel_pending) == ("new", False)
    assert order.client_id in kernel.orders.open
    assert kernel.ctx.order_target(SI, 1) == []  # the open buy already makes the target
    kernel.handle(OrderUpdate(order.client_id, T0, "accepted"))
    kernel.handle(Fill(order.client_id, T0, SI, "buy", 1, 95, "t1"))
    assert own.status == "filled" and kernel.orders.anomalies == 0
    assert kernel.ctx.position(SI) == 1


@pytest.mark.parametrize("quiet", [True, False])
def test_after_on_stop_the_strategy_sees_no_market_data_or_timers(quiet):
    """The loop drains fills after the stop; the strategy's on_bar ran on through
    it (its orders refused as stopped), and timers fired. Fills still reach it.
    (Journals from before replay by the old rule.)"""
    from roboframe.core.events import Timer

    seen = []
    kernel, strategy = kernel_with(lambda b, ctx: seen.append(b.close) or [ctx.buy(SI, 1)])
    kernel.quiet_after_stop = quiet
    (order,) = kernel.handle(bar(SI, 1, 100))
    kernel.ctx.set_timer("t", at=T0 + 5 * MINUTE_NS)
    kernel.handle(Control("stop", T0 + 2 * MINUTE_NS))
    assert kernel.handle(bar(SI, 3, 105)) == []
    assert kernel.ctx.last_price(SI) == 105  # the price still marks the position
    kernel.handle(fill(order, 105))
    assert strategy.fills and kernel.ctx.position(SI) == 1
    assert seen == ([100] if quiet else [100, 105])
    assert kernel.take_rejected() == [] if quiet else kernel.counters["rejections"] == 1
    assert kernel.due_timers(T0 + 10 * MINUTE_NS) == (
        [] if quiet else [Timer("t", T0 + 5 * MINUTE_NS)]
    )


@pytest.mark.parametrize("checked", [True, False])
def test_a_fill_no_order_can_have_is_an_anomaly_not_a_trade(checked, caplog):
    """A gateway's garbled fills -- no lots, the other side, another symbol -- were
    booked without a word: a buy "filled" as a sell moved the position the wrong
    way and the strategy doubled down. Ignored now, each counted and logged; the
    right fill after them is taken, and the robot halts (reduce-only) until a trader
    has looked. (Journals from before replay by the old rule.)"""
    kernel, strategy = kernel_with(lambda b, ctx: [ctx.buy(SI, 2)] if b.close == 100 else None)
    kernel.fills_checked = checked
    (order,) = kernel.handle(bar(SI, 1, 100))
    cid = order.client_id
    garbled = [
        Fill(cid, T0, SI, "sell", 2, 100, "t1"),
        Fill(cid, T0, SI, "buy", 0, 100, "t2"),
        Fill(cid, T0, RTS, "buy", 2, 100, "t3"),
    ]
    for bad in garbled:
        kernel.handle(bad)
    if checked:
        assert kernel.ctx.position(SI) == kernel.ctx.position(RTS) == 0
        assert kernel.orders.anomalies == 3 and strategy.fills == []
        assert "fill t1 of test-robot-r1-1 ignored: a sell of Si-12.26 for a buy" in caplog.text
        # the exchange may hold another position than the robot's: no new risk
        assert kernel.risk.state == "HALTED"
        assert "check the position, then resume" in kernel.risk.halt_reason
    else:
        assert (kernel.ctx.position(SI), kernel.ctx.position(RTS)) == (-2, 2)
    kernel.handle(Fill(cid, T0, SI, "buy", 2, 100, "t4"))
    assert kernel.ctx.position(SI) == (2 if checked else 0)


def test_a_stale_bar_after_the_stop_does_not_mark_the_position():
    kernel, _ = kernel_with()
    kernel.handle(bar(SI, 5, 100))
    kernel.handle(Control("stop", T0 + 6 * MINUTE_NS))
    kernel.handle(bar(SI, 4, 50))  # the past again: a publisher restarted, say
    assert kernel.ctx.last_price(SI) == 100
    kernel.handle(bar(SI, 7, 101))
    assert kernel.ctx.last_price(SI) == 101


@pytest.mark.parametrize("fee", ["1,5", "NaN", "-Infinity", "sNaN", "RUB 1.5"])
def test_a_fill_whose_fee_is_no_number_is_booked_without_it(fee):
    """A bridge writing fees in its locale (``1,5``) or a store's ``NaN``: the fill
    raised half booked (the cash moved, the position not), and every resume raised
    at it again; a NaN fee made the PnL NaN, and the kill switch never fired. The
    fill is booked without its fee, an order anomaly."""
    kernel, strategy = kernel_with(
        lambda b, ctx: [ctx.buy(SI, 2)] if b.close == 100 else None,
        risk={"max_daily_loss": 50},
    )
    (order,) = kernel.handle(bar(SI, 1, 100))
    kernel.handle(Fill(order.client_id, T0, SI, "buy", 1, 100, "t1", fee))
    kernel.handle(Fill(order.client_id, T0, SI, "buy", 1, 100, "t2", "0.5"))
    pos = kernel.book.positions[SI]
    assert (pos.qty, pos.cash, pos.fees) == (2, -200, Decimal("0.5"))
    assert kernel.orders.anomalies == 1 and len(strategy.fills) == 2
    assert kernel.ctx.pnl() == Decimal("-0.50")
    kernel.handle(bar(SI, 2, 70))  # -60.50: the kill switch fires
    assert kernel.risk.state == "HALTED"
