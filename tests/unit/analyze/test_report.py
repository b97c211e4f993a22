"""The HTML report: well-formed, one chart per curve, escaped, deterministic."""

from __future__ import annotations

import math
import re
from html.parser import HTMLParser

import pytest

from roboframe.analyze import svg
from roboframe.analyze.model import RunReport
from roboframe.analyze.report import INCOMPLETE_NOTE, render_report, write_report

T0 = 1_796_108_400 * 1_000_000_000  # 2026-12-01 07:00:00 UTC
MIN = 60 * 1_000_000_000
VOID = {"meta", "link", "br", "hr", "img", "input", "col", "area", "base", "wbr", "source"}


class TagBalance(HTMLParser):
    """Fails on a close tag that does not match the open one; records what is left open."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.counts: dict[str, int] = {}

    def handle_starttag(self, tag, attrs):
        self.counts[tag] = self.counts.get(tag, 0) + 1
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.counts[tag] = self.counts.get(tag, 0) + 1

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def parse(html: str) -> TagBalance:
    parser = TagBalance()
    parser.feed(html)
    parser.close()
    assert parser.errors == []
    assert parser.stack == []
    return parser


def trade(symbol, side, i, pnl, *, open_at_end=False):
    return {
        "symbol": symbol,
        "side": side,
        "qty": 1,
        "entry_ts": T0 + (10 * i + 2) * MIN,
        "entry_price": str(92000 + 10 * i),
        "exit_ts": T0 + (10 * i + 7) * MIN,
        "exit_price": str(92000 + 10 * i + pnl),
        "pnl": float(pnl),
        "open_at_end": open_at_end,
    }


def curve(n, f):
    return [(T0 + i * MIN, f(i)) for i in range(n)]


STATS = {
    "start": T0,
    "end": T0 + 99 * MIN,
    "events": 100,
    "initial_cash": 1_000_000.0,
    "equity_final": 1_001_234.5,
    "equity_peak": 1_001_500.0,
    "net_pnl": 1234.5,
    "return_pct": 0.12345,
    "max_drawdown_pct": -3.25,
    "exposure_pct": 42.0,
    "trades": 3,
    "open_trades_at_end": 1,
    "win_rate_pct": 66.6667,
    "profit_factor": None,
    "best_trade": 900.0,
    "worst_trade": -100.0,
    "avg_trade": 411.5,
    "fees": 12.0,
}


@pytest.fixture
def runs():
    first = RunReport(
        key="k1",
        robot="sma <script>alert(1)</script>",
        run_id="r1",
        mode="backtest",
        journal="/tmp/j1",
        stats=dict(STATS, sharpe=1.5),
        equity=curve(100, lambda i: 1_000_000 + 10 * i + (float("nan") if i == 5 else 0)),
        drawdown=curve(100, lambda i: -(i % 7) * 0.5),
        positions={"Si-12.26": curve(100, lambda i: (i // 10) % 3 - 1)},
        prices={"Si-12.26": curve(100, lambda i: 92000 + 50 * math.sin(i / 9))},
        trades=[
            trade("Si-12.26", "long", 0, 900),
            trade("Si-12.26", "short", 1, -100),
            trade("Si-12.26", "long", 2, 435, open_at_end=True),
        ],
        reconciliation=[
            {
                "kind": "missing_in_store",
                "trade_id": "t-7",
                "client_id": "o-3",
                "detail": "fill <b>7</b> absent",
            },
            {"kind": "different", "trade_id": "t-8", "detail": "qty 1 vs 2"},
        ],
    )
    second = RunReport(
        key="k2",
        robot="breakout",
        run_id="r2",
        mode="live",
        journal="/tmp/j2",
        stats={**dict.fromkeys(STATS), "trades": 0, "net_pnl": -50.0, "return_pct": -0.005},
        equity=[(T0, 1_000_000.0)],  # a single point
        drawdown=[],  # an empty curve
        positions={"RTS-12.26": curve(5, lambda i: 0.0)},  # constant
        prices={},
        trades=[],
        reconciliation=[],
        complete=False,
    )
    return [first, second]


def test_report_is_well_formed_with_a_chart_per_curve(runs):
    html = render_report(runs)
    tags = parse(html)
    assert html.startswith("<!DOCTYPE html>")
    # equity + drawdown per run, then position + price per symbol (one each here)
    assert tags.counts["svg"] == html.count("<svg") == 2 * 2 + 2 * 2
    assert html.count("no data") >= 2  # run 2: no drawdown, no RTS price
    assert "http" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "<script" not in html


def test_comparison_table_has_a_row_per_run_with_formatted_numbers(runs):
    html = render_report(runs)
    table = re.search(r'<table class="compare">.*?</table>', html, re.S).group(0)
    rows = re.findall(r"<tr>(.*?)</tr>", table, re.S)[1:]
    assert len(rows) == 2
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in rows]
    assert cells[0][1:] == [
        "r1", "backtest", "3", "1,234.50", "0.12", "-3.25", "66.67", "\u2014", "42.00",
        "1,001,234.50",
    ]  # fmt: skip
    assert cells[1][1:] == ["r2", "live", "0", "-50.00", "-0.005"] + ["\u2014"] * 5


def test_run_sections_show_stats_notes_trades_and_reconciliation(runs):
    html = render_report(runs)
    first, second = html.split('<section class="run"')[1:]
    assert "2026-12-01 07:00:00 UTC" in first  # start, as a date
    assert '<th>sharpe</th><td class="num">1.50</td>' in first  # a plugin figure
    assert "open at end" in first
    assert "in the journal, not in the store" in first
    assert "<td>t-7</td><td>o-3</td><td>fill &lt;b&gt;7&lt;/b&gt; absent</td>" in first
    assert INCOMPLETE_NOTE not in first
    assert INCOMPLETE_NOTE in second
    assert "store and journal agree" in second
    assert "No trades." in second


def test_one_marker_per_entry_and_exit_with_tooltips(runs):
    html = render_report(runs)
    entries = re.findall(r'class="mark entry (long|short)"', html)
    assert entries == ["long", "short", "long"]
    assert html.count('class="mark exit"') == len(runs[0].trades)
    assert len(re.findall(r'class="mark [^"]*"[^>]*><title>', html)) == 2 * len(runs[0].trades)
    assert "PnL +900.00" in html


def test_names_are_escaped(runs):
    html = render_report(runs)
    assert "sma &lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>" not in html


def test_render_is_deterministic(runs, tmp_path):
    assert render_report(runs) == render_report(runs)
    write_report(tmp_path / "r.html", runs)
    assert (tmp_path / "r.html").read_text(encoding="utf-8") == render_report(runs)


def test_plugin_sections_and_a_failing_one(runs):
    def good(rs):
        return f"<p>{len(rs)} runs seen</p>"

    def bad(rs):
        raise RuntimeError("boom <x>")

    html = render_report(runs, [("Good <one>", good), ("Bad", bad), ("Not html", lambda rs: 3)])
    parse(html)
    assert "<h2>Good &lt;one&gt;</h2>\n<p>2 runs seen</p>" in html
    bad_section = html.split("<h2>Bad</h2>")[1].split("</section>")[0]
    assert 'class="error"' in bad_section
    assert "RuntimeError: boom &lt;x&gt;" in bad_section
    assert "TypeError" in html.split("<h2>Not html</h2>")[1]


def test_no_runs_still_makes_a_document():
    parse(render_report([]))


# --- svg helpers ----------------------------------------------------------------


@pytest.mark.parametrize(
    "points",
    [[], [(T0, None)], [(T0, float("nan")), (T0 + MIN, float("inf"))]],
)
def test_nothing_to_draw_is_a_placeholder(points):
    for chart in (
        svg.line_chart("t", [("a", points)]),
        svg.drawdown_chart("t", points),
        svg.step_chart("t", points),
        svg.price_chart("t", points),
    ):
        assert "no data" in chart
        parse(chart)


@pytest.mark.parametrize("points", [[(T0, 5.0)], curve(10, lambda i: 5.0), curve(3, lambda i: 0)])
def test_single_points_and_constants_draw(points):
    for chart in (
        svg.line_chart("t", [("a", points)]),
        svg.drawdown_chart("t", points),
        svg.step_chart("t", points),
        svg.price_chart("t", points),
    ):
        assert "no data" not in chart
        assert "nan" not in chart.lower() and "inf" not in chart.lower()
        parse(chart)


def test_nice_ticks_are_round():
    assert svg.nice_ticks(0, 10) == ([0, 2, 4, 6, 8, 10], 0)
    assert svg.nice_ticks(-3.25, 0) == ([-4, -3, -2, -1, 0], 0)
    assert svg.nice_ticks(-0.7, 0) == ([-0.8, -0.6, -0.4, -0.2, 0], 1)
    assert svg.nice_ticks(0.05, 0.3)[1] == 2


def test_time_ticks_show_the_date_once_per_day():
    ticks = svg.time_ticks(T0, T0 + 20 * 60 * MIN)
    labels = [label for _, label in ticks]
    assert labels == ["12:00\n2026-12-01", "18:00", "00:00\n2026-12-02"]
    long_run = svg.time_ticks(T0, T0 + 400 * 24 * 60 * MIN)
    assert [label for _, label in long_run][:2] == ["2027-01-01", "2027-04-01"]


def test_legend_for_several_series_and_escaped_titles():
    chart = svg.line_chart("a <b>", [("x&y", curve(3, float)), ("z", curve(3, lambda i: -i))])
    assert "a &lt;b&gt;" in chart and "x&amp;y" in chart
    assert chart.count("<polyline") == 2
