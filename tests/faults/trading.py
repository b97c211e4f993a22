"""A robot trading through an order store, as separate processes, for the fault tests.

:class:`Market` runs the market-data publisher and the paper exchange
(``roboframe feed publish``, ``roboframe exchange``); :meth:`Market.robot`
starts ``roboframe run`` (``--resume`` after a crash). The ``check_*`` and
``read_*`` helpers state the invariants a crash or an outage must not break.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from roboframe.core import codec
from roboframe.core.events import Control, Fill, NewOrder, OrderUpdate
from roboframe.journal import ACTIONS, JournalReader
from roboframe.replay import iter_events, verify
from roboframe.testing.helpers import free_port

ROBOT = "kilo"

SOURCE = """\
name: market
symbols:
  Si-12.26: {{tick_size: 1}}
feed:
  plugin: synthetic
  params: {{seed: {seed}, bars: 0, interval: 1s, prices: {{Si-12.26: 92000}}, volatility: 0.002}}
strategy: {{plugin: sma-crossover}}
gateway: {{plugin: paper}}
"""

ROBOT_YAML = """\
name: {name}
symbols:
  Si-12.26: {{tick_size: 1}}
feed:
  plugin: zmq
  params: {{address: "tcp://127.0.0.1:{port}"}}
strategy:
  plugin: sma-crossover
  params: {{fast: 2, slow: 5}}
gateway:
  plugin: {gateway}
  params: {{url: "{url}", poll_ms: 100}}
journal:
  dir: {dir}
"""


def spawn(*args: str, log, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "roboframe.cli", *args],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env={**os.environ, **(env or {})},
    )


def stop(proc: subprocess.Popen | None, timeout: float = 10) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


class Market:
    """Publisher + exchange on one store; a robot file for ``gateway`` on ``url``."""

    def __init__(self, tmp: Path, gateway: str, url: str, seed: int, speed: str = "50x") -> None:
        self.tmp = tmp
        self.url = url
        self.port = free_port()
        self.log_path = tmp / "processes.log"
        self.log = open(self.log_path, "a")  # noqa: SIM115 -- closed by close()
        (tmp / "market.yaml").write_text(SOURCE.format(seed=seed % 10_000))
        self.journal_dir = tmp / "runs" / ROBOT
        self.robot_file = tmp / f"{ROBOT}.yaml"
        self.robot_file.write_text(
            ROBOT_YAML.format(
                name=ROBOT, port=self.port, gateway=gateway, url=url, dir=self.journal_dir
            )
        )
        self.speed = speed
        self.exchange: subprocess.Popen | None = None
        self.publisher: subprocess.Popen | None = None

    def start(self) -> None:
        self.start_exchange()
        self.publisher = spawn(
            "feed",
            "publish",
            str(self.tmp / "market.yaml"),
            "--bind",
            f"tcp://127.0.0.1:{self.port}",
            "--speed",
            self.speed,
            "--wait",
            "1",
            log=self.log,
        )

    def start_exchange(self) -> None:
        address = f"tcp://127.0.0.1:{self.port}"
        self.exchange = spawn("exchange", "--store", self.url, "--feed", address, log=self.log)

    def robot(self, *, resume: bool, duration: float = 600, env: dict | None = None):
        args = ["-q", "run", str(self.robot_file), "--duration", str(duration), "--json"]
        return spawn(*args, *(["--resume"] if resume else []), log=self.log, env=env)

    def stop_market(self) -> None:
        """No more market data: nothing fills any more."""
        stop(self.publisher)

    def close(self) -> None:
        stop(self.publisher)
        stop(self.exchange, 35)  # it drains what it holds
        self.log.close()

    def log_tail(self, n: int = 4000) -> str:
        self.log.flush()
        return self.log_path.read_text()[-n:]


def finish(proc: subprocess.Popen, market: Market, timeout: float = 60) -> dict:
    """The summary of a run that ends by itself (``--duration``)."""
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"robot exited {proc.returncode}\n{market.log_tail()}"
    return json.loads(out)


@dataclass
class JournalView:
    """What the journals of one robot say it did."""

    orders: list[str] = field(default_factory=list)  # NewOrder client ids, as journaled
    fills: list[tuple[str, str, int]] = field(default_factory=list)  # (client id, trade id, qty)
    acked: set[str] = field(default_factory=set)  # client ids with an OrderUpdate
    gateway: list[tuple[int, str]] = field(default_factory=list)  # (seq, "down" | "up")
    order_seqs: list[int] = field(default_factory=list)  # seq of each NewOrder's ACTIONS


def read_journal(path: Path, view: JournalView | None = None) -> JournalView:
    view = view or JournalView()
    for seq, event, record in iter_events(JournalReader(path)):
        kind = type(event)
        if kind is Fill:
            view.fills.append((event.client_id, event.trade_id, event.qty))
        elif kind is OrderUpdate:
            view.acked.add(event.client_id)
        elif kind is Control and event.command == "gateway":
            view.gateway.append((seq, event.args["status"]))
        elif event is None and record.kind == ACTIONS:
            actions, _ = codec.decode_outputs(record.payload)
            for action in actions:
                if type(action) is NewOrder:
                    view.orders.append(action.client_id)
                    view.order_seqs.append(seq)
    return view


def read_store(url: str, robot: str = ROBOT) -> tuple[list[str], list[tuple[str, str, int]]]:
    """The robot's order client ids (one per row) and trades (client id, trade id, qty)."""
    if url.startswith("postgresql"):
        import psycopg
        from roboframe_postgres.store import split_schema

        dsn, schema = split_schema(url)
        with psycopg.connect(dsn, connect_timeout=5) as conn:
            if schema:
                conn.execute(f'SET search_path TO "{schema}"')
            orders = [
                r[0]
                for r in conn.execute("SELECT client_id FROM rf_orders WHERE robot = %s", (robot,))
            ]
            trades = [
                tuple(r)
                for r in conn.execute(
                    "SELECT client_id, id::text, qty FROM rf_trades WHERE robot = %s", (robot,)
                )
            ]
        return orders, trades
    import pymongo

    client = pymongo.MongoClient(url, serverSelectionTimeoutMS=5000)
    try:
        db = client.get_default_database()
        orders = [d["client_id"] for d in db.orders.find({"name": robot})]
        trades = [
            (d["client_id"], str(d["id"]), int(d["qty"])) for d in db.trades.find({"name": robot})
        ]
    finally:
        client.close()
    return orders, trades


