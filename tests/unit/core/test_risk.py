"""Pre-trade risk: each limit, the trading states and the kill switch."""

from __future__ import annotations

import pytest

from roboframe.core.events import Cancel, Control, Fill, NewOrder, OrderUpdate
from roboframe.errors import StrategyError
from roboframe.testing.helpers import MINUTE_NS, T0, bar

from .test_kernel import RTS, SI, kernel_with


def reasons(kernel) -> list[str]:
    return [u.reason for u in kernel.take_rejected()]


def test_max_order_qty_rejection_reaches_the_strategy():
    kernel, strat = kernel_with(lambda b, ctx: [ctx.buy(SI, 6)], risk={"max_order_qty": 5})
    assert kernel.handle(bar(SI, 1, 100)) == []
    assert strat.updates[-1].status == "rejected"
    assert strat.updates[-1].reason == "risk: quantity 6 exceeds max_order_qty 5"
    assert kernel.orders.orders[strat.updates[-1].client_id].status == "rejected"
    assert kernel.counters["rejections"] == 1


def test_allowed_symbols():
    kernel, _ = kernel_with(lambda b, ctx: [ctx.buy(RTS, 1)], risk={"allowed_symbols": [SI]})
    assert kernel.handle(bar(SI, 1, 100)) == []
    assert reasons(kernel) == ["risk: symbol RTS-12.26 is not allowed"]


def test_max_position_counts_open_orders():
    kernel, _ = kernel_with(lambda b, ctx: [ctx.buy(SI, 2)], risk={"max_position": 3})
    assert len(kernel.handle(bar(SI, 1, 100))) == 1  # 0 + 2 <= 3
    assert kernel.handle(bar(SI, 2, 100)) == []  # 0 + 2 pending + 2 > 3
    assert reasons(kernel) == [
        "risk: position could reach 4 lots, over max_position 3 for Si-12.26"
    ]


def test_max_position_per_symbol_mapping_for_shorts():
    kernel, _ = kernel_with(lambda b, ctx: [ctx.sell(RTS, 2)], risk={"max_position": {RTS: 1}})
    assert kernel.handle(bar(SI, 1, 100)) == []
    assert reasons(kernel) == [
        "risk: position could reach 2 lots, over max_position 1 for RTS-12.26"
    ]


def test_orders_per_second_by_event_time():
    kernel, _ = kernel_with(
        lambda b, ctx: [ctx.buy(SI, 1), ctx.sell(SI, 1), ctx.buy(SI, 1)],
        risk={"max_orders_per_second": 2},
    )
    assert len(kernel.handle(bar(SI, 1, 100))) == 2
    assert reasons(kernel) == ["risk: more than 2 orders per second"]
    # a minute of event time later the window is empty again
    assert len(kernel.handle(bar(SI, 2, 100))) == 2


def test_price_band_for_limit_orders():
    kernel, _ = kernel_with(
        lambda b, ctx: [ctx.buy(SI, 1, price=105), ctx.buy(SI, 1, price=106)],
        risk={"price_band_pct": 5},
    )
    out = kernel.handle(bar(SI, 1, 100))
    assert [a.price for a in out] == [105]
    assert reasons(kernel) == [
        "risk: limit price 106 is outside the 5% band around the last price 100 (ticks)"
    ]


def test_daily_loss_halts_and_only_reducing_orders_pass():
    kernel, _ = kernel_with(risk={"max_daily_loss": 50})
    kernel.handle(bar(SI, 1, 100))
    kernel.orders.add(NewOrder("o1", SI, "buy", 2), T0)
    kernel.handle(Fill("o1", T0 + MINUTE_NS, SI, "buy", 2, 100, "t1"))
    kernel.handle(bar(SI, 2, 80))  # 2 lots x -20 ticks x 1 RUB = -40: still trading
    assert kernel.risk.state == "ACTIVE"
    kernel.handle(bar(SI, 3, 70))  # -60 RUB: past the limit
    assert kernel.risk.state == "HALTED"
    ctx = kernel.ctx
    assert kernel._process([ctx.buy(SI, 1)], 0) == []
    assert "would not reduce" in reasons(kernel)[0]
    assert len(kernel._process([ctx.sell(SI, 2)], 0)) == 1
    assert kernel._process([ctx.sell(SI, 1)], 0) == []  # would go past flat
    kernel.handle(Control("resume", T0 + 4 * MINUTE_NS))
    assert kernel.risk.state == "ACTIVE"


