"""The PostgreSQL order store against a real server (fixture: pg_url)."""

from __future__ import annotations

import threading

import pytest
from roboframe_postgres.store import PgStore, robot_channel

from roboframe.store import StoreUnavailable, open_store


def test_scheme_selects_the_backend(pg_url):
    store = open_store(pg_url)
    assert isinstance(store, PgStore)
    store.close()


def test_concurrent_setup_is_safe(pg_url):
    errors = []

    def setup():
        try:
            store = open_store(pg_url)
            store.setup()
            store.close()
        except Exception as exc:  # pragma: no cover - the assertion reports it
            errors.append(exc)

    threads = [threading.Thread(target=setup) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert errors == []


def test_unreachable_server_is_store_unavailable():
    with pytest.raises(StoreUnavailable):
        PgStore("postgresql://postgres@127.0.0.1:1/test")


def test_channel_names_are_valid_identifiers():
    assert robot_channel("si-trend.v2") == robot_channel("si-trend.v2")
    assert robot_channel("a").startswith("rf_robot_") and len(robot_channel("a")) == 25


def test_a_user_without_rights_gets_a_clear_error_not_a_traceback(pg_url):
    """A store user that may not create the tables (a common production setup)
    gets a ConfigError naming the schema and what to grant."""
    import uuid
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    from roboframe.errors import ConfigError

    open_store(pg_url).close()  # the schema exists, owned by the admin
    role = f"rf_weak_{uuid.uuid4().hex[:8]}"
    admin_url = pg_url.split("?")[0]
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN")
        try:
            parts = urlsplit(pg_url)
            host = parts.netloc.rsplit("@", 1)[-1]
            weak = urlunsplit(parts._replace(netloc=f"{role}@{host}"))
            with pytest.raises(ConfigError, match=r"permission denied.*GRANT CREATE"):
                store = PgStore(weak)
                store.setup()
        finally:
            admin.execute(f"DROP ROLE {role}")


def test_record_many_writes_order_rows_too_all_or_nothing(pg_url):
    """The fast path's writer hands the order row, its update and its trade over
    in one call: one transaction, so a failing batch leaves nothing behind and
    the writer's retry repeats nothing."""
    import psycopg

    from roboframe.core.events import Fill, NewOrder, OrderUpdate

    store, exchange = open_store(pg_url), open_store(pg_url)
    store.setup()
    exchange.listen_exchange()
    trade, event = store.reserve_ids("trades", 1)[0], store.reserve_ids("order_events", 1)[0]
    cid = "alpha-r7-1"
    store.record_many(
        [
            ("alpha", NewOrder(cid, "Si-12.26", "buy", 2, "limit", 101)),
            ("alpha", OrderUpdate(cid, 5, "accepted", "", str(event))),
            ("alpha", Fill(cid, 6, "Si-12.26", "buy", 2, 101, str(trade), "0.5")),
        ]
    )
    rows = store.conn.execute(
        "SELECT robot, run_id, side, qty, type, price, status, filled FROM rf_orders "
        "WHERE client_id = %s",
        (cid,),
    ).fetchall()
    assert rows == [("alpha", "r7", "buy", 2, "limit", 101, "filled", 2)]
    assert not exchange.wait(0.3)  # the exchange took it over ZeroMQ: not woken for it
    store.insert_order("alpha", "r7", NewOrder("alpha-r7-9", "Si-12.26", "buy", 1), 1)
    assert exchange.wait(3)  # a robot's own insert (the store path) still wakes it
    exchange.close()
    fills, updates = store.changes_after("alpha", "alpha-r7-", 0, 0)
    assert [ref for ref, _ in fills] == [trade] and [ref for ref, _ in updates] == [event]
    with pytest.raises(psycopg.errors.NumericValueOutOfRange):  # a bad row: refused whole
        store.record_many(
            [
                ("alpha", NewOrder("alpha-r7-2", "Si-12.26", "sell", 1)),
                ("alpha", NewOrder(cid, "Si-12.26", "buy", 2, "limit", 101)),  # a retry: no-op
                ("alpha", Fill("alpha-r7-2", 7, "Si-12.26", "sell", 2**70, 100, "", "0")),
            ]
        )
    count = "SELECT count(*) FROM rf_orders WHERE client_id = 'alpha-r7-2'"
    assert store.conn.execute(count).fetchone() == (0,)  # rolled back with the batch
    store.close()


def test_the_highest_ids_of_a_robot_are_its_own_rows(pg_url):
    """What a resumed run's journal is checked against: the robot's highest trade
    and order-event ids (requests it wrote included), of any run, not another
    robot's; below ids the robot holds, the store is behind."""
    from roboframe.core.events import Fill, NewOrder, OrderUpdate
    from roboframe.store.base import StoreBehind

    store = open_store(pg_url)
    store.setup()
    assert store.highest_ids("alpha") == (0, 0)
    cid = "alpha-r1-1"
    store.insert_order("alpha", "r1", NewOrder(cid, "Si-12.26", "buy", 2), 1)
    store.record_many(
        [
            ("alpha", OrderUpdate(cid, 2, "accepted")),
            ("alpha", Fill(cid, 3, "Si-12.26", "buy", 1, 100, "", "0")),
            ("beta", Fill("beta-r1-1", 4, "Si-12.26", "buy", 1, 100, "", "0")),
        ]
    )
    store.request_cancel("alpha", cid, 5)
    trades = store.conn.execute("SELECT robot, id FROM rf_trades ORDER BY id").fetchall()
    events = store.conn.execute("SELECT max(id) FROM rf_order_events").fetchone()[0]
    assert store.highest_ids("alpha") == (trades[0][1], events)
    store.check_not_behind("alpha", trades[0][1], events, "its journal holds")
    with pytest.raises(StoreBehind, match=r"robot alpha: its journal holds trade id \d+ and"):
        store.check_not_behind("alpha", trades[1][1], events, "its journal holds")
    store.close()


def test_a_row_under_a_reserved_id_where_another_row_is_raises(pg_url):
    """rf_record writes a row under a reserved id as a no-op when that id is there:
    right for a retry, which writes the very row again; another row there means
    the ids restarted below the rows, and the write was lost without a word."""
    from roboframe.core.events import Fill, NewOrder, OrderUpdate
    from roboframe.store.base import StoreIdClash

    store = open_store(pg_url)
    store.setup()
    trade, event = store.reserve_ids("trades", 1)[0], store.reserve_ids("order_events", 1)[0]
    cid = "alpha-r1-1"
    written = [
        ("alpha", NewOrder(cid, "Si-12.26", "buy", 2)),
        ("alpha", OrderUpdate(cid, 2, "accepted", "", str(event))),
        ("alpha", Fill(cid, 3, "Si-12.26", "buy", 1, 100, str(trade), "0")),
    ]
    store.record_many(written)
    store.record_many(written)  # a retry: nothing happens
    filled = "SELECT status, filled FROM rf_orders WHERE client_id = %s"
    assert store.conn.execute(filled, (cid,)).fetchone() == ("accepted", 1)
    other = [  # the same order and price, a later fill: not a retry
        ("alpha", Fill(cid, 9, "Si-12.26", "buy", 1, 100, str(trade), "0")),
    ]
    with pytest.raises(StoreIdClash, match=rf"trade id {trade} is another trade's \({cid} buy"):
        store.record_many(other)
    clash = [("beta", OrderUpdate("beta-r1-1", 2, "accepted", "", str(event)))]
    with pytest.raises(StoreIdClash, match=rf"order event id {event} is another order event's"):
        store.record_many(clash)
    assert store.conn.execute(filled, (cid,)).fetchone() == ("accepted", 1)
    store.close()


def test_a_version_7_store_gets_the_rf_record_that_refuses_a_clash(pg_url):
    """A store made before version 8 records over another row in silence: the next
    setup replaces its rf_record."""
    from roboframe_postgres.store import SCHEMA_VERSION

    from roboframe.core.events import Fill
    from roboframe.store.base import StoreIdClash

    old = open_store(pg_url)
    old.setup()
    old.conn.execute(
        "CREATE OR REPLACE FUNCTION rf_record(items jsonb) RETURNS void AS $$ BEGIN END $$ "
        "LANGUAGE plpgsql; CREATE OR REPLACE FUNCTION rf_schema_version() RETURNS integer "
        "AS 'SELECT 7' LANGUAGE sql"
    )
    store = open_store(pg_url)
    store.setup()  # upgrades
    assert store.conn.execute("SELECT rf_schema_version()").fetchone() == (SCHEMA_VERSION,)
    (trade,) = store.reserve_ids("trades", 1)
    store.record_many([("alpha", Fill("alpha-r1-1", 3, "Si-12.26", "buy", 1, 100, str(trade)))])
    with pytest.raises(StoreIdClash):
        old.record_many([("beta", Fill("beta-r1-1", 3, "Si-12.26", "buy", 1, 100, str(trade)))])
    old.close()
    store.close()
