"""Replacing an open limit order: the kernel's checks and state, the paper
exchange's answer, and a backtest that chases the market with one order."""

from __future__ import annotations

import pytest

from roboframe.builtin.paper import PaperExchange
from roboframe.core.events import Cancel, Control, Fill, NewOrder, OrderUpdate, Replace
from roboframe.core.resume import unanswered
from roboframe.testing.helpers import MINUTE_NS, T0, bar

from .test_kernel import SI, kernel_with
from .test_risk import reasons


def placed(kernel, strat, price=95, qty=2):
    """A limit buy sent by the strategy and accepted: its OwnOrder."""
    strat.script = lambda b, ctx: [ctx.buy(SI, qty, price)]
    (order,) = kernel.handle(bar(SI, 1, 100))
    kernel.handle(OrderUpdate(order.client_id, T0, "accepted"))
    strat.script = lambda b, ctx: None
    return kernel.orders.orders[order.client_id]


def next_bar(kernel):
    """A bar a minute after the kernel's time (one no later than the last is stale)."""
    return bar(SI, (kernel.now - T0) // MINUTE_NS + 1, 100)


def replace_on_next_bar(kernel, strat, **change):
    strat.script = lambda b, ctx: [ctx.replace(ctx.open_orders()[0], **change)]
    out = kernel.handle(next_bar(kernel))
    strat.script = lambda b, ctx: None
    return out


def test_a_replace_changes_the_order_when_the_gateway_says_replaced():
    kernel, strat = kernel_with()
    own = placed(kernel, strat)
    assert replace_on_next_bar(kernel, strat, price=97) == [Replace(own.client_id, 2, 97)]
    assert own.replace_pending == (2, 97) and own.price == 95  # not until it is confirmed
    kernel.handle(OrderUpdate(own.client_id, T0 + 1, "replaced"))
    assert (own.qty, own.price, own.replace_pending, own.status) == (2, 97, None, "accepted")
    assert strat.updates[-1].status == "replaced"
    assert kernel.counters["replaces"] == 1


def test_a_refused_replace_leaves_the_order_as_it_was():
    kernel, strat = kernel_with()
    own = placed(kernel, strat)
    replace_on_next_bar(kernel, strat, qty=5)
    kernel.handle(OrderUpdate(own.client_id, T0 + 1, "replace_rejected", "replace: too late"))
    assert (own.qty, own.price, own.replace_pending, own.status) == (2, 95, None, "accepted")
    # a fill before the answer counts against the order it was; the replace may
    # still have taken it to 3, so it stays open until the answer
    replace_on_next_bar(kernel, strat, qty=3)
    kernel.handle(Fill(own.client_id, T0 + 2, SI, "buy", 2, 95, "t1"))
    assert own.status == "partially_filled" and own.client_id in kernel.orders.open
    kernel.handle(OrderUpdate(own.client_id, T0 + 3, "replace_rejected", "replace: not open"))
    assert (own.status, own.filled, own.replace_pending) == ("filled", 2, None)
    assert kernel.orders.anomalies == 0


def test_a_replace_down_to_what_has_filled_meanwhile_finishes_the_order():
    """The exchange shrank the order to 3 lots, then filled its last lot; the fill
    reached the robot first. Once ``replaced`` comes, nothing is left: the order
    is filled, not open forever with 0 lots to go."""
    kernel, strat = kernel_with()
    own = placed(kernel, strat, qty=5)
    kernel.handle(Fill(own.client_id, T0, SI, "buy", 2, 95, "t1"))
    replace_on_next_bar(kernel, strat, qty=3)
    kernel.handle(Fill(own.client_id, T0 + 1, SI, "buy", 1, 95, "t2"))
    kernel.handle(OrderUpdate(own.client_id, T0 + 2, "replaced"))
    assert (own.status, own.qty, own.filled, own.replace_pending) == ("filled", 3, 3, None)
    assert kernel.ctx.open_orders() == []
    assert kernel.orders.anomalies == 0


@pytest.mark.parametrize(
    ("setup", "change", "risk", "reason"),
    [
        (None, {"qty": 2}, {}, "replace: nothing to change"),
        (None, {"price": 0}, {}, "replace: limit price must be positive, got 0"),
        (None, {"qty": 1.5}, {}, "replace: quantity must be a whole number of lots, got 1.5"),
        ("filled 2", {"qty": 2, "price": 96}, {}, "replace: quantity 2 is not above the 2 lots"),
        (None, {"qty": 6}, {"max_order_qty": 5}, "replace: quantity 6 exceeds max_order_qty 5"),
        (None, {"qty": 4}, {"max_position": 3}, "replace: position could reach 4 lots"),
        (None, {"price": 120}, {"price_band_pct": 5}, "replace: limit price 120 is outside"),
        ("cancel", {"price": 96}, {}, "replace: a cancel is already pending"),
        ("replace", {"price": 96}, {}, "replace: a replace is already pending"),
        ("pause", {"price": 96}, {}, "replace: robot is PAUSED: only a smaller quantity"),
    ],
)  # fmt: skip
def test_risk_refuses_a_replace_as_replace_rejected(setup, change, risk, reason):
    kernel, strat = kernel_with(risk=risk)
    own = placed(kernel, strat, qty=2 if setup != "filled 2" else 4)
    if setup == "filled 2":
        kernel.handle(Fill(own.client_id, T0, SI, "buy", 2, 95, "t1"))
    elif setup == "cancel":
        kernel.handle(Control("start", T0))  # nothing; the cancel below is the setup
        strat.script = lambda b, ctx: [ctx.cancel(own)]
        kernel.handle(next_bar(kernel))
    elif setup == "replace":
        replace_on_next_bar(kernel, strat, price=94)
    elif setup == "pause":
        kernel.handle(Control("pause", T0))
    kernel.take_rejected()
    assert replace_on_next_bar(kernel, strat, **change) == []
    rejected = kernel.take_rejected()
    assert [u.status for u in rejected] == ["replace_rejected"]
    assert rejected[0].reason.startswith(f"risk: {reason}"), rejected[0].reason
    assert own.status in ("accepted", "partially_filled") and own.price == 95


def test_a_smaller_quantity_at_the_same_price_passes_even_when_paused():
    kernel, strat = kernel_with()
    own = placed(kernel, strat, qty=3)
    kernel.handle(Control("pause", T0))
    assert replace_on_next_bar(kernel, strat, qty=1) == [Replace(own.client_id, 1, 95)]
    assert reasons(kernel) == []


def test_market_orders_and_unknown_orders_cannot_be_replaced():
    kernel, strat = kernel_with(lambda b, ctx: [ctx.buy(SI, 1)] if b.close == 100 else None)
    (order,) = kernel.handle(bar(SI, 1, 100))
    strat.script = lambda b, ctx: [ctx.replace(order.client_id, price=99), ctx.replace("nope")]
    assert kernel.handle(bar(SI, 2, 101)) == []
    assert reasons(kernel) == [
        "risk: replace: only a limit order can be replaced",
        "risk: replace: order is not open",
    ]


def test_the_paper_exchange_moves_a_replaced_order_to_the_back_of_the_queue():
    ex = PaperExchange(None)
    ex.submit(NewOrder("a", SI, "buy", 2, "limit", 95), 1)
    ex.submit(NewOrder("b", SI, "buy", 1, "limit", 95), 1)
    assert ex.submit(Replace("a", 3, 96), 2) == [OrderUpdate("a", 2, "replaced")]
    assert list(ex.open_orders) == ["b", "a"]
    assert ex.open_orders["a"].order == NewOrder("a", SI, "buy", 3, "limit", 96)
    # 2 lots trade at 95: b (now first) takes 1, a takes 1 at its new price
    fills = ex.on_market(bar(SI, 3, 95, open=97, low=94, high=97, volume=2))
    assert [(f.client_id, f.qty, f.price) for f in fills] == [("b", 1, 95), ("a", 1, 96)]
    assert ex.submit(Replace("a", 1, 96), 4) == [
        OrderUpdate("a", 4, "replace_rejected", "replace: quantity 1 is not above the 1 filled")
    ]
    assert ex.submit(Replace("b", 2, 96), 4)[0].reason == "replace: order not open"
    ex.submit(NewOrder("m", SI, "sell", 1), 5)
    assert ex.submit(Replace("m", 1, 90), 5)[0].reason == (
        "replace: only a limit order can be replaced"
    )
    assert ex.submit(Cancel("a"), 6) == [OrderUpdate("a", 6, "cancelled")]


@pytest.mark.parametrize(("new_qty", "answer"), [(4, "replaced"), (1, "replace_rejected")])
def test_order_target_with_a_replace_pending_never_overshoots(new_qty, answer):
    """A buy of 2 being replaced: whichever size stands, order_target must not send
    lots that take the position past the target once it does."""
    kernel, strat = kernel_with()
    own = placed(kernel, strat, qty=2)
    replace_on_next_bar(kernel, strat, qty=new_qty)
    strat.script = lambda b, ctx: ctx.order_target(SI, 4)
    sent = kernel.handle(next_bar(kernel))
    strat.script = lambda b, ctx: None
    kernel.handle(OrderUpdate(own.client_id, T0 + 1, answer))
    for order in sent:
        kernel.handle(OrderUpdate(order.client_id, T0 + 1, "accepted"))
    buying = sum(o.qty - o.filled for o in kernel.orders.open.values() if o.side == "buy")
    assert buying <= 4  # working buys, were they all to fill: the target at most
    strat.script = lambda b, ctx: ctx.order_target(SI, 4)
    topped = kernel.handle(next_bar(kernel))  # the answer came: the rest is sent now
    buying += sum(o.qty for o in topped)
    assert buying == 4


@pytest.mark.parametrize("grows", [True, False])
def test_a_fill_of_the_old_quantity_before_a_larger_replace_is_answered_keeps_the_order(grows):
    """A buy of 2 replaced to 3: the exchange took the replace, then filled 2, and
    the fill came by the faster way. Finished at the fill, the order's last lot
    worked on at the exchange unseen: ``replaced`` was an anomaly, and neither
    max_position, order_target, a flatten nor the stop knew of it. The order
    stays open until the replace is answered. (Journals from before: finished.)"""
    kernel, strat = kernel_with()
    kernel.orders.replace_waits = grows
    own = placed(kernel, strat, qty=2)
    replace_on_next_bar(kernel, strat, qty=3)
    kernel.handle(Fill(own.client_id, T0 + 1, SI, "buy", 2, 95, "t1"))
    assert (own.client_id in kernel.orders.open) is grows
    if grows:  # after a crash now, the replace goes again; no order of 0 lots
        assert unanswered(kernel) == [Replace(own.client_id, 3, 95)]
    assert kernel.ctx.order_target(SI, 3) == (
        [] if grows else [NewOrder("test-robot-r1-2", SI, "buy", 1)]
    )
    kernel.handle(OrderUpdate(own.client_id, T0 + 2, "replaced"))
    assert kernel.orders.anomalies == (0 if grows else 1)
    if grows:
        assert (own.status, own.qty, own.filled) == ("partially_filled", 3, 2)
        assert [o.client_id for o in kernel.ctx.open_orders()] == [own.client_id]
        kernel.handle(Fill(own.client_id, T0 + 3, SI, "buy", 1, 95, "t2"))
        assert own.status == "filled" and kernel.orders.anomalies == 0
