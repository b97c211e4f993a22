"""The self-contained HTML report of ``roboframe analyze ... --report report.html``.

One HTML5 file with inline CSS and inline SVG charts: no external URLs and
no JavaScript, so it opens offline and can be mailed or archived as is.
It shows a table comparing the runs, then per run its statistics, charts
(equity, drawdown, and per symbol the position and the price with trade
entries and exits), its first trades and, when asked for, how the order
store and the journal differ.

Plugins add sections: pairs ``(name, render)`` where ``render(runs)``
returns an HTML fragment (trusted as is; escape what you put in it). A
section that raises shows an error note instead; the rest of the report is
still written. The output is deterministic: the same runs give the same bytes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from html import escape
from pathlib import Path

from roboframe.analyze import svg
from roboframe.analyze.model import RunReport
from roboframe.console import STAT_ROWS
from roboframe.errors import RoboframeError

Section = tuple[str, Callable[[list[RunReport]], str]]

TRADE_ROWS = 50
"""Most trades listed per run in the report's trade table."""
DASH = "\u2014"

log = logging.getLogger(__name__)

COMPARE_COLUMNS = (
    ("trades", "Trades"),
    ("net_pnl", "Net PnL"),
    ("return_pct", "Return [%]"),
    ("max_drawdown_pct", "Max. drawdown [%]"),
    ("win_rate_pct", "Win rate [%]"),
    ("profit_factor", "Profit factor"),
    ("exposure_pct", "Exposure [%]"),
    ("equity_final", "Equity final"),
)
INCOMPLETE_NOTE = "journal still being written; analysed up to its last complete frame"
RECONCILIATION_KINDS = {
    "missing_in_journal": "in the store, not in the journal",
    "missing_in_store": "in the journal, not in the store",
    "different": "different",
}

CSS = """
body { font-family: system-ui, sans-serif; margin: 0; color: #222; background: #fafafa; }
main { max-width: 1000px; margin: 0 auto; padding: 16px 20px 48px; }
h1 { font-size: 1.6em; margin: 0.4em 0; }
h2 { font-size: 1.3em; margin-top: 2em; border-bottom: 2px solid #ddd; padding-bottom: 4px; }
h3 { font-size: 1.05em; margin-top: 1.4em; }
table { border-collapse: collapse; margin: 8px 0; background: #fff; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
thead th { background: #f0f0f0; }
svg.chart { display: block; max-width: 100%; height: auto; margin: 8px 0; }
.note { background: #fff6d6; border-left: 4px solid #e0b000; padding: 6px 10px; }
.error { background: #fde8e8; border-left: 4px solid #c0392b; padding: 6px 10px; }
.ok { color: #2e7d32; }
.muted { color: #777; }
"""


# --- formatting ---------------------------------------------------------------


def _esc(value: object) -> str:
    return escape(str(value), quote=True)


