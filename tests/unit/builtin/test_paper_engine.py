"""The paper matching engine on hand-made market data, with exact expected fills."""

from __future__ import annotations

from decimal import Decimal

import pytest

from roboframe.builtin.paper import PaperExchange
from roboframe.core.events import Bar, Cancel, Fill, NewOrder, OrderUpdate, Replace, Tick
from roboframe.core.instruments import Instrument
from roboframe.errors import ConfigError

SI, RTS = "Si-12.26", "RTS-12.26"
INST = {SI: Instrument(SI, Decimal(1)), RTS: Instrument(RTS, Decimal(10))}


def bar(ts, o, h, lo, c, v=0, symbol=SI):
    return Bar(symbol, ts, o, h, lo, c, v)


def buy(cid, qty=1, price=0, symbol=SI):
    return NewOrder(cid, symbol, "buy", qty, "limit" if price else "market", price)


def sell(cid, qty=1, price=0, symbol=SI):
    return NewOrder(cid, symbol, "sell", qty, "limit" if price else "market", price)


def fill(cid, ts, side, qty, price, n, fee="0", symbol=SI):
    return Fill(cid, ts, symbol, side, qty, price, f"P{n}", fee)


# -- market orders ----------------------------------------------------------------


def test_market_order_fills_at_next_bar_open():
    ex = PaperExchange(INST)
    assert ex.on_market(bar(1, 100, 101, 99, 100)) == []
    assert ex.submit(buy("a", 3), 1) == [OrderUpdate("a", 1, "accepted")]
    assert ex.open_orders["a"].remaining == 3
    assert ex.on_market(bar(2, 105, 106, 104, 105)) == [fill("a", 2, "buy", 3, 105, 1)]
    assert not ex.open_orders
    assert ex.on_market(bar(3, 110, 110, 110, 110)) == []


def test_slippage_moves_market_fills_against_the_trader_with_exact_fees():
    ex = PaperExchange(INST, commission="2.5", slippage_ticks=2)
    ex.submit(buy("b", 3), 1)
    ex.submit(sell("s", 1), 1)
    assert ex.on_market(bar(2, 105, 106, 104, 105)) == [
        fill("b", 2, "buy", 3, 107, 1, fee="7.5"),
        fill("s", 2, "sell", 1, 103, 2, fee="2.5"),
    ]


def test_fees_are_exact_decimals():
    ex = PaperExchange(INST, commission=Decimal("0.1"))
    ex.submit(buy("a", 3), 1)
    assert ex.on_market(bar(2, 100, 100, 100, 100))[0].fee == "0.3"  # never 0.30000000000000004


def test_slippage_never_below_one_tick():
    ex = PaperExchange(INST, slippage_ticks=5)
    ex.submit(sell("s"), 1)
    assert ex.on_market(bar(2, 3, 3, 3, 3))[0].price == 1


def test_market_order_on_ticks_takes_the_quote_or_the_trade_price():
    ex = PaperExchange(INST, slippage_ticks=1)
    ex.submit(buy("b"), 1)
    ex.submit(sell("s"), 1)
    assert ex.on_market(Tick(SI, 5, 100, 0, bid=99, ask=101)) == [
        fill("b", 5, "buy", 1, 102, 1),
        fill("s", 5, "sell", 1, 98, 2),
    ]
    ex.submit(buy("b2"), 6)
    assert ex.on_market(Tick(SI, 7, 100, 0)) == [fill("b2", 7, "buy", 1, 101, 3)]


def test_orders_wait_for_their_own_symbol():
    ex = PaperExchange(INST)
    ex.submit(buy("a", symbol=RTS), 1)
    assert ex.on_market(bar(2, 100, 100, 100, 100)) == []
    rts_bar = bar(3, 11000, 11000, 11000, 11000, symbol=RTS)
    assert ex.on_market(rts_bar) == [fill("a", 3, "buy", 1, 11000, 1, symbol=RTS)]


