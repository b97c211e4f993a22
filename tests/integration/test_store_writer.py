"""The exchange's store writer process, against real stores: everything it is
given reaches the store in order, a stop writes what it holds, an exchange
that dies still gets its items written, and a writer that dies stops the
exchange loudly instead of leaving the store silently behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
import zmq

from roboframe.core.events import Fill, NewOrder, OrderUpdate
from roboframe.store import open_store
from roboframe.storewriter import StoreWriterProcess, WriterDied
from roboframe.testing.helpers import free_port


@pytest.fixture(params=["pg_url", "mongo_url"])
def url(request):
    store_url = request.getfixturevalue(request.param)
    store = open_store(store_url)
    store.setup()
    store.close()
    return store_url


def items(robot: str, n: int, first_id: int = 1000) -> list[tuple]:
    """n orders of ``robot``, each accepted and filled, under reserved-looking ids."""
    out = []
    for i in range(1, n + 1):
        cid = f"{robot}-r1-{i}"
        out.append((robot, NewOrder(cid, "Si-12.26", "buy", 1)))
        out.append((robot, OrderUpdate(cid, i, "accepted", "", str(first_id + i))))
        out.append((robot, Fill(cid, i, "Si-12.26", "buy", 1, 100 + i, str(first_id + i), "0")))
    return out


def stored(url: str, robot: str) -> tuple[list[str], list[str]]:
    store = open_store(url)
    try:
        fills, updates = store.changes_after(robot, f"{robot}-r1-", 0, 0)
    finally:
        store.close()
    return [f.client_id for _, f in fills], [u.client_id for _, u in updates]


def test_everything_given_is_written_in_order_and_stop_drains(url):
    ctx = zmq.Context()
    writer = StoreWriterProcess(url, ctx)
    writer.start()
    try:
        for item in items("alpha", 50):
            writer.put([item])
        writer.stop(30)  # returns once everything is written
        assert writer.proc.returncode == 0
        fills, updates = stored(url, "alpha")
        expected = [f"alpha-r1-{i}" for i in range(1, 51)]
        assert fills == expected and updates == expected
        assert not os.path.exists(writer.folder)  # its ipc folder is cleaned up
    finally:
        ctx.term()


def test_a_writer_outlives_a_killed_exchange_long_enough_to_write(url, tmp_path):
    """The exchange is SIGKILLed right after handing items over (once its writer
    is up: what a dead process never sent is gone with it): the writer (its own
    session, so the kill does not reach it) writes them, then exits."""
    script = tmp_path / "exchange.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys, time, zmq
            sys.path.insert(0, {os.getcwd()!r})
            from roboframe.storewriter import StoreWriterProcess
            from tests.integration.test_store_writer import items
            from roboframe.store import open_store
            ctx = zmq.Context()
            writer = StoreWriterProcess({url!r}, ctx)
            writer.start()
            warm = items("bravo", 31)
            writer.put(warm[:1])  # the writer is up once this order row is in the store
            store = open_store({url!r})
            while not store.open_orders():
                time.sleep(0.02)
            for item in warm[1:]:
                writer.put([item])
            writer.push.close(linger=10_000)
            ctx.term()  # returns once the items have left this process's socket
            print(writer.proc.pid, flush=True)
            time.sleep(60)
            """
        )
    )
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        writer_pid = int(parent.stdout.readline())  # the items have left the exchange
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and _alive(writer_pid):
        time.sleep(0.1)
    assert not _alive(writer_pid), "the orphaned writer did not exit"
    fills, updates = stored(url, "bravo")
    assert len(fills) == 31 and len(updates) == 31


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by init) counts as gone
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_dead_writer_stops_the_exchange_with_a_clear_error(pg_url):
    from roboframe.exchange import ExchangeProcess

    exchange = ExchangeProcess(
        pg_url, "tcp://127.0.0.1:1", orders_address=f"tcp://127.0.0.1:{free_port()}"
    )
    stop, ready = threading.Event(), threading.Event()
    failure: list[BaseException] = []

    def run():
        try:
            exchange.run(stop, ready)
        except BaseException as exc:  # the test inspects it
            failure.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        assert ready.wait(15)
        exchange.writer.proc.kill()
        thread.join(10)
        assert not thread.is_alive()
    finally:
        stop.set()
        thread.join(10)
    assert failure and isinstance(failure[0], WriterDied)
    assert "store writer ended" in str(failure[0])