def test_daily_loss_counts_from_the_start_of_each_day():
    """A day's loss runs from the last prices of the day before: the gap at the
    open is the new day's, yesterday's loss is not."""
    kernel, _ = kernel_with(risk={"max_daily_loss": 50})
    kernel.orders.add(NewOrder("o1", SI, "buy", 1), T0)
    kernel.handle(bar(SI, 0, 100))
    kernel.handle(Fill("o1", T0, SI, "buy", 1, 100, "t1"))
    kernel.handle(bar(SI, 10, 70))  # -30 on the first day
    day = 24 * 60
    kernel.handle(bar(SI, day, 60))  # the new day opens 10 lower: -10 today
    kernel.handle(bar(SI, day + 1, 25))  # -45 today: under 50
    assert kernel.risk.state == "ACTIVE"
    kernel.handle(bar(SI, day + 2, 15))  # -55 today
    assert kernel.risk.state == "HALTED"


@pytest.mark.parametrize("symbols", [[SI], [SI, RTS]])
def test_the_gap_at_a_days_open_counts_against_that_days_loss(symbols):
    """The day's baseline was taken at the new day's first price: a gap at the
    open -- often the day's largest move -- was never counted, and with several
    symbols only the first one's was lost."""
    kernel, _ = kernel_with(risk={"max_daily_loss": 50})
    kernel.orders.add(NewOrder("o1", SI, "buy", 1), T0)
    kernel.handle(bar(SI, 0, 100))
    kernel.handle(Fill("o1", T0, SI, "buy", 1, 100, "t1"))
    kernel.handle(bar(RTS, 0, 1000))
    day = 24 * 60
    for symbol in symbols:  # the new day's first bars: Si opens 60 lower
        kernel.handle(bar(symbol, day, 40 if symbol == SI else 1000))
    assert kernel.risk.state == "HALTED"


@pytest.mark.parametrize("lasts", [None, "resume", "day"])
def test_a_daily_loss_halt_lasts_until_resume_or_with_halt_lasts_day_to_the_days_end(lasts):
    """A backtest of many days has no one to send resume: one bad day halted it to
    its end. ``halt_lasts: day`` ends the kill switch's halt with its day; a halt
    a trader commanded stays."""
    risk = {"max_daily_loss": 50} if lasts is None else {"max_daily_loss": 50, "halt_lasts": lasts}
    kernel, _ = kernel_with(risk=risk)
    kernel.orders.add(NewOrder("o1", SI, "buy", 1), T0)
    kernel.handle(bar(SI, 0, 100))
    kernel.handle(Fill("o1", T0, SI, "buy", 1, 100, "t1"))
    kernel.handle(bar(SI, 1, 40))
    assert kernel.risk.state == "HALTED"
    day = 24 * 60
    kernel.handle(bar(SI, day, 40))
    assert kernel.risk.state == ("ACTIVE" if lasts == "day" else "HALTED")
    kernel.handle(Control("halt", T0 + (day + 1) * MINUTE_NS))  # the trader's own
    kernel.handle(bar(SI, 2 * day, 40))
    assert kernel.risk.state == "HALTED"


def test_the_kill_switch_cancels_the_orders_that_would_add_to_the_position():
    """Reduce-only stops new risk; the risk already resting must stop too: a
    falling market would otherwise fill the buy limits below and grow the loss."""
    kernel, _ = kernel_with(risk={"max_daily_loss": 50})
    kernel.handle(bar(SI, 1, 100))
    kernel.orders.add(NewOrder("entry", SI, "buy", 2), T0)
    kernel.handle(Fill("entry", T0, SI, "buy", 2, 100, "t1"))
    ctx = kernel.ctx
    resting = kernel._process(
        [
            ctx.buy(SI, 1, price=90),  # adds: cancelled
            ctx.sell(SI, 1, price=120),  # reduces: kept
            ctx.buy(RTS, 1, price=50),  # opens a position: cancelled
            ctx.sell(SI, 1, price=130),  # reduces to flat with the one above: kept
            ctx.sell(SI, 1, price=140),  # would pass flat: cancelled
        ],
        0,
    )
    assert len(resting) == 5
    out = kernel.handle(bar(SI, 2, 70))  # -60: the kill switch fires
    assert kernel.risk.state == "HALTED"
    assert out == [Cancel(resting[i].client_id) for i in (0, 2, 4)]
    assert kernel.handle(bar(SI, 3, 60)) == []  # once


