"""The order-store contract, run against every backend: PostgreSQL (the local
server) and MongoDB (pymongo against SecantusDB, with change streams)."""

from __future__ import annotations

import pytest

from roboframe.core.events import Cancel, Fill, NewOrder, OrderUpdate, Replace
from roboframe.store import StoreUnavailable, open_store
from roboframe.testing.helpers import take_notifications


def order(n, robot="alpha", run="r1", qty=1):
    return NewOrder(f"{robot}-{run}-{n}", "Si-12.26", "buy", qty)


def fill(client_id, ts, qty=1, price=100, fee="0"):
    return Fill(client_id, ts, "Si-12.26", "buy", qty, price, "ignored", fee)


@pytest.fixture(params=["pg_url", "mongo_url"])
def url(request):
    return request.getfixturevalue(request.param)


@pytest.fixture
def stores(url):
    robot, exchange = open_store(url), open_store(url)
    robot.setup()
    yield robot, exchange
    robot.close()
    exchange.close()


def woke(store, seconds=2.0) -> bool:
    """A notification arrived within ``seconds`` (polled, as gateways do)."""
    steps = int(seconds / 0.05)
    return any(store.wait(0.05) for _ in range(steps))


def test_insert_is_idempotent_on_client_id(stores):
    robot, exchange = stores
    assert robot.insert_order("alpha", "r1", order(1), 10) is True
    assert robot.insert_order("alpha", "r1", order(1), 11) is False  # a retry: no second order
    orders, _ = exchange.new_requests()
    assert [(o.order.client_id, o.ts, o.robot) for o in orders] == [("alpha-r1-1", 10, "alpha")]


def test_each_robot_hears_and_reads_only_its_own_changes(stores, url):
    robot, exchange = stores
    beta = open_store(url)
    robot.listen_robot("alpha")
    beta.listen_robot("beta")
    robot.insert_order("alpha", "r1", order(1), 1)
    exchange.record_update("alpha", OrderUpdate("alpha-r1-1", 2, "accepted"))
    exchange.record_fill("alpha", fill("alpha-r1-1", 3, fee="2"))
    assert woke(robot)
    assert not woke(beta, 0.3)
    fills, updates = robot.changes_after("alpha", "alpha-r1-", 0, 0)
    ((event_id, update),) = updates
    ((trade_id, got),) = fills
    assert update == OrderUpdate("alpha-r1-1", 2, "accepted", "", str(event_id))
    assert got == Fill("alpha-r1-1", 3, "Si-12.26", "buy", 1, 100, str(trade_id), "2")
    assert robot.changes_after("alpha", "alpha-r1-", trade_id, event_id) == ([], [])
    assert beta.changes_after("beta", "beta-r1-", 0, 0) == ([], [])
    beta.close()


def test_changes_are_filtered_by_run_and_resume_without_repeats(stores):
    robot, exchange = stores
    for n in (1, 2):
        robot.insert_order("alpha", "r1", order(n), n)
    robot.insert_order("alpha", "r2", order(1, run="r2"), 5)
    for client_id in ("alpha-r1-1", "alpha-r1-2", "alpha-r2-1"):
        exchange.record_fill("alpha", fill(client_id, 9))
    fills, _ = robot.changes_after("alpha", "alpha-r1-", 0, 0)
    assert [f.client_id for _, f in fills] == ["alpha-r1-1", "alpha-r1-2"]
    assert robot.changes_after("alpha", "alpha-r1-", fills[0][0], 0)[0] == fills[1:]
    assert robot.changes_after("alpha", "alpha-r_-", 0, 0) == ([], [])  # '_' is literal


