"""A seeded synthetic market: a random walk per symbol. Not real prices.

Params (all validated by :attr:`SyntheticFeed.params_schema`):

``seed``
    required; the same seed gives the same market.
``prices``
    start price per symbol in price units (``{Si-12.26: 92000}``); every key
    must be one of the robot's symbols.
``kind``
    ``bar`` (default) or ``tick``.
``bars``
    events per symbol; 0 or absent for an endless feed.
``interval``
    time between two events of one symbol (``500ms``, ``5s``, ``1m``, ``1h``).
``start``
    ISO-8601 UTC time the first bar opens; its ``ts`` (the close) is one
    interval later.
``volatility``
    relative standard deviation of one step; ``volume`` the mean volume.

Determinism: each symbol's generator is ``random.Random`` seeded from a
SHA-256 of ``"<seed>:<symbol>"`` (never Python's ``hash()``), and symbols are
merged in time order with ties broken by symbol name, so the same params give
byte-identical events in every process and under every ``PYTHONHASHSEED``.
Prices are integer ticks, never below one tick; a bar opens at the previous
close and ``low <= open, close <= high`` always holds.
"""

from __future__ import annotations

import hashlib
import heapq
import random
from collections.abc import Iterator
from typing import Any

from roboframe.builtin.feeds.timeparse import interval_ns, iso_to_ns
from roboframe.core.events import Bar, Tick
from roboframe.core.feed import PACING_SCHEMA, Feed
from roboframe.core.instruments import Instrument
from roboframe.errors import ConfigError

DEFAULT_START = "2026-01-05T07:00:00Z"
DEFAULT_VOLATILITY = 0.001
DEFAULT_VOLUME = 100


def symbol_rng(seed: int, symbol: str) -> random.Random:
    """The generator of one symbol, independent of the other symbols and of the process."""
    digest = hashlib.sha256(f"{seed}:{symbol}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


class SyntheticFeed(Feed):
    """Random-walk bars (or ticks) for every symbol in ``prices``."""

    params_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["seed", "prices"],
        "properties": {
            "seed": {"type": "integer", "description": "random seed; same seed, same market"},
            "prices": {
                "type": "object",
                "minProperties": 1,
                "additionalProperties": {"type": "number", "exclusiveMinimum": 0},
                "description": "start price per robot symbol, in price units",
            },
            "bars": {
                "type": "integer",
                "minimum": 0,
                "default": 0,
                "description": "events per symbol; 0 (the default) for an endless feed",
            },
            "kind": {
                "enum": ["bar", "tick"],
                "default": "bar",
                "description": "generate bars or trade ticks",
            },
            "interval": {
                "type": "string",
                "pattern": "^[0-9]+(ms|s|m|h|d)$",
                "default": "1m",
                "description": "time between events of one symbol (500ms, 5s, 1m, 1h, 1d)",
            },
            "start": {
                "type": "string",
                "default": DEFAULT_START,
                "description": "when the first bar opens, ISO-8601 UTC",
            },
            "volatility": {
                "type": "number",
                "exclusiveMinimum": 0,
                "default": DEFAULT_VOLATILITY,
                "description": "relative standard deviation of one step",
            },
            "volume": {
                "type": "integer",
                "minimum": 0,
                "default": DEFAULT_VOLUME,
                "description": "mean volume per event (0: no volume data)",
            },
            **PACING_SCHEMA,
        },
    }

    def events(self) -> Iterator[Bar | Tick]:
        """Every symbol's walk, merged by time; ties go to the smaller symbol name."""
        settings = self._settings()
        streams = [
            self._walk(self.instruments[symbol], ticks, **settings)
            for symbol, ticks in self._start_ticks().items()
        ]
        if len(streams) == 1:
            for _, _, event in streams[0]:
                yield event
            return
        # each stream yields (ts, symbol, event); (ts, symbol) is unique, events never compared
        for _, _, event in heapq.merge(*streams):
            yield event

    @property
    def endless(self) -> bool:
        return not self.params.get("bars")

    def _settings(self) -> dict[str, Any]:
        p = self.params
        if not isinstance(p.get("seed"), int):
            raise ConfigError("synthetic feed: params.seed (an integer) is required")
        try:
            step = interval_ns(p.get("interval", "1m"))
            start = iso_to_ns(p.get("start", DEFAULT_START))
        except ValueError as exc:
            raise ConfigError(f"synthetic feed: {exc}") from None
        if step <= 0:
            raise ConfigError("synthetic feed: interval must be longer than 0")
        return {
            "seed": p["seed"],
            "start": start,
            "step": step,
            "count": int(p.get("bars", 0) or 0),
            "ticks": p.get("kind", "bar") == "tick",
            "vol": float(p.get("volatility", DEFAULT_VOLATILITY)),
            "mean_volume": int(p.get("volume", DEFAULT_VOLUME)),
        }

    def _start_ticks(self) -> dict[str, int]:
        """Start price of each symbol in ticks, in symbol-name order."""
        prices = self.params.get("prices") or {}
        if not isinstance(prices, dict) or not prices:
            raise ConfigError("synthetic feed: params.prices needs a start price per symbol")
        out = {}
        for symbol in sorted(prices):
            inst = self.instruments.get(symbol)
            if inst is None:
                known = ", ".join(sorted(self.instruments)) or "none"
                raise ConfigError(
                    f"synthetic feed: price for {symbol!r}, which is not one of the robot's "
                    f"symbols ({known})"
                )
            try:
                out[symbol] = max(1, inst.to_ticks(prices[symbol]))
            except ValueError as exc:
                raise ConfigError(f"synthetic feed: {exc}") from None
        return out

    @staticmethod
    def _walk(
        inst: Instrument,
        first: int,
        *,
        seed: int,
        start: int,
        step: int,
        count: int,
        ticks: bool,
        vol: float,
        mean_volume: int,
    ) -> Iterator[tuple[int, str, Bar | Tick]]:
        """One symbol's events as ``(ts, symbol, event)``; endless when ``count`` is 0."""
        symbol = inst.symbol
        rng = symbol_rng(seed, symbol)
        gauss, expovariate = rng.gauss, rng.expovariate
        level = float(first)  # the walk, in ticks
        last = first
        n = 0
        while count == 0 or n < count:
            n += 1
            ts = start + n * step
            level = max(level * (1.0 + gauss(0.0, vol)), 1.0)
            close = max(1, round(level))
            volume = max(1, round(expovariate(1.0 / mean_volume))) if mean_volume else 0
            if ticks:
                yield ts, symbol, Tick(symbol, ts, close, volume)
            else:
                half_range = round(abs(gauss(0.0, vol)) * level / 2)
                high = max(last, close) + half_range
                low = max(1, min(last, close) - half_range)
                yield ts, symbol, Bar(symbol, ts, last, high, low, close, volume)
            last = close
