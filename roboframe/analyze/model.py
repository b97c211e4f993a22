"""What the analyzer knows about one run, kept small enough for a report.

The database gets every event and state; a report needs only curves a
person can look at, so :class:`Curve` keeps at most ``limit`` points of any
length of run (it halves its resolution when full: memory stays flat).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CURVE_POINTS = 2000
"""Most points a report curve keeps per run (and per symbol)."""
TRADE_MARKS = 1000
"""Most trades a report keeps per run for entry/exit marks (the first ones)."""


class Curve:
    """``(ts, value)`` points, thinned to at most ``limit`` whatever the length.

    Every ``stride``-th point is kept; when the kept points reach ``limit``,
    every other one is dropped and the stride doubles. The last point added
    is always available as :attr:`last`, so a curve ends where the run ends.
    """

    __slots__ = ("_n", "last", "limit", "points", "stride")

    def __init__(self, limit: int = CURVE_POINTS) -> None:
        if limit < 2:
            raise ValueError("a curve needs at least 2 points")
        self.limit = limit
        self.points: list[tuple[int, float]] = []
        self.stride = 1
        self._n = 0
        self.last: tuple[int, float] | None = None

    def add(self, ts: int, value: float) -> None:
        self.last = (ts, value)
        if self._n % self.stride == 0:
            self.points.append((ts, value))
            if len(self.points) >= self.limit:
                self.points = self.points[::2]
                self.stride *= 2
        self._n += 1

    def finished(self) -> list[tuple[int, float]]:
        """The kept points, ending with the last point added."""
        if self.last is not None and (not self.points or self.points[-1] != self.last):
            return [*self.points, self.last]
        return list(self.points)


@dataclass
class RunReport:
    """One analysed run, as reports and ``--json`` see it.

    Times are nanoseconds since the Unix epoch (UTC), money in the robot's
    currency as floats, prices in price units (not ticks).
    """

    key: str  # the journal's identity (see roboframe.analyze.timeline.journal_key)
    robot: str
    run_id: str
    mode: str  # live, backtest, ...
    journal: str  # path of the journal file
    stats: dict[str, Any]  # the statistics table (docs/statistics.md), plugin figures added
    equity: list[tuple[int, float]] = field(default_factory=list)  # (ts, equity)
    drawdown: list[tuple[int, float]] = field(default_factory=list)  # (ts, percent, <= 0)
    positions: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # signed lots
    prices: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # last price
    trades: list[dict] = field(default_factory=list)  # first TRADE_MARKS round trips
    reconciliation: list[dict] | None = None  # differences against the order store, if asked
    complete: bool = True  # False: the journal ended in a torn tail (a robot still running)
    failure: str | None = None  # the strategy error the run stopped on, with its seq