def test_order_status_follows_updates_and_fills(stores):
    robot, exchange = stores
    robot.insert_order("alpha", "r1", order(1, qty=3), 1)
    robot.insert_order("alpha", "r1", order(2), 1)
    exchange.record_many(
        [
            ("alpha", OrderUpdate("alpha-r1-1", 2, "accepted")),
            ("alpha", fill("alpha-r1-1", 3, qty=2)),
        ]
    )
    assert [(o.order.client_id, o.status, o.filled) for o in exchange.open_orders()] == [
        ("alpha-r1-1", "accepted", 2),
        ("alpha-r1-2", "new", 0),
    ]
    assert [o.order.client_id for o in exchange.new_requests()[0]] == ["alpha-r1-2"]
    exchange.record_fill("alpha", fill("alpha-r1-1", 4))
    exchange.record_update("alpha", OrderUpdate("alpha-r1-2", 5, "rejected", "no"))
    assert exchange.open_orders() == []


def order_states(store) -> dict[str, tuple[str, int]]:
    """client id -> (status, filled) of every order, read the backend's own way."""
    if hasattr(store, "db"):  # MongoDB
        docs = store.db.orders.find({}, {"client_id": 1, "status": 1, "filled": 1})
        return {d["client_id"]: (d["status"], d["filled"]) for d in docs}
    rows = store.conn.execute("SELECT client_id, status, filled FROM rf_orders").fetchall()
    return {cid: (status, filled) for cid, status, filled in rows}


def test_a_batch_leaves_each_order_as_item_by_item_writes_would(stores):
    """``record_many`` may settle an order once for a run of its items (PostgreSQL
    does): the outcome is still that of applying them one by one -- a fill that
    completes the order makes it filled, an event moves only a new or accepted
    order on, and runs of different orders interleave."""
    robot, exchange = stores
    for n, qty in ((1, 3), (2, 2), (3, 2), (4, 1), (5, 2), (6, 1), (7, 1)):
        robot.insert_order("alpha", "r1", order(n, qty=qty), 1)
    a = [f"alpha-r1-{n}" for n in range(8)]
    exchange.record_many(
        [
            ("alpha", OrderUpdate(a[1], 2, "accepted")),
            ("alpha", fill(a[1], 3, qty=1)),
            ("alpha", OrderUpdate(a[1], 4, "cancelled")),  # the rest cancelled
            ("alpha", OrderUpdate(a[2], 2, "accepted")),
            ("alpha", fill(a[2], 3, qty=2)),  # complete
            ("alpha", fill(a[3], 3, qty=1)),  # partly, never acknowledged
            ("alpha", OrderUpdate(a[4], 2, "rejected", "risk")),
            ("alpha", OrderUpdate(a[5], 2, "accepted")),
            ("alpha", OrderUpdate(a[6], 2, "accepted")),
            ("alpha", fill(a[5], 3, qty=1)),  # a[5] again, after a[6]
            ("alpha", OrderUpdate(a[7], 2, "cancelled")),
            ("alpha", OrderUpdate(a[7], 3, "accepted")),  # too late: stays cancelled
        ]
    )
    assert order_states(exchange) == {
        a[1]: ("cancelled", 1),
        a[2]: ("filled", 2),
        a[3]: ("new", 1),
        a[4]: ("rejected", 0),
        a[5]: ("accepted", 1),
        a[6]: ("accepted", 0),
        a[7]: ("cancelled", 0),
    }
    exchange.record_many([("alpha", fill(a[5], 4, qty=1)), ("alpha", fill(a[3], 4, qty=1))])
    assert order_states(exchange)[a[5]] == ("filled", 2)
    assert order_states(exchange)[a[3]] == ("filled", 2)
    fills, updates = robot.changes_after("alpha", "alpha-r1-", 0, 0)
    assert len(fills) == 6 and len(updates) == 8  # every item is a row of its own


