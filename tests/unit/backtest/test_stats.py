"""Each statistic against values computed by hand on tiny series."""

from __future__ import annotations

from decimal import Decimal

import pytest

from roboframe.backtest.stats import EquityTracker, round_trips, summarize
from roboframe.core.events import Fill
from roboframe.core.instruments import Instrument

SI = "Si-12.26"
INST = {SI: Instrument(SI, Decimal(1), point_value=Decimal(2))}  # 2 money per tick


def fill(n, side, qty, price, fee="0"):
    return Fill(f"o{n}", n, SI, side, qty, price, f"t{n}", fee)


FILLS = [
    fill(1, "buy", 1, 100, "1"),  # long 1 @100
    fill(2, "sell", 1, 110, "1"),  # closed +10 ticks = +20 money - 2 fees = +18
    fill(3, "sell", 1, 120),  # short 1 @120
    fill(4, "buy", 1, 125),  # closed -5 ticks = -10
    fill(5, "buy", 2, 100),  # long 2 @100, still open at the end
]


def trades():
    return round_trips(FILLS, INST, {SI: (99, 90)})


def test_round_trips_fifo_with_fees_and_open_end():
    t = trades()
    assert [(x.side, x.qty, x.entry_price, x.exit_price, x.pnl, x.open_at_end) for x in t] == [
        ("long", 1, 100, 110, 18.0, False),
        ("short", 1, 120, 125, -10.0, False),
        ("long", 2, 100, 90, -40.0, True),  # closed at the last price, flagged
    ]


def test_partial_close_splits_a_lot():
    fills = [fill(1, "buy", 3, 100), fill(2, "sell", 1, 104), fill(3, "sell", 2, 98)]
    t = round_trips(fills, INST, {})
    assert [(x.qty, x.pnl) for x in t] == [(1, 8.0), (2, -8.0)]


def stats(marks=((1000.0, False),), cash=1000.0, fees=2.0):
    tracker = EquityTracker(cash)
    for equity, in_market in marks:
        tracker.mark(equity, in_market)
    return summarize(trades(), tracker, fees=fees, start=1, end=9)


def test_trades_and_open_at_end():
    s = stats()
    assert (s["trades"], s["open_trades_at_end"]) == (3, 1)


def test_win_rate():
    assert stats()["win_rate_pct"] == pytest.approx(100 / 3, abs=1e-4)


def test_profit_factor():
    assert stats()["profit_factor"] == pytest.approx(18 / 50)


def test_best_worst_average_trade():
    s = stats()
    assert (s["best_trade"], s["worst_trade"]) == (18.0, -40.0)
    assert s["avg_trade"] == pytest.approx(-32 / 3, abs=1e-4)


def test_max_drawdown_is_the_deepest_fall_from_a_peak():
    marks = [(1000.0, True), (1200.0, True), (900.0, True), (1300.0, True), (1040.0, True)]
    # 900/1200 - 1 = -25%, deeper than 1040/1300 - 1 = -20%
    assert stats(marks)["max_drawdown_pct"] == -25.0
    assert stats(marks)["equity_peak"] == 1300.0


def test_exposure_is_the_share_of_bars_in_the_market():
    marks = [(1000.0, False), (1000.0, True), (1000.0, True), (1000.0, False)]
    assert stats(marks)["exposure_pct"] == 50.0


def test_return_and_net_pnl_from_final_equity():
    s = stats([(1000.0, False), (1100.0, False)], cash=1000.0)
    assert (s["equity_final"], s["net_pnl"], s["return_pct"]) == (1100.0, 100.0, 10.0)


def test_no_trades_gives_empty_figures_not_errors():
    s = summarize([], EquityTracker(500.0), fees=0.0, start=0, end=0)
    assert s["trades"] == 0
    assert s["win_rate_pct"] is None and s["profit_factor"] is None
    assert s["exposure_pct"] is None and s["best_trade"] is None


def test_profit_factor_without_losses_is_none():
    fills = [fill(1, "buy", 1, 100), fill(2, "sell", 1, 101)]
    tracker = EquityTracker(1000.0)
    tracker.mark(1002.0, False)
    s = summarize(round_trips(fills, INST, {}), tracker, fees=0.0, start=0, end=0)
    assert s["win_rate_pct"] == 100.0 and s["profit_factor"] is None


def test_a_break_even_round_trip_is_neither_a_win_nor_a_loss():
    """Tick 0.1, 7 lots bought at 100.0 and sold at 101.1 with 0.55 a lot per
    fill: +7.70 gross, 7.70 in fees -- in binary floats 1.1 * 7 and 1.1 * 7
    differ in the last bit. Then 1 lot +2.0 gross, 1.10 in fees: +0.90."""
    fx = {"FX": Instrument("FX", Decimal("0.1"))}

    def f(n, side, qty, price_ticks):
        return Fill(f"o{n}", n, "FX", side, qty, price_ticks, f"t{n}", str(Decimal("0.55") * qty))

    fills = [
        f(1, "buy", 7, 1000),
        f(2, "sell", 7, 1011),
        f(3, "buy", 1, 1011),
        f(4, "sell", 1, 1031),
    ]
    t = round_trips(fills, fx, {})
    assert [x.pnl for x in t] == [0.0, pytest.approx(0.9)]
    s = summarize(t, EquityTracker(1000.0), fees=8.8, start=1, end=4)
    assert s["win_rate_pct"] == 50.0
    assert s["profit_factor"] is None  # no losing trade, not 10^15
    assert s["worst_trade"] == 0.0
