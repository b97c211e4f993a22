"""Control commands: round trip to a running robot next to a raw REQ/REP ping-pong.

A robot runs live (synthetic feed at ``--rate`` bars/s, paper gateway,
journal on) with its control endpoint on ipc. One client sends ``status``
(answered from the robot's last snapshot, not journaled) and ``pause`` /
``resume`` (journaled Control events the loop applies) ``-n`` times each and
records every round trip; a raw pyzmq REQ/REP pair on ipc in the same
process gives the floor. Prints p50/p99 per command and the ratio to raw.

Note what a reply means: ``pause`` is answered once the command is queued
to the loop (the loop journals and applies it within one message); its
effect shows in the next status snapshot (refreshed about every second).

Usage: python bench/control.py [-n 2000] [--rate 1000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import zmq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ROBOT = """\
name: bench-control
symbols:
  Si-12.26: {{tick_size: 1}}
feed:
  plugin: synthetic
  params: {{seed: 1, prices: {{Si-12.26: 92000}}, rate: {rate}}}
strategy:
  plugin: sma-crossover
  params: {{fast: 3, slow: 8}}
gateway:
  plugin: paper
journal:
  dir: {journal}
control:
  address: ipc://{journal}/control.sock
"""


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def raw_ping_pong(n: int, folder: Path) -> list[float]:
    ctx = zmq.Context()
    address = f"ipc://{folder}/raw.sock"
    rep, req = ctx.socket(zmq.REP), ctx.socket(zmq.REQ)
    rep.bind(address)
    req.connect(address)

    def serve():
        for _ in range(n + 10):
            rep.send(json.dumps({"ok": True, "status": {}}).encode() if rep.recv() else b"")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    times = []
    for i in range(n + 10):
        start = time.perf_counter()
        req.send(json.dumps({"command": "status", "args": {}}).encode())
        json.loads(req.recv())
        if i >= 10:
            times.append(time.perf_counter() - start)
    thread.join()
    rep.close()
    req.close()
    ctx.term()
    return times


def robot_round_trips(n: int, rate: int, folder: Path) -> dict[str, list[float]]:
    from roboframe.config import load_robot
    from roboframe.control import send_command
    from roboframe.core.robot import LiveRobot, RunOptions

    path = folder / "robot.yaml"
    path.write_text(ROBOT.format(rate=rate, journal=folder / "runs"))
    robot = LiveRobot(load_robot(path), RunOptions())
    runner = threading.Thread(target=robot.run, daemon=True)
    runner.start()
    address = f"ipc://{folder}/runs/control.sock"
    for _ in range(100):
        try:
            send_command(address, "status", timeout=0.2)
            break
        except Exception:
            time.sleep(0.05)
    out: dict[str, list[float]] = {
        "status (ctl)": [],
        "pause/resume (ctl)": [],
        "status (one socket)": [],
        "pause/resume (one s.)": [],
    }
    for i in range(n):  # as `roboframe ctl` does: a new connection per command
        start = time.perf_counter()
        reply = send_command(address, "status")
        out["status (ctl)"].append(time.perf_counter() - start)
        assert reply["ok"], reply
        start = time.perf_counter()
        reply = send_command(address, "pause" if i % 2 == 0 else "resume")
        out["pause/resume (ctl)"].append(time.perf_counter() - start)
        assert reply["ok"], reply
    ctx = zmq.Context()
    req = ctx.socket(zmq.REQ)
    req.setsockopt(zmq.RCVTIMEO, 3000)
    req.connect(address)
    for i in range(n):  # a program that keeps its connection (a dashboard, the supervisor)
        for name, command in (
            ("status (one socket)", "status"),
            ("pause/resume (one s.)", "pause" if i % 2 == 0 else "resume"),
        ):
            start = time.perf_counter()
            req.send(json.dumps({"command": command, "args": {}}).encode())
            reply = json.loads(req.recv())
            out[name].append(time.perf_counter() - start)
            assert reply["ok"], reply
    req.close()
    ctx.term()
    robot.request_stop("bench over")
    runner.join(30)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=2000, help="commands of each kind")
    ap.add_argument("--rate", type=int, default=1000, help="bars/s the robot handles meanwhile")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        raw = raw_ping_pong(args.n, folder)
        robot = robot_round_trips(args.n, args.rate, folder)
    raw50, raw99 = percentiles(raw)
    print(f"control round trip over ipc, {args.n:,} each, robot busy with {args.rate:,} bars/s")
    print(f"  {'raw REQ/REP (JSON)':<22} p50 {raw50 * 1e6:8.1f} us  p99 {raw99 * 1e6:8.1f} us")
    for name, times in robot.items():
        p50, p99 = percentiles(times)
        print(
            f"  {name:<22} p50 {p50 * 1e6:8.1f} us  p99 {p99 * 1e6:8.1f} us  "
            f"(x{p50 / raw50:.1f} raw at p50; mean {statistics.fmean(times) * 1e6:.1f} us)"
        )


if __name__ == "__main__":
    main()