@pytest.mark.parametrize("refusal", ["cancel_rejected", "rejected"])
@pytest.mark.parametrize("batch", [True, False], ids=["record_many", "record_update"])
def test_a_refused_cancel_leaves_a_live_order_open(stores, refusal, batch):
    """A bridge that refuses a cancel (the order is in an auction, say) answers
    ``cancel_rejected``; one that says ``rejected`` instead is taken as meaning
    that too once the order is accepted. Either way the order is live: it stays
    open in the store, where ``roboframe orders``, cancel-on-error and the
    exchange side read it. Only a new order is rejected."""
    robot, exchange = stores
    for n in (1, 2, 3):
        robot.insert_order("alpha", "r1", order(n), 1)
    a = [f"alpha-r1-{n}" for n in range(4)]
    items = [
        ("alpha", OrderUpdate(a[1], 2, "accepted")),
        ("alpha", OrderUpdate(a[1], 3, refusal, "cancel refused")),
        ("alpha", OrderUpdate(a[2], 2, "accepted")),
        ("alpha", OrderUpdate(a[3], 2, "rejected", "no margin")),
    ]
    if batch:
        exchange.record_many(items[:2])  # accepted and refused in one call
        exchange.record_many(items[2:3])
        exchange.record_many([("alpha", OrderUpdate(a[2], 3, refusal, "cancel refused"))])
        exchange.record_many(items[3:])
    else:
        for robot_name, update in items[:3]:
            exchange.record_update(robot_name, update)
        exchange.record_update("alpha", OrderUpdate(a[2], 3, refusal, "cancel refused"))
        exchange.record_update(*items[3])
    states = order_states(exchange)
    assert states[a[1]] == ("accepted", 0)
    assert states[a[2]] == ("accepted", 0)
    assert states[a[3]] == ("rejected", 0)
    assert sorted(o.order.client_id for o in exchange.open_orders()) == [a[1], a[2]]
    _, updates = robot.changes_after("alpha", "alpha-r1-", 0, 0)
    assert sum(u.status == refusal for _, u in updates) == 2 + (refusal == "rejected")


def test_cancel_requests_wake_the_exchange_until_handled(stores):
    robot, exchange = stores
    exchange.listen_exchange()
    robot.insert_order("alpha", "r1", order(1), 1)
    robot.request_cancel("alpha", "alpha-r1-1", 2)
    assert woke(exchange)
    orders, cancels = exchange.new_requests()
    assert len(orders) == 1 and [(c[1], c[2]) for c in cancels] == [("alpha", Cancel("alpha-r1-1"))]
    exchange.record_update("alpha", OrderUpdate("alpha-r1-1", 3, "accepted"))
    exchange.mark_handled([cancels[0][0]])
    assert exchange.new_requests() == ([], [])
    _, updates = robot.changes_after("alpha", "alpha-r1-", 0, 0)
    assert [u.status for _, u in updates] == ["accepted"]  # never its own cancel request


def test_replace_requests_reach_the_exchange_side_in_order_and_never_the_robot(stores):
    """A replace request is a row like a cancel request, with the new qty and
    price: the exchange side is woken for it and reads it among the cancels in
    the order they were written, until it marks it handled; the robot's own
    change feed and reads never carry it. (A robot name of its own: PostgreSQL's
    notification channels span the schemas of a database, which other tests
    may be writing.)"""
    robot, exchange = stores
    name, prefix = "requester", "requester-r1-"
    cid = f"{prefix}1"
    robot.listen_robot(name)
    exchange.listen_exchange()
    robot.changes_after(name, prefix, 0, 0)  # reads: from here, takes are trusted
    exchange.new_requests()
    robot.insert_order(name, "r1", NewOrder(cid, "Si-12.26", "buy", 2, "limit", 90), 1)
    robot.request_replace(name, cid, 3, 95, 2)
    robot.request_cancel(name, cid, 3)
    assert take_notifications(exchange)
    pushed = exchange.pushed_requests()
    assert pushed == exchange.new_requests()
    requests = [r for r in pushed[1] if r[1] == name]
    assert [r[1:] for r in requests] == [(name, Replace(cid, 3, 95)), (name, Cancel(cid))]
    assert requests[0][0] < requests[1][0]
    exchange.mark_handled([ref for ref, _, _ in requests])
    assert exchange.new_requests()[1] == []
    assert not woke(robot, 0.5)
    assert robot.pushed_changes(name, prefix) == []
    assert robot.changes_after(name, prefix, 0, 0) == ([], [])


