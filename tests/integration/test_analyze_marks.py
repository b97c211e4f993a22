"""Equity, drawdown and exposure as ``backtest`` and ``analyze`` mark them, on
hand-made series whose figures are computed by hand."""

from __future__ import annotations

from decimal import Decimal

import pytest

from roboframe.analyze import analyze
from roboframe.backtest import run_backtest
from roboframe.backtest.stats import order_counts
from roboframe.config import load_robot
from roboframe.core.events import Control, OrderUpdate
from roboframe.testing.helpers import bar, fill
from tests.unit.analyze.journals import SI, at, planned_spec, write_journal

RTS = "RTS-12.26"

# bars 07:01..07:09: open, high, low, close
BARS = [
    (100, 101, 99, 100),
    (101, 103, 100, 102),
    (104, 106, 98, 99),
    (97, 99, 94, 95),
    (96, 101, 96, 100),
    (103, 108, 102, 107),
    (109, 110, 105, 106),
    (105, 106, 100, 101),
    (100, 103, 97, 98),
]
ROBOT = """\
name: hand
symbols:
  Si-12.26: {{tick_size: 1}}
feed: {{plugin: csv, params: {{path: bars.csv, symbol: Si-12.26}}}}
strategy:
  plugin: tests.unit.analyze.journals:Planned
  params:
    plan: [[Si-12.26, 2, Si-12.26, -2], [Si-12.26, 3, Si-12.26, 1], [Si-12.26, 4, Si-12.26, 2],
           [Si-12.26, 6, Si-12.26, 1], [Si-12.26, 7, Si-12.26, -3]]
gateway: {{plugin: paper, params: {{commission: 2{fill_at}}}}}
backtest: {{cash: 1000}}
risk: {{max_order_qty: 10, max_position: 10}}
journal: {{dir: runs}}
"""