def test_a_bar_of_the_time_an_order_was_placed_fills_nothing():
    """Bars are stamped with their close: another symbol's bar of the minute an
    order was decided on opened (and traded) before the order existed. It filled
    the order at its open -- a price from before the decision, and one that
    depended on which file a backtest was given first."""
    for kind in (buy("m", symbol=RTS), buy("l", price=11_500, symbol=RTS)):
        ex = PaperExchange(INST)
        ex.submit(kind, 60)
        same_minute = bar(60, 11_000, 11_100, 10_900, 11_050, symbol=RTS)
        assert ex.on_market(same_minute) == []
        assert ex.last[RTS] is same_minute  # its price is known all the same
        fills = ex.on_market(bar(120, 11_200, 11_300, 11_100, 11_250, symbol=RTS))
        assert [(f.ts, f.price) for f in fills] == [(120, 11_200)]  # this bar's open


def test_a_replaced_order_waits_for_a_bar_after_the_replace():
    ex = PaperExchange(INST)
    ex.submit(buy("l", 1, 90), 1)
    assert ex.submit(Replace("l", 2, 105), 60) == [OrderUpdate("l", 60, "replaced")]
    assert ex.on_market(bar(60, 100, 101, 99, 100)) == []  # traded through, before the replace
    fills = ex.on_market(bar(120, 100, 101, 99, 100))
    assert [(f.qty, f.price) for f in fills] == [(2, 100)]


def test_a_restored_order_rests_with_what_had_filled_and_fills_only_the_rest():
    """An exchange taking over rests the store's open orders again: placed anew
    at ``fill_at: close``, a partly filled market order filled whole again."""
    ex = PaperExchange(INST, fill_at="close")
    ex.on_market(bar(1, 100, 100, 100, 100))
    ex.restore(buy("a", 10), filled=4)
    assert ex.open_orders["a"].remaining == 6
    assert ex.on_market(bar(2, 101, 101, 101, 101)) == [fill("a", 2, "buy", 6, 101, 1)]
    ex.restore(buy("a", 10), filled=4)  # finished here: not rested again
    ex.restore(buy("b", 5), filled=5)  # filled in full: nothing to rest
    assert ex.open_orders == {}


def test_a_restored_order_predates_the_market_data_the_engine_has_seen():
    """A standby exchange reads prices before it takes over: its reloaded orders
    took the time of the last bar read, of any symbol, and skipped their own
    symbol's bar of that time."""
    ex = PaperExchange(INST)
    ex.on_market(bar(60, 11_000, 11_000, 11_000, 11_000, symbol=RTS))
    ex.restore(buy("a"), filled=0)
    assert ex.on_market(bar(60, 100, 100, 100, 100)) == [fill("a", 60, "buy", 1, 100, 1)]


def test_the_engine_time_never_goes_back():
    ex = PaperExchange(INST)
    ex.on_market(bar(120, 11_000, 11_000, 11_000, 11_000, symbol=RTS))
    ex.on_market(bar(60, 100, 100, 100, 100))  # Si's bar of an earlier minute, late
    assert ex.ts == 120
    assert ex.submit(buy("a")) == [OrderUpdate("a", 120, "accepted")]


def test_fill_at_close_fills_at_once_at_the_current_bar_close():
    ex = PaperExchange(INST, fill_at="close", slippage_ticks=1)
    ex.on_market(bar(1, 100, 103, 99, 102))
    assert ex.submit(buy("a", 2), 1) == [
        OrderUpdate("a", 1, "accepted"),
        fill("a", 1, "buy", 2, 103, 1),
    ]
    ex.on_market(Tick(SI, 2, 104, 1, bid=103, ask=105))
    assert ex.submit(sell("s"), 2)[1] == fill("s", 2, "sell", 1, 102, 2)  # bid - 1
    assert not ex.open_orders


def test_fill_at_close_before_any_price_waits_for_the_next_one():
    ex = PaperExchange(INST, fill_at="close")
    assert ex.submit(buy("a"), 0) == [OrderUpdate("a", 0, "accepted")]
    assert ex.on_market(bar(1, 100, 103, 99, 102)) == [fill("a", 1, "buy", 1, 100, 1)]