def test_the_kill_switch_firing_on_a_fill_cancels_too():
    kernel, _ = kernel_with(risk={"max_daily_loss": 50})
    kernel.handle(bar(SI, 1, 100))
    (more,) = kernel._process([kernel.ctx.buy(SI, 1, price=90)], 0)
    kernel.orders.add(NewOrder("entry", SI, "buy", 2), T0)
    out = kernel.handle(Fill("entry", T0, SI, "buy", 2, 130, "t1"))  # 60 over the last price
    assert kernel.risk.state == "HALTED"
    assert out == [Cancel(more.client_id)]


# T0 is 11:06:40 UTC: minute 293 is 15:59:40 UTC, minute 294 is 16:00:40 UTC (19:00:40 MSK)
_BEFORE_19_MSK, _AFTER_19_MSK = 293, 294


def _long_one_at_200(**risk):
    kernel, _ = kernel_with(risk={"max_daily_loss": 50, **risk})
    kernel.orders.add(NewOrder("o1", SI, "buy", 1), T0)
    kernel.handle(bar(SI, 0, 200))
    kernel.handle(Fill("o1", T0, SI, "buy", 1, 200, "t1"))
    kernel.handle(bar(SI, _BEFORE_19_MSK, 160))  # -40 today
    return kernel


def test_daily_loss_day_begins_at_day_starts():
    """MOEX futures: the evening session after 19:00 MSK opens the next trading
    day, so its losses count against a fresh daily limit."""
    kernel = _long_one_at_200(day_starts="19:00 MSK")
    kernel.handle(bar(SI, _AFTER_19_MSK, 140))  # -60 in all, but a new day: -20 today
    assert kernel.risk.state == "ACTIVE"
    kernel.handle(bar(SI, _AFTER_19_MSK + 1, 115))  # -45 today
    assert kernel.risk.state == "ACTIVE"
    kernel.handle(bar(SI, _AFTER_19_MSK + 2, 105))  # -55 today
    assert kernel.risk.state == "HALTED"


def test_daily_loss_day_begins_at_midnight_utc_by_default():
    kernel = _long_one_at_200()
    kernel.handle(bar(SI, _AFTER_19_MSK, 140))  # -60 in the same UTC day
    assert kernel.risk.state == "HALTED"


def test_a_flat_robot_starts_each_day_at_day_starts():
    """Flat, the kill switch is asked only when a day ends: the next day must
    end at day_starts, not at midnight UTC."""
    kernel, _ = kernel_with(risk={"max_daily_loss": 50, "day_starts": "19:00 MSK"})
    kernel.handle(bar(SI, 0, 200))
    next_start = T0 + _AFTER_19_MSK * MINUTE_NS - 40 * 10**9  # 16:00:00 UTC
    assert kernel._day_end == next_start


@pytest.mark.parametrize(
    ("text", "hours"),
    [("00:00 UTC", 0), ("19:00 MSK", -16), ("07:30 -05:00", -12.5), ("03:00", -3)],
)
def test_day_shift(text, hours):
    from roboframe.risk.calendar import day_shift

    assert day_shift(text) == int(hours * 3600) * 10**9


def test_pause_refuses_new_orders_but_handles_fills():
    kernel, _ = kernel_with(lambda b, ctx: [ctx.buy(SI, 1)])
    (order,) = kernel.handle(bar(SI, 1, 100))
    kernel.handle(Control("pause", T0))
    assert kernel.handle(bar(SI, 2, 100)) == []
    assert reasons(kernel) == ["risk: robot is paused"]
    kernel.handle(Fill(order.client_id, T0, SI, "buy", 1, 100, "f"))
    assert kernel.ctx.position(SI) == 1
    kernel.handle(Control("resume", T0))
    assert len(kernel.handle(bar(SI, 3, 100))) == 1


