"""Crash at any point: a robot trading through an order store is killed with
SIGKILL, again and again, and resumed each time.

The robot (``roboframe run``, then ``run --resume`` after each kill) trades
fast through the ``postgres`` or ``mongo`` gateway against a paper exchange
process and a market-data publisher. It is killed after a random delay drawn
from ``random.Random(seed)`` -- the seed is in every assertion message, and
``ROBOFRAME_FAULT_SEED`` sets it to reproduce a failure -- and restarted at
once; after the last kill it runs to its end. Then every order of the
journals is in the store exactly once, every stored fill reached the robot
exactly once, the robot's final state is the replay of its journal, and
every journal verifies.

Random kills rarely land in the narrow windows, so the fault points of
:mod:`roboframe.testing.faultpoints` put them there: in the middle of a
journal frame (any frame, and the ACTIONS frame flushed just before an order
leaves), and after an order's insert into the store committed but before its
acknowledgement was journaled.

Fast form: 10 random kills (PostgreSQL), 5 (MongoDB), 6 at fault points
each; ``-m long``: 100 and 30 random kills, 30 at fault points each.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time

import pytest

from roboframe.journal import JournalReader
from roboframe.journal.format import ACTIONS, FRAME_HEAD
from tests.faults.trading import (
    Market,
    check_invariants,
    fills_caught_up,
    finish,
    journals,
    read_journal,
    read_store,
)

BACKENDS = [("postgres", "pg_url"), ("mongo", "mongo_url")]


def seed_for() -> int:
    env = os.environ.get("ROBOFRAME_FAULT_SEED")
    return int(env) if env else random.SystemRandom().randrange(1 << 31)


def kill_loop(market: Market, rng: random.Random, kills: int, why: str) -> list[float]:
    """Start, kill after a random delay, resume at once -- ``kills`` times."""
    delays = []
    for n in range(kills):
        proc = market.robot(resume=n > 0)
        delay = rng.uniform(0.2, 2.5)
        try:
            proc.wait(delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        else:
            raise AssertionError(
                f"kill {n}: the robot exited {proc.returncode} by itself; {why}\n"
                f"{market.log_tail()}"
            )
        proc.stdout.close()
        delays.append(delay)
    return delays


def run_to_end(market: Market, *, run_s: float = 3.0) -> dict:
    """Resume once more, stop the market data, and stop the run once every fill the
    exchange made has reached the robot (not a fixed 2 s later: a fill still on its
    way then is one the invariants find missing)."""
    proc = market.robot(resume=True)
    time.sleep(run_s)
    market.stop_market()
    fills_caught_up(market)
    proc.send_signal(signal.SIGTERM)
    return finish(proc, market)


def crash_many(tmp_path, gateway: str, url: str, kills: int) -> None:
    seed = seed_for()
    rng = random.Random(seed)
    why = f"seed {seed} (ROBOFRAME_FAULT_SEED={seed} reproduces), {gateway}, {kills} kills"
    market = Market(tmp_path, gateway, url, seed)
    try:
        market.start()
        started = time.monotonic()
        delays = kill_loop(market, rng, kills, why)
        summary = run_to_end(market)
    finally:
        market.close()
    view = check_invariants(market, summary, why)
    assert len(view.orders) >= kills // 2, f"traded too little to prove anything; {why}"
    assert len(view.fills) >= 2, f"no fills; {why}"
    print(
        f"\n{gateway}: survived {kills} kills (delays {min(delays):.2f}-{max(delays):.2f} s) "
        f"in {time.monotonic() - started:.0f} s; {len(view.orders)} orders, "
        f"{len(view.fills)} fills, {len(journals(market))} journal(s); {why}"
    )


@pytest.mark.parametrize(
    ("gateway", "url_fixture", "kills"), [(*BACKENDS[0], 10), (*BACKENDS[1], 5)]
)
def test_killed_at_random_moments(tmp_path, request, gateway, url_fixture, kills):
    crash_many(tmp_path, gateway, request.getfixturevalue(url_fixture), kills)


@pytest.mark.long
@pytest.mark.parametrize(
    ("gateway", "url_fixture", "kills"), [(*BACKENDS[0], 100), (*BACKENDS[1], 30)]
)
def test_killed_at_random_moments_long(tmp_path, request, gateway, url_fixture, kills):
    crash_many(tmp_path, gateway, request.getfixturevalue(url_fixture), kills)


# -- kills placed exactly --------------------------------------------------------


def torn_kind(market: Market) -> int | None:
    """The kind of the torn last frame of the newest journal, None if there is none."""
    path = journals(market)[-1]
    reader = JournalReader(path)
    for _record in reader.records():
        pass
    torn = reader.torn_tail
    if torn is None:
        return None
    with open(path, "rb") as f:
        f.seek(torn.offset)
        head = f.read(FRAME_HEAD.size)
    return FRAME_HEAD.unpack(head)[2] if len(head) == FRAME_HEAD.size else -1


def die_at(market: Market, point: str, why: str) -> subprocess.Popen:
    """Run the robot (resuming) armed to die at ``point``; wait for that death."""
    proc = market.robot(resume=True, env={"ROBOFRAME_FAULT_KILL_AT": point})
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"never reached {point}; {why}\n{market.log_tail()}") from None
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL, (
        f"{point}: the robot exited {proc.returncode}, not by the fault point; {why}\n"
        f"{market.log_tail()}"
    )
    return proc


POINTS = ["journal.mid_frame", "journal.mid_actions", "store.after_insert"]


def narrow_windows(tmp_path, gateway: str, url: str, rounds: int) -> None:
    seed = seed_for()
    rng = random.Random(seed)
    why = f"seed {seed} (ROBOFRAME_FAULT_SEED={seed} reproduces), {gateway}"
    market = Market(tmp_path, gateway, url, seed)
    points = (
        (POINTS * rounds)[:rounds] if rounds <= 6 else [rng.choice(POINTS) for _ in range(rounds)]
    )
    try:
        market.start()
        first = market.robot(resume=False)  # a run to crash into, then one death per point
        time.sleep(1.5)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        first.stdout.close()
        for point in points:
            count = rng.randint(1, 4)
            die_at(market, f"{point}:{count}", why)
            stage = f"{point}:{count}; {why}"
            if point.startswith("journal."):
                kind = torn_kind(market)
                assert kind is not None, f"no torn frame after {stage}"
                if point == "journal.mid_actions":
                    assert kind == ACTIONS, f"torn frame of kind {kind}, not ACTIONS, {stage}"
            else:  # an order is in the store; the journal holds no answer to it
                view = read_journal(journals(market)[-1])
                stored = set(read_store(url)[0])
                assert any(c in stored and c not in view.acked for c in view.orders), stage
        summary = run_to_end(market)
    finally:
        market.close()
    check_invariants(market, summary, f"points {points}; {why}")
    print(f"\n{gateway}: survived {len(points)} kills at fault points; {why}")


@pytest.mark.parametrize(("gateway", "url_fixture"), BACKENDS)
def test_killed_at_the_narrow_windows(tmp_path, request, gateway, url_fixture):
    narrow_windows(tmp_path, gateway, request.getfixturevalue(url_fixture), 6)


@pytest.mark.long
@pytest.mark.parametrize(("gateway", "url_fixture"), BACKENDS)
def test_killed_at_the_narrow_windows_long(tmp_path, request, gateway, url_fixture):
    narrow_windows(tmp_path, gateway, request.getfixturevalue(url_fixture), 30)
