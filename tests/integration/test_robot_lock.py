"""One process of a robot per order store: a second one, from another host or
another supervisor, stops at once with the reason instead of trading the same
account beside the first."""

from __future__ import annotations

import subprocess
import sys

import pytest

from roboframe.core.events import Control, NewOrder
from roboframe.plugins import get_registry
from roboframe.store import open_store
from roboframe.testing.helpers import RunningTradeStream, wait_for


@pytest.fixture(params=["pg_url", "mongo_url"])
def url(request):
    return request.getfixturevalue(request.param)


def test_a_second_process_of_a_robot_stops_with_the_reason(url):
    backend = get_registry().gateways["mongo" if url.startswith("mongodb") else "postgres"].obj
    params = {"url": url, "poll_ms": 60_000}
    first = RunningTradeStream(backend, params, "kilo", run_id="r1")
    store = open_store(url)
    store.setup()
    try:
        # an order of the first in the store: it is connected and holds the lock
        first.gw.submit([NewOrder("kilo-r1-1", "Si", "buy", 1)])
        assert wait_for(lambda: store.new_requests()[0], timeout=10)
        second = RunningTradeStream(backend, params, "kilo", run_id="r2")
        try:
            (fail,) = second.events(1)  # the run ends unfinished: no stop journaled
            assert type(fail) is Control and fail.command == "fail"
            what, why = second.runtime.failure
            assert what == "gateway" and why.startswith("gateway failed: robot kilo already runs")
        finally:
            second.close()
        first.gw.submit([NewOrder("kilo-r1-2", "Si", "buy", 1)])  # the first goes on
        assert wait_for(lambda: len(store.new_requests()[0]) == 2, timeout=10)
        assert first.events(1, timeout_ms=300) == []  # and was told nothing
    finally:
        store.close()
        first.close()


ROBOT = """\
name: kilo
symbols:
  Si-12.26: {{tick_size: 1}}
feed:
  plugin: synthetic
  params: {{seed: 3, bars: 0, interval: 1s, prices: {{Si-12.26: 92000}}}}  # endless
strategy: {{plugin: sma-crossover}}
gateway:
  plugin: postgres
  params: {{url: "{url}"}}
journal:
  dir: {dir}
"""


def test_run_exits_failed_when_the_robot_already_runs(tmp_path, pg_url):
    holder = open_store(pg_url)  # the other process of the robot
    holder.setup()
    assert holder.take_robot_lock("kilo", "elsewhere")
    path = tmp_path / "kilo.yaml"
    path.write_text(ROBOT.format(url=pg_url, dir=tmp_path / "runs"))
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "roboframe.cli", "run", str(path), "--duration", "30"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        holder.close()
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "robot kilo already runs against this order store" in proc.stdout + proc.stderr
    # it ended before its start: its strategy decided nothing, its journal holds
    # nothing a later --resume (a supervisor's, another host's) would send
    assert "Traceback" not in proc.stderr
    assert not list((tmp_path / "runs").glob("*.journal"))