def test_flatten_and_cancel_all_commands():
    kernel, _ = kernel_with(lambda b, ctx: [ctx.buy(SI, 2), ctx.buy(RTS, 1, price=b.close)])
    si, rts = kernel.handle(bar(SI, 1, 100))
    kernel.handle(Fill(si.client_id, T0, SI, "buy", 2, 100, "f"))
    out = kernel.handle(Control("flatten", T0))
    assert [type(a).__name__ for a in out] == ["Cancel", "NewOrder"]
    assert out[0].client_id == rts.client_id
    assert (out[1].side, out[1].qty, out[1].symbol) == ("sell", 2, SI)
    assert kernel.snapshot()["flattening"] == [RTS]
    # the RTS order filled before its cancel arrived: that position is closed too
    (close,) = kernel.handle(Fill(rts.client_id, T0, RTS, "buy", 1, 100, "f2"))
    assert (close.side, close.qty, close.symbol) == ("sell", 1, RTS)
    assert kernel.snapshot()["flattening"] == []


def _long_with_a_take_profit(**risk):
    """Long 2 Si with a resting take-profit sell limit for both lots."""
    kernel, _ = kernel_with(risk=risk)
    kernel.handle(bar(SI, 1, 100))
    kernel.orders.add(NewOrder("buy", SI, "buy", 2), T0)
    kernel.handle(Fill("buy", T0, SI, "buy", 2, 100, "t1"))
    (tp,) = kernel._process([kernel.ctx.sell(SI, 2, price=120)], 0)
    kernel.handle(OrderUpdate(tp.client_id, T0, "accepted"))
    return kernel, tp


@pytest.mark.parametrize("state", ["halt", "reduce", "active"])
def test_flatten_closes_after_the_exits_cancel_is_answered(state):
    """Halted by the kill switch, a trader flattens: the take-profit is cancelled
    and, once that is answered, the position closed. Sent beside the cancel, the
    closing sell would be refused (with the take-profit it could sell 4 of 2) and
    the position left open with no exit at all."""
    kernel, tp = _long_with_a_take_profit()
    if state == "halt":
        kernel.risk.set_state("HALTED", "daily loss")
    elif state == "reduce":
        kernel.handle(Control("reduce", T0))
    out = kernel.handle(Control("flatten", T0))
    assert out == [Cancel(tp.client_id)]
    assert kernel.take_rejected() == []
    (close,) = kernel.handle(OrderUpdate(tp.client_id, T0, "cancelled"))
    assert (close.side, close.qty, close.symbol, close.type) == ("sell", 2, SI, "market")
    assert kernel.take_rejected() == []


@pytest.mark.parametrize("pauses", [True, False])
def test_flatten_leaves_the_robot_paused_until_resume(pauses):
    """A panic button: the strategy, trading on after a flatten, re-entered at its
    next signal, and ``flatten; stop`` left those orders working (the account
    open, the summary flat). A journal from before the rule (no flatten key in
    its header) replays its flattens as its run had them."""
    kernel, _ = kernel_with(lambda b, ctx: [ctx.buy(SI, 1)] if b.close == 90 else None)
    kernel.flatten_pauses = pauses
    kernel.handle(bar(SI, 1, 100))
    kernel.orders.add(NewOrder("buy", SI, "buy", 2), T0)
    kernel.handle(Fill("buy", T0, SI, "buy", 2, 100, "t1"))
    (close,) = kernel.handle(Control("flatten", T0))
    assert (close.side, close.qty) == ("sell", 2)
    kernel.handle(Fill(close.client_id, T0, SI, "sell", 2, 100, "t2"))
    assert kernel.risk.state == ("PAUSED" if pauses else "ACTIVE")
    assert len(kernel.handle(bar(SI, 2, 90))) == (0 if pauses else 1)  # the next signal
    kernel.handle(Control("resume", T0 + 3 * MINUTE_NS))
    assert len(kernel.handle(bar(SI, 3, 90))) == 1


