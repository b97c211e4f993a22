"""The contract every order-store backend implements."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from roboframe.core.events import Cancel, Fill, NewOrder, OrderUpdate, Replace
from roboframe.errors import ConfigError, RoboframeError

MAX_HELD = 10_000  # notifications kept between two takes; past that, a read instead
ID_BLOCK = 64  # trade and event ids reserve_ids takes from the store at a time, at least
# order-event kinds a robot writes for the exchange side: never forwarded to robots
REQUEST_KINDS = ("cancel_request", "replace_request")
# update statuses that move an order on, each from the statuses it moves it from. An
# order is rejected only before it is accepted: after that, a gateway's "rejected"
# is the refusal of a cancel (from a bridge that does not say cancel_rejected). The
# answers to a replace, and a cancel's refusal, leave the order as it is.
MOVES_FROM = {"accepted": ("new",), "rejected": ("new",), "cancelled": ("new", "accepted")}

Request = tuple[int, str, Cancel | Replace]
"""A pending request as the exchange side sees it: ``(id, robot, action)``."""


_BEHIND_HINT = (
    "hint: restore the newest backup and resume, or check the robot's position and "
    "orders by hand and start a new run without --resume"
)


@dataclass(frozen=True)
class StoredOrder:
    """A row of the orders collection, as the exchange side sees it."""

    id: int
    robot: str
    order: NewOrder
    ts: int
    status: str
    filled: int


class OrderStore:
    """One connection to an order store. Not thread-safe: one per thread.

    Every method may raise :class:`StoreUnavailable` when the store cannot be
    reached; callers retry after :meth:`reconnect`.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._held: list[Any] = []  # notifications wait() took, not yet pushed_*()
        self._blocks: dict[str, list[int]] = {"trades": [], "order_events": []}  # reserved
        self._partial = True  # some may be missing: the next take says "read the store"

    # -- both sides -----------------------------------------------------------

    def setup(self) -> None:
        """Create tables/collections, indexes and triggers if missing."""
        raise NotImplementedError

    def reconnect(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def fileno(self) -> int | None:
        """A socket to poll for notifications, or None to poll by time."""
        return None

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for a change notification; True if one came."""
        raise NotImplementedError

    def pending(self) -> bool:
        """Whether a take has work that polling :meth:`fileno` would not show:
        notifications :meth:`wait` took and no ``pushed_*`` has, or a read that
        is due (just connected, too many held). A loop asks before it blocks
        on the socket. A backend whose client library can read a notification
        along with the reply to a query, so that the socket no longer shows it
        (psycopg does), takes those here too."""
        return bool(self._held) or self._partial

    def notified(self, readable: bool) -> bool:
        """After a loop's poll: whether to take notifications now. ``readable``:
        the poll saw :meth:`fileno` ready; a store without one is asked
        (``wait(0)``); either way :meth:`pending` may say so too."""
        came = readable if self.fileno() is not None else self.wait(0)
        return came or self.pending()

    def pushed_changes(
        self, robot: str, prefix: str
    ) -> list[tuple[int, Fill | OrderUpdate]] | None:
        """What the notifications taken by :meth:`wait` since the last call carried
        -- ``robot``'s fills and updates of orders whose client id starts with
        ``prefix``, with their ids, in the order they came -- or None when the
        backend's notifications do not carry rows, or one came without its row:
        then read the store (:meth:`changes_after`). Forgets what it returns; a
        read of the store forgets, as covered, what was notified before it."""
        held = self._take_held()
        if held is None:
            return None
        try:
            return self._changes_in(held, robot, prefix)
        except (KeyError, TypeError, ValueError, AttributeError):  # not a row we know
            return None

    def pushed_requests(self) -> tuple[list[StoredOrder], list[Request]] | None:
        """The exchange side's :meth:`pushed_changes`: new orders and requests
        (cancels, replaces) the notifications carried, or None to read
        :meth:`new_requests`."""
        held = self._take_held()
        if held is None:
            return None
        try:
            return self._requests_in(held)
        except (KeyError, TypeError, ValueError, AttributeError):  # not a row we know
            return None

    # -- notifications that carry rows ----------------------------------------
    # A backend whose notifications carry their rows keeps what wait() takes with
    # _hold, says when some may have been missed (_missed) or a read covered them
    # (_read_covers_held), and parses them in _changes_in / _requests_in; a
    # malformed one (KeyError, TypeError, ...) or None sends the caller to the store.

    def _hold(self, notes: Iterable[Any]) -> None:
        held = self._held
        held.extend(notes)
        if len(held) > MAX_HELD:  # nobody is taking them: read the store instead
            held.clear()
            self._partial = True

    def _missed(self) -> None:
        """A new connection or stream: what came while away is unknown."""
        self._held, self._partial = [], True

    def _read_covers_held(self) -> None:
        """A read of the store covers what was notified before it."""
        self._held, self._partial = [], False

    def _take_held(self) -> list[Any] | None:
        held, partial = self._held, self._partial
        self._held, self._partial = [], False
        return None if partial else held

    def _changes_in(self, notes: list[Any], robot: str, prefix: str) -> list | None:
        return None  # notifications without rows: read the store

    def _requests_in(self, notes: list[Any]) -> tuple[list, list] | None:
        return None

    # -- robot side -----------------------------------------------------------

    def insert_order(self, robot: str, run_id: str, order: NewOrder, ts: int) -> bool:
        """Insert an order; False when one with its client id exists (a no-op)."""
        raise NotImplementedError

    def insert_taken_order(self, robot: str, run_id: str, order: NewOrder) -> bool:
        """An order the exchange side took already (the fast path's writer writes
        it behind): inserted as :meth:`insert_order` does, without waking the
        exchange side where the backend can (it would only find it known), and
        stamped when written, as a robot stamps the orders it writes (it was 0)."""
        return self.insert_order(robot, run_id, order, time.time_ns())

    def request_cancel(self, robot: str, client_id: str, ts: int) -> None:
        """Write a ``cancel_request`` row for the exchange side."""
        raise NotImplementedError

    def request_replace(self, robot: str, client_id: str, qty: int, price: int, ts: int) -> None:
        """Write a ``replace_request`` row for the exchange side: the order's new
        total quantity and limit price. Like a cancel request, it is a row of its
        own; the order row changes only when the exchange side answers
        ``replaced`` (:meth:`record_replace`)."""
        raise NotImplementedError

    def listen_robot(self, robot: str) -> None:
        """Start receiving change notifications for ``robot``."""
        raise NotImplementedError

    def changes_after(
        self, robot: str, prefix: str, trade_id: int, event_id: int
    ) -> tuple[list[tuple[int, Fill]], list[tuple[int, OrderUpdate]]]:
        """Fills and order updates of ``robot``'s orders whose client id starts with
        ``prefix`` (one run's), after the given ids, oldest first, with their ids."""
        raise NotImplementedError

    def highest_ids(self, robot: str) -> tuple[int, int] | None:
        """The highest trade id and the highest order-event id of ``robot``'s rows
        (0 for none), of any run, requests included: one cheap indexed read each.
        None when the backend cannot say (this default): no check, see
        :meth:`check_not_behind`."""
        return None

    def check_not_behind(
        self,
        robot: str,
        trade_id: int,
        event_id: int,
        held: str,
        anchor: tuple[int, str] = (0, ""),
    ) -> None:
        """Raise :class:`StoreBehind` when the store's highest ids of ``robot``
        (:meth:`highest_ids`) are below ids the robot holds already -- a resumed
        run's journal's, those the store gave a run since (``held`` says which). Such a
        store was restored from an older backup, or its tables were recreated: its
        ids restarted below them, and the robot would take the new fills that come
        under those ids as seen ("after id N"), its position wrong with no word.

        Fills enough after a restore climb past the ids again: ``anchor``, the
        highest trade id the run holds with its order's client id, must then be
        that very trade in the store (:meth:`trade_client`)."""
        highest = self.highest_ids(robot)
        if highest is None:
            return
        has_trade, has_event = highest
        if has_trade >= trade_id and has_event >= event_id:
            anchor_id, client_id = anchor
            if not anchor_id:
                return
            found = self.trade_client(robot, anchor_id)
            if found is None or found == client_id:  # None: a store that cannot tell
                return
            raise StoreBehind(
                f"order store not the one robot {robot} traded on: {held} trade "
                f"{anchor_id} of order {client_id}, the store's trade {anchor_id} of "
                f"{robot} is {f'of order {found}' if found else 'missing'}: it was "
                f"restored from an older backup, or its tables recreated, and fills came "
                f"since under the ids the robot had; {_BEHIND_HINT}"
            )
        raise StoreBehind(
            f"order store behind robot {robot}: {held} trade id {trade_id} and order-event "
            f"id {event_id}, the store's highest of {robot} are {has_trade} and {has_event}: "
            "it was restored from an older backup, or its tables recreated, and new fills "
            f"would come under ids the robot takes as seen; {_BEHIND_HINT}"
        )

    def trade_client(self, robot: str, trade_id: int) -> str | None:
        """The client id of the order of ``robot``'s trade ``trade_id``; ``""`` when
        the store holds no such trade of the robot. None: this store cannot tell
        (the default; :meth:`check_not_behind` then compares ids alone)."""
        return None

    # -- exchange side --------------------------------------------------------

    def listen_exchange(self) -> None:
        """Start receiving notifications of new orders and of requests."""
        raise NotImplementedError

    def open_orders(self) -> list[StoredOrder]:
        """Orders not yet filled, cancelled or rejected, oldest first."""
        raise NotImplementedError

    def repair_open_orders(self) -> None:
        """Called by an exchange before it reloads the open orders: a store whose
        writes of a trade (or update) and its order row are not one transaction
        brings the rows up to them here. The default has nothing to repair."""

    def recent_finished(self, limit: int) -> list[str]:
        """Client ids of the newest ``limit`` finished orders (filled, cancelled,
        rejected), oldest first. A restarted exchange ignores them when they come
        again over ZeroMQ: it starts with no memory of what it filled before. A
        store without it (this default) leaves that guard off."""
        return []

    def new_requests(self) -> tuple[list[StoredOrder], list[Request]]:
        """Orders not yet acknowledged (status ``new``), and requests not yet
        handled, ``(id, robot, Cancel | Replace)``, oldest first: cancels and
        replaces in one list, in the order the robot wrote them.

        Selected by state, not by "ids after N": ids are handed out before
        commit, so concurrent robots can commit them out of order, and a reader
        going by ids could step over one and lose an order.
        """
        raise NotImplementedError

    def mark_handled(self, request_ids: list[int]) -> None:
        """Requests (cancels, replaces) the exchange side has answered."""
        raise NotImplementedError

    def record_update(self, robot: str, update: OrderUpdate) -> int:
        """Write an update; return its id (``update.ref`` when it holds a reserved
        id). ``accepted``, ``rejected`` and ``cancelled`` move a new or accepted
        order on (:data:`MOVES_FROM`: ``rejected`` only a new one); ``replaced``,
        ``replace_rejected`` and ``cancel_rejected`` are rows of the order's
        history that leave its status as it is.

        Trades and order events are written by one exchange-side process per
        store, serially, so their ids become visible in order and robots may
        read "after id N" safely.
        """
        raise NotImplementedError

    def record_fill(self, robot: str, fill: Fill) -> int:
        """Write a trade; return its id (``fill.trade_id`` when it is a reserved id)."""
        raise NotImplementedError

    def record_replace(self, robot: str, replace: Replace) -> None:
        """A replace took effect: the order row, while new or accepted, takes its
        quantity and price. Written right before the ``replaced`` update, so the
        store always holds each order as it stands, and a restarted exchange
        reloading open orders rests them as replaced. Writing it again is
        harmless."""
        raise NotImplementedError

    def reserve_ids(self, kind: str, n: int) -> list[int]:
        """Reserve ``n`` increasing ids for ``kind`` ("trades" or "order_events"), for a
        writer that gives a row its id before writing it: the fast path (it tells
        robots about a fill first) and any retried write (the same row under the
        same id is then a no-op). The record methods store a row under the id in
        ``Fill.trade_id`` / ``OrderUpdate.ref``.

        Served from a block taken ahead (:meth:`_new_ids`, at least ``ID_BLOCK``
        at a time): one round trip per block. One exchange-side process writes a
        robot's rows, serially, so they still become visible in increasing
        order; a restart leaves a gap, which readers ("after id N") do not mind.
        """
        block = self._blocks[kind]  # highest first: pop() gives the lowest
        out = [block.pop() for _ in range(min(n, len(block)))]
        need = n - len(out)
        if need:
            fresh = self._new_ids(kind, max(need, ID_BLOCK))
            out.extend(fresh[:need])
            block.extend(reversed(fresh[need:]))
        return out

    def _new_ids(self, kind: str, n: int) -> list[int]:
        """``n`` new increasing ids for ``kind`` from the store (one round trip)."""
        raise NotImplementedError

    def try_writer_lock(self, keep: bool) -> bool:
        """The store-wide lock an exchange's store writer holds while it lives.

        ``keep``: take it, for this connection's life, if it is free (the
        writer does). Otherwise only ask whether it is free (an exchange about
        to start its writer asks: an earlier exchange's writer may still be
        writing answers under lower ids, and robots read "after id N").
        Backends without such a lock answer True: no guard.
        """
        return True

    def keep_writer_lock(self) -> None:
        """Called by the writer holding the lock, often (every loop turn): a
        backend whose lock is a lease renews it here when due, and raises
        :class:`StoreUnavailable` when it was lost (the writer then reconnects
        and waits for the lock again). Locks that live with the connection
        need nothing."""

    def take_robot_lock(self, robot: str, run_id: str) -> bool:
        """The lock of robot ``robot`` on this store, taken for this connection's
        life when free; False while another process holds it. Two processes of
        one robot (two hosts, two supervisors) would both trade the same
        account. The run of a robot resumed after a crash (``run_id`` the same)
        may take its own lock over at once where the lock is a lease. Backends
        without such a lock answer True: no guard."""
        return True

    def keep_robot_lock(self) -> None:
        """Called by the trade stream holding the lock, every turn of its loop: a
        lease is renewed here when due, and :class:`StoreUnavailable` raised
        when it was lost."""

    def take_exchange_lock(self) -> bool:
        """The lock of the one exchange a store may have, taken for this
        connection's life when free; False while another exchange holds it.
        Two exchanges on one store would both take every new order and fill
        it twice: the second waits until the first is gone, then takes over.
        Backends without such a lock answer True: no guard."""
        return True

    def keep_exchange_lock(self) -> None:
        """Called by the exchange holding the lock, every turn of its loop: a
        lease is renewed here when due, and :class:`StoreUnavailable` raised
        when it was lost (the exchange then waits for the lock again)."""

    # True when record_many also takes NewOrder items (inserted as insert_order
    # would, under the run id in their client id) and writes a whole call in one
    # transaction: the fast path's store writer then hands it everything at once.
    records_orders = False

    def record_many(self, items: list[tuple[str, OrderUpdate | Fill | Replace]]) -> None:
        """Write several updates, fills and replaces that took effect, in order;
        backends may batch them."""
        for robot, item in items:
            kind = type(item)
            if kind is Fill:
                self.record_fill(robot, item)
            elif kind is Replace:
                self.record_replace(robot, item)
            else:
                self.record_update(robot, item)


def fill_from(row: dict) -> tuple[int, Fill]:
    """A trade row (a dict with the store's column names) as ``(id, Fill)``."""
    fill = Fill(row["client_id"], row["ts"], row["symbol"], row["side"], row["qty"],
                row["price"], str(row["id"]), row["fee"])  # fmt: skip
    return row["id"], fill


def update_from(row: dict) -> tuple[int, OrderUpdate]:
    """An order-event row as ``(id, OrderUpdate)``."""
    return row["id"], OrderUpdate(row["client_id"], row["ts"], row["kind"], row["reason"],
                                  str(row["id"]))  # fmt: skip


def request_from(row: dict, robot: str) -> Request:
    """A request row (``id``, ``client_id``, ``kind``; ``qty`` and ``price`` for a
    replace) as ``(id, robot, Cancel | Replace)``; ValueError for another kind."""
    kind = row["kind"]
    if kind == "cancel_request":
        return row["id"], robot, Cancel(row["client_id"])
    if kind == "replace_request":
        return row["id"], robot, Replace(row["client_id"], row["qty"], row["price"])
    raise ValueError(f"not a request: {kind!r}")


def shown_url(url: str) -> str:
    """``url`` without its password, for logs and messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def run_id_of(robot: str, client_id: str) -> str:
    """The run id inside a client id ``<robot>-<run id>-<n>``."""
    return client_id[len(robot) + 1 :].rsplit("-", 1)[0]


def take_notified(
    store: OrderStore,
    take: Callable[[], Any],
    read: Callable[[], None],
    apply: Callable[[Any], None],
    *,
    full: bool,
) -> bool:
    """What both sides do when notified: take every notification already there,
    then ``apply`` what ``take`` says they carried, or ``read`` the store when
    they carried nothing trustworthy (or ``full``: a periodic read). Repeats
    while more arrive -- some come in during a read. True when the store was read.
    """
    first, was_read = True, False
    while True:
        came = False
        while store.wait(0):
            came = True
        if not came and not first:
            return was_read
        pushed = take()  # taken either way: a read covers it
        if pushed is None or (full and first):
            read()
            was_read = True
        else:
            apply(pushed)
        first = False


class StoreUnavailable(RoboframeError):
    """The store cannot be reached right now (gateways and the exchange retry; a
    command that needs the store at once reports it)."""


class RobotAlreadyRunning(RoboframeError):
    """Another process of the same robot holds the robot's lock on the store."""


class StoreBehind(RoboframeError):
    """The store's ids are below those a robot holds (see
    :meth:`OrderStore.check_not_behind`): the run must not trade on it."""


class StoreIdClash(RoboframeError):
    """A row written under a reserved id found another row under that id: not a
    retry (the very row, a no-op) but ids restarted below the store's rows, and
    the write would be lost without a word (see :func:`id_clash`)."""


def id_clash(kind: str, row_id: int, there: dict, new: dict) -> StoreIdClash:
    """The error for a ``kind`` ("trade" or "order event") written under ``row_id``
    where the store holds ``there``, another row (columns as the store names them)."""

    def shown(row: dict) -> str:
        if kind == "trade":
            what = f"{row.get('side')} {row.get('qty')} {row.get('symbol')} at {row.get('price')}"
        else:
            what = str(row.get("kind"))
        return f"{row.get('client_id')} {what}, ts {row.get('ts')}"

    return StoreIdClash(
        f"order store: {kind} id {row_id} is another {kind}'s ({shown(there)}), not this "
        f"one's ({shown(new)}): the store's ids restarted below its rows (restored from an "
        "older backup, or its tables recreated, while the exchange ran), and this write "
        "would be lost; hint: stop the exchange and its robots, restore the newest backup "
        "(or move the store's id counters past its highest ids), then start them again"
    )


def open_store(url: str, registry: Any = None) -> OrderStore:
    """An :class:`OrderStore` for ``url``, from the backend registered for its scheme."""
    from roboframe.plugins import get_registry

    registry = registry or get_registry()
    return backend_for(registry.stores, url, "order store")(url)


SCHEME_ALIASES = {"postgres": "postgresql", "mongodb+srv": "mongodb"}


def backend_for(table: dict, url: str, what: str, default: str = "") -> type:
    """The class registered in ``table`` for ``url``'s scheme (``default`` without one)."""
    scheme = url.split("://", 1)[0] if "://" in url else default
    found = table.get(SCHEME_ALIASES.get(scheme, scheme))
    if found is None:
        known = ", ".join(sorted(table)) or "none"
        hint = " (pip install ./plugins/roboframe-postgres or ./plugins/roboframe-mongo)"
        raise ConfigError(f"no {what} for {scheme or url!r} URLs; installed: {known}{hint}")
    return found.obj