def hand_robot(tmp_path, fill_at=""):
    lines = ["Date,Open,High,Low,Close,Volume"]
    lines += [f"2026-12-01T07:{i + 1:02d}:00Z,{o},{h},{lo},{c},0" for i, (o, h, lo, c) in
              enumerate(BARS)]  # fmt: skip
    (tmp_path / "bars.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "hand.yaml").write_text(ROBOT.format(fill_at=fill_at))
    return load_robot(tmp_path / "hand.yaml")


@pytest.mark.parametrize("how", ["flag", "gateway"])
def test_fills_at_the_close_are_in_the_mark_of_their_bar(tmp_path, how):
    """At the close, the position after each bar is 0, -2, -1, +1, +1, +2, -1, -1,
    -1 (each order fills at the close of the bar it was decided on, 2 a lot);
    equity after each bar: 1000, 996, 1000, 1000, 1005, 1010, 1002, 1007, 1010.
    Peak 1010, deepest fall 1002/1010 - 1 = -0.7921 %, in the market 8 bars of
    9 = 88.89 %. analyze marks the bar after its fills as the backtest does, and
    the paper gateway's own fill_at: close is the backtest's too."""
    if how == "flag":
        spec, fill_at = hand_robot(tmp_path), "close"
    else:
        spec, fill_at = hand_robot(tmp_path, ", fill_at: close"), None
    result = run_backtest(spec, journal_dir=tmp_path / "runs", fill_at=fill_at)
    stats = result.stats
    assert stats["equity_peak"] == 1010.0
    assert stats["max_drawdown_pct"] == pytest.approx((1002 / 1010 - 1) * 100, abs=1e-4)
    assert stats["exposure_pct"] == pytest.approx(800 / 9, abs=1e-4)
    assert stats["equity_final"] == 1010.0  # the last -1 still open, marked at 98
    report = analyze([result.journal], db=str(tmp_path / "a.db")).runs[0]
    assert report.stats == {**stats, **order_counts(result.kernel)}


def test_a_fill_moves_its_symbols_value_before_that_symbol_trades_again(tmp_path):
    """A live journal: RTS sold 5 at 10,900 ticks while its last bar closed at
    11,000, then Si bars only. The short is 100 ticks x 5 x 13 RUB = 6,500 under
    water from the fill on: the next Si bar's mark shows it (it showed the RTS
    value of before the fill, and a drawdown of 0)."""
    spec = planned_spec([[RTS, 1, RTS, -5]], risk={"max_order_qty": 10, "max_position": 10})
    events = [
        Control("start", at(0)),
        bar(RTS, 1, 11000),
        lambda sent: OrderUpdate(sent[0].client_id, at(1), "accepted"),
        bar(SI, 1, 100),
        lambda sent: fill(sent[0], 10900, trade_id="T1", ts=at(1) + 1),
        bar(SI, 2, 100),
        bar(SI, 3, 100),
        Control("stop", at(3), {"reason": "test over"}),
    ]
    write_journal(tmp_path / "r.journal", spec, events)
    report = analyze([tmp_path / "r.journal"], db=str(tmp_path / "a.db")).runs[0]
    cash = Decimal(1_000_000)
    assert report.stats["max_drawdown_pct"] == pytest.approx(-6500 / float(cash) * 100, abs=1e-4)
    assert report.equity[-1][1] == pytest.approx(float(cash) - 6500)


def with_rts(robot: str, tick: int) -> str:
    """The robot file ``robot`` with RTS-12.26 (tick ``tick``) beside Si-12.26."""
    si = "Si-12.26: {tick_size: 1}"
    return robot.replace(si, f"{si}\n  RTS-12.26: {{tick_size: {tick}}}")


def test_a_trade_open_at_the_end_closes_at_its_own_symbols_last_bar(tmp_path):
    """RTS's data end at 07:03 and Si's at 07:05: the RTS trade still open at the
    end is closed at RTS's last close, at 07:03 -- not at the run's last time."""
    lines = ["Date,Symbol,Open,High,Low,Close,Volume"]
    for minute in range(1, 6):
        if minute <= 3:
            lines.append(f"2026-12-01T07:0{minute}:00Z,{RTS},110000,110000,110000,110000,0")
        lines.append(f"2026-12-01T07:0{minute}:00Z,{SI},100,100,100,100,0")
    (tmp_path / "bars.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "two.yaml").write_text(
        with_rts(ROBOT.format(fill_at=""), tick=10)
        .replace(", symbol: Si-12.26", "")
        .replace(
            "plan: [[Si-12.26, 2, Si-12.26, -2]",
            "plan: [[RTS-12.26, 1, RTS-12.26, 1], [Si-12.26, 2, Si-12.26, -2]",
        )
    )
    result = run_backtest(load_robot(tmp_path / "two.yaml"), journal=False, keep_trades=True)
    (rts,) = [t for t in result.trades if t["symbol"] == RTS]
    assert rts["open_at_end"]
    assert rts["exit_ts"] == 1_796_108_580 * 10**9  # 2026-12-01T07:03:00Z


@pytest.mark.parametrize("fill_at", ["next", "close"])
def test_ticks_of_one_time_are_marked_as_the_backtest_marks_them(tmp_path, fill_at):
    """Ticks 1 and 2 share a time. At next, the buy decided on tick 1 fills on
    tick 2: the backtest marks tick 1 before that fill, and analyze took the
    fill, of an order of tick 1's and of tick 1's time, for tick 1's answer."""
    from roboframe.backtest.engine import Backtest
    from roboframe.core.events import Tick

    spec = planned_spec(
        [[SI, 1, SI, 5], [SI, 4, SI, -5]], risk={"max_order_qty": 10, "max_position": 10}
    )
    s = 10**9
    ticks = [Tick(SI, at(1), 100, 10), Tick(SI, at(1), 90, 10)]
    ticks += [Tick(SI, at(1) + n * s, 95, 10) for n in (1, 2, 3)]
    result = Backtest(
        spec, ticks, cash=Decimal(1000), fill_at=fill_at, journal_dir=tmp_path / "runs"
    ).run()
    report = analyze([result.journal], db=str(tmp_path / "a.db")).runs[0]
    assert report.stats == {**result.stats, **order_counts(result.kernel)}
    # held after ticks 2-4 (next: bought on tick 2, sold on tick 5) or 1-3 (close:
    # bought at tick 1, sold at tick 4): 3 of 5 either way
    assert result.stats["exposure_pct"] == 60.0


@pytest.mark.parametrize("first", [SI, RTS])
def test_a_hedged_pair_has_no_drawdown_whichever_leg_comes_first(tmp_path, first):
    """Two symbols' bars of one time reach the robot one after the other, and
    equity was taken between them too, with one leg moved alone. Long 10 Si and
    short 10 RTS, both 100, 100, 150, 100, 150, 100 (a tick of 1 each): the pair
    never gains or loses, but it had a peak of 10,500 and a maximum drawdown of
    -9.52% on 10,000 -- whichever file came first."""
    for symbol in (SI, RTS):
        lines = ["Date,Open,High,Low,Close"]
        for minute, close in enumerate([100, 100, 150, 100, 150, 100], start=1):
            lines.append(f"2026-12-01T07:{minute:02d}:00Z,{close},{close},{close},{close}")
        (tmp_path / f"{symbol}.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "pair.yaml").write_text(
        with_rts(ROBOT.format(fill_at=""), tick=1)
        .replace("plan: [[Si-12.26, 2, Si-12.26, -2]", "plan: [[Si-12.26, 1, Si-12.26, 10]")
        .replace(
            "[Si-12.26, 3, Si-12.26, 1], [Si-12.26, 4, Si-12.26, 2],\n"
            "           [Si-12.26, 6, Si-12.26, 1], [Si-12.26, 7, Si-12.26, -3]]",
            "[RTS-12.26, 1, RTS-12.26, -10]]",
        )
        .replace("commission: 2", "commission: 0")
        .replace("cash: 1000", "cash: 10000")
    )
    spec = load_robot(tmp_path / "pair.yaml")
    second = RTS if first == SI else SI
    data = [f"{symbol}={tmp_path / symbol}.csv" for symbol in (first, second)]
    result = run_backtest(spec, data=data, journal_dir=tmp_path / "runs")
    stats = result.stats
    assert (stats["trades"], stats["open_trades_at_end"]) == (2, 2)
    assert (stats["equity_final"], stats["equity_peak"], stats["max_drawdown_pct"]) == (
        10_000.0,
        10_000.0,
        0.0,
    )
    assert stats["exposure_pct"] == pytest.approx(1000 / 12, abs=1e-4)  # from bar 2 on
    report = analyze([result.journal], db=str(tmp_path / "a.db")).runs[0]
    assert report.stats == {**stats, **order_counts(result.kernel)}
    assert {value for _, value in report.equity} == {10_000.0}