def test_fill_at_close_fills_an_order_decided_after_the_last_price_at_the_next():
    """A timer's market order on Monday morning took Friday's last close, stamped
    before the order existed. Decided after every market event seen, it waits for
    its symbol's next price; decided on one (another symbol's later bar too), it
    fills at the last price, stamped then; with no time given (a live exchange:
    now), too."""
    ex = PaperExchange(INST, fill_at="close")
    ex.on_market(bar(10, 100, 103, 99, 102))
    ex.on_market(bar(20, 50, 50, 50, 50, symbol=RTS))
    assert ex.submit(buy("late"), 25) == [OrderUpdate("late", 25, "accepted")]
    assert ex.submit(buy("on"), 20)[1] == fill("on", 20, "buy", 1, 102, 1)
    assert ex.submit(buy("now"))[1] == fill("now", 20, "buy", 1, 102, 2)
    assert ex.on_market(bar(30, 110, 111, 109, 110)) == [fill("late", 30, "buy", 1, 110, 3)]


def test_fill_at_close_leaves_limit_orders_resting():
    ex = PaperExchange(INST, fill_at="close")
    ex.on_market(bar(1, 100, 103, 99, 102))
    assert ex.submit(buy("l", price=101), 1) == [OrderUpdate("l", 1, "accepted")]
    assert ex.on_market(bar(2, 102, 102, 100, 101)) == [fill("l", 2, "buy", 1, 101, 1)]


# -- limit orders -----------------------------------------------------------------


def test_buy_limit_fills_on_trade_through_not_on_touch():
    ex = PaperExchange(INST)
    ex.submit(buy("b", price=100), 1)
    assert ex.on_market(bar(2, 102, 103, 100, 101)) == []  # low touched 100
    assert ex.on_market(Tick(SI, 3, 100, 5)) == []  # a trade at 100
    assert ex.on_market(bar(4, 101, 102, 99, 100)) == [fill("b", 4, "buy", 1, 100, 1)]


def test_sell_limit_fills_on_trade_through_not_on_touch():
    ex = PaperExchange(INST)
    ex.submit(sell("s", price=100), 1)
    assert ex.on_market(bar(2, 98, 100, 97, 99)) == []
    assert ex.on_market(Tick(SI, 3, 100, 5)) == []
    assert ex.on_market(Tick(SI, 4, 101, 5)) == [fill("s", 4, "sell", 1, 100, 1)]


def test_limit_gap_fills_at_the_better_open():
    ex = PaperExchange(INST)
    ex.submit(sell("s", price=100), 1)
    ex.submit(buy("b", price=100), 1)
    assert ex.on_market(bar(2, 105, 106, 104, 105)) == [fill("s", 2, "sell", 1, 105, 1)]
    assert ex.on_market(bar(3, 95, 96, 94, 95)) == [fill("b", 3, "buy", 1, 95, 2)]


def test_tick_trade_through_fills_at_the_limit():
    ex = PaperExchange(INST)
    ex.submit(buy("b", price=100), 1)
    assert ex.on_market(Tick(SI, 2, 90, 0)) == [fill("b", 2, "buy", 1, 100, 1)]


def test_a_quote_without_a_trade_fills_no_limit_order():
    """A tick with quotes only (trade price 0) traded nothing: a buy limit below
    the ask must not fill at its limit, as if the market had traded through 0."""
    ex = PaperExchange(INST)
    ex.submit(buy("b", price=100), 1)
    ex.submit(sell("s", price=100), 1)
    assert ex.on_market(Tick(SI, 2, 0, 0, bid=99, ask=101)) == []
    assert ex.on_market(Tick(SI, 3, 98, 0)) == [fill("b", 3, "buy", 1, 100, 1)]


