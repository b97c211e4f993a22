"""A real network outage between a robot and its PostgreSQL store.

The robot reaches the store through a TCP proxy the test cuts for a while:
the robot must refuse new orders while the store is away (journaled, so a
replay agrees), resume on reconnect and lose or double nothing.
"""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import psycopg
from roboframe_postgres.store import split_schema

from roboframe.builtin.feeds.synthetic import SyntheticFeed
from roboframe.config import load_robot
from roboframe.core import codec
from roboframe.core.events import Control, Fill, NewOrder
from roboframe.core.instruments import Instrument
from roboframe.core.robot import LiveRobot, RunOptions
from roboframe.exchange import ExchangeProcess
from roboframe.journal import ACTIONS, JournalReader
from roboframe.publisher import publish
from roboframe.replay import iter_events, verify
from roboframe.testing.helpers import wait_for
from roboframe.testing.tcpproxy import proxied_url

ROBOT = """\
name: gamma
symbols:
  Si-12.26: {{tick_size: 1}}
feed:
  plugin: zmq
  params: {{address: "{feed}"}}
strategy:
  plugin: sma-crossover
  params: {{fast: 2, slow: 4}}
gateway:
  plugin: postgres
  params: {{url: "{url}", poll_ms: 100}}
journal:
  dir: {dir}
"""


def test_robot_survives_a_store_outage(tmp_path, pg_url):
    proxy, proxied = proxied_url(pg_url)
    stop = threading.Event()
    bound: list[str] = []
    inst = {"Si-12.26": Instrument("Si-12.26", Decimal(1))}
    events = SyntheticFeed(
        {
            "seed": 5,
            "bars": 0,
            "interval": "1s",
            "volatility": 0.002,
            "prices": {"Si-12.26": 92000},
        },
        inst,
    ).events()
    publisher = threading.Thread(
        target=publish,
        args=(events, "tcp://127.0.0.1:0"),
        kwargs={"speed": 50, "wait_s": 1.0, "stop": stop, "on_bound": bound.append},
    )
    publisher.start()
    assert wait_for(lambda: bound)
    exchange_ready = threading.Event()
    exchange = ExchangeProcess(pg_url, bound[0], poll_s=0.1)
    exchange_thread = threading.Thread(target=exchange.run, args=(stop, exchange_ready))
    exchange_thread.start()
    assert exchange_ready.wait(10)
    path = tmp_path / "gamma.yaml"
    path.write_text(ROBOT.format(feed=bound[0], url=proxied, dir=tmp_path / "runs"))
    robot = LiveRobot(load_robot(path), RunOptions(duration_s=60))
    robot_thread = threading.Thread(target=robot.run)
    robot_thread.start()
    saw_down = False
    try:
        assert wait_for(lambda: robot.kernel.counters["fills"] >= 3, 20), "no trading before"
        proxy.cut()
        saw_down = wait_for(lambda: bool(robot.kernel.risk.gateway_down), 10)
        assert "\n" not in robot.kernel.risk.gateway_down  # one line in status and rejections
        time.sleep(1.5)  # the market moves on; the strategy wants to trade
        proxy.restore()
        assert wait_for(lambda: not robot.kernel.risk.gateway_down, 15), "never came back"
        fills_then = robot.kernel.counters["fills"]
        assert wait_for(lambda: robot.kernel.counters["fills"] >= fills_then + 3, 20)
    finally:
        robot.request_stop("test over")
        robot_thread.join(30)
        stop.set()
        exchange_thread.join(10)
        publisher.join(10)
        proxy.close()
    assert saw_down, "the robot never noticed the outage"

    controls, fills, orders = [], [], []
    for _seq, event, record in iter_events(JournalReader(robot.journal_path)):
        if isinstance(event, Control) and event.command == "gateway":
            controls.append(event.args["status"])
        elif isinstance(event, Fill):
            fills.append((event.client_id, event.trade_id))
        elif event is None and record.kind == ACTIONS:
            actions, _rejected = codec.decode_outputs(record.payload)
            orders += [a.client_id for a in actions if isinstance(a, NewOrder)]
    assert controls[:2] == ["down", "up"]
    dsn, schema = split_schema(pg_url)
    with psycopg.connect(dsn) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        stored = sorted(
            r[0]
            for r in conn.execute(
                "SELECT client_id FROM rf_orders WHERE robot = 'gamma'"
            ).fetchall()
        )
        trades = {
            (r[0], r[1])
            for r in conn.execute(
                "SELECT client_id, id::text FROM rf_trades WHERE robot = 'gamma'"
            ).fetchall()
        }
    assert sorted(orders) == stored  # every order exactly once, none lost in the outage
    assert len(fills) == len(set(fills)) and set(fills) <= trades
    assert verify(robot.journal_path).ok
