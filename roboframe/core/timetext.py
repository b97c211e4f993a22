"""Times and spans of nanoseconds as people read them in logs."""

from __future__ import annotations

import datetime as dt


def utc_text(ns: int) -> str:
    """``2026-11-30 02:20:25 UTC``."""
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def span_text(ns: int) -> str:
    """``ns`` as days, hours, minutes and seconds: ``1h 27m 5s``."""
    seconds = ns // 10**9
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    if seconds or not parts:
        parts.append(f"{seconds}s")
    return " ".join(parts)