def test_a_market_order_waits_for_a_price_on_its_side():
    """A sell needs a bid or a trade price: a quote with only an ask must not fill it
    at one tick (0, floored), nor a buy on a quote with only a bid."""
    ex = PaperExchange(INST)
    ex.submit(sell("s"), 1)
    ex.submit(buy("b"), 1)
    assert ex.on_market(Tick(SI, 2, 0, 0, ask=101)) == [fill("b", 2, "buy", 1, 101, 1)]
    assert ex.on_market(Tick(SI, 3, 0, 0, bid=99)) == [fill("s", 3, "sell", 1, 99, 2)]
    ex = PaperExchange(INST, fill_at="close")
    ex.on_market(Tick(SI, 4, 0, 0, ask=101))
    assert ex.submit(sell("s2"), 5) == [OrderUpdate("s2", 5, "accepted")]
    assert ex.on_market(Tick(SI, 6, 100, 0)) == [fill("s2", 6, "sell", 1, 100, 1)]


# -- volume -----------------------------------------------------------------------


def test_partial_fills_by_tick_quantity():
    ex = PaperExchange(INST)
    ex.submit(buy("b", 5, price=100), 1)
    assert ex.on_market(Tick(SI, 2, 99, 2)) == [fill("b", 2, "buy", 2, 100, 1)]
    assert ex.open_orders["b"].remaining == 3
    assert ex.on_market(Tick(SI, 3, 98, 10)) == [fill("b", 3, "buy", 3, 100, 2)]
    assert not ex.open_orders


def test_bar_volume_is_shared_in_arrival_order():
    ex = PaperExchange(INST)
    ex.submit(buy("a", 2), 1)
    ex.submit(buy("b", 2), 1)
    ex.submit(sell("c", 1), 1)
    assert ex.on_market(bar(2, 100, 100, 100, 100, v=3)) == [
        fill("a", 2, "buy", 2, 100, 1),
        fill("b", 2, "buy", 1, 100, 2),
    ]
    assert ex.on_market(bar(3, 101, 101, 101, 101, v=3)) == [
        fill("b", 3, "buy", 1, 101, 3),
        fill("c", 3, "sell", 1, 101, 4),
    ]


def test_volume_zero_means_unknown_and_fills_everything():
    ex = PaperExchange(INST)
    ex.submit(buy("a", 1000), 1)
    assert ex.on_market(bar(2, 100, 100, 100, 100, v=0))[0].qty == 1000


# -- cancels, rejects, identity ---------------------------------------------------


def test_cancel_open_order_and_refuse_other_cancels():
    ex = PaperExchange(INST)
    ex.submit(buy("b", 3, price=90), 1)
    assert ex.submit(Cancel("b"), 2) == [OrderUpdate("b", 2, "cancelled")]
    assert ex.on_market(bar(3, 80, 80, 70, 75)) == []
    assert ex.submit(Cancel("b"), 4) == [
        OrderUpdate("b", 4, "cancel_rejected", "cancel: order not open")
    ]
    assert ex.submit(Cancel("zz"), 4) == [
        OrderUpdate("zz", 4, "cancel_rejected", "cancel: order not open")
    ]


def test_cancel_after_a_partial_fill_and_after_a_full_fill():
    ex = PaperExchange(INST)
    ex.submit(buy("p", 3, price=100), 1)
    ex.submit(buy("f", 1), 1)
    ex.on_market(Tick(SI, 2, 99, 1))  # f takes nothing: p came first and took the 1 lot
    assert ex.submit(Cancel("p"), 3) == [OrderUpdate("p", 3, "cancelled")]
    assert ex.on_market(Tick(SI, 4, 99, 0)) == [fill("f", 4, "buy", 1, 99, 2)]
    assert ex.submit(Cancel("f"), 5)[0].status == "cancel_rejected"


@pytest.mark.parametrize(
    ("order", "reason"),
    [
        (buy("x", symbol="GAZP"), "unknown symbol GAZP"),
        (buy("x", 0), "quantity must be positive, got 0"),
        (sell("x", -2), "quantity must be positive, got -2"),
        (NewOrder("x", SI, "buy", 1, "limit", 0), "limit price must be positive, got 0"),
        (NewOrder("x", SI, "sell", 1, "limit", -5), "limit price must be positive, got -5"),
    ],
)
def test_rejects(order, reason):
    ex = PaperExchange(INST)
    assert ex.submit(order, 7) == [OrderUpdate("x", 7, "rejected", reason)]
    assert not ex.open_orders
    assert ex.on_market(bar(8, 100, 100, 1, 100)) == []