def test_flatten_works_while_paused():
    """Paused means no new entries; a flatten the trader asks for still closes."""
    kernel, _ = kernel_with()
    kernel.handle(bar(SI, 1, 100))
    kernel.orders.add(NewOrder("buy", SI, "buy", 2), T0)
    kernel.handle(Fill("buy", T0, SI, "buy", 2, 100, "t1"))
    kernel.handle(Control("pause", T0))
    (close,) = kernel.handle(Control("flatten", T0))
    assert (close.side, close.qty) == ("sell", 2)
    assert kernel.take_rejected() == []
    assert kernel.handle(bar(SI, 2, 100)) == []  # and nothing else passes


@pytest.mark.parametrize("skipped", [True, False])
def test_a_flatten_is_not_held_back_by_the_plugins_checks(skipped):
    """A check refusing every order (here: out of its trading hours) refused the
    flatten's closing order too, and the position the trader ordered closed stayed
    open, with only a log line. Taking risk off passes, as a cancel does; a new
    order is still refused. (Journals from before replay by the old rule.)"""
    hours = {"plugin": "trading-hours", "params": {"sessions": ["03:00-04:00"]}}
    kernel, _ = kernel_with(risk={"checks": [hours]})
    kernel.risk.flatten_passes_checks = skipped
    kernel.handle(bar(SI, 1, 100))
    kernel.orders.add(NewOrder("buy", SI, "buy", 2), T0)
    kernel.handle(Fill("buy", T0, SI, "buy", 2, 100, "t1"))
    out = kernel.handle(Control("flatten", T0))
    refused = [u.reason for u in kernel.take_rejected()]
    if skipped:
        assert [(a.side, a.qty) for a in out] == [("sell", 2)] and refused == []
    else:
        assert out == [] and refused == ["risk: trading-hours: outside trading hours "
                                         "(03:00-04:00 UTC)"]  # fmt: skip
    kernel.handle(Control("resume", T0))
    assert kernel._process([kernel.ctx.buy(SI, 1)], 0) == []
    assert [u.reason for u in kernel.take_rejected()][-1].startswith("risk: trading-hours")


def test_a_stop_right_after_flatten_still_closes_the_position():
    """``ctl flatten; ctl stop``: the stop comes before the take-profit's cancel
    is answered; the closing order must still go (the loop drains for it)."""
    kernel, tp = _long_with_a_take_profit()
    assert kernel.handle(Control("flatten", T0)) == [Cancel(tp.client_id)]
    kernel.handle(Control("stop", T0))
    assert kernel.risk.state == "STOPPED" and kernel.flattening == {SI: [tp.client_id]}
    (close,) = kernel.handle(OrderUpdate(tp.client_id, T0, "cancelled"))
    assert (close.side, close.qty, close.type) == ("sell", 2, "market")
    assert kernel.flattening == {}
    assert kernel._process([kernel.ctx.buy(SI, 1)], 0) == []  # stopped for all else


def test_flatten_closes_a_position_larger_than_max_order_qty_in_parts():
    """Built one lot at a time under max_order_qty 1, three lots close as three
    orders, whatever the order rate allows new orders."""
    kernel, _ = kernel_with(risk={"max_order_qty": 1, "max_orders_per_second": 1})
    kernel.handle(bar(SI, 1, 100))
    kernel.orders.add(NewOrder("buy", SI, "buy", 3), T0)
    kernel.handle(Fill("buy", T0, SI, "buy", 3, 100, "t1"))
    out = kernel.handle(Control("flatten", T0 + MINUTE_NS))
    assert [(a.side, a.qty) for a in out] == [("sell", 1)] * 3
    assert kernel.take_rejected() == []


def test_flatten_does_not_overshoot_when_the_exit_fills_before_its_cancel():
    kernel, tp = _long_with_a_take_profit()
    assert kernel.handle(Control("flatten", T0)) == [Cancel(tp.client_id)]  # no sell yet
    assert kernel.handle(Fill(tp.client_id, T0, SI, "sell", 2, 120, "t2")) == []
    assert kernel.handle(OrderUpdate(tp.client_id, T0, "rejected", "not open")) == []
    assert kernel.ctx.position(SI) == 0
    assert kernel.snapshot()["flattening"] == []


