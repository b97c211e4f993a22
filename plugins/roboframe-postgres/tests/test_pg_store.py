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
