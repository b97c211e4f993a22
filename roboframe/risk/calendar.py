"""Trading days: which one an instant belongs to, for the daily-loss limit.

A day begins at ``risk.day_starts``. A day that begins in the afternoon or
evening is the *next* date's trading day -- on MOEX the evening session from
19:00 opens the next trading day, as 17:00 Chicago time does on CME -- and one
that begins in the morning or at midnight is its own date's. A date that is
not a trading day (a weekend: ``risk.trading_days``, Monday to Friday unless
set; a holiday: ``risk.closed``) has no day of its own: its hours belong to
the next trading day. So with ``day_starts: "19:00 MSK"`` Friday's evening
session and Monday's day session are one day, as on MOEX, and the daily loss
does not start afresh over the weekend.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from roboframe.builtin.feeds.timeparse import parse_tz, tz_offset_ns

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEKDAYS = DAYS[:5]
DAY_NS = 86_400 * 1_000_000_000
_SECOND_NS = 1_000_000_000
EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday (mon = 0)
_EPOCH_DATE = dt.date(1970, 1, 1)
_NOON_S = 12 * 3600


def day_shift(day_starts: str) -> int:
    """Nanoseconds to add to an event time so that whole days since the epoch
    count trading days: ``(ts + shift) // DAY_NS`` changes at ``day_starts``
    ("HH:MM" and an optional zone; "19:00 MSK" is 16:00 UTC, a shift of -16 h)."""
    zone = parse_tz(day_starts.partition(" ")[2] or "UTC")
    return tz_offset_ns(zone) - _start_s(day_starts) * _SECOND_NS


def _start_s(day_starts: str) -> int:
    hours, minutes = day_starts.partition(" ")[0].split(":")
    return int(hours) * 3600 + int(minutes) * 60


def epoch_day(date: str) -> int:
    """A date "YYYY-MM-DD" as days since 1970-01-01 (ValueError when it is no date)."""
    return (dt.date.fromisoformat(date) - _EPOCH_DATE).days


class TradingDays:
    """The trading day of an event time, as days since the epoch of its date."""

    def __init__(
        self, day_starts: str, days: Iterable[str] = WEEKDAYS, closed: Iterable[str] = ()
    ) -> None:
        self.shift = day_shift(day_starts)
        self.evening = _start_s(day_starts) >= _NOON_S  # the next date's day
        self.days = frozenset(DAYS.index(d) for d in days) or frozenset(range(7))
        self.closed = frozenset(map(epoch_day, closed))
        self._index: int | None = None  # the last day asked about, and its answer
        self._date = 0

    def day_of(self, ts: int) -> int:
        """The trading date ``ts`` (UTC ns) counts for, as days since the epoch."""
        index = (ts + self.shift) // DAY_NS
        if index == self._index:
            return self._date
        date = index + 1 if self.evening else index
        days, closed = self.days, self.closed
        while (date + EPOCH_WEEKDAY) % 7 not in days or date in closed:
            date += 1  # ends: some weekday trades, and the holidays are finitely many
        self._index, self._date = index, date
        return date

    @classmethod
    def every_day(cls, day_starts: str) -> TradingDays:
        """Every date a trading day: the rule of journals written before the calendar."""
        return cls(day_starts, DAYS, ())
