"""What a person sees: progress lines, the run summary, plugin listings."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


def _pnl(value: str) -> str:
    return f"{float(value):+,.2f}"


class Progress:
    """A progress line on stderr: rewritten in place on a terminal, else (a log
    file) once a minute."""

    def __init__(self, stream: TextIO | None = None, every_s: float = 60.0) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.every_s = every_s
        self._last = 0.0
        self._width = 0

    def __call__(self, status: dict) -> None:
        now = time.monotonic()
        if not self.tty and now - self._last < self.every_s:
            return
        self._last = now
        line = progress_line(status)
        if self.tty:
            pad = max(0, self._width - len(line))
            self.stream.write("\r" + line + " " * pad)
            self._width = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def done(self) -> None:
        if self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()


def progress_line(status: dict) -> str:
    counters = status.get("counters", {})
    parts = [
        f"[{status.get('robot')}] {status.get('uptime_s', 0):.0f}s",
        f"events {status.get('seq', 0):,}",
        f"orders {counters.get('orders', 0)}",
        f"fills {counters.get('fills', 0)}",
        status.get("state", ""),
    ]
    for symbol, pos in sorted(status.get("positions", {}).items()):
        parts.append(f"{symbol} {pos['position']:+d} {_pnl(pos['net_pnl'])}")
    return " | ".join(parts)


def format_summary(summary: dict[str, Any]) -> str:
    lines = [
        f"robot      {summary['robot']}  (run {summary['run_id']})",
        f"stopped    {summary['stop_reason'] or '-'}; state {summary['state']}",
        f"events     {summary['events']:,} in {summary['messages']:,} messages, "
        f"{summary['duration_s']:.1f}s",
    ]
    handled = summary.get("process_events", summary["events"])
    if handled != summary["events"]:  # a resumed run: the messages are this process's
        lines[-1] = (
            f"events     {summary['events']:,} in the run; {handled:,} in this process, in "
            f"{summary['messages']:,} messages, {summary['duration_s']:.1f}s"
        )
    malformed = summary.get("malformed") or {}
    if malformed:
        detail = ", ".join(f"{k}: {v}" for k, v in sorted(malformed.items()))
        lines.append(f"malformed  {sum(malformed.values())} dropped ({detail})")
    if summary.get("stale_bars"):
        lines.append(f"stale      {summary['stale_bars']} bars no later than the last ignored")
    if summary.get("stale_ticks"):
        lines.append(f"stale      {summary['stale_ticks']} ticks before the last ignored")
    lines.append(
        f"orders     {summary['orders']} sent, {summary['fills']} fills, "
        f"{summary['rejections']} rejected by risk, {summary['cancels']} cancels, "
        f"{summary['open_orders']} open at the stop"
    )
    if summary.get("last_rejection"):
        lines.append(f"rejected   last: {summary['last_rejection']}")
    if summary.get("error"):
        at = f" (event seq {summary['error_seq']})" if summary.get("error_seq") else ""
        lines.append(f"error      {summary['error']}{at}")
        lines.append("           fix the strategy; 'run --resume' then goes on from this event")
        cancelled = summary.get("cancelled_on_error")
        if cancelled and cancelled["asked"]:
            closed = cancelled["asked"] - len(cancelled["still_open"])
            lines.append(
                f"           open orders cancelled (open_orders_on_error): {closed} of "
                f"{cancelled['asked']} closed since (the journal learns of it on --resume)"
            )
    lines.append("")
    header = f"{'symbol':<12}{'position':>9}{'avg price':>12}{'last':>10}"
    header += f"{'realized':>13}{'unrealized':>13}{'fees':>10}{'net PnL':>13}"
    lines.append(header)
    for symbol, pos in sorted(summary["positions"].items()):
        lines.append(
            f"{symbol:<12}{pos['position']:>+9d}{pos['avg_price'] or '-':>12}"
            f"{pos['last_price'] or '-':>10}{_pnl(pos['realized_pnl']):>13}"
            f"{_pnl(pos['unrealized_pnl']):>13}{float(pos['fees']):>10,.2f}"
            f"{_pnl(pos['net_pnl']):>13} {pos['currency']}"
        )
    lines.append(f"{'total':<12}{'':>67}{_pnl(summary['net_pnl']):>13}")
    lines.append("")
    lines.append(f"journal    {summary['journal']}")
    return "\n".join(lines)


PLUGIN_KINDS = ("feeds", "gateways", "strategies", "risk_checks", "commands", "stores",
                "config_sections", "analysis_stores", "statistics", "report_sections")  # fmt: skip


def format_plugins(plugins: list[dict]) -> str:
    lines = []
    for info in plugins:
        if info.get("error"):
            lines.append(f"{info['name']}  BROKEN: {info['error']}")
            continue
        version = f" {info['version']}" if info["version"] else ""
        lines.append(f"{info['name']}{version}  ({info['source']})")
        for kind in PLUGIN_KINDS:
            if info[kind]:
                lines.append(f"    {kind.replace('_', ' ')}: {', '.join(info[kind])}")
    return "\n".join(lines)


STAT_ROWS = (
    ("start", "Start (UTC)"),
    ("end", "End (UTC)"),
    ("events", "Market events"),
    ("initial_cash", "Initial cash"),
    ("equity_final", "Equity final"),
    ("equity_peak", "Equity peak"),
    ("net_pnl", "Net PnL"),
    ("return_pct", "Return [%]"),
    ("max_drawdown_pct", "Max. drawdown [%]"),
    ("exposure_pct", "Exposure [%]"),
    ("trades", "Trades"),
    ("open_trades_at_end", "  open at end (closed at last price)"),
    ("win_rate_pct", "Win rate [%]"),
    ("profit_factor", "Profit factor"),
    ("best_trade", "Best trade"),
    ("worst_trade", "Worst trade"),
    ("avg_trade", "Avg. trade"),
    ("fees", "Fees"),
)


def _stat(key: str, value: object) -> str:
    if value is None:
        return "-"
    if key in ("start", "end") and isinstance(value, int):
        import datetime as dt

        return dt.datetime.fromtimestamp(value / 1e9, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def format_orders(stats: dict) -> str:
    """The lines under a statistics table that count orders (see order_counts)."""
    line = f"orders     {stats['orders']} sent, {stats['rejections']} rejected by risk"
    if stats.get("last_rejection"):
        line += f"\nrejected   last: {stats['last_rejection']}"
    return line


def format_stats(stats: dict, *, title: str = "") -> str:
    lines = [title] if title else []
    for key, label in STAT_ROWS:
        lines.append(f"{label:<38}{_stat(key, stats.get(key)):>18}")
    return "\n".join(lines)


def format_state(state: dict) -> str:
    lines = [
        f"robot {state['robot']}  run {state['run_id']}  after seq {state['seq']}",
        f"state {state['state']}  time {_stat('start', state['time'])}  net PnL {state['net_pnl']}",
        "positions:",
    ]
    for symbol, pos in sorted(state["positions"].items()):
        lines.append(
            f"  {symbol:<12}{pos['position']:>+6d}  avg {pos['avg_price'] or '-'}"
            f"  last {pos['last_price'] or '-'}  net {pos['net_pnl']}"
        )
    lines.append(f"open orders: {len(state['open_orders'])}")
    for order in state["open_orders"]:
        lines.append(
            f"  {order['client_id']} {order['side']} {order['qty']} {order['symbol']}"
            f" {order['type']}{' @ ' + order['limit_price'] if order.get('limit_price') else ''}"
            f" {order['status']} filled {order['filled']}"
        )
    lines.append("strategy:")
    for key, value in sorted(state["strategy"].items()):
        lines.append(f"  {key} = {value!r}")
    return "\n".join(lines)


def format_trades(trades: list[dict]) -> str:
    lines = [f"{'symbol':<12}{'side':<6}{'qty':>4}{'entry':>12}{'exit':>12}{'PnL':>13}"]
    for t in trades:
        flag = "  (open at end)" if t["open_at_end"] else ""
        lines.append(
            f"{t['symbol']:<12}{t['side']:<6}{t['qty']:>4}{t['entry_price']:>12}"
            f"{t['exit_price']:>12}{t['pnl']:>13,.2f}{flag}"
        )
    return "\n".join(lines)
