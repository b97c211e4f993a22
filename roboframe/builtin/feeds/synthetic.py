"""A seeded synthetic market: a random walk per symbol. Not real prices.

The same params give the same events in every process and under every
``PYTHONHASHSEED``: each symbol's generator is seeded from a SHA-256 of
``"<seed>:<symbol>"``, and symbols are merged in time order with ties broken
by symbol name.
"""

from __future__ import annotations

import hashlib
import heapq
import random
from collections.abc import Iterator

from roboframe.builtin.feeds.timeparse import interval_ns, iso_to_ns
from roboframe.core.events import Bar, Tick
from roboframe.core.feed import PACING_SCHEMA, Feed

DEFAULT_START = "2026-01-05T07:00:00Z"


def symbol_rng(seed: int, symbol: str) -> random.Random:
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
                "description": "start price per symbol, in price units",
            },
            "bars": {
                "type": "integer",
                "minimum": 0,
                "default": 1000,
                "description": "events per symbol; 0 for an endless feed",
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
                "description": "time between events of one symbol (1m, 5s, 1h ...)",
            },
            "start": {
                "type": "string",
                "default": DEFAULT_START,
                "description": "time of the first event, ISO-8601 UTC",
            },
            "volatility": {
                "type": "number",
                "exclusiveMinimum": 0,
                "default": 0.001,
                "description": "relative standard deviation of one step",
            },
            "volume": {
                "type": "integer",
                "minimum": 0,
                "default": 100,
                "description": "mean volume per event (0: no volume data)",
            },
            **PACING_SCHEMA,
        },
    }

    def events(self) -> Iterator[Bar | Tick]:
        p = self.params
        step = interval_ns(p.get("interval", "1m"))
        start = iso_to_ns(p.get("start", DEFAULT_START))
        count = int(p.get("bars", 1000))
        kind = p.get("kind", "bar")
        streams = [
            self._walk(symbol, float(p["prices"][symbol]), start, step, count, kind)
            for symbol in sorted(p["prices"])
        ]
        # each stream yields (ts, symbol, event): merge by time, ties by symbol name
        for _, _, event in heapq.merge(*streams):
            yield event

    def _walk(self, symbol: str, price: float, start: int, step: int, count: int, kind: str):
        inst = self.instruments[symbol]
        tick = float(inst.tick_size)
        rng = symbol_rng(int(self.params["seed"]), symbol)
        gauss = rng.gauss
        vol = float(self.params.get("volatility", 0.001))
        mean_volume = int(self.params.get("volume", 100))
        level = price / tick  # in ticks, as a float walk
        last = max(1, round(level))
        n = 0
        while count == 0 or n < count:
            n += 1
            ts = start + n * step
            level = max(level * (1.0 + gauss(0.0, vol)), 1.0)
            close = max(1, round(level))
            volume = int(rng.expovariate(1.0 / mean_volume)) + 1 if mean_volume else 0
            if kind == "tick":
                yield ts, symbol, Tick(symbol, ts, close, volume)
            else:
                spread = abs(gauss(0.0, vol)) * level
                high = max(last, close) + round(spread / 2)
                low = max(1, min(last, close) - round(spread / 2))
                yield ts, symbol, Bar(symbol, ts, last, high, low, close, volume)
            last = close