def test_any_symbol_without_instruments():
    ex = PaperExchange(None)
    assert ex.submit(buy("x", symbol="GAZP"), 1)[0].status == "accepted"


def test_resubmitted_orders_are_not_placed_twice():
    ex = PaperExchange(INST)
    ex.submit(buy("a", 2, price=90), 1)
    assert ex.submit(buy("a", 2, price=90), 2) == [OrderUpdate("a", 2, "accepted")]
    assert list(ex.open_orders) == ["a"]
    ex.submit(buy("m"), 2)
    ex.on_market(bar(3, 100, 100, 100, 100))
    assert ex.submit(buy("m"), 4) == []  # finished: ignored, never filled again
    assert ex.on_market(bar(5, 100, 100, 100, 100)) == []


def test_finished_ids_are_remembered_up_to_a_bound():
    ex = PaperExchange(INST, remember_finished=2)
    for cid in ("a", "b", "c"):
        ex.submit(buy(cid), 1)
        ex.submit(Cancel(cid), 1)
    assert ex.submit(buy("c"), 2) == []
    assert ex.submit(buy("a"), 2) == [OrderUpdate("a", 2, "accepted")]  # forgotten


def test_ack_ts_defaults_to_the_last_market_event():
    ex = PaperExchange(INST)
    assert ex.submit(buy("a", price=1))[0].ts == 0
    ex.on_market(bar(42, 100, 100, 100, 100))
    assert ex.submit(buy("b", price=1)) == [OrderUpdate("b", 42, "accepted")]


def test_trade_ids_count_up_and_runs_are_identical():
    def run() -> list:
        ex = PaperExchange(INST, commission="1.25", slippage_ticks=1)
        out = ex.submit(buy("a", 4), 1) + ex.submit(sell("b", 2, price=103), 1)
        for i, (o, h, lo, c) in enumerate([(100, 101, 99, 100), (102, 105, 101, 104)]):
            out += ex.on_market(bar(10 + i, o, h, lo, c, v=3))
        return out

    first = run()
    assert [f.trade_id for f in first if type(f) is Fill] == ["P1", "P2", "P3"]
    assert first == run()


@pytest.mark.parametrize(
    "kwargs",
    [{"commission": "two"}, {"commission": "NaN"}, {"slippage_ticks": -1}, {"fill_at": "open"}],
)
def test_bad_settings(kwargs):
    with pytest.raises(ConfigError, match="paper exchange"):
        PaperExchange(INST, **kwargs)


def test_a_bar_of_the_past_fills_nothing_and_sets_no_price():
    """A publisher restarted at the start of its file sends old bars again: no
    resting order fills at them, and ``fill_at: close`` does not take their close."""
    ex = PaperExchange(INST, fill_at="close")
    ex.on_market(bar(10, 100, 100, 100, 100))
    ex.submit(buy("a", 1, price=90), 10)
    assert ex.on_market(bar(5, 95, 95, 80, 85)) == []  # the past: through the limit
    assert ex.on_market(bar(10, 95, 95, 80, 85)) == []  # a repeat
    assert ex.stale == 2 and ex.last[SI].close == 100
    assert ex.on_market(bar(5, 95, 95, 80, 85, symbol=RTS)) == []  # another symbol: fresh
    assert ex.stale == 2
    assert ex.on_market(bar(11, 95, 95, 80, 85)) == [fill("a", 11, "buy", 1, 90, 1)]


def test_a_tick_of_the_past_fills_nothing():
    """A tick publisher restarted at the start of its file: a resting limit does
    not fill at the morning's prices; a trade at the same instant still fills."""
    ex = PaperExchange(INST)
    ex.on_market(Tick(SI, 10, 100, 1))
    ex.submit(buy("b", price=95), 10)
    assert ex.on_market(Tick(SI, 5, 90, 1)) == []  # the past: through the limit
    assert ex.stale == 1 and ex.last[SI].price == 100
    assert ex.on_market(Tick(SI, 10, 90, 1)) == [fill("b", 10, "buy", 1, 95, 1)]
