"""Analyzer speed and memory: analysing a journal next to the backtest that wrote it.

The SMA(10/30) crossover of ``bench/backtest.py`` is backtested over a seeded
random walk of ``-n`` bars (journal on), then ``roboframe analyze`` replays
that journal into a fresh SQLite database. Each step runs in its own process
(peak memory is its own); a third process only replays and verifies the
journal (``replay --verify``: the kernel's share of the analysis).

Prints seconds, events/s and peak memory of each, rows written, and the
ratio analysis/backtest (the target: at most 3).

Usage: python bench/analyze.py [-n 1000000] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from backtest import FAST, SLOW, make_data  # noqa: E402


def spec_for(data: Path, journal_dir: Path):
    from roboframe.config import spec_from_dict

    return spec_from_dict(
        {
            "name": "bench-sma",
            "symbols": {"SI": {"tick_size": 1}},
            "feed": {"plugin": "csv", "params": {"path": str(data), "symbol": "SI"}},
            "strategy": {"plugin": "sma-crossover", "params": {"fast": FAST, "slow": SLOW}},
            "gateway": {"plugin": "paper"},
            "journal": {"dir": str(journal_dir), "fsync": "never"},
        }
    )


def do_backtest(data: Path, work: Path) -> dict:
    from decimal import Decimal

    from roboframe.backtest.data import file_events
    from roboframe.backtest.engine import Backtest

    spec = spec_for(data, work)
    for old in work.glob("*.journal"):
        old.unlink()
    events = file_events([f"SI={data}"], dict(spec.symbols))
    start = time.perf_counter()
    result = Backtest(spec, events, cash=Decimal(10**7), journal_dir=work).run()
    return {
        "seconds": time.perf_counter() - start,
        "events": result.kernel.counters["fills"] + result.stats["events"],
        "trades": result.stats["trades"],
        "journal": result.journal,
    }


def do_analyze(work: Path) -> dict:
    import sqlite3

    from roboframe.analyze import analyze

    journal = next(work.glob("*.journal"))
    db = work / "analysis.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    start = time.perf_counter()
    result = analyze([journal], db=str(db))
    seconds = time.perf_counter() - start
    if result.problems:
        raise SystemExit(result.problems[0])
    conn = sqlite3.connect(db)
    rows = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("events", "states", "positions", "fills", "trades")}  # fmt: skip
    return {
        "seconds": seconds,
        "events": rows["events"],
        "trades": result.runs[0].stats["trades"],
        "rows": rows,
        "db_mb": round(db.stat().st_size / 1e6, 1),
    }


def do_verify(work: Path) -> dict:
    from roboframe.replay import verify

    journal = next(work.glob("*.journal"))
    start = time.perf_counter()
    result = verify(journal)
    return {"seconds": time.perf_counter() - start, "events": result.events, "ok": result.ok}


STEPS = {"backtest": do_backtest, "analyze": do_analyze, "verify": do_verify}


def child(step: str, data: str, work: str) -> None:
    out = STEPS[step](Path(data), Path(work)) if step == "backtest" else STEPS[step](Path(work))
    out["max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(out))


def run_child(step: str, data: Path, work: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", step, "--data", str(data), "--work", str(work)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{step} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=1_000_000, help="bars in the random walk")
    ap.add_argument("--repeat", type=int, default=1, help="rounds; each prints its ratio")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.data, args.work)
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = work / "walk.csv"
        print(f"generating {args.n:,} bars ...", flush=True)
        make_data(data, args.n)
        for round_no in range(1, args.repeat + 1):
            bt = run_child("backtest", data, work)
            an = run_child("analyze", data, work)
            vf = run_child("verify", data, work)
            print(f"\nround {round_no}")
            for name, r in (("backtest", bt), ("analyze -> SQLite", an), ("replay --verify", vf)):
                rate = r["events"] / r["seconds"]
                print(f"  {name:18} {r['seconds']:7.2f} s  {rate:>10,.0f} events/s  "
                      f"peak {r['max_rss_mb']:6.1f} MB")  # fmt: skip
            print(f"  rows: {an['rows']}, database {an['db_mb']} MB, trades {an['trades']} "
                  f"(backtest {bt['trades']})")  # fmt: skip
            print(f"  analysis / backtest: {an['seconds'] / bt['seconds']:.2f}  (target <= 3)")
            print(f"  analysis / replay --verify: {an['seconds'] / vf['seconds']:.2f}")


if __name__ == "__main__":
    main()
