"""Inline SVG charts for the HTML report, in plain Python.

Every function takes curves as ``(ts_ns, value)`` points (UTC nanoseconds)
and returns one ``<svg>`` element as a string. Points with a missing or
non-finite value are skipped; a chart with nothing left to draw becomes a
"no data" placeholder of the same size. Output is deterministic: the same
input gives the same bytes (coordinates are written with one decimal).

Charts: :func:`line_chart` (one or more series), :func:`drawdown_chart`
(area under zero), :func:`step_chart` (a position over time) and
:func:`price_chart` (a price with trade entry and exit marks).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape

Points = Sequence[tuple[int, float | None]]

WIDTH = 960
HEIGHT = 280
LEFT, RIGHT, TOP, BOTTOM = 84, 16, 36, 44
COLORS = ("#1f6fb2", "#d9822b", "#2e8b57", "#8e44ad", "#c0392b", "#7f8c8d")
LONG_COLOR, SHORT_COLOR, EXIT_COLOR = "#2e8b57", "#c0392b", "#333333"

_NS = 1_000_000_000
_TIME_STEPS_S = (
    1, 2, 5, 10, 15, 30,
    60, 120, 300, 600, 900, 1800,
    3600, 7200, 10800, 21600, 43200,
    86400, 2 * 86400, 7 * 86400, 14 * 86400,
)  # fmt: skip
_MONTH_STEPS = (1, 3, 6, 12, 24, 60, 120)


def _esc(text: object) -> str:
    return escape(str(text), quote=True)


def _f(value: float) -> str:
    """A coordinate with fixed precision (and no ``-0.0``)."""
    text = f"{value:.1f}"
    return "0.0" if text == "-0.0" else text


def clean(points: Iterable[tuple[int | None, float | None]] | None) -> list[tuple[int, float]]:
    """The points with a time and a finite value, in time order."""
    kept = []
    for ts, value in points or ():
        if ts is None or value is None:
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            kept.append((int(ts), number))
    kept.sort(key=lambda p: p[0])
    return kept


def utc(ts_ns: int, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """A nanosecond timestamp as UTC text."""
    return dt.datetime.fromtimestamp(ts_ns / _NS, dt.UTC).strftime(fmt)


# --- scales -----------------------------------------------------------------


def nice_ticks(lo: float, hi: float, count: int = 5) -> tuple[list[float], int]:
    """Round tick values covering ``lo..hi`` and the decimals to print them with."""
    if not hi > lo:
        span = abs(lo) * 0.01 or 1.0
        lo, hi = lo - span, hi + span
    raw = (hi - lo) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.floor(lo / step) * step
    ticks = []
    i = 0
    while True:
        tick = first + i * step
        ticks.append(round(tick, 12))
        if tick >= hi - step * 1e-9:
            break
        i += 1
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    scaled = step * 10**decimals
    if abs(scaled - round(scaled)) > 1e-6:  # 2.5 x 10^k needs one more decimal
        decimals += 1
    return ticks, decimals


def _add_months(year: int, month: int, months: int) -> tuple[int, int]:
    index = year * 12 + month - 1 + months
    return index // 12, index % 12 + 1


def time_ticks(t0: int, t1: int, count: int = 6) -> list[tuple[int, str]]:
    """Round UTC times within ``t0..t1`` (ns) with labels; a new date is shown once."""
    span_s = max((t1 - t0) / _NS, 1e-9)
    ticks: list[int] = []
    step = next((s for s in _TIME_STEPS_S if span_s / s <= count), None)
    if step is not None:
        step_ns = step * _NS
        tick = -(-t0 // step_ns) * step_ns
        while tick <= t1:
            ticks.append(tick)
            tick += step_ns
    else:
        months = next((m for m in _MONTH_STEPS if span_s / (m * 30.44 * 86400) <= count), 1200)
        start = dt.datetime.fromtimestamp(t0 / _NS, dt.UTC)
        year, month = start.year, start.month
        while True:
            moment = dt.datetime(year, month, 1, tzinfo=dt.UTC)
            tick = int(moment.timestamp()) * _NS
            if tick > t1:
                break
            if tick >= t0 and (year * 12 + month - 1) % months == 0:
                ticks.append(tick)
            year, month = _add_months(year, month, 1)
    if step is not None and step < 60:
        fmt = "%H:%M:%S"
    elif step is not None and step < 86400:
        fmt = "%H:%M"
    else:
        fmt = ""
    labels = []
    last_date = None
    for tick in ticks:
        date = utc(tick, "%Y-%m-%d")
        if not fmt:
            labels.append((tick, date))
            continue
        text = utc(tick, fmt)
        labels.append((tick, f"{text}\n{date}" if date != last_date else text))
        last_date = date
    return labels


@dataclass(frozen=True)
class _Frame:
    """Maps times and values to pixels inside the plot area."""

    t0: int
    t1: int
    y0: float
    y1: float
    width: int = WIDTH
    height: int = HEIGHT

    @classmethod
    def fit(
        cls, times: list[int], values: list[float], *, include_zero: bool = False
    ) -> tuple[_Frame, list[float], int]:
        t0, t1 = min(times), max(times)
        if t0 == t1:  # a single moment: a minute either side
            t0, t1 = t0 - 60 * _NS, t1 + 60 * _NS
        lo, hi = min(values), max(values)
        if include_zero:
            lo, hi = min(lo, 0.0), max(hi, 0.0)
        ticks, decimals = nice_ticks(lo, hi)
        return cls(t0, t1, min(ticks), max(ticks)), ticks, decimals

    def x(self, ts: int) -> float:
        inner = self.width - LEFT - RIGHT
        return LEFT + (ts - self.t0) / (self.t1 - self.t0) * inner

    def y(self, value: float) -> float:
        inner = self.height - TOP - BOTTOM
        return TOP + (self.y1 - value) / (self.y1 - self.y0) * inner


# --- pieces -----------------------------------------------------------------


def _open(title: str, label: str = "") -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{WIDTH}" '
        f'height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{_esc(label or title)}" font-family="sans-serif" font-size="11">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>',
        f'<text x="{LEFT}" y="20" font-size="14" font-weight="bold">{_esc(title)}</text>',
    ]


def placeholder(title: str, message: str = "no data") -> str:
    """A chart-sized box saying there is nothing to draw."""
    parts = _open(title, f"{title}: {message}")
    parts.append(
        f'<rect x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" '
        f'height="{HEIGHT - TOP - BOTTOM}" fill="#f4f4f4" stroke="#cccccc"/>'
    )
    parts.append(
        f'<text x="{_f(WIDTH / 2)}" y="{_f(HEIGHT / 2)}" text-anchor="middle" '
        f'fill="#777777" font-size="14">{_esc(message)}</text>'
    )
    parts.append("</svg>")
    return "\n".join(parts)


def _axes(frame: _Frame, ticks: list[float], decimals: int) -> list[str]:
    parts = ['<g class="axes" stroke="#e3e3e3">']
    labels = ['<g class="labels" fill="#444444">']
    for tick in ticks:
        y = _f(frame.y(tick))
        parts.append(f'<line x1="{LEFT}" y1="{y}" x2="{WIDTH - RIGHT}" y2="{y}"/>')
        text = f"{tick:,.{decimals}f}"
        if text.startswith("-") and not text.strip("-0.,"):
            text = text[1:]
        labels.append(f'<text x="{LEFT - 6}" y="{y}" text-anchor="end" dy="4">{_esc(text)}</text>')
    base = HEIGHT - BOTTOM
    for ts, text in time_ticks(frame.t0, frame.t1):
        x = _f(frame.x(ts))
        parts.append(f'<line x1="{x}" y1="{TOP}" x2="{x}" y2="{base}"/>')
        lines = text.split("\n")
        spans = "".join(
            f'<tspan x="{x}" dy="{0 if i == 0 else 13}">{_esc(line)}</tspan>'
            for i, line in enumerate(lines)
        )
        labels.append(f'<text x="{x}" y="{base + 15}" text-anchor="middle">{spans}</text>')
    labels.append(f'<text x="{WIDTH - RIGHT}" y="{HEIGHT - 4}" text-anchor="end">UTC</text>')
    parts.append(
        f'<rect x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" '
        f'height="{HEIGHT - TOP - BOTTOM}" fill="none" stroke="#bbbbbb"/>'
    )
    parts.append("</g>")
    labels.append("</g>")
    return parts + labels


def _legend(entries: Sequence[tuple[str, str, str]]) -> list[str]:
    """Legend entries ``(label, color, shape)`` right-aligned above the plot."""
    parts = ['<g class="legend">']
    x = WIDTH - RIGHT
    for label, color, shape in reversed(entries):
        x -= 7 * len(label) + 30
        if shape == "line":
            mark = (
                f'<line x1="{x}" y1="16" x2="{x + 18}" y2="16" stroke="{color}" stroke-width="2"/>'
            )
        else:
            mark = _marker(shape, x + 9, 16, color)
        parts.append(f'{mark}<text x="{x + 22}" y="20">{_esc(label)}</text>')
    parts.append("</g>")
    return parts


def _polyline(frame: _Frame, points: list[tuple[int, float]], color: str) -> str:
    if len(points) == 1:
        ts, value = points[0]
        return f'<circle cx="{_f(frame.x(ts))}" cy="{_f(frame.y(value))}" r="3" fill="{color}"/>'
    coords = " ".join(f"{_f(frame.x(ts))},{_f(frame.y(v))}" for ts, v in points)
    return (
        f'<polyline points="{coords}" fill="none" stroke="{color}" '
        'stroke-width="1.5" stroke-linejoin="round"/>'
    )


def _marker(shape: str, x: float, y: float, color: str, tip: str = "", cls: str = "") -> str:
    title = f"<title>{_esc(tip)}</title>" if tip else ""
    klass = f' class="{cls}"' if cls else ""
    if shape == "circle":
        attrs = (
            f'cx="{_f(x)}" cy="{_f(y)}" r="4" fill="#ffffff" stroke="{color}" stroke-width="1.5"'
        )
        return f"<circle{klass} {attrs}>{title}</circle>"
    dy = -6 if shape == "up" else 6
    corners = f"{_f(x)},{_f(y + dy)} {_f(x - 5)},{_f(y - dy)} {_f(x + 5)},{_f(y - dy)}"
    return f'<polygon{klass} points="{corners}" fill="{color}">{title}</polygon>'


# --- charts -----------------------------------------------------------------


def line_chart(title: str, series: Sequence[tuple[str, Points]]) -> str:
    """Lines of one or more named series over time, with a legend when more than one."""
    cleaned = [(name, clean(points)) for name, points in series]
    drawn = [(name, points) for name, points in cleaned if points]
    if not drawn:
        return placeholder(title)
    times = [ts for _, points in drawn for ts, _ in points]
    values = [v for _, points in drawn for _, v in points]
    frame, ticks, decimals = _Frame.fit(times, values)
    parts = _open(title)
    parts += _axes(frame, ticks, decimals)
    entries = []
    for i, (name, points) in enumerate(cleaned):
        color = COLORS[i % len(COLORS)]
        entries.append((name, color, "line"))
        if points:
            parts.append(_polyline(frame, points, color))
    if len(series) > 1:
        parts += _legend(entries)
    parts.append("</svg>")
    return "\n".join(parts)


def _zero_based(title: str, points: Points):
    """The start of a chart whose y axis includes 0: ``(points, frame, svg parts, y of 0)``,
    or the placeholder when there is nothing to draw."""
    kept = clean(points)
    if not kept:
        return placeholder(title)
    frame, ticks, decimals = _Frame.fit(
        [ts for ts, _ in kept], [v for _, v in kept], include_zero=True
    )
    return kept, frame, _open(title) + _axes(frame, ticks, decimals), _f(frame.y(0.0))


def drawdown_chart(title: str, points: Points, color: str = "#c0392b") -> str:
    """Drawdown in percent (0 or below) as a shaded area under the zero line."""
    started = _zero_based(title, points)
    if isinstance(started, str):
        return started
    kept, frame, parts, zero = started
    if len(kept) > 1:
        path = " ".join(f"L{_f(frame.x(ts))},{_f(frame.y(v))}" for ts, v in kept)
        first, last = _f(frame.x(kept[0][0])), _f(frame.x(kept[-1][0]))
        parts.append(
            f'<path d="M{first},{zero} {path} L{last},{zero} Z" fill="{color}" '
            'fill-opacity="0.25" stroke="none"/>'
        )
    parts.append(_polyline(frame, kept, color))
    parts.append(f'<line x1="{LEFT}" y1="{zero}" x2="{WIDTH - RIGHT}" y2="{zero}" stroke="#888"/>')
    parts.append("</svg>")
    return "\n".join(parts)


def step_chart(title: str, points: Points, color: str = "#1f6fb2") -> str:
    """A value that holds until the next point (a position), with a zero line."""
    started = _zero_based(title, points)
    if isinstance(started, str):
        return started
    kept, frame, parts, zero = started
    parts.append(f'<line x1="{LEFT}" y1="{zero}" x2="{WIDTH - RIGHT}" y2="{zero}" stroke="#888"/>')
    if len(kept) == 1:
        parts.append(_polyline(frame, kept, color))
    else:
        ts, value = kept[0]
        path = [f"M{_f(frame.x(ts))},{_f(frame.y(value))}"]
        for ts, value in kept[1:]:
            path.append(f"H{_f(frame.x(ts))}V{_f(frame.y(value))}")
        parts.append(
            f'<path d="{" ".join(path)}" fill="none" stroke="{color}" stroke-width="1.5"/>'
        )
    parts.append("</svg>")
    return "\n".join(parts)


def _price(text: object) -> float | None:
    try:
        value = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _trade_marks(trades: Sequence[dict]) -> list[tuple[str, int, float, str, str, str]]:
    """``(shape, ts, price, color, tooltip, class)`` for each entry and exit."""
    marks = []
    for trade in trades:
        side = str(trade.get("side", ""))
        qty, symbol = trade.get("qty", ""), trade.get("symbol", "")
        entry_ts, entry = trade.get("entry_ts"), _price(trade.get("entry_price"))
        if entry_ts is not None and entry is not None:
            short = side == "short"
            tip = f"{side} {qty} {symbol} entry {trade.get('entry_price')} at {utc(entry_ts)} UTC"
            marks.append(
                (
                    "down" if short else "up",
                    int(entry_ts),
                    entry,
                    SHORT_COLOR if short else LONG_COLOR,
                    tip,
                    f"mark entry {'short' if short else 'long'}",
                )
            )
        exit_ts, exit_ = trade.get("exit_ts"), _price(trade.get("exit_price"))
        if exit_ts is not None and exit_ is not None:
            pnl = trade.get("pnl")
            tip = f"{side} {qty} {symbol} exit {trade.get('exit_price')} at {utc(exit_ts)} UTC"
            if isinstance(pnl, int | float) and math.isfinite(pnl):
                tip += f", PnL {pnl:+,.2f}"
            if trade.get("open_at_end"):
                tip += " (open at end: closed at the last price)"
            marks.append(("circle", int(exit_ts), exit_, EXIT_COLOR, tip, "mark exit"))
    return marks


def price_chart(title: str, points: Points, trades: Sequence[dict] = ()) -> str:
    """A price line with a triangle at each entry (up: long, down: short), a circle at each exit.

    Each mark carries a ``<title>`` tooltip and a class ``mark entry long``,
    ``mark entry short`` or ``mark exit``.
    """
    kept = clean(points)
    marks = _trade_marks(trades)
    if not kept and not marks:
        return placeholder(title)
    times = [ts for ts, _ in kept] + [m[1] for m in marks]
    values = [v for _, v in kept] + [m[2] for m in marks]
    frame, ticks, decimals = _Frame.fit(times, values)
    parts = _open(title)
    parts += _axes(frame, ticks, decimals)
    if kept:
        parts.append(_polyline(frame, kept, COLORS[0]))
    parts.append('<g class="marks">')
    for shape, ts, value, color, tip, cls in marks:
        parts.append(_marker(shape, frame.x(ts), frame.y(value), color, tip, cls))
    parts.append("</g>")
    parts += _legend(
        [
            ("price", COLORS[0], "line"),
            ("long entry", LONG_COLOR, "up"),
            ("short entry", SHORT_COLOR, "down"),
            ("exit", EXIT_COLOR, "circle"),
        ]
    )
    parts.append("</svg>")
    return "\n".join(parts)
