"""Live-loop throughput next to raw pyzmq, measured side by side in one run.

A producer thread PUSHes N pre-encoded tick messages to a PULL socket; we
time how fast the receiving thread gets through them:

- raw pyzmq, bytes only            (the ceiling for this socket type)
- raw pyzmq + msgspec decode
- roboframe's loop: decode, sequence, journal (real file), kernel with a
  trivial strategy, one message per event
- roboframe's loop with the feeder batching events (up to 256 per message),
  as the built-in file and synthetic feeds do when unpaced; the journal still
  records every event

Usage: python bench/live_loop.py [-n 300000] [--address inproc://bench] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import zmq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from roboframe.config.spec import DEFAULT_MAX_AHEAD_MS
from roboframe.core import codec
from roboframe.core.events import Control, Tick
from roboframe.core.kernel import Kernel
from roboframe.core.loop import RoboLoop
from roboframe.core.strategy import Strategy
from roboframe.journal import JournalWriter
from roboframe.testing.helpers import T0, make_spec

SYMBOL = "Si-12.26"


class Trivial(Strategy):
    def on_tick(self, tick, ctx):
        return None


class NullGateway:
    def submit(self, actions):
        pass


def messages(n: int, batch: int) -> list[bytes]:
    ticks = [codec.encode(Tick(SYMBOL, T0 + i * 1000, 92000 + i % 50, 1)) for i in range(n)]
    if batch <= 1:
        return ticks
    return [codec.encode_batch(ticks[i : i + batch]) for i in range(0, n, batch)]


def produce(ctx: zmq.Context, address: str, msgs: list[bytes], tail: bytes | None) -> None:
    push = ctx.socket(zmq.PUSH)
    push.connect(address)
    send = push.send
    for m in msgs:
        send(m)
    if tail is not None:
        send(tail)
    push.close(linger=-1)


_runs = iter(range(1, 10**9))


def timed(ctx, address, msgs, consume, tail=None) -> float:
    pull = ctx.socket(zmq.PULL)
    if address.startswith("tcp://"):
        port = pull.bind_to_random_port(address.rsplit(":", 1)[0])
        address = f"{address.rsplit(':', 1)[0]}:{port}"
    else:
        address = f"{address}-{next(_runs)}"  # a fresh endpoint per run
        pull.bind(address)
    t = threading.Thread(target=produce, args=(ctx, address, msgs, tail))
    start = time.perf_counter()
    t.start()
    consume(pull)
    elapsed = time.perf_counter() - start
    t.join()
    pull.close(linger=0)
    if address.startswith("ipc://"):
        Path(address[6:]).unlink(missing_ok=True)
    return elapsed


def raw_consumer(n: int, decode: bool):
    def consume(pull):
        recv = pull.recv
        dec = codec.decode
        if decode:
            for _ in range(n):
                dec(recv())
        else:
            for _ in range(n):
                recv()

    return consume


def loop_consumer(tmp: Path, tag: str):
    spec = make_spec(strategy={"plugin": "sma-crossover", "params": {"fast": 2, "slow": 3}})

    def consume(pull):
        kernel = Kernel(spec, "bench", Trivial({}))
        with JournalWriter(
            tmp / f"{tag}-{time.perf_counter_ns()}.journal", {"robot": "bench"}, fsync="never"
        ) as journal:
            # as a live robot runs it: market data checked against the clock (max_ahead)
            loop = RoboLoop(
                kernel, journal, NullGateway(), max_ahead_ns=DEFAULT_MAX_AHEAD_MS * 10**6
            )
            loop.start()
            loop.run(pull, drain_ms=0, tick_s=3600)
        consume.events = loop.seq

    return consume


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=300_000)
    ap.add_argument("--address", default="inproc://bench")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    n = args.n
    ctx = zmq.Context()
    single = messages(n, 1)
    batched = messages(n, args.batch)
    stop = codec.encode(Control("stop", T0 + n * 1000, {"reason": "bench"}))
    results: dict[str, list[float]] = {k: [] for k in ("raw", "raw+decode", "loop", "loop-batched")}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for _ in range(args.repeat):  # interleaved, so drift hits every variant alike
            results["raw"].append(n / timed(ctx, args.address, single, raw_consumer(n, False)))
            results["raw+decode"].append(
                n / timed(ctx, args.address, single, raw_consumer(n, True))
            )
            results["loop"].append(
                n / timed(ctx, args.address, single, loop_consumer(tmp, "single"), stop)
            )
            results["loop-batched"].append(
                n / timed(ctx, args.address, batched, loop_consumer(tmp, "batched"), stop)
            )
    ctx.term()
    med = {k: statistics.median(v) for k, v in results.items()}
    print(
        f"live loop, {n:,} tick messages over {args.address} PUSH/PULL, "
        f"median of {args.repeat} interleaved runs"
    )
    print(f"{'variant':<34}{'events/s':>12}{'vs raw bytes':>14}")
    labels = {
        "raw": "raw pyzmq recv (bytes)",
        "raw+decode": "raw pyzmq recv + decode",
        "loop": "roboframe loop (journal on)",
        "loop-batched": f"roboframe loop, batches of {args.batch}",
    }
    for key, label in labels.items():
        print(f"{label:<34}{med[key]:>12,.0f}{med[key] / med['raw']:>14.2f}")


if __name__ == "__main__":
    main()