def test_rejection_chain_is_bounded():
    kernel, _ = kernel_with(
        lambda b, ctx: [ctx.buy(SI, 9)],
        on_order=lambda u, ctx: [ctx.buy(SI, 9)],
        risk={"max_order_qty": 1},
    )
    with pytest.raises(StrategyError, match="keeps answering risk rejections"):
        kernel.handle(bar(SI, 1, 100))


def test_order_path_down_refuses_new_orders_until_up():
    kernel, _ = kernel_with(lambda b, ctx: [ctx.buy(SI, 1)])
    kernel.handle(Control("gateway", T0, {"status": "down", "reason": "store unreachable"}))
    assert kernel.handle(bar(SI, 1, 100)) == []
    assert reasons(kernel) == ["risk: order path unavailable (store unreachable)"]
    assert kernel.snapshot()["order_path"] == "down: store unreachable"
    kernel.handle(Control("gateway", T0, {"status": "up"}))
    assert len(kernel.handle(bar(SI, 2, 100))) == 1


def _long_two_while_the_order_path_is_down():
    kernel, _ = kernel_with()
    kernel.handle(bar(SI, 1, 100))
    kernel.orders.add(NewOrder("buy", SI, "buy", 2), T0)
    kernel.handle(Fill("buy", T0, SI, "buy", 2, 100, "t1"))
    kernel.handle(Control("gateway", T0, {"status": "down", "reason": "store unreachable"}))
    return kernel


def test_a_flatten_while_the_order_path_is_down_closes_when_it_is_back_up():
    """Refused at once, the closing order would leave the position open for good:
    the trader asked for flat, so it goes as soon as the order path is back."""
    kernel = _long_two_while_the_order_path_is_down()
    assert kernel.handle(Control("flatten", T0)) == []
    assert kernel.take_rejected() == []
    assert kernel.snapshot()["closing_when_up"] == [SI]
    assert kernel.handle(Control("gateway", T0, {"status": "down", "reason": "again"})) == []
    (close,) = kernel.handle(Control("gateway", T0, {"status": "up"}))
    assert (close.side, close.qty, close.symbol, close.type) == ("sell", 2, SI, "market")
    assert kernel.snapshot()["closing_when_up"] == []
    assert kernel.handle(Control("gateway", T0, {"status": "up"})) == []  # once


def test_a_flatten_waiting_for_the_order_path_closes_what_the_position_is_then():
    kernel, tp = _long_with_a_take_profit()
    kernel.handle(Control("gateway", T0, {"status": "down", "reason": "store unreachable"}))
    assert kernel.handle(Control("flatten", T0)) == [Cancel(tp.client_id)]
    # the take-profit's cancel is answered while the path is still down: owed, not refused
    assert kernel.handle(OrderUpdate(tp.client_id, T0, "cancelled")) == []
    assert kernel.take_rejected() == []
    assert kernel.snapshot()["closing_when_up"] == [SI]
    (close,) = kernel.handle(Control("gateway", T0, {"status": "up"}))
    assert (close.side, close.qty) == ("sell", 2)


def test_an_owed_flatten_waits_for_orders_still_open_when_the_path_comes_back():
    kernel, tp = _long_with_a_take_profit()
    kernel.handle(Control("gateway", T0, {"status": "down", "reason": "store unreachable"}))
    kernel.handle(Control("flatten", T0))
    kernel.handle(OrderUpdate(tp.client_id, T0, "cancelled"))
    kernel.orders.add(NewOrder("late", SI, "sell", 1, "limit", 130), T0)  # caught up on reconnect
    assert kernel.handle(Control("gateway", T0, {"status": "up"})) == []
    assert kernel.snapshot()["flattening"] == [SI]
    (close,) = kernel.handle(Fill("late", T0, SI, "sell", 1, 130, "t3"))
    assert (close.side, close.qty) == ("sell", 1)