def format_value(key: str, value: object) -> str:
    """A statistic as a person reads it (plain text, not yet escaped); None is a dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if key in ("start", "end") and isinstance(value, int):
        return svg.utc(value) + " UTC"
    if isinstance(value, float):
        if math.isinf(value):
            return "\u221e" if value > 0 else "-\u221e"
        if value and abs(value) < 0.01:
            return f"{value:.4g}"
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _numeric(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _cell(key: str, value: object) -> str:
    klass = ' class="num"' if _numeric(value) or value is None else ""
    return f"<td{klass}>{_esc(format_value(key, value))}</td>"


def _run_title(run: RunReport) -> str:
    return f"{run.robot} \u00b7 run {run.run_id} ({run.mode})"


# --- parts --------------------------------------------------------------------


def comparison_table(runs: Sequence[RunReport]) -> str:
    """One row per run with the headline figures; each robot links to its section."""
    head = "".join(f'<th class="num">{_esc(label)}</th>' for _, label in COMPARE_COLUMNS)
    rows = [
        '<table class="compare">',
        f"<thead><tr><th>Robot</th><th>Run</th><th>Mode</th>{head}</tr></thead>",
        "<tbody>",
    ]
    for i, run in enumerate(runs, 1):
        cells = "".join(_cell(key, run.stats.get(key)) for key, _ in COMPARE_COLUMNS)
        rows.append(
            f'<tr><td><a href="#run-{i}">{_esc(run.robot)}</a></td>'
            f"<td>{_esc(run.run_id)}</td><td>{_esc(run.mode)}</td>{cells}</tr>"
        )
    rows.append("</tbody></table>")
    return "\n".join(rows)


def stats_table(stats: dict) -> str:
    """Every statistic: the documented ones in their order, then plugin figures by name."""
    known = [(key, label.strip()) for key, label in STAT_ROWS]
    names = {key for key, _ in known}
    extra = [(key, key) for key in sorted(stats, key=str) if key not in names]
    rows = ['<table class="stats"><tbody>']
    for key, label in known + extra:
        rows.append(f"<tr><th>{_esc(label)}</th>{_cell(key, stats.get(key))}</tr>")
    rows.append("</tbody></table>")
    return "\n".join(rows)


def trades_table(trades: Sequence[dict], total: object = None) -> str:
    """The first :data:`TRADE_ROWS` trades, saying how many there are in all."""
    if not trades:
        return '<p class="muted">No trades.</p>'
    shown = trades[:TRADE_ROWS]
    count = total if isinstance(total, int) and total >= len(trades) else len(trades)
    parts = []
    if len(shown) < count:
        parts.append(f'<p class="muted">The first {len(shown)} of {count:,} trades.</p>')
    parts.append(
        '<table class="trades"><thead><tr><th class="num">#</th><th>Symbol</th><th>Side</th>'
        '<th class="num">Qty</th><th>Entry time</th><th class="num">Entry</th>'
        '<th>Exit time</th><th class="num">Exit</th><th class="num">PnL</th><th></th>'
        "</tr></thead><tbody>"
    )
    for i, t in enumerate(shown, 1):
        pnl = t.get("pnl")
        pnl_text = f"{pnl:+,.2f}" if _numeric(pnl) else DASH
        flag = "open at end" if t.get("open_at_end") else ""
        parts.append(
            f'<tr><td class="num">{i}</td><td>{_esc(t.get("symbol", ""))}</td>'
            f"<td>{_esc(t.get('side', ''))}</td>"
            f'<td class="num">{_esc(format_value("qty", t.get("qty")))}</td>'
            f"<td>{_esc(_time(t.get('entry_ts')))}</td>"
            f'<td class="num">{_esc(t.get("entry_price") or DASH)}</td>'
            f"<td>{_esc(_time(t.get('exit_ts')))}</td>"
            f'<td class="num">{_esc(t.get("exit_price") or DASH)}</td>'
            f'<td class="num">{_esc(pnl_text)}</td><td>{flag}</td></tr>'
        )
    parts.append("</tbody></table>")
    return "\n".join(parts)


def _time(ts: object) -> str:
    return svg.utc(ts) if isinstance(ts, int) else DASH


def reconciliation_part(differences: list[dict] | None) -> str:
    """How the order store and the journal differ; empty when not asked for."""
    if differences is None:
        return ""
    parts = ["<h3>Order store and journal</h3>"]
    if not differences:
        parts.append('<p class="ok">store and journal agree</p>')
        return "\n".join(parts)
    parts.append(f'<p class="error">{len(differences):,} difference(s).</p>')
    parts.append(
        '<table class="reconciliation"><thead><tr><th>Kind</th><th>Fill (trade id)</th>'
        "<th>Order</th><th>Detail</th></tr></thead><tbody>"
    )
    for diff in differences:
        kind = str(diff.get("kind", ""))
        cells = [
            RECONCILIATION_KINDS.get(kind, kind),
            diff.get("trade_id") or DASH,
            diff.get("client_id") or DASH,
            diff.get("detail") or "",
        ]
        parts.append("<tr>" + "".join(f"<td>{_esc(cell)}</td>" for cell in cells) + "</tr>")
    parts.append("</tbody></table>")
    return "\n".join(parts)


def charts(run: RunReport) -> str:
    """Equity and drawdown, then per symbol its position and its price with trade marks."""
    parts = [
        svg.line_chart("Equity", [("equity", run.equity)]),
        svg.drawdown_chart("Drawdown [%]", run.drawdown),
    ]
    symbols = sorted(
        set(run.positions) | set(run.prices) | {str(t.get("symbol")) for t in run.trades}
    )
    for symbol in symbols:
        parts.append(f"<h3>{_esc(symbol)}</h3>")
        parts.append(svg.step_chart(f"{symbol} position [lots]", run.positions.get(symbol, [])))
        trades = [t for t in run.trades if str(t.get("symbol")) == symbol]
        parts.append(svg.price_chart(f"{symbol} price", run.prices.get(symbol, []), trades))
    return "\n".join(parts)


def run_section(index: int, run: RunReport) -> str:
    parts = [
        f'<section class="run" id="run-{index}">',
        f"<h2>{_esc(_run_title(run))}</h2>",
        f'<p class="muted">journal {_esc(run.journal)}</p>',
    ]
    if run.failure is not None:
        parts.append(f'<p class="note">{_esc(run.failure)}</p>')
    elif not run.complete:
        parts.append(f'<p class="note">{_esc(INCOMPLETE_NOTE)}</p>')
    parts += [
        stats_table(run.stats),
        charts(run),
        "<h3>Trades</h3>",
        trades_table(run.trades, run.stats.get("trades")),
        reconciliation_part(run.reconciliation),
        "</section>",
    ]
    return "\n".join(part for part in parts if part)


def plugin_section(name: str, render: Callable[[list[RunReport]], str], runs: list[RunReport]):
    """A plugin's section; its failure becomes a note in the section, not a failed report."""
    try:
        body = render(runs)
        if not isinstance(body, str):
            raise TypeError(f"returned {type(body).__name__}, not an HTML string")
    except Exception as exc:
        log.warning("report section %r failed", name, exc_info=True)
        body = f'<p class="error">This section failed: {_esc(type(exc).__name__)}: {_esc(exc)}</p>'
    return f'<section class="plugin">\n<h2>{_esc(name)}</h2>\n{body}\n</section>'


# --- the document -------------------------------------------------------------


def render_report(runs: list[RunReport], sections: Sequence[Section] = ()) -> str:
    """The whole report as one HTML5 document."""
    runs = list(runs)
    robots = sorted({run.robot for run in runs})
    title = "roboframe analysis" + (f": {', '.join(robots)}" if robots else "")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_esc(title)}</title>",
        f"<style>{CSS}</style>",
        "</head>",
        "<body>",
        "<main>",
        f"<h1>{_esc(title)}</h1>",
        f'<p class="muted">{len(runs)} run(s). Times are UTC.</p>',
        comparison_table(runs) if runs else '<p class="muted">No runs to report.</p>',
    ]
    parts += [run_section(i, run) for i, run in enumerate(runs, 1)]
    parts += [plugin_section(name, render, runs) for name, render in sections]
    parts += ["</main>", "</body>", "</html>", ""]
    return "\n".join(parts)


def write_report(path: str | Path, runs: list[RunReport], sections: Sequence[Section] = ()) -> None:
    """Write :func:`render_report` to ``path`` as UTF-8."""
    try:
        Path(path).write_text(render_report(runs, sections), encoding="utf-8")
    except OSError as exc:
        raise RoboframeError(f"cannot write the report {path}: {exc.strerror}") from None