def test_a_replace_that_took_effect_changes_the_order_row_and_its_answers_not_the_status(stores):
    """Written right before its ``replaced`` update, a replace gives a new or
    accepted order row its qty and price (a fill then completes it at the new
    qty); the answers to replaces are history rows that leave the status as it
    is; a finished order is never changed."""
    robot, exchange = stores
    a = [f"alpha-r1-{n}" for n in range(4)]
    for n in (1, 2, 3):
        robot.insert_order("alpha", "r1", NewOrder(a[n], "Si-12.26", "buy", 2, "limit", 90), 1)
    exchange.record_many(
        [
            ("alpha", OrderUpdate(a[1], 2, "accepted")),
            ("alpha", fill(a[1], 3, qty=1)),
            ("alpha", Replace(a[1], 4, 95)),
            ("alpha", OrderUpdate(a[1], 4, "replaced")),
            ("alpha", fill(a[1], 5, qty=2)),  # 3 of 4: still open
            ("alpha", OrderUpdate(a[2], 2, "replace_rejected", "replace: no")),  # while new
            ("alpha", OrderUpdate(a[3], 2, "accepted")),
            ("alpha", fill(a[3], 3, qty=2)),  # filled: a replace comes too late
            ("alpha", Replace(a[3], 5, 95)),
        ]
    )
    exchange.record_replace("alpha", Replace(a[2], 3, 91))
    exchange.record_update("alpha", OrderUpdate(a[2], 3, "replaced"))
    rows = {s.order.client_id: (s.order.qty, s.order.price, s.status, s.filled)
            for s in exchange.open_orders()}  # fmt: skip
    assert rows == {a[1]: (4, 95, "accepted", 3), a[2]: (3, 91, "new", 0)}
    assert order_states(exchange)[a[3]] == ("filled", 2)
    exchange.record_many([("alpha", fill(a[1], 6, qty=1))])
    assert order_states(exchange)[a[1]] == ("filled", 4)
    _, updates = robot.changes_after("alpha", "alpha-r1-", 0, 0)
    assert [u.status for _, u in updates].count("replaced") == 2


def test_notifications_carry_what_a_read_would_give(stores):
    """Both backends' notifications carry whole rows/documents: what a listener
    takes from them is what reading the store gives, in the order they came; the
    first take after connecting, and a take with nothing trusted, say "read"."""
    robot, exchange = stores
    robot.listen_robot("alpha")
    exchange.listen_exchange()
    for store in (robot, exchange):
        store.wait(0.05)
    assert robot.pushed_changes("alpha", "alpha-r1-") is None  # just connected
    assert exchange.pushed_requests() is None
    robot.changes_after("alpha", "alpha-r1-", 0, 0)  # a read: from here, takes are trusted
    exchange.new_requests()
    robot.insert_order("alpha", "r1", order(1, qty=2), 10)
    robot.request_cancel("alpha", "alpha-r1-1", 11)
    assert take_notifications(exchange)
    assert exchange.pushed_requests() == exchange.new_requests()
    exchange.record_many(
        [
            ("alpha", OrderUpdate("alpha-r1-1", 12, "accepted")),
            ("alpha", fill("alpha-r1-1", 13, qty=1, price=100, fee="0.25")),
            ("alpha", fill("alpha-r1-1", 14, qty=1, price=101)),
            ("beta", OrderUpdate("beta-r1-1", 15, "accepted")),  # another robot's
        ]
    )
    assert take_notifications(robot)
    pushed = robot.pushed_changes("alpha", "alpha-r1-")
    fills, updates = robot.changes_after("alpha", "alpha-r1-", 0, 0)
    assert [type(e).__name__ for _, e in pushed] == ["OrderUpdate", "Fill", "Fill"]
    assert [p for p in pushed if type(p[1]) is Fill] == fills
    assert [p for p in pushed if type(p[1]) is OrderUpdate] == updates
    assert robot.pushed_changes("alpha", "alpha-r1-") == []  # taken once


