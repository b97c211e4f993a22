"""An order store restored from an older backup, or its tables recreated: its
ids start again below those the robots' journals hold.

A resumed run read the store "after id 40" and never saw the new fills written
under ids 1..40 again -- its position wrong, with no word. It now fails before
its start (exit 1, resumable once the store is put right), naming the ids, and
writes nothing; a stream that reconnects to a store recreated while it was
away fails the same way; a new run on the recreated store trades as usual.
(The exchange's side, a row written where another row is, is in
``test_store_writer.py``.)
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest

from roboframe.core.events import Bar, Control, Fill, NewOrder, OrderUpdate
from roboframe.journal import JournalReader
from roboframe.plugins import get_registry
from roboframe.replay import iter_events
from roboframe.store import open_store
from roboframe.storewriter import write_items
from roboframe.testing.helpers import RunningTradeStream, wait_for
from roboframe.testing.tcpproxy import proxied_url
from tests.faults.trading import read_journal, read_store
from tests.integration.conftest import roboframe_cmd
from tests.integration.exchange import RunningExchange

BACKENDS = [("postgres", "pg_url"), ("mongo", "mongo_url")]

ROBOT = """\
name: {name}
symbols:
  Si-12.26: {{tick_size: 1}}
feed:
  plugin: synthetic
  params: {{seed: 5, bars: 0, interval: 1m, rate: 20, volatility: 0.003,
            prices: {{Si-12.26: 92000}}}}
strategy:
  plugin: sma-crossover
  params: {{fast: 2, slow: 4}}
gateway:
  plugin: {gateway}
  params: {{url: "{url}", poll_ms: 100}}
journal:
  dir: {dir}
"""


def recreate(url: str) -> None:
    """The store's tables dropped and made again, empty: its ids start over."""
    store = open_store(url)
    try:
        if url.startswith("mongodb"):
            store.client.drop_database(store.db.name)
        else:
            store.conn.execute("DROP TABLE rf_orders, rf_order_events, rf_trades")
        store.setup()
    finally:
        store.close()


def exchange_on(url: str) -> RunningExchange:
    """A store-path exchange with a price: every market order fills at once."""
    running = RunningExchange(url, fast=False, robot="restored-dealer")
    running.price(Bar("Si-12.26", 1, 92000, 92000, 92000, 92000))
    return running


def gateway_class(gateway: str) -> type:
    if gateway == "zmq":
        from roboframe.builtin.zmqgw import FastGateway

        return FastGateway
    return get_registry().gateways[gateway].obj


def stream_of(gateway: str, url: str) -> tuple[type, dict]:
    """The gateway class and its params for a trade stream on the store at ``url``
    (the fast path with no exchange there: the store's side is what matters)."""
    params = {"url": url, "poll_ms": 200}
    if gateway == "zmq":
        params["address"] = "tcp://127.0.0.1:9"
    return gateway_class(gateway), params


def answer_in_store(store, robot: str, cid: str, symbol: str = "Si", new: bool = False):
    """Write the exchange's answer to order ``cid`` (and the order, ``new``): its
    acceptance and a fill of one lot, under ids reserved in ``store``, as its
    writer does. ``(trade id, order-event id)``."""
    trade_id, *_ = store.reserve_ids("trades", 1)
    event_id, *_ = store.reserve_ids("order_events", 1)
    items = [(robot, NewOrder(cid, symbol, "buy", 1))] if new else []
    items += [
        (robot, OrderUpdate(cid, 1, "accepted", "", str(event_id))),
        (robot, Fill(cid, 2, symbol, "buy", 1, 100, str(trade_id), "0")),
    ]
    write_items(store, items)
    return trade_id, event_id


def goes_on(end: RunningTradeStream) -> None:
    """``end`` (closed after) gets ready and goes on: no failure said."""
    try:
        assert wait_for(lambda: end.runtime.ready.is_set(), 10)
        events = end.events(2, timeout_ms=1500)
        assert all(type(e) is not Control or e.command != "fail" for e in events), events
        assert end.runtime.failure is None
    finally:
        end.close()


