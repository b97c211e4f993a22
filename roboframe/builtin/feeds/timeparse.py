"""Parsing times and intervals for feeds (UTC nanoseconds)."""

from __future__ import annotations

import datetime as dt

from roboframe.core.timetext import utc_text

_UNITS_NS = {"ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9, "d": 86400 * 10**9}


def interval_ns(text: str | int) -> int:
    """``500ms``, ``5s``, ``1m``, ``1h``, ``1d``, or an integer of seconds."""
    if isinstance(text, int):
        return text * 10**9
    for unit in ("ms", "s", "m", "h", "d"):
        if text.endswith(unit) and text[: -len(unit)].isdigit():
            return int(text[: -len(unit)]) * _UNITS_NS[unit]
    raise ValueError(f"not an interval: {text!r} (write 500ms, 5s, 1m, 1h or 1d)")


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)


def iso_to_ns(text: str, tz: dt.tzinfo = dt.UTC) -> int:
    """An ISO-8601 time (``Z`` allowed; naive times are in ``tz``) as ns since the epoch."""
    value = dt.datetime.fromisoformat(text.strip())
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return in_range((value - _EPOCH) // _MICROSECOND * 1000)


EPOCH_FLOOR = 10**8
"""Smaller digit strings are no epoch time a file means (before March 1973 in
seconds, January 1970 in finer units): a ``YYMMDD`` or ``DDMMYYYY`` date."""

MAX_NS = 2**63 - 1
"""The last time a journal holds: 2262-04-11T23:47:16Z, ns since the epoch in 64 bits."""


def in_range(ns: int) -> int:
    """``ns``, or ValueError when a 64-bit time cannot hold it (a time unit taken
    for a smaller one, a year typed 2300)."""
    if not -MAX_NS <= ns <= MAX_NS:
        raise ValueError("out of range: times run from 1677 to 2262 (64-bit nanoseconds)")
    return ns


ZONE = r"(UTC|utc|Z|MSK|msk|[+-][0-9]{2}(:?[0-9]{2})?)"
"""A zone :func:`parse_tz` reads, for JSON Schema patterns: UTC, MSK, +03:00."""
ZONE_PATTERN = f"^{ZONE}$"


def parse_tz(text: str | None) -> dt.tzinfo:
    """``UTC``, ``+03:00``, ``-0500`` or ``MSK`` (UTC+3) as a fixed-offset zone."""
    if not text or text.upper() in ("UTC", "Z"):
        return dt.UTC
    if text.upper() == "MSK":
        return dt.timezone(dt.timedelta(hours=3))
    sign = -1 if text.startswith("-") else 1
    digits = text.lstrip("+-").replace(":", "")
    if not (digits.isdigit() and len(digits) in (2, 4)):
        raise ValueError(f"not a time zone offset: {text!r} (write UTC, MSK or +03:00)")
    hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    return dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes))


# Moscow time has been UTC+3 all year since 2014-10-26 02:00 local (22:00 UTC the
# day before); from 2011-03-27 it was UTC+4, and before that UTC+3 with summer time
MSK_FIXED_SINCE_NS = 1_414_274_400 * 1_000_000_000


def msk_history(tz_text: str | None, first_ns: int) -> str | None:
    """What to say of data in ``MSK`` (UTC+3 here) that starts before Moscow
    kept UTC+3 all year: times without an offset are read an hour late then."""
    if (tz_text or "").upper() != "MSK" or first_ns >= MSK_FIXED_SINCE_NS:
        return None
    return (
        "tz MSK is UTC+3, as Moscow time has been since 26 Oct 2014; this data starts "
        f"{utc_text(first_ns)}, when Moscow was UTC+4 (from 27 Mar 2011) or kept summer "
        "time (before): its times without an offset are read an hour late there. For "
        "data of 27 Mar 2011 - 25 Oct 2014 write tz: +04:00; across the changes, convert "
        "the file to UTC"
    )


def tz_offset_ns(tz: dt.tzinfo) -> int:
    """A fixed-offset zone's (:func:`parse_tz`) offset from UTC in nanoseconds."""
    offset = tz.utcoffset(None)
    return (offset.days * 86_400 + offset.seconds) * 10**9