def test_resume_after_a_halt_forgets_the_halts_reason():
    kernel, _ = kernel_with(lambda b, ctx: [ctx.buy(SI, 1)])
    kernel.risk.set_state("HALTED", "daily loss 900.00 exceeds 500")
    assert kernel.snapshot()["halt_reason"].startswith("daily loss")
    kernel.handle(Control("resume", T0))
    kernel.handle(Control("reduce", T0))
    assert kernel.snapshot()["halt_reason"] == ""
    kernel.handle(bar(SI, 1, 100))
    (reason,) = reasons(kernel)
    assert reason.startswith("risk: robot is REDUCING (reduce only):")


def test_empty_allowed_symbols_allows_nothing():
    kernel, _ = kernel_with(lambda b, ctx: [ctx.buy(SI, 1)], risk={"allowed_symbols": []})
    assert kernel.handle(bar(SI, 1, 100)) == []
    assert reasons(kernel) == ["risk: symbol Si-12.26 is not allowed"]


@pytest.mark.parametrize("command", ["reduce", "halt"])
@pytest.mark.parametrize("cancels", [True, False])
def test_reduce_and_halt_cancel_the_resting_orders_that_would_add(command, cancels):
    """Reduce-only refused new orders that would add, while the ones already
    resting at the exchange kept filling: a trader's `reduce` on a robot long 2
    with a buy ladder working took it to +6. Now they are cancelled, as when the
    kill switch fires; the take-profit, which reduces, stays. (Journals from
    before the rule replay without it.)"""
    kernel, _take_profit = _long_with_a_take_profit()
    (ladder,) = kernel._process([kernel.ctx.buy(SI, 1, price=90)], 0)
    kernel.handle(OrderUpdate(ladder.client_id, T0, "accepted"))
    kernel.reduce_cancels = cancels
    out = kernel.handle(Control(command, T0))
    assert out == ([Cancel(ladder.client_id)] if cancels else [])
    assert kernel.risk.state == ("REDUCING" if command == "reduce" else "HALTED")


@pytest.mark.parametrize("exact", [True, False])
def test_a_fractional_order_rate_counts_as_it_says(exact):
    """0.5 orders per second is one order per 2 s; it was cut to 0 and refused
    every order (2.5 became 2). Journals from before replay the cut."""
    from roboframe.core.events import Bar

    kernel, _ = kernel_with(lambda b, ctx: [ctx.buy(SI, 1)], risk={"max_orders_per_second": 0.5})
    kernel.risk.exact_rate = exact
    s = 10**9
    got = [
        len(kernel.handle(Bar(SI, T0 + int(at_s * s), 100, 100, 100, 100, 0)))
        for at_s in (0, 1, 1.9, 2.0, 3.5, 4.1)
    ]
    if exact:
        assert got == [1, 0, 0, 1, 0, 1]  # one per 2 s
        assert reasons(kernel)[0] == "risk: more than 0.5 orders per second (1 per 2 s)"
    else:
        assert got == [0] * 6


@pytest.mark.parametrize("turns", [True, False])
def test_a_timer_after_the_days_end_starts_the_new_day(turns):
    """halt_lasts: day -- a timer opening the next day's session before any bar
    of it still saw the robot HALTED and its order refused. (Journals from before
    the rule replay without it.)"""
    from roboframe.core.events import Timer

    kernel, strategy = kernel_with(risk={"max_daily_loss": 50, "halt_lasts": "day"})
    kernel.timers_turn_day = turns
    strategy.on_timer = lambda timer, ctx: [ctx.buy(SI, 1, price=40)]
    kernel.orders.add(NewOrder("o1", SI, "buy", 1), T0)
    kernel.handle(bar(SI, 0, 100))
    kernel.handle(Fill("o1", T0, SI, "buy", 1, 100, "t1"))
    kernel.handle(bar(SI, 1, 40))
    assert kernel.risk.state == "HALTED"
    out = kernel.handle(Timer("open", T0 + (24 * 60 + 1) * MINUTE_NS))  # the next day
    assert kernel.risk.state == ("ACTIVE" if turns else "HALTED")
    assert len(out) == (1 if turns else 0)


