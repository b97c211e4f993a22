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
