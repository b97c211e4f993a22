"""Separate processes: publisher, paper exchange, two robots on one order store
(PostgreSQL, and MongoDB through SecantusDB).

Each robot must receive exactly its own fills; a robot killed with SIGKILL and
resumed must lose and duplicate nothing.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from roboframe.replay import verify
from roboframe.testing.helpers import free_port
from tests.faults.trading import read_journal, read_store

SOURCE = """\
name: market
symbols:
  Si-12.26: {tick_size: 1}
feed:
  plugin: synthetic
  params: {seed: 11, bars: 0, interval: 1s, prices: {Si-12.26: 92000}, volatility: 0.002}
strategy: {plugin: sma-crossover}
gateway: {plugin: paper}
"""

ROBOT = """\
name: {name}
symbols:
  Si-12.26: {{tick_size: 1}}
feed:
  plugin: zmq
  params: {{address: "tcp://127.0.0.1:{port}"}}
strategy:
  plugin: sma-crossover
  params: {{fast: {fast}, slow: {slow}}}
gateway:
  plugin: {gateway}
  params: {{url: "{url}", poll_ms: 200{extra}}}
journal:
  dir: {dir}
"""


def spawn(*args, env=None, log=None):
    return subprocess.Popen(
        [sys.executable, "-m", "roboframe.cli", *args],
        stdout=subprocess.PIPE,
        stderr=log or subprocess.DEVNULL,
        text=True,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize(
    ("gateway", "url_fixture"),
    [("postgres", "pg_url"), ("mongo", "mongo_url"), ("zmq", "pg_url"), ("zmq", "mongo_url")],
)
def test_two_robots_kill_and_resume(tmp_path, request, gateway, url_fixture):
    url = request.getfixturevalue(url_fixture)
    port, orders_port = free_port(), free_port()
    (tmp_path / "market.yaml").write_text(SOURCE)
    robots = {}
    for name, fast, slow in (("alpha", 2, 5), ("beta", 3, 7)):
        path = tmp_path / f"{name}.yaml"
        path.write_text(
            ROBOT.format(
                name=name,
                port=port,
                fast=fast,
                slow=slow,
                url=url,
                gateway=gateway,
                extra=f', address: "tcp://127.0.0.1:{orders_port}"' if gateway == "zmq" else "",
                dir=tmp_path / "runs" / name,
            )
        )
        robots[name] = path
    logs = open(tmp_path / "processes.log", "w")  # noqa: SIM115
    procs = []
    try:
        fast = ["--orders", f"tcp://127.0.0.1:{orders_port}"] if gateway == "zmq" else []
        exchange = spawn(
            "exchange", "--store", url, "--feed", f"tcp://127.0.0.1:{port}", *fast, log=logs
        )
        procs.append(exchange)
        alpha = spawn("-q", "run", str(robots["alpha"]), "--duration", "30", "--json", log=logs)
        beta = spawn("-q", "run", str(robots["beta"]), "--duration", "9", "--json", log=logs)
        procs += [alpha, beta]
        publisher = spawn(
            "feed",
            "publish",
            str(tmp_path / "market.yaml"),
            "--bind",
            f"tcp://127.0.0.1:{port}",
            "--speed",
            "40x",
            "--wait",
            "2",
            log=logs,
        )
        procs.append(publisher)
        time.sleep(4.5)
        alpha.send_signal(signal.SIGKILL)  # mid-run, mid-whatever
        alpha.wait(10)
        time.sleep(1.0)  # orders of alpha may fill while it is down
        alpha2 = spawn(
            "-q", "run", str(robots["alpha"]), "--resume", "--duration", "4", "--json", log=logs
        )
        procs.append(alpha2)
        out_a, _ = alpha2.communicate(timeout=60)
        out_b, _ = beta.communicate(timeout=60)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        logs.close()
    log_text = (tmp_path / "processes.log").read_text()
    assert alpha2.returncode == 0 and beta.returncode == 0, log_text[-3000:]
    assert re.search(r"exchange stopped: [\d,]+ orders, [\d,]+ fills, ", log_text), log_text[-500:]
    summary_a, summary_b = json.loads(out_a), json.loads(out_b)
    # the resumed robot continued its run in the same journal
    assert [p.name for p in (tmp_path / "runs" / "alpha").glob("*.journal")] == [
        Path(summary_a["journal"]).name
    ]

    for name, summary in (("alpha", summary_a), ("beta", summary_b)):
        stored_orders, stored_trades = read_store(url, name)
        view = read_journal(Path(summary["journal"]))
        fills, orders = view.fills, view.orders
        assert len(orders) >= 2, f"{name} traded too little to prove anything"
        assert all(cid.startswith(f"{name}-") for cid, _, _ in fills)  # only its own
        assert len(fills) == len(set(fills))  # no fill twice
        # fills written after the robot stopped were in flight: only a tail, no gap
        assert set(fills) <= set(stored_trades)
        unseen = [int(t) for _, t, _ in set(stored_trades) - set(fills)]
        assert not unseen or min(unseen) > max(int(t) for _, t, _ in fills), (
            f"{name} missed stored fills before its last one: {sorted(unseen)}"
        )
        assert sorted(set(orders)) == sorted(stored_orders)  # every order once, none lost
        assert len(stored_orders) == len(set(stored_orders))
        result = verify(summary["journal"])
        assert result.ok, str(result.divergence)