def journals(market: Market) -> list[Path]:
    return sorted(market.journal_dir.glob("*.journal"))


def fills_caught_up(market: Market, timeout: float = 20) -> bool:
    """Wait until the robot's journals on disk hold every fill the store has: the
    last ones reach a running robot through the store (notified, read, journaled,
    flushed), in no fixed time under load. False after ``timeout``; the
    invariants then name what is missing."""
    from roboframe.errors import JournalError
    from roboframe.testing.helpers import wait_for

    def caught_up() -> bool:
        view = JournalView()
        try:
            for path in journals(market):
                read_journal(path, view)
        except JournalError:  # a resumed run cutting its torn tail just now
            return False
        return set(view.fills) >= set(read_store(market.url)[1])

    return wait_for(caught_up, timeout, 0.1)


def check_invariants(market: Market, summary: dict, why: str) -> JournalView:
    """Every order in the store once, every fill reached the robot once, the robot's
    state is the replay of its journal, and every journal verifies. ``why`` (the
    seed, the kill log) goes into every assertion message."""
    paths = journals(market)
    assert paths, f"no journal written; {why}"
    assert Path(summary["journal"]) == paths[-1], f"the last run is not the newest journal; {why}"
    view = JournalView()
    for path in paths:
        result = verify(path)
        assert result.ok, f"{path.name}: {result.divergence}; {why}"
        read_journal(path, view)
    store_orders, store_trades = read_store(market.url)
    twice = [cid for cid, n in Counter(store_orders).items() if n > 1]
    assert not twice, f"orders stored twice: {twice}; {why}"
    journaled = Counter(view.orders)
    assert all(n == 1 for n in journaled.values()), f"an order journaled twice; {why}"
    assert set(journaled) == set(store_orders), (
        f"journal and store disagree on orders: only journaled "
        f"{sorted(set(journaled) - set(store_orders))}, only stored "
        f"{sorted(set(store_orders) - set(journaled))}; {why}"
    )
    fills = Counter(view.fills)
    assert all(n == 1 for n in fills.values()), (
        f"fills reached the robot twice: {[f for f, n in fills.items() if n > 1]}; {why}"
    )
    assert set(fills) == set(store_trades), (
        f"missing fills {sorted(set(store_trades) - set(fills))}, "
        f"unknown fills {sorted(set(fills) - set(store_trades))}; {why}"
    )
    # the robot's state is an uninterrupted replay of the same events
    replayed = verify(paths[-1]).kernel
    snap = replayed.snapshot()
    assert summary["positions"] == snap["positions"], f"positions differ; {why}"
    assert summary["open_orders"] == len(snap["open_orders"]), f"open orders differ; {why}"
    assert summary["net_pnl"] == snap["net_pnl"], f"P&L differs; {why}"
    for name in ("orders", "fills", "rejections", "cancels"):
        assert summary[name] == replayed.counters[name], f"{name} count differs; {why}"
    return view
