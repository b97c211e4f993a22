"""Backtest speed and memory: roboframe next to a plain Python loop and peers.

The same SMA(10/30) crossover (long above, short below, one lot, market
orders filled at the next bar's open, no fees) runs over the same seeded
random-walk bars in:

- a plain Python loop over pre-decoded bars (the ceiling), and the same loop
  writing every bar to a journal-like file (batched, as roboframe does);
- roboframe's backtest (the robot's own kernel, risk, order state machine and
  paper exchange), journal on -- over pre-decoded bars, and end to end from
  the CSV file;
- backtesting.py and backtrader, when installed (pip install -e '.[bench]').

Each variant runs in its own process, so peak memory (max RSS) is its own.
Prints bars/s, peak memory, trade counts, and the ratios roboframe/peer and
roboframe/plain loop. The averages are compared exactly (integer sums) by
roboframe and in floating point by the peers, so on a long random walk ties
between the averages can split the trade lists; the count of such ties is
printed next to any difference in trade counts.

Usage: python bench/backtest.py [-n 1000000] [--peer-bars N] [--skip-backtrader]
No real market data ships with roboframe, so only the random walk is used.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from array import array
from collections import deque
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FAST, SLOW = 10, 30
T0 = 1_577_836_800  # 2020-01-01T00:00:00Z


def make_data(path: Path, n: int, seed: int = 7) -> None:
    """A seeded random walk of ``n`` one-minute bars, integer prices (tick 1)."""
    import random

    rng = random.Random(seed)
    price = 100_000.0
    with open(path, "w") as f:
        f.write("Date,Open,High,Low,Close,Volume\n")
        last = round(price)
        for i in range(n):
            price = max(price * (1 + rng.gauss(0, 0.001)), 10.0)
            close = round(price)
            hi = max(last, close) + rng.randint(0, 20)
            lo = min(last, close) - rng.randint(0, 20)
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(T0 + 60 * (i + 1)))
            f.write(f"{stamp},{last},{hi},{lo},{close},{rng.randint(1, 500)}\n")
            last = close


def load_columns(path: Path):
    """Bars as compact integer arrays (not a million objects)."""
    o, h, lo, c = array("q"), array("q"), array("q"), array("q")
    with open(path) as f:
        next(f)
        for line in f:
            parts = line.split(",")
            o.append(int(parts[1]))
            h.append(int(parts[2]))
            lo.append(int(parts[3]))
            c.append(int(parts[4]))
    return o, h, lo, c


# -- variants (each runs in a child process) ---------------------------------


def bars_from_columns(path: Path):
    """A generator of Bar objects from the columns: the pre-decoded input every
    in-process variant iterates, one bar object alive at a time."""
    from roboframe.core.events import Bar

    o, h, lo, c = load_columns(path)
    ts0 = (T0 + 60) * 10**9
    return len(c), (
        Bar("SI", ts0 + i * 60 * 10**9, o[i], h[i], lo[i], c[i], 0) for i in range(len(c))
    )


def plain_loop(path: Path, journal: bool) -> dict:
    """SMA crossover in a bare loop over the same bars: no orders, no risk, fills
    simulated inline at the next open. With ``journal``, the bars go to a file
    the cheapest way a journal can take them, the way roboframe's backtest
    does: 512 bars encoded at a time as one batch (in C), framed with length
    and CRC-32."""
    import struct
    import zlib

    from roboframe.core import codec
    from roboframe.core.events import Batch

    n_bars, bars = bars_from_columns(path)
    start = time.perf_counter()
    window: deque[int] = deque()
    fast_sum = slow_sum = 0
    pos = signal = 0
    pending = 0
    trades = 0
    out = tempfile.TemporaryFile() if journal else None  # noqa: SIM115
    head = struct.Struct("<II").pack
    encode = codec.encode
    buf = bytearray()
    batch: list = []

    def frame() -> None:
        body = encode(Batch(batch))
        buf.extend(head(len(body), zlib.crc32(body)))
        buf.extend(body)
        batch.clear()
        if len(buf) > 65536:
            out.write(buf)
            buf.clear()

    for bar in bars:
        if pending:  # fill at this bar's open
            if pos and (pos > 0) != (pending > 0):
                trades += 1
            pos += pending
            pending = 0
        close = bar.close
        if journal:
            batch.append(bar)
            if len(batch) == 512:
                frame()
        window.append(close)
        fast_sum += close
        slow_sum += close
        n = len(window)
        if n > FAST:
            fast_sum -= window[n - 1 - FAST]
        if n > SLOW:
            slow_sum -= window.popleft()
            n -= 1
        if n < SLOW:
            continue
        diff = fast_sum * SLOW - slow_sum * FAST
        new = 1 if diff > 0 else (-1 if diff < 0 else 0)
        if new and new != signal:
            signal = new
            pending = new - pos
    if out:
        if batch:
            frame()
        out.write(buf)
        out.close()
    elapsed = time.perf_counter() - start
    return {"bars": n_bars, "seconds": elapsed, "trades": trades + (1 if pos else 0)}


def roboframe_variant(path: Path, from_file: bool) -> dict:
    from decimal import Decimal

    from roboframe.backtest.data import file_events
    from roboframe.backtest.engine import Backtest
    from roboframe.config import spec_from_dict

    tmp = Path(tempfile.mkdtemp())
    spec = spec_from_dict(
        {
            "name": "bench-sma",
            "symbols": {"SI": {"tick_size": 1}},
            "feed": {"plugin": "csv", "params": {"path": str(path), "symbol": "SI"}},
            "strategy": {"plugin": "sma-crossover", "params": {"fast": FAST, "slow": SLOW}},
            "gateway": {"plugin": "paper"},
            "journal": {"dir": str(tmp), "fsync": "never"},
        }
    )
    if from_file:
        events = file_events([f"SI={path}"], dict(spec.symbols))
        start = time.perf_counter()
    else:
        _, events = bars_from_columns(path)
        start = time.perf_counter()
    result = Backtest(spec, events, cash=Decimal(10**7), journal_dir=tmp).run()
    elapsed = time.perf_counter() - start
    size = Path(result.journal).stat().st_size
    return {
        "bars": result.stats["events"],
        "seconds": elapsed,
        "trades": result.stats["trades"],
        "journal_mb": round(size / 1e6, 1),
    }


def backtesting_variant(path: Path, bars: int) -> dict:
    import pandas as pd
    from backtesting import Backtest as BT
    from backtesting import Strategy
    from backtesting.lib import crossover

    df = pd.read_csv(path, nrows=bars, parse_dates=["Date"], index_col="Date")

    def sma(values, n):
        return pd.Series(values).rolling(n).mean()

    class SmaCross(Strategy):
        def init(self):
            self.fast = self.I(sma, self.data.Close, FAST)
            self.slow = self.I(sma, self.data.Close, SLOW)

        def next(self):
            if crossover(self.fast, self.slow):
                self.position.close()
                self.buy(size=1)
            elif crossover(self.slow, self.fast):
                self.position.close()
                self.sell(size=1)

    start = time.perf_counter()
    stats = BT(df, SmaCross, cash=10**9, commission=0, finalize_trades=True).run()
    return {
        "bars": len(df),
        "seconds": time.perf_counter() - start,
        "trades": int(stats["# Trades"]),
    }


def backtrader_variant(path: Path, bars: int) -> dict:
    import backtrader as bt
    import pandas as pd

    df = pd.read_csv(path, nrows=bars, parse_dates=["Date"], index_col="Date")

    class SmaCross(bt.Strategy):
        def __init__(self):
            self.cross = bt.ind.CrossOver(bt.ind.SMA(period=FAST), bt.ind.SMA(period=SLOW))

        def next(self):
            if self.cross > 0:
                self.order_target_size(target=1)
            elif self.cross < 0:
                self.order_target_size(target=-1)

    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(bt.feeds.PandasData(dataname=df))
    cerebro.addstrategy(SmaCross)
    cerebro.broker.setcash(10**9)
    cerebro.addanalyzer(bt.analyzers.TradeAnalyzer, _name="ta")
    start = time.perf_counter()
    (strategy,) = cerebro.run()
    elapsed = time.perf_counter() - start
    ta = strategy.analyzers.ta.get_analysis()
    total = ta.get("total", {})
    return {"bars": len(df), "seconds": elapsed, "trades": int(total.get("total", 0))}


def count_ties(path: Path, bars: int) -> tuple[int, int | None]:
    """Bars where the exact averages are equal, and bars where pandas' float rolling
    means (what backtesting.py and backtrader compare) disagree with the exact sign."""
    _o, _h, _lo, c = load_columns(path)
    n = min(bars, len(c))
    exact = [0] * n
    ties = 0
    fast_sum = sum(c[SLOW - FAST - 1 : SLOW - 1])  # windows ending at bar SLOW - 2
    slow_sum = sum(c[: SLOW - 1])
    for i in range(SLOW - 1, n):
        fast_sum += c[i] - c[i - FAST]
        slow_sum += c[i] - (c[i - SLOW] if i >= SLOW else 0)
        diff = fast_sum * SLOW - slow_sum * FAST
        exact[i] = (diff > 0) - (diff < 0)
        ties += diff == 0
    try:
        import pandas as pd
    except ImportError:
        return ties, None
    closes = pd.Series(list(c[:n]), dtype=float)
    fast = closes.rolling(FAST).mean()
    slow = closes.rolling(SLOW).mean()
    flips = 0
    for i in range(SLOW - 1, n):
        d = float(fast.iat[i] - slow.iat[i])
        flips += ((d > 0) - (d < 0)) != exact[i]
    return ties, flips


VARIANTS = {
    "plain": lambda p, n: plain_loop(p, journal=False),
    "plain+journal": lambda p, n: plain_loop(p, journal=True),
    "roboframe": lambda p, n: roboframe_variant(p, from_file=False),
    "roboframe-csv": lambda p, n: roboframe_variant(p, from_file=True),
    "backtesting.py": backtesting_variant,
    "backtrader": backtrader_variant,
}


def child(variant: str, path: str, bars: int, repeat: int) -> None:
    runs = [VARIANTS[variant](Path(path), bars) for _ in range(repeat)]
    runs.sort(key=lambda r: r["seconds"])
    result = runs[len(runs) // 2]  # the median run
    result["max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(result))


def run_child(variant: str, path: Path, bars: int, repeat: int) -> dict | None:
    proc = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            variant,
            "--data",
            str(path),
            "-n",
            str(bars),
            "--repeat",
            str(repeat),
        ],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["failed"])[-1]
        print(f"  {variant}: skipped ({last})")
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=1_000_000, help="bars in the random walk")
    ap.add_argument("--peer-bars", type=int, help="bars for the peers (default: all)")
    ap.add_argument("--skip-backtrader", action="store_true", help="it takes minutes")
    ap.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs of each fast variant; the median counts (peers run once)",
    )
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.data, args.n, args.repeat)
        return
    tmp = Path(tempfile.mkdtemp())
    path = tmp / "walk.csv"
    print(f"generating {args.n:,} seeded random-walk bars ...")
    make_data(path, args.n)
    peer_bars = args.peer_bars or args.n
    runs: dict[str, list[dict]] = {}
    for round_no in range(args.repeat):  # interleaved rounds: drift hits every variant alike
        for variant in VARIANTS:
            peer = variant in ("backtesting.py", "backtrader")
            if (variant == "backtrader" and args.skip_backtrader) or (peer and round_no):
                continue
            bars = peer_bars if peer else args.n
            print(f"round {round_no + 1}: {variant} on {bars:,} bars ...")
            result = run_child(variant, path, bars, 1)
            if result:
                result["rate"] = result["bars"] / result["seconds"]
                runs.setdefault(variant, []).append(result)
    rows = {}
    for variant, results in runs.items():
        results.sort(key=lambda r: r["rate"])
        rows[variant] = results[len(results) // 2]
    print()
    print(
        f"SMA({FAST}/{SLOW}) crossover, {args.n:,}-bar random walk, one process per variant, "
        f"median of {args.repeat} runs (peers: one run)"
    )
    print(
        f"{'variant':<16}{'bars':>11}{'bars/s':>12}{'peak MB':>10}{'trades':>9}{'roboframe x':>13}"
    )
    ours = rows.get("roboframe", {}).get("rate")
    for name, r in rows.items():
        times = f"{ours / r['rate']:.2f}" if ours else "-"
        print(
            f"{name:<16}{r['bars']:>11,}{r['rate']:>12,.0f}{r['max_rss_mb']:>10}"
            f"{r['trades']:>9,}{times:>13}"
        )
    if "roboframe" in rows and "plain" in rows:
        print(
            f"\nroboframe / plain loop: {rows['roboframe']['rate'] / rows['plain']['rate']:.2f}"
            f"   roboframe / plain loop with journal: "
            f"{rows['roboframe']['rate'] / rows['plain+journal']['rate']:.2f}"
        )
    ties, flips = count_ties(path, peer_bars)
    for peer in ("backtesting.py", "backtrader"):
        if peer in rows and rows[peer]["bars"] == args.n and "roboframe" in rows:
            diff = rows[peer]["trades"] - rows["roboframe"]["trades"]
            print(f"trades {peer} - roboframe: {diff:+d}")
    print(
        f"on this walk: {ties} bars where the exact averages tie and "
        f"{flips if flips is not None else '?'} where float rolling means disagree in sign. "
        "roboframe holds its side through a tie and reverses after it; backtesting.py's "
        "crossover() needs strictly below then above, so it misses a crossing that passes "
        "through a tie, and it needs a crossing for its first entry; backtrader's CrossOver "
        "remembers the last non-zero difference, as roboframe does"
    )


if __name__ == "__main__":
    main()
