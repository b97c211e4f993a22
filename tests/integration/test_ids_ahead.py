"""The exchange's answer ids, reserved ahead in a real PostgreSQL store."""

from __future__ import annotations

import pytest

from roboframe.store.base import ID_BLOCK, StoreUnavailable, open_store
from roboframe.store.ids import IdsAhead
from roboframe.testing.helpers import wait_for


@pytest.fixture
def ahead(pg_url):
    store = open_store(pg_url)
    store.setup()
    made = []

    def make(url=pg_url):
        ids = IdsAhead(url)
        ids.start()
        made.append(ids)
        return ids

    yield make
    for ids in made:
        ids.close()
    store.close()


def test_ids_come_increasing_across_blocks_and_are_the_stores(ahead, pg_url):
    """Taken in any sizes, past several blocks, the ids only grow (readers read
    "after id N"), and each is reserved in the store: what the store gives next,
    to anyone, is above them all."""
    ids = ahead()
    taken = []
    for n in (1, 3, ID_BLOCK, 0, 2 * ID_BLOCK + 5, 1):
        got = ids.take("trades", n)
        assert len(got) == n
        taken += got
    assert taken == sorted(set(taken))
    events = ids.take("order_events", ID_BLOCK + 1)
    assert events == sorted(set(events))
    store = open_store(pg_url)
    try:
        assert store.reserve_ids("trades", 1)[0] > taken[-1]
        assert store.reserve_ids("order_events", 1)[0] > events[-1]
    finally:
        store.close()


def test_a_block_is_topped_up_before_it_runs_out(ahead):
    """The exchange's thread takes ids from memory: a reservation commits a
    sequence's advance, flushed to disk before the store answers, and taken on
    that thread it stalled one order in every few dozen by milliseconds. A take
    that leaves the block at its low mark has the block topped up behind it."""
    ids = ahead()
    assert wait_for(lambda: ids.held("trades") >= ID_BLOCK, 10)
    ids.take("trades", ids.held("trades") - ids.low)  # down to the mark, none waited for
    assert wait_for(lambda: ids.held("trades") > ids.low, 10)


def test_a_take_with_the_store_away_fails_with_its_reason(ahead):
    """No store: a take that finds nothing reserved raises StoreUnavailable (the
    exchange then waits out the outage, its answers kept), naming why."""
    ids = ahead("postgresql://postgres@127.0.0.1:1/test?connect_timeout=1")
    with pytest.raises(StoreUnavailable, match=r"no trades ids reserved: .+"):
        ids.take("trades", 1)


def test_a_store_not_set_up_yet_is_tried_again_until_it_is(ahead, pg_url):
    """An error that is no outage (the tables not made yet) killed the thread, and
    every take after it waited in vain: it is said and tried again, like an
    outage, and the ids come once the store can give them."""
    import psycopg

    late = pg_url + "_late"  # a schema of its own, with no tables yet
    ids = ahead(late)
    try:
        with pytest.raises(StoreUnavailable, match=r"no trades ids reserved: .+"):
            ids.take("trades", 1)
        store = open_store(late)
        store.setup()
        store.close()
        assert wait_for(lambda: ids.held("trades") > 0, 10)
        assert len(ids.take("trades", 2)) == 2
    finally:
        ids.close()
        with psycopg.connect(pg_url.partition("?")[0], autocommit=True) as admin:
            schema = late.rpartition("schema=")[2]
            admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