@pytest.mark.parametrize(("gateway", "url_fixture"), BACKENDS)
def test_a_resumed_run_on_a_recreated_store_fails_and_sends_nothing(
    tmp_path, request, gateway, url_fixture
):
    url = request.getfixturevalue(url_fixture)
    name = "restored"
    path = tmp_path / f"{name}.yaml"
    path.write_text(ROBOT.format(name=name, gateway=gateway, url=url, dir=tmp_path / "runs"))
    running = exchange_on(url)
    log = tmp_path / "robot.log"

    def journaled_fills() -> int:  # the journal on disk, the loop writing it
        journals = list((tmp_path / "runs").glob("*.journal"))
        return len(read_journal(journals[0]).fills) if journals else 0

    with open(log, "w") as err:
        robot = subprocess.Popen(
            [sys.executable, "-m", "roboframe.cli", "-q", "run", str(path)],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        try:
            assert wait_for(lambda: len(read_store(url, name)[1]) >= 3, 40, 0.2), log.read_text()
            # the robot journals what the store has
            assert wait_for(lambda: journaled_fills() >= 3, 10, 0.1), log.read_text()
        finally:
            robot.send_signal(signal.SIGKILL)  # a crash: the run is resumed later
            robot.wait(10)
            running.close()
    (journal,) = (tmp_path / "runs").glob("*.journal")
    before = read_journal(journal)
    assert before.fills, "the robot journaled no fill before it was killed"
    top = max(int(trade_id) for _, trade_id, _ in before.fills)

    recreate(url)  # ... or restored from a backup older than the journal
    proc = roboframe_cmd("-q", "run", str(path), "--resume", "--duration", "5", timeout=90)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert f"order store behind robot {name}: its journal holds trade id {top} and " in out
    assert f"the store's highest of {name} are 0 and 0" in out
    assert "restore the newest backup" in out and "without --resume" in out
    assert "Traceback" not in out
    # it never started: not an order in the store (nothing sent again, nothing new),
    # none more in the journal, and the run is still there to resume
    assert read_store(url, name) == ([], [])
    assert read_journal(journal).orders == before.orders
    again = roboframe_cmd("-q", "run", str(path), "--resume", "--duration", "5", timeout=90)
    assert again.returncode == 1 and "order store behind robot" in again.stderr, again.stderr
    # fills since the restore (another run's) climb past the journal's ids: still refused
    top_event = max(
        int(event.ref)
        for _seq, event, _record in iter_events(JournalReader(journal))
        if type(event) is OrderUpdate and event.ref.isdigit()
    )
    store, other = open_store(url), f"{name}-r0-1"
    try:
        trade_id, event_id = answer_in_store(store, name, other, "Si-12.26", new=True)
        while trade_id < top or event_id < top_event:
            trade_id, event_id = answer_in_store(store, name, other, "Si-12.26")
    finally:
        store.close()
    climbed = roboframe_cmd("-q", "run", str(path), "--resume", "--duration", "5", timeout=90)
    assert climbed.returncode == 1, climbed.stderr
    assert f"order store not the one robot {name} traded on: its journal holds trade" in (
        climbed.stderr
    )
    recreate(url)

    # a new run has nothing to compare: it trades on the recreated store
    running = exchange_on(url)
    try:
        proc = roboframe_cmd("-q", "run", str(path), "--duration", "4", "--json", timeout=90)
    finally:
        running.close()
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    orders, trades = read_store(url, name)
    assert summary["orders"] >= 1 and len(orders) == summary["orders"]
    assert summary["fills"] >= 1 and min(int(t) for _, t, _ in trades) <= top


@pytest.mark.parametrize(("gateway", "url_fixture"), [*BACKENDS, ("zmq", "pg_url")])
def test_a_resumed_stream_checks_its_journals_ids_against_the_store(request, gateway, url_fixture):
    """The trade stream of a resumed run (``store_seen``: the ids its journal
    holds) fails at its first connect when the store's highest ids of the robot
    are below them, and only then; so does the fast path, which reads the store
    too (after a grace: its journal may hold ids the exchange's writer has not
    written yet)."""
    url = request.getfixturevalue(url_fixture)
    robot, cid = "restored-stream", "restored-stream-r1-1"
    cls, params = stream_of(gateway, url)
    store = open_store(url)
    store.setup()
    ahead = RunningTradeStream(cls, params, robot, store_seen=(frozenset({7}), frozenset({9})))
    try:
        (fail,) = ahead.events(1)
        assert type(fail) is Control and fail.command == "fail"
        what, why = ahead.runtime.failure
        assert what == "gateway"
        assert why == (
            f"gateway failed: order store behind robot {robot}: its journal holds trade id 7 "
            f"and order-event id 9, the store's highest of {robot} are 0 and 0: it was "
            "restored from an older backup, or its tables recreated, and new fills would "
            "come under ids the robot takes as seen; hint: restore the newest backup and "
            "resume, or check the robot's position and orders by hand and start a new run "
            "without --resume"
        )
    finally:
        ahead.close()
    assert store.new_requests()[0] == []  # nothing written
    # the store holds the journal's ids (and another robot's higher ones): it goes on
    trade_id, event_id = answer_in_store(store, robot, cid, new=True)
    seen = (frozenset({trade_id}), frozenset({event_id}))
    for resumed in (seen, None):  # a resumed run whose ids the store has; a new run
        goes_on(RunningTradeStream(cls, params, robot, run_id="r1", store_seen=resumed))
    store.close()


@pytest.mark.parametrize(("gateway", "url_fixture"), [*BACKENDS, ("zmq", "pg_url")])
def test_a_restored_store_whose_ids_climbed_past_the_journals_is_refused(
    request, gateway, url_fixture
):
    """Fills enough after a restore climb past the journal's ids again: the ids
    alone passed, and the robot took the fills under its ids for seen. The
    journal's highest trade must be that very trade in the store (its order's
    client id); a store that has it goes on."""
    url = request.getfixturevalue(url_fixture)
    robot = "restored-climbed"
    mine, other = f"{robot}-r1-1", f"{robot}-r1-2"
    cls, params = stream_of(gateway, url)
    store = open_store(url)
    store.setup()
    # the restored store's: another order's fill under the journal's ids
    trade_id, event_id = answer_in_store(store, robot, other, new=True)
    seen = (frozenset({trade_id}), frozenset({event_id}))
    end = RunningTradeStream(cls, params, robot, store_seen=seen, store_anchor=(trade_id, mine))
    try:
        (fail,) = end.events(1)
        assert type(fail) is Control and fail.command == "fail", fail
        _what, why = end.runtime.failure
        assert (
            f"order store not the one robot {robot} traded on: its journal holds trade "
            f"{trade_id} of order {mine}, the store's trade {trade_id} of {robot} is of "
            f"order {other}"
        ) in why, why
        assert "restore the newest backup" in why
    finally:
        end.close()
    try:  # the journal's own trade there: the store it traded on
        goes_on(
            RunningTradeStream(cls, params, robot, store_seen=seen, store_anchor=(trade_id, other))
        )
    finally:
        store.close()


@pytest.mark.parametrize("climbed", [False, True])
@pytest.mark.parametrize(("gateway", "url_fixture"), BACKENDS)
def test_a_stream_back_from_an_outage_to_a_recreated_store_fails_the_run(
    request, gateway, url_fixture, climbed
):
    """The store may be restored while the robot is cut off from it: on reconnect
    the ids the run has had from the store must still be there -- and, should
    fills since have climbed past them (``climbed``), the trade the run read
    last must be the store's. An outage with the store as it was goes on as ever."""
    url = request.getfixturevalue(url_fixture)
    proxy, proxied = proxied_url(url)
    robot, cid = "restored-outage", "restored-outage-r1-1"
    store = open_store(url)
    store.setup()
    end = RunningTradeStream(gateway_class(gateway), {"url": proxied, "poll_ms": 200}, robot)
    try:
        end.gw.submit([NewOrder(cid, "Si", "buy", 1)])
        assert wait_for(lambda: store.new_requests()[0], 10), "the stream never connected"
        trade_id, event_id = answer_in_store(store, robot, cid)
        assert [type(e) for e in end.events(2)] == [OrderUpdate, Fill]

        def status(event) -> str:
            assert type(event) is Control, event
            return event.args.get("status") or event.command

        proxy.cut()  # an outage, the store as it was
        assert [status(e) for e in end.events(1)] == ["down"]
        proxy.restore()
        assert [status(e) for e in end.events(1)] == ["up"]
        assert end.runtime.failure is None

        proxy.cut()  # an outage in which the store is recreated
        assert [status(e) for e in end.events(1)] == ["down"]
        store.close()
        recreate(url)
        store = open_store(url)
        other = f"{robot}-r1-2"
        if climbed:  # another order's fills, until the ids reach the run's again
            ids = answer_in_store(store, robot, other, new=True)
            while ids[0] < trade_id or ids[1] < event_id:
                ids = answer_in_store(store, robot, other)
        proxy.restore()
        assert [status(e) for e in end.events(1)] == ["fail"]
        _what, why = end.runtime.failure
        if climbed:
            assert (
                f"order store not the one robot {robot} traded on: the run has read up to "
                f"trade {trade_id} of order {cid}, the store's trade {trade_id} of {robot} is "
            ) in why, why
        else:
            assert (
                f"order store behind robot {robot}: the run has read up to trade id "
                f"{trade_id} and order-event id {event_id}, the store's highest of {robot} "
                "are 0 and 0"
            ) in why
        assert store.new_requests()[0] == []  # nothing the robot wrote to the recreated store
    finally:
        end.close()
        store.close()
        proxy.close()


def test_a_fill_the_socket_brought_before_the_store_has_it_fails_no_reconnect(pg_url):
    """On the fast path a fill comes over the socket before the exchange's writer
    writes it -- longer while the store is away (it retries up to 5 s apart).
    The trade the store must hold on a reconnect is one the store gave the run:
    not that one, or the run failed on a store that was only behind its writer."""
    import zmq

    from roboframe.builtin.zmqgw import FastGateway
    from roboframe.core import codec
    from roboframe.testing.helpers import answer_robot, free_port

    proxy, proxied = proxied_url(pg_url)
    robot, cid = "restored-writer-behind", "restored-writer-behind-r1-1"
    store = open_store(pg_url)
    store.setup()
    address = f"tcp://127.0.0.1:{free_port()}"
    exchange = zmq.Context.instance().socket(zmq.ROUTER)
    exchange.setsockopt(zmq.LINGER, 0)
    exchange.bind(address)
    params = {"url": proxied, "poll_ms": 200, "address": address}
    end = RunningTradeStream(FastGateway, params, robot)
    try:
        first = f"{robot}-r1-0"  # a fill the store gave the run: it holds ids
        answer_in_store(store, robot, first, new=True)
        assert [type(e) for e in end.events(2)] == [OrderUpdate, Fill]
        assert wait_for(end.gw.linked, 10), "the loop's link was never made"
        end.gw.submit([NewOrder(cid, "Si", "buy", 1)])
        assert exchange.poll(5000), "the order never came"
        sender, _ = exchange.recv_multipart()
        trade_id, *_ = store.reserve_ids("trades", 1)  # reserved; the writer is behind
        event_id, *_ = store.reserve_ids("order_events", 1)
        answers = [
            OrderUpdate(cid, 1, "accepted", "", str(event_id)),
            Fill(cid, 2, "Si", "buy", 1, 100, str(trade_id), "0"),
        ]
        answer_robot(exchange, sender, codec.encode(answers[0]))
        answer_robot(exchange, sender, codec.encode(answers[1]))
        assert end.events(2) == answers
        proxy.cut()  # the store away, then back: the writer has not written the fill
        assert [e.args.get("status") for e in end.events(1)] == ["down"]
        proxy.restore()
        assert [e.args.get("status") for e in end.events(1, timeout_ms=15_000)] == ["up"]
        assert end.runtime.failure is None
    finally:
        end.close()
        exchange.close(linger=0)
        store.close()
        proxy.close()
