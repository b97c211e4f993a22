"""The order-store base's hold of notifications that carry rows: what a take
gives, and when it says "read the store" (None) instead."""

from __future__ import annotations

from roboframe.store.base import MAX_HELD, OrderStore


class Rows(OrderStore):
    """Notifications are dicts; a row without "id" is malformed."""

    def _changes_in(self, notes, robot, prefix):
        return [(row["id"], row) for row in notes if row["robot"] == robot]


def test_a_take_gives_what_came_once_and_says_read_when_it_cannot_trust_it():
    store = Rows("test://")
    store._hold([{"id": 1, "robot": "a"}])
    assert store.pushed_changes("a", "") is None  # just connected: what came before is unknown
    store._read_covers_held()
    store._hold([{"id": 2, "robot": "a"}, {"id": 3, "robot": "b"}])
    assert store.pushed_changes("a", "") == [(2, {"id": 2, "robot": "a"})]
    assert store.pushed_changes("a", "") == []  # taken once
    store._hold([{"robot": "a"}])
    assert store.pushed_changes("a", "") is None  # a row we do not know: read instead
    store._hold({"id": i, "robot": "a"} for i in range(MAX_HELD + 1))
    assert store.pushed_changes("a", "") is None  # too many held: some were dropped
    store._hold([{"id": 5, "robot": "a"}])
    store._missed()  # a new connection
    assert store.pushed_changes("a", "") is None
    plain = OrderStore("test://")  # a backend whose notifications carry no rows
    plain._read_covers_held()
    plain._hold(["woken"])
    assert plain.pushed_requests() is None and plain.pushed_changes("a", "") is None


def test_pending_says_whether_a_take_has_work_whatever_the_socket_says():
    store = Rows("test://")
    assert store.pending()  # just connected: a read is due
    assert store.pushed_changes("a", "") is None
    assert not store.pending()
    store._hold([{"id": 1, "robot": "a"}])  # what wait() took: the socket is drained
    assert store.pending()
    assert store.pending()  # held until a take
    assert store.pushed_changes("a", "") == [(1, {"id": 1, "robot": "a"})]
    assert not store.pending()
    store._hold({"id": i, "robot": "a"} for i in range(MAX_HELD + 1))
    assert store.pending()  # too many: dropped, so a read is due
    assert store.pushed_changes("a", "") is None
    assert not store.pending()


def test_a_store_without_a_socket_is_asked_whether_it_was_notified():
    class Polled(Rows):  # fileno() is None: loops poll it by time
        came = False

        def wait(self, timeout):
            came, self.came = self.came, False
            return came

    store = Polled("test://")
    assert store.notified(False)  # just connected: a read is due
    store.pushed_changes("a", "")
    assert not store.notified(True)  # no socket: what the poll saw does not count
    store.came = True
    assert store.notified(False)