def test_a_restarted_exchange_waits_for_the_earlier_writer(url, caplog):
    """An earlier exchange's writer, still writing answers under lower ids, holds
    the store: a new exchange does not serve the fast path (and hand out higher
    ids a robot could read first) until that writer is done."""
    import logging

    from roboframe.exchange import ExchangeProcess

    ctx = zmq.Context()
    earlier = StoreWriterProcess(url, ctx)
    earlier.start()
    store = open_store(url)
    store.setup()
    exchange = ExchangeProcess(
        url, "tcp://127.0.0.1:1", orders_address=f"tcp://127.0.0.1:{free_port()}"
    )
    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(target=exchange.run, args=(stop, ready))
    try:
        earlier.put(items("delta", 1)[:1])  # it connects, takes the lock, writes the row
        deadline = time.monotonic() + 15
        while not store.open_orders():
            assert time.monotonic() < deadline, "the earlier writer never wrote"
            time.sleep(0.05)
        with caplog.at_level(logging.WARNING, logger="roboframe.exchange"):
            thread.start()
            assert not ready.wait(1.5)  # held back while the earlier writer lives
            assert "another store writer is still writing" in caplog.text
            earlier.stop(30)
            assert ready.wait(15)  # and serving once it is done
            assert "the other store writer is done" in caplog.text
    finally:
        stop.set()
        if thread.is_alive():
            thread.join(30)
        earlier.stop(5)
        store.close()
        ctx.term()


def test_a_row_of_another_trade_under_a_reserved_id_stops_the_writer_loudly(url, capfd):
    """A store restored or recreated under a running exchange holds rows at the
    ids the exchange reserves: a fill written there was a no-op as if a retry, and
    a different trade was lost without a word. The writer says so and stops, and
    the exchange with it; the very row written again (a retry) stays a no-op."""
    from roboframe.core import codec
    from roboframe.core.events import Bar
    from roboframe.storewriter import write_items
    from tests.integration.exchange import RunningExchange
    from tests.integration.exchange import stored as written

    robot = "clash"
    running = RunningExchange(url, robot=robot)
    store = open_store(url)
    try:
        running.price(Bar("Si", 1, 100, 100, 100, 100))
        running.dealer.send(codec.encode([NewOrder(f"{robot}-r1-1", "Si", "buy", 1)]))
        fill = next(e for e in running.answers(2) if type(e) is Fill)
        assert [f for _, f in written(url, 1, 1, robot=robot)[0]] == [fill]
        write_items(store, [(robot, fill)])  # a retry of the very row: nothing happens
        assert [f for _, f in written(url, 1, 1, robot=robot)[0]] == [fill]
        # another robot's trade where the exchange's next trade id falls
        taken = Fill("other-r9-1", 5, "Si", "sell", 3, 90, str(int(fill.trade_id) + 1), "0")
        write_items(store, [("other", taken)])
        running.dealer.send(codec.encode([NewOrder(f"{robot}-r1-2", "Si", "buy", 1)]))
        deadline = time.monotonic() + 15
        while not running.failure and time.monotonic() < deadline:
            time.sleep(0.1)
        running.thread.join(15)
        assert not running.thread.is_alive(), "the exchange did not stop"
        (failure,) = running.failure
        assert isinstance(failure, WriterDied), failure
        assert "holds other rows under the ids it writes" in str(failure)
        err = capfd.readouterr().err
        assert (
            f"store writer: order store: trade id {taken.trade_id} is another trade's "
            f"(other-r9-1 sell 3 Si at 90, ts 5), not this one's ({robot}-r1-2 buy 1 Si at 100"
        ) in err, err
        # the other trade is as it was; the second fill is not in (the writer stopped)
        fills, _ = store.changes_after("other", "other-", 0, 0)
        assert [f for _, f in fills] == [taken]
        assert [f for _, f in store.changes_after(robot, f"{robot}-", 0, 0)[0]] == [fill]
    finally:
        running.failure.clear()
        running.close()
        store.close()