def test_a_fractional_order_rate_allows_no_burst_past_a_second():
    """2.5 a second is five per 2 s -- and never all five in one instant (1.001
    let 50 through at once: 1001 per 1000 s)."""
    for rate, most in ((2.5, 3), (1.001, 2)):
        kernel, _ = kernel_with(
            lambda b, ctx: [ctx.buy(SI, 1) for _ in range(50)],
            risk={"max_orders_per_second": rate},
        )
        assert len(kernel.handle(bar(SI, 1, 100))) == most


@pytest.mark.parametrize("final", [True, False])
def test_a_loss_on_a_fill_after_the_stop_leaves_the_robot_stopped(final):
    """An order still working at the stop fills in the drain at a loss past the
    limit: the kill switch turned STOPPED into HALTED, which the loop takes for a
    running robot (it drained on), and a late ``resume`` then traded again. A
    stopped robot stays stopped. (Journals from before replay by the old rule.)"""
    kernel, _ = kernel_with(lambda b, ctx: [ctx.buy(SI, 10)], risk={"max_daily_loss": 50})
    kernel.risk.stop_is_final = final
    (order,) = kernel.handle(bar(SI, 1, 100))
    kernel.handle(Control("stop", T0 + 2 * MINUTE_NS))
    kernel.handle(bar(SI, 3, 90))
    kernel.handle(Fill(order.client_id, T0 + 3 * MINUTE_NS, SI, "buy", 10, 100, "t1"))
    assert kernel.risk.state == ("STOPPED" if final else "HALTED")
    kernel.handle(Control("resume", T0 + 4 * MINUTE_NS))
    assert kernel.risk.state == ("STOPPED" if final else "ACTIVE")


def _a_new_order_whose_cancel_a_bridge_refused(command, order, again):
    """``command`` sent while ``order`` waits for its acknowledgement; the bridge
    refuses the cancel it brings (it does not know the order yet), then
    acknowledges the order: what the kernel does then."""
    kernel, _ = kernel_with(risk={"max_daily_loss": 50}, loop={"open_orders_on_stop": "cancel"})
    kernel.cancels_again = again
    kernel.handle(bar(SI, 1, 100))
    kernel.orders.add(NewOrder("buy", SI, "buy", 2), T0)
    kernel.handle(Fill("buy", T0, SI, "buy", 2, 100, "t1"))
    (sent,) = kernel._process([order(kernel.ctx)], 0)
    if command == "kill switch":
        assert kernel.handle(bar(SI, 2, 70)) == [Cancel(sent.client_id)]
    else:
        assert kernel.handle(Control(command, T0)) == [Cancel(sent.client_id)]
    kernel.handle(OrderUpdate(sent.client_id, T0, "cancel_rejected", "order not found"))
    return kernel, sent, kernel.handle(OrderUpdate(sent.client_id, T0, "accepted"))


@pytest.mark.parametrize("again", [True, False])
@pytest.mark.parametrize(
    ("command", "order"),
    [
        ("flatten", lambda ctx: ctx.sell(SI, 2, price=120)),  # the exit, waited for
        ("kill switch", lambda ctx: ctx.buy(SI, 1, price=90)),  # adds: cancelled
        ("reduce", lambda ctx: ctx.buy(SI, 1, price=90)),
        ("stop", lambda ctx: ctx.sell(SI, 2, price=120)),  # open_orders_on_stop: cancel
    ],
    ids=["flatten", "kill switch", "reduce", "stop"],
)
def test_a_cancel_refused_before_the_order_was_known_goes_again_once_it_is(command, order, again):
    """A bridge refuses a cancel of an order it has not acknowledged yet ("order
    not found"). When that cancel was a flatten's, the flatten waited for the
    order for good, the position open; a kill switch's or a reduce's left an
    order adding to the position resting, and the stop's (open_orders_on_stop:
    cancel) one working after the run. Acknowledged, it is cancelled again.
    (Journals from before replay by the old rule.)"""
    kernel, sent, out = _a_new_order_whose_cancel_a_bridge_refused(command, order, again)
    assert out == ([Cancel(sent.client_id)] if again else [])
    if again and command == "flatten":
        (close,) = kernel.handle(OrderUpdate(sent.client_id, T0, "cancelled"))
        assert (close.side, close.qty) == ("sell", 2)
