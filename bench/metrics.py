"""What serving Prometheus metrics costs the live loop, measured side by side in one run.

The same pre-encoded tick messages go through the real loop (decode, journal,
kernel; see ``live_loop.py``) three ways, interleaved:

- metrics off: the loop as ``LiveRobot`` runs it, status snapshot every second
- metrics on, scraped every 100 ms by another process (a busy Prometheus
  scrapes every 15 s, so this is 150 times harsher)
- metrics on, scraped as fast as one client can (stress)

The scraper is a separate process, as Prometheus is; what the loop pays for is
the in-process HTTP server thread building the text format under the GIL.

Usage: python bench/metrics.py [-n 1000000] [--batch 1] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import zmq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from live_loop import NullGateway, Trivial, messages, timed

from roboframe.core import codec
from roboframe.core.events import Control
from roboframe.core.kernel import Kernel
from roboframe.core.loop import RoboLoop
from roboframe.journal import JournalWriter
from roboframe.metrics import RobotCollector, serve
from roboframe.testing.helpers import T0, make_spec

SCRAPER = """
import select, sys, urllib.request
url, interval = sys.argv[1], float(sys.argv[2])
count = 0
while True:
    with urllib.request.urlopen(url, timeout=10) as resp:
        resp.read()
    count += 1
    if count == 1:
        print("ready", flush=True)
    if select.select([sys.stdin], [], [], interval)[0]:  # stdin closed: stop
        break
print(count)
"""


class Scraper:
    """A separate process GETting ``url`` every ``interval`` s (0: back to back)."""

    def __init__(self, url: str, interval: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SCRAPER, url, str(interval)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout.readline() == "ready\n"  # started and scraped once

    def stop(self) -> int:
        out, _ = self.proc.communicate(timeout=30)  # closes stdin
        if self.proc.returncode:
            raise RuntimeError("the scraper failed")
        return int(out) - 1  # the scrape before the run


class Watched:
    """What the metrics server reads: the running loop's status and latencies."""

    def __init__(self) -> None:
        self.status: dict = {}
        self.latency_ns: Iterable[int] = ()


def loop_consumer(tmp: Path, watched: Watched):
    spec = make_spec(strategy={"plugin": "sma-crossover", "params": {"fast": 2, "slow": 3}})

    def consume(pull):
        kernel = Kernel(spec, "bench", Trivial({}))
        path = tmp / f"run-{time.perf_counter_ns()}.journal"
        with JournalWriter(path, {"robot": "bench"}, fsync="never") as journal:
            loop = RoboLoop(kernel, journal, NullGateway())
            watched.latency_ns = loop.latency_ns
            started = time.monotonic()

            def tick() -> None:  # what LiveRobot._tick does, metrics on or off
                snap = kernel.snapshot()
                snap["seq"] = loop.seq
                snap["messages"] = loop.messages
                snap["malformed"] = dict(loop.malformed)
                snap["uptime_s"] = round(time.monotonic() - started, 3)
                watched.status = snap

            loop.start()
            tick()
            loop.run(pull, drain_ms=0, on_tick=tick, tick_s=1.0)

    return consume


def measure(ctx, address: str, msgs, stop: bytes, tmp: Path, interval: float | None):
    """Events/s of one run, and scrapes/s during it (None with metrics off)."""
    watched = Watched()
    consume = loop_consumer(tmp, watched)
    if interval is None:
        return timed(ctx, address, msgs, consume, stop), None
    collector = RobotCollector("bench", lambda: watched.status, lambda: watched.latency_ns)
    server = serve(collector, 0)
    try:  # server and scraper are up before the clock starts
        scraper = Scraper(f"http://127.0.0.1:{server.port}/metrics", interval)
        elapsed = timed(ctx, address, msgs, consume, stop)
        return elapsed, scraper.stop() / elapsed
    finally:
        server.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=1, help="events per message (1: none)")
    ap.add_argument("--address", default="inproc://bench-metrics")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    n = args.n
    ctx = zmq.Context()
    msgs = messages(n, args.batch)
    stop = codec.encode(Control("stop", T0 + n * 1000, {"reason": "bench"}))
    variants = {"off": None, "on, scraped every 100 ms": 0.1, "on, scraped back to back": 0.0}
    rates: dict[str, list[float]] = {k: [] for k in variants}
    scrapes: dict[str, list[float]] = {k: [] for k in variants}
    with tempfile.TemporaryDirectory() as tmpdir:
        for _ in range(args.repeat):  # interleaved, so drift hits every variant alike
            for label, interval in variants.items():
                elapsed, rate = measure(ctx, args.address, msgs, stop, Path(tmpdir), interval)
                rates[label].append(n / elapsed)
                if rate is not None:
                    scrapes[label].append(rate)
    ctx.term()
    med = {k: statistics.median(v) for k, v in rates.items()}
    per_msg = "one event per message" if args.batch <= 1 else f"batches of {args.batch}"
    print(
        f"live loop with and without metrics, {n:,} tick events ({per_msg}) "
        f"over {args.address}, median of {args.repeat} interleaved runs"
    )
    print(f"{'metrics':<30}{'events/s':>12}{'vs off':>9}{'scrapes/s':>11}")
    for label in variants:
        rate = f"{statistics.median(scrapes[label]):,.0f}" if scrapes[label] else "-"
        print(f"{label:<30}{med[label]:>12,.0f}{med[label] / med['off']:>9.3f}{rate:>11}")


if __name__ == "__main__":
    main()
