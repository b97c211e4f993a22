"""Separate processes: publisher, paper exchange, two robots on one order store
(PostgreSQL, and MongoDB through SecantusDB).

Each robot must receive exactly its own fills; a robot killed with SIGKILL and
resumed must lose and duplicate nothing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from roboframe.core import codec
from roboframe.core.events import Fill, NewOrder
from roboframe.journal import ACTIONS, JournalReader
from roboframe.replay import iter_events, verify

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


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def journal_fills_and_orders(path: Path):
    fills, orders = [], []
    reader = JournalReader(path)
    for _seq, event, record in iter_events(reader):
        if isinstance(event, Fill):
            fills.append((event.client_id, event.trade_id, event.qty))
        elif event is None and record.kind == ACTIONS:
            actions, _ = codec.decode_outputs(record.payload)
            orders += [a.client_id for a in actions if isinstance(a, NewOrder)]
    return fills, orders


def store_contents(url: str) -> tuple[dict, dict]:
    """Per robot: sorted (client_id, trade id, qty) of its trades, sorted order ids."""
    trades, orders = {}, {}
    if url.startswith("postgresql"):
        import psycopg
        from roboframe_postgres.store import split_schema

        dsn, schema = split_schema(url)
        with psycopg.connect(dsn) as conn:
            conn.execute(f'SET search_path TO "{schema}"')
            for robot in ("alpha", "beta"):
                trades[robot] = sorted(
                    conn.execute(
                        "SELECT client_id, id::text, qty FROM rf_trades WHERE robot = %s", (robot,)
                    ).fetchall()
                )
                orders[robot] = sorted(
                    r[0]
                    for r in conn.execute(
                        "SELECT client_id FROM rf_orders WHERE robot = %s", (robot,)
                    ).fetchall()
                )
        return trades, orders
    import pymongo

    client = pymongo.MongoClient(url)
    db = client.get_default_database()
    for robot in ("alpha", "beta"):
        trades[robot] = sorted(
            (d["client_id"], str(d["id"]), d["qty"]) for d in db.trades.find({"name": robot})
        )
        orders[robot] = sorted(d["client_id"] for d in db.orders.find({"name": robot}))
    client.close()
    return trades, orders


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
    summary_a, summary_b = json.loads(out_a), json.loads(out_b)
    # the resumed robot continued its run in the same journal
    assert [p.name for p in (tmp_path / "runs" / "alpha").glob("*.journal")] == [
        Path(summary_a["journal"]).name
    ]

    store_trades, store_orders = store_contents(url)
    for name, summary in (("alpha", summary_a), ("beta", summary_b)):
        fills, orders = journal_fills_and_orders(Path(summary["journal"]))
        assert len(orders) >= 2, f"{name} traded too little to prove anything"
        assert all(cid.startswith(f"{name}-") for cid, _, _ in fills)  # only its own
        assert len(fills) == len(set(fills))  # no fill twice
        # fills delivered after the last read of the store may still be in flight
        assert set(fills) <= set(store_trades[name])
        assert len(store_trades[name]) - len(fills) <= 2
        assert sorted(set(orders)) == store_orders[name]  # every order once, none lost
        result = verify(summary["journal"])
        assert result.ok, str(result.divergence)
