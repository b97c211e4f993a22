"""``trading-hours``: new orders only inside the exchange's sessions, by event time.

::

    risk:
      checks:
        - plugin: trading-hours
          params:
            sessions: ["10:00-18:50", "19:05-23:50"]   # MOEX futures, Moscow time
            tz: MSK
            days: [mon, tue, wed, thu, fri]
            closed: ["2026-12-31", "2027-01-01"]        # holidays

A session ``"HH:MM-HH:MM"`` includes its start and excludes its end; one
whose end is before its start runs past midnight (``"22:00-02:00"``). Times
are the robot's event time in ``tz``, so a backtest and a replay refuse the
same orders a live run did. ``days`` are the days a session *starts* on;
``closed`` lists holidays, dates on which no session starts.
"""

from __future__ import annotations

import re
from typing import Any

from roboframe.builtin.feeds.timeparse import ZONE_PATTERN, parse_tz, tz_offset_ns
from roboframe.core.events import NewOrder
from roboframe.core.riskcheck import RiskCheck, RiskView
from roboframe.errors import ConfigError
from roboframe.risk.calendar import DAY_NS, DAYS, EPOCH_WEEKDAY, WEEKDAYS, epoch_day

_SESSION = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")
_MINUTE_NS = 60 * 10**9


class TradingHours(RiskCheck):
    params_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["sessions"],
        "properties": {
            "sessions": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "string",
                    "pattern": _SESSION.pattern,
                    "description": 'a session "HH:MM-HH:MM", e.g. "10:00-18:50"',
                },
                "description": 'trading sessions "HH:MM-HH:MM" in tz, start included, end not',
            },
            "tz": {
                "type": "string",
                "pattern": ZONE_PATTERN,
                "default": "UTC",
                "description": "time zone of the sessions: UTC, MSK, +03:00",
            },
            "days": {
                "type": "array",
                "items": {"enum": list(DAYS)},
                "uniqueItems": True,
                "default": list(WEEKDAYS),
                "description": "days a session starts on (default mon-fri)",
            },
            "closed": {
                "type": "array",
                "items": {
                    "type": "string",
                    "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
                    "description": "a date YYYY-MM-DD",
                },
                "uniqueItems": True,
                "default": [],
                "description": "holidays: dates (in tz) on which no session starts",
            },
        },
    }

    def __init__(self, params: Any, instruments: Any) -> None:
        super().__init__(params, instruments)
        self.offset_ns = tz_offset_ns(parse_tz(params.get("tz", "UTC")))
        self.days = frozenset(DAYS.index(d) for d in params.get("days", WEEKDAYS))
        closed = []  # as days since the epoch, like the local day below
        for date in params.get("closed", ()):
            try:
                closed.append(epoch_day(date))
            except ValueError:
                raise ConfigError(f"closed: {date!r} is not a date") from None
        self.closed = frozenset(closed)
        self.sessions = []  # (start, end) in minutes of the day
        for text in params["sessions"]:
            h1, m1, h2, m2 = map(int, _SESSION.match(text).groups())
            if (h1, m1) == (h2, m2):  # "00:00-00:00" for all day: it refused every order
                raise ConfigError(
                    f"sessions: {text!r} ends where it starts, so it is never open (a session "
                    "past midnight ends before it starts; for no hours limit leave the check out)"
                )
            self.sessions.append((h1 * 60 + m1, h2 * 60 + m2))
        self.label = f"{', '.join(params['sessions'])} {params.get('tz', 'UTC')}"

    def open_at(self, ts: int) -> bool:
        """Whether event time ``ts`` (UTC ns) falls in a session."""
        local = ts + self.offset_ns
        day, into = divmod(local, DAY_NS)
        minute = into // _MINUTE_NS
        today = self._trading(day)
        for start, end in self.sessions:
            if start < end:
                if start <= minute < end and today:
                    return True
            elif start > end:  # past midnight: started today, or yesterday
                if minute >= start and today:
                    return True
                if minute < end and self._trading(day - 1):
                    return True
        return False

    def _trading(self, day: int) -> bool:
        """Whether sessions start on local ``day`` (days since the epoch)."""
        return (day + EPOCH_WEEKDAY) % 7 in self.days and day not in self.closed

    def check(self, order: NewOrder, view: RiskView) -> str | None:
        if self.open_at(view.time):
            return None
        return f"outside trading hours ({self.label})"
