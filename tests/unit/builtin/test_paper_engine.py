"""The paper matching engine on hand-made market data."""

from __future__ import annotations

from decimal import Decimal

from roboframe.builtin.paper import PaperExchange
from roboframe.core.events import Bar, Cancel, Fill, NewOrder, OrderUpdate, Tick
from roboframe.core.instruments import Instrument

SI = "Si-12.26"
INST = {SI: Instrument(SI, Decimal(1))}


def bar(ts, o, h, lo, c, v=0):
    return Bar(SI, ts, o, h, lo, c, v)


def test_market_order_fills_at_next_bar_open_with_slippage_and_fee():
    ex = PaperExchange(INST, commission="2.5", slippage_ticks=2)
    ex.on_market(bar(1, 100, 101, 99, 100))
    assert ex.submit(NewOrder("a", SI, "buy", 3), 1) == [OrderUpdate("a", 1, "accepted")]
    assert ex.on_market(bar(2, 105, 106, 104, 105)) == [
        Fill("a", 2, SI, "buy", 3, 107, "P1", "7.5")
    ]
    assert not ex.open_orders


def test_market_sell_at_tick_bid():
    ex = PaperExchange(INST)
    ex.submit(NewOrder("s", SI, "sell", 1), 1)
    assert ex.on_market(Tick(SI, 5, 100, 1, bid=99, ask=101)) == [
        Fill("s", 5, SI, "sell", 1, 99, "P1", "0")
    ]


def test_fill_at_close_for_backtests():
    ex = PaperExchange(INST, fill_at="close")
    ex.on_market(bar(1, 100, 103, 99, 102))
    out = ex.submit(NewOrder("a", SI, "buy", 1), 1)
    assert out[1] == Fill("a", 1, SI, "buy", 1, 102, "P1", "0")


def test_limit_needs_trade_through_not_touch():
    ex = PaperExchange(INST)
    ex.submit(NewOrder("b", SI, "buy", 1, "limit", 100), 1)
    assert ex.on_market(bar(2, 102, 103, 100, 101)) == []  # touched 100: no fill
    assert ex.on_market(bar(3, 101, 102, 99, 100)) == [Fill("b", 3, SI, "buy", 1, 100, "P1", "0")]


def test_limit_gap_fills_at_open():
    ex = PaperExchange(INST)
    ex.submit(NewOrder("s", SI, "sell", 1, "limit", 100), 1)
    assert ex.on_market(bar(2, 105, 106, 104, 105))[0].price == 105


def test_partial_fills_by_volume():
    ex = PaperExchange(INST)
    ex.submit(NewOrder("b", SI, "buy", 5, "limit", 100), 1)
    first = ex.on_market(Tick(SI, 2, 99, 2))
    second = ex.on_market(Tick(SI, 3, 98, 10))
    assert [(f.qty, f.price) for f in first + second] == [(2, 100), (3, 100)]
    assert not ex.open_orders


def test_volume_is_shared_in_arrival_order():
    ex = PaperExchange(INST)
    ex.submit(NewOrder("a", SI, "buy", 2), 1)
    ex.submit(NewOrder("b", SI, "buy", 2), 1)
    fills = ex.on_market(bar(2, 100, 100, 100, 100, v=3))
    assert [(f.client_id, f.qty) for f in fills] == [("a", 2), ("b", 1)]
    fills = ex.on_market(bar(3, 101, 101, 101, 101, v=3))
    assert [(f.client_id, f.qty, f.price) for f in fills] == [("b", 1, 101)]


def test_cancel_and_rejects():
    ex = PaperExchange(INST)
    ex.submit(NewOrder("b", SI, "buy", 1, "limit", 90), 1)
    assert ex.submit(Cancel("b"), 2) == [OrderUpdate("b", 2, "cancelled")]
    assert ex.submit(Cancel("b"), 3) == [OrderUpdate("b", 3, "rejected", "cancel: order not open")]
    assert ex.submit(NewOrder("x", "GAZP", "buy", 1), 4)[0].reason == "unknown symbol GAZP"
    assert ex.submit(NewOrder("y", SI, "buy", 0), 4)[0].status == "rejected"
    assert ex.submit(NewOrder("z", SI, "buy", 1, "limit", 0), 4)[0].status == "rejected"
    assert ex.on_market(bar(5, 80, 80, 70, 75)) == []