def test_a_change_makes_the_store_socket_readable(stores):
    """Gateways poll ``fileno()`` next to their ZeroMQ sockets: both backends have
    one (PostgreSQL's connection; MongoDB's change-stream watcher pipe), quiet
    until a change comes, readable at once when it does."""
    import select

    robot, exchange = stores
    exchange.listen_exchange()
    fd = exchange.fileno()
    assert fd is not None
    while exchange.wait(0):
        pass
    assert select.select([fd], [], [], 0.3)[0] == []  # nothing happened
    robot.insert_order("alpha", "r1", order(1), 1)
    assert select.select([fd], [], [], 3.0)[0] == [fd]
    assert exchange.wait(0)


@pytest.mark.parametrize("engine_ids", ["", "P"])
def test_a_write_retried_after_its_answer_was_lost_writes_nothing_twice(stores, engine_ids):
    """The write went through but its answer never came (the connection died):
    the retry writes the same rows under the ids they were given, and they are
    no-ops -- no second trade, no fill counted twice, no error. The store-path
    exchange hands the paper engine's fills over with the engine's own trade
    ids ("P1"): those are no store ids, and each attempt took a new one (two
    trades, an order filled 4 of 2)."""
    from roboframe.storewriter import write_items

    robot, exchange = stores
    exchange.setup()
    cid = "alpha-r1-1"
    robot.insert_order("alpha", "r1", order(1, qty=3), 1)
    first, second = (f"{engine_ids}{n}" if engine_ids else "" for n in (1, 2))
    items = [
        ("alpha", OrderUpdate(cid, 2, "accepted")),
        ("alpha", Fill(cid, 3, "Si-12.26", "buy", 1, 100, first, "0")),
        ("alpha", Fill(cid, 4, "Si-12.26", "buy", 1, 101, second, "0")),
    ]
    real = exchange.record_many

    def answer_lost(batch):
        real(batch)
        raise StoreUnavailable("connection lost")

    exchange.record_many = answer_lost
    with pytest.raises(StoreUnavailable):
        write_items(exchange, items)
    exchange.record_many = real
    assert [item.ts for _, item in items] == [2, 3, 4]  # all of it is retried ...
    given = [item.trade_id for _, item in items[1:]]  # ... under the ids it got
    write_items(exchange, items)
    assert items == []
    fills, updates = robot.changes_after("alpha", "alpha-r1-", 0, 0)
    assert [f.price for _, f in fills] == [100, 101]
    assert [str(ref) for ref, _ in fills] == given
    assert [update.status for _, update in updates] == ["accepted"]
    (stored,) = exchange.open_orders()  # two of three lots: open, each fill counted once
    assert (stored.order.client_id, stored.status, stored.filled) == (cid, "accepted", 2)


def test_a_robot_runs_against_a_store_once(stores, url):
    """Two processes of one robot (two hosts, two supervisors) would both trade
    the same account: the robot's lock on the store lets one have it, other
    robots are not held up, and a clean exit frees it."""
    from roboframe.testing.helpers import wait_for

    first, other = stores
    assert first.take_robot_lock("alpha", "r1")
    assert not other.take_robot_lock("alpha", "r2")
    assert other.take_robot_lock("beta", "r2")
    first.keep_robot_lock()  # renewing a held lock is quiet
    first.close()
    assert wait_for(lambda: other.take_robot_lock("alpha", "r2"), timeout=5)


def test_an_order_the_exchange_took_is_stamped_when_written(stores):
    """The fast path's order rows, written behind by the exchange's store writer,
    had ts 0: in the source of truth, no time for hundreds of orders."""
    import time

    _robot, exchange = stores
    before = time.time_ns()
    if exchange.records_orders:  # PostgreSQL: with the answers, in one rf_record
        exchange.record_many([("alpha", order(1))])
    else:
        exchange.insert_taken_order("alpha", "r1", order(1))
    if hasattr(exchange, "db"):  # MongoDB
        ts = exchange.db.orders.find_one({"client_id": "alpha-r1-1"})["ts"]
    else:
        ts = exchange.conn.execute("SELECT ts FROM rf_orders WHERE client_id = 'alpha-r1-1'")
        ts = ts.fetchone()[0]
    assert before <= ts <= time.time_ns()
