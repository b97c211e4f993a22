"""Store outage: the robot's PostgreSQL order store goes away mid-run and comes back.

The test starts a private PostgreSQL cluster of its own (``initdb`` and
``pg_ctl`` into a temporary folder, trust authentication, a free port), runs
the market-data publisher, the paper exchange and one robot against it,
stops the cluster (``pg_ctl stop -m fast``) for a while and starts it again.
The robot must say so (``Control("gateway", status=down/up)`` journaled),
send no order while the store is down, trade again after, and lose or double
nothing. Fast form: a 3 s outage; ``-m long``: 30 s.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from roboframe.testing.fixtures import _server_missing
from roboframe.testing.helpers import wait_for
from tests.faults.trading import (
    Market,
    check_invariants,
    fills_caught_up,
    finish,
    free_port,
    read_store,
)

PG_BIN = Path(os.environ.get("ROBOFRAME_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


class PrivateCluster:
    """A throwaway PostgreSQL cluster; run as ``postgres`` when the test runs as root
    (the server refuses to run as root)."""

    def __init__(self) -> None:
        for tool in ("initdb", "pg_ctl"):
            if not (PG_BIN / tool).exists():
                _server_missing("a private PostgreSQL cluster", f"{PG_BIN / tool} is missing")
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            runuser = shutil.which("runuser")
            if runuser is None:
                _server_missing("a private PostgreSQL cluster", "root, and no runuser")
            self.as_user = [runuser, "-u", "postgres", "--"]
        # not under pytest's tmp_path: that folder is root's alone
        self.dir = Path(tempfile.mkdtemp(prefix="rf-outage-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self.port = free_port()
        if self.as_user:
            shutil.chown(self.dir, "postgres", "postgres")
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._run(PG_BIN / "initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "--no-sync")

    def _run(self, *cmd) -> None:
        result = subprocess.run(
            [*self.as_user, *map(str, cmd)], capture_output=True, text=True, timeout=60
        )
        if result.returncode != 0:
            raise AssertionError(f"{cmd[0]} failed: {result.stdout}{result.stderr}")

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
            " -c max_connections=50"
        )
        self._run(PG_BIN / "pg_ctl", "-D", self.data, "-o", options, "-l", self.log, "-w", "start")

    def stop(self) -> None:
        self._run(PG_BIN / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")

    def close(self) -> None:
        pg_ctl = [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"]
        subprocess.run([*self.as_user, *pg_ctl], capture_output=True, timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def cluster():
    pg = PrivateCluster()
    try:
        pg.start()
        yield pg
    finally:
        pg.close()


def store_orders(url: str) -> int:
    try:
        return len(read_store(url)[0])
    except Exception:  # the tables may not be there yet
        return 0


def survive_outage(tmp_path: Path, cluster: PrivateCluster, outage_s: float) -> None:
    seed = int(os.environ.get("ROBOFRAME_FAULT_SEED") or random.SystemRandom().randrange(1 << 31))
    why = f"seed {seed} (ROBOFRAME_FAULT_SEED={seed} reproduces), outage {outage_s} s"
    market = Market(tmp_path, "postgres", cluster.url, seed)
    robot = None
    try:
        market.start()
        robot = market.robot(resume=False)
        assert wait_for(lambda: store_orders(cluster.url) >= 3, 30), (
            f"no trading before the outage; {why}\n{market.log_tail()}"
        )
        cluster.stop()
        down_at = time.monotonic()
        time.sleep(outage_s)
        cluster.start()
        outage = time.monotonic() - down_at
        before = store_orders(cluster.url)
        assert wait_for(lambda: store_orders(cluster.url) >= before + 3, 30), (
            f"no trading after the outage; {why}\n{market.log_tail()}"
        )
        assert robot.poll() is None, f"the robot died in the outage; {why}\n{market.log_tail()}"
        market.stop_market()
        fills_caught_up(market)  # the last fills reach the robot
        robot.send_signal(signal.SIGTERM)
        summary = finish(robot, market)
    finally:
        if robot is not None and robot.poll() is None:
            robot.kill()
        market.close()
    view = check_invariants(market, summary, why)
    statuses = [status for _seq, status in view.gateway]
    assert statuses[:2] == ["down", "up"], f"the outage was not reported: {statuses}; {why}"
    down_seq, up_seq = view.gateway[0][0], view.gateway[1][0]
    sent_while_down = [s for s in view.order_seqs if down_seq < s < up_seq]
    assert not sent_while_down, f"orders sent while the store was down; {why}"
    assert any(s > up_seq for s in view.order_seqs), f"no order after the outage; {why}"
    print(
        f"\nsurvived a {outage:.1f} s store outage: {len(view.orders)} orders, "
        f"{len(view.fills)} fills, {summary['rejections']} refused; {why}"
    )


def test_robot_survives_a_store_outage(tmp_path, cluster):
    survive_outage(tmp_path, cluster, 3.0)


@pytest.mark.long
def test_robot_survives_a_long_store_outage(tmp_path, cluster):
    survive_outage(tmp_path, cluster, 30.0)
