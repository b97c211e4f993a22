"""Codec candidates side by side: msgspec (msgpack), msgpack + objects, orjson + objects.

Each variant encodes a tick event to bytes and decodes it back into an
immutable event object, which is what the loop needs. Prints ops/s and the
ratio to the fastest. Usage: python bench/codec.py [-n 300000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from roboframe.core import codec
from roboframe.core.events import Tick


def msgspec_fields(tick: Tick) -> tuple:
    return (tick.symbol, tick.ts, tick.price, tick.qty, tick.bid, tick.ask)


def bench(fn, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=300_000)
    n = ap.parse_args().n
    tick = Tick("Si-12.26", 1_795_000_000_000_000_000, 92000, 3)
    fields = ["Si-12.26", tick.ts, tick.price, tick.qty, 0, 0]
    rows = {}
    data = codec.encode(tick)
    rows["msgspec msgpack"] = (
        len(data),
        bench(lambda: codec.encode(tick), n),
        bench(lambda: codec.decode(data), n),
    )
    try:
        import msgpack

        packed = msgpack.packb([101, *fields])
        rows["msgpack + Tick(...)"] = (
            len(packed),
            bench(
                lambda: msgpack.packb([101, tick.symbol, tick.ts, tick.price, tick.qty, 0, 0]), n
            ),
            bench(lambda: Tick(*msgpack.unpackb(packed)[1:]), n),
        )
    except ImportError:
        print("msgpack not installed: skipped")
    try:
        import orjson

        dumped = orjson.dumps([101, *fields])
        rows["orjson + Tick(...)"] = (
            len(dumped),
            bench(lambda: orjson.dumps([101, *msgspec_fields(tick)]), n),
            bench(lambda: Tick(*orjson.loads(dumped)[1:]), n),
        )
    except ImportError:
        print("orjson not installed: skipped")
    best_dec = max(r[2] for r in rows.values())
    print(f"{'codec':<24}{'bytes':>7}{'encode/s':>14}{'decode/s':>14}{'decode vs best':>16}")
    for name, (size, enc, dec) in rows.items():
        print(f"{name:<24}{size:>7}{enc:>14,.0f}{dec:>14,.0f}{dec / best_dec:>16.2f}")


if __name__ == "__main__":
    main()
