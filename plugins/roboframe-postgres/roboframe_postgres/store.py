"""The PostgreSQL order store: three tables, a trigger, LISTEN/NOTIFY.

Schema (created by :meth:`PgStore.setup`, idempotent)::

    rf_orders(id bigserial PK, robot, run_id, client_id UNIQUE, symbol, side,
              qty, type, price, ts, status, filled)
    rf_order_events(id bigserial PK, robot, client_id, kind, reason, ts)
        kind: cancel_request | accepted | rejected | cancelled
    rf_trades(id bigserial PK, robot, client_id, symbol, side, qty, price, fee, ts)

Triggers send ``NOTIFY rf_robot_<name>`` for every trade and exchange-side
event of that robot, and ``NOTIFY rf_exchange`` for every new order and
cancel request. Notifications only wake listeners; what they read is always
"rows after id N", so a notification lost while a listener was disconnected
(LISTEN/NOTIFY keeps none) costs nothing.

A URL may carry ``?schema=NAME`` to keep the tables in their own schema.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg

from roboframe.core.events import Fill, NewOrder, OrderUpdate
from roboframe.errors import ConfigError
from roboframe.store.base import OrderStore, StoredOrder, StoreUnavailable

DDL = """
CREATE TABLE IF NOT EXISTS rf_orders (
    id bigserial PRIMARY KEY,
    robot text NOT NULL,
    run_id text NOT NULL,
    client_id text NOT NULL UNIQUE,
    symbol text NOT NULL,
    side text NOT NULL,
    qty bigint NOT NULL,
    type text NOT NULL,
    price bigint NOT NULL,
    ts bigint NOT NULL,
    status text NOT NULL DEFAULT 'new',
    filled bigint NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS rf_orders_open ON rf_orders (id) WHERE status IN ('new', 'accepted');
CREATE INDEX IF NOT EXISTS rf_orders_new ON rf_orders (id) WHERE status = 'new';
CREATE TABLE IF NOT EXISTS rf_order_events (
    id bigserial PRIMARY KEY,
    robot text NOT NULL,
    client_id text NOT NULL,
    kind text NOT NULL,
    reason text NOT NULL DEFAULT '',
    ts bigint NOT NULL,
    handled boolean NOT NULL DEFAULT false
);
CREATE INDEX IF NOT EXISTS rf_order_events_pending ON rf_order_events (id)
    WHERE kind = 'cancel_request' AND NOT handled;
CREATE INDEX IF NOT EXISTS rf_order_events_robot ON rf_order_events (robot, id);
CREATE TABLE IF NOT EXISTS rf_trades (
    id bigserial PRIMARY KEY,
    robot text NOT NULL,
    client_id text NOT NULL,
    symbol text NOT NULL,
    side text NOT NULL,
    qty bigint NOT NULL,
    price bigint NOT NULL,
    fee text NOT NULL DEFAULT '0',
    ts bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS rf_trades_robot ON rf_trades (robot, id);
CREATE OR REPLACE FUNCTION rf_notify() RETURNS trigger AS $$
BEGIN
    IF TG_TABLE_NAME = 'rf_orders' THEN
        PERFORM pg_notify('rf_exchange', 'order:' || NEW.id);
    ELSIF TG_TABLE_NAME = 'rf_order_events' THEN
        IF NEW.kind = 'cancel_request' THEN
            PERFORM pg_notify('rf_exchange', 'cancel:' || NEW.id);
        ELSE
            PERFORM pg_notify(rf_channel(NEW.robot), 'event:' || NEW.id);
        END IF;
    ELSE
        PERFORM pg_notify(rf_channel(NEW.robot), 'trade:' || NEW.id);
    END IF;
    RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE OR REPLACE FUNCTION rf_channel(robot text) RETURNS text AS $$
    SELECT 'rf_robot_' || substr(md5(robot), 1, 16)
$$ LANGUAGE sql IMMUTABLE;
DROP TRIGGER IF EXISTS rf_orders_notify ON rf_orders;
CREATE TRIGGER rf_orders_notify AFTER INSERT ON rf_orders
    FOR EACH ROW EXECUTE FUNCTION rf_notify();
DROP TRIGGER IF EXISTS rf_order_events_notify ON rf_order_events;
CREATE TRIGGER rf_order_events_notify AFTER INSERT ON rf_order_events
    FOR EACH ROW EXECUTE FUNCTION rf_notify();
DROP TRIGGER IF EXISTS rf_trades_notify ON rf_trades;
CREATE TRIGGER rf_trades_notify AFTER INSERT ON rf_trades
    FOR EACH ROW EXECUTE FUNCTION rf_notify();
"""


def _reserved(text: str) -> int | None:
    """An id the writer reserved (digits), or None to let the table assign one."""
    return int(text) if text.isdigit() else None


def robot_channel(robot: str) -> str:
    """The NOTIFY channel of a robot (robot names may not be valid identifiers)."""
    return "rf_robot_" + hashlib.md5(robot.encode()).hexdigest()[:16]


def split_schema(url: str) -> tuple[str, str | None]:
    """``url`` without its ``schema`` query parameter, and that schema."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    schema = query.pop("schema", None)
    if schema is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", schema):
        raise ConfigError(f"order store URL: schema {schema!r} must be letters, digits and _")
    return urlunsplit(parts._replace(query=urlencode(query))), schema


class PgStore(OrderStore):
    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.dsn, self.schema = split_schema(url)
        self.conn: psycopg.Connection | None = None
        self._listening: list[str] = []
        self.connect()

    # -- connection -----------------------------------------------------------

    def connect(self) -> None:
        try:
            self.conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=3)
            if self.schema:
                # another connection may create it at the same moment
                with contextlib.suppress(psycopg.errors.UniqueViolation):
                    self.conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
                self.conn.execute(f'SET search_path TO "{self.schema}"')
            for channel in self._listening:
                self.conn.execute(f"LISTEN {channel}")
        except psycopg.OperationalError as exc:
            self.conn = None
            raise StoreUnavailable(str(exc).strip().splitlines()[0]) from exc

    def reconnect(self) -> None:
        self.close()
        self.connect()

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            finally:
                self.conn = None

    def _exec(self, sql: str, params: tuple = ()) -> psycopg.Cursor:
        if self.conn is None:
            raise StoreUnavailable("not connected")
        try:
            return self.conn.execute(sql, params)
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            self.close()
            raise StoreUnavailable(str(exc).strip().splitlines()[0] or "connection lost") from exc

    def setup(self) -> None:
        """Create what is missing; an advisory lock keeps concurrent setups apart."""
        if self.conn is None:
            raise StoreUnavailable("not connected")
        try:
            with self.conn.transaction():
                self.conn.execute("SELECT pg_advisory_xact_lock(724311)")
                exists = self.conn.execute(
                    "SELECT to_regclass('rf_trades') IS NOT NULL"
                ).fetchone()[0]
                if not exists:
                    self.conn.execute(DDL)
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            self.close()
            raise StoreUnavailable(str(exc).strip() or "connection lost") from exc

    def fileno(self) -> int | None:
        return self.conn.fileno() if self.conn is not None else None

    def wait(self, timeout: float) -> bool:
        if self.conn is None:
            raise StoreUnavailable("not connected")
        try:
            return bool(list(self.conn.notifies(timeout=timeout, stop_after=1)))
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            self.close()
            raise StoreUnavailable(str(exc).strip() or "connection lost") from exc

    def _listen(self, channel: str) -> None:
        self._exec(f"LISTEN {channel}")
        if channel not in self._listening:
            self._listening.append(channel)

    # -- robot side -----------------------------------------------------------

    def insert_order(self, robot: str, run_id: str, order: NewOrder, ts: int) -> bool:
        cur = self._exec(
            "INSERT INTO rf_orders (robot, run_id, client_id, symbol, side, qty, type, price, ts)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (client_id) DO NOTHING",
            (
                robot,
                run_id,
                order.client_id,
                order.symbol,
                order.side,
                order.qty,
                order.type,
                order.price,
                ts,
            ),
        )
        return cur.rowcount == 1

    def request_cancel(self, robot: str, client_id: str, ts: int) -> None:
        self._exec(
            "INSERT INTO rf_order_events (robot, client_id, kind, ts) "
            "VALUES (%s, %s, 'cancel_request', %s)",
            (robot, client_id, ts),
        )

    def listen_robot(self, robot: str) -> None:
        self._listen(robot_channel(robot))

    def changes_after(self, robot: str, prefix: str, trade_id: int, event_id: int):
        like = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        with self._pipeline():  # both queries in one round trip
            trades = self._exec(
                "SELECT id, client_id, symbol, side, qty, price, fee, ts FROM rf_trades "
                "WHERE robot = %s AND id > %s AND client_id LIKE %s ORDER BY id",
                (robot, trade_id, like),
            )
            events = self._exec(
                "SELECT id, client_id, kind, reason, ts FROM rf_order_events WHERE robot = %s "
                "AND id > %s AND kind <> 'cancel_request' AND client_id LIKE %s ORDER BY id",
                (robot, event_id, like),
            )
        fills = [
            (row[0], Fill(row[1], row[7], row[2], row[3], row[4], row[5], str(row[0]), row[6]))
            for row in trades.fetchall()
        ]
        updates = [
            (row[0], OrderUpdate(row[1], row[4], row[2], row[3], str(row[0])))
            for row in events.fetchall()
        ]
        return fills, updates

    def _pipeline(self):
        if self.conn is None:
            raise StoreUnavailable("not connected")
        return _Guarded(self, self.conn.pipeline())

    # -- exchange side --------------------------------------------------------

    def listen_exchange(self) -> None:
        self._listen("rf_exchange")

    def _stored(self, rows) -> list[StoredOrder]:
        return [
            StoredOrder(r[0], r[1], NewOrder(r[2], r[3], r[4], r[5], r[6], r[7]), r[8], r[9], r[10])
            for r in rows
        ]

    _ORDER_COLUMNS = "id, robot, client_id, symbol, side, qty, type, price, ts, status, filled"

    def open_orders(self) -> list[StoredOrder]:
        return self._stored(
            self._exec(
                f"SELECT {self._ORDER_COLUMNS} FROM rf_orders "
                "WHERE status IN ('new', 'accepted') ORDER BY id"
            )
        )

    def new_requests(self):
        with self._pipeline():  # both queries in one round trip
            orders = self._exec(
                f"SELECT {self._ORDER_COLUMNS} FROM rf_orders WHERE status = 'new' ORDER BY id"
            )
            cancels = self._exec(
                "SELECT id, robot, client_id FROM rf_order_events "
                "WHERE kind = 'cancel_request' AND NOT handled ORDER BY id"
            )
        return self._stored(orders.fetchall()), [tuple(r) for r in cancels.fetchall()]

    def mark_handled(self, cancel_ids: list[int]) -> None:
        if cancel_ids:
            self._exec(
                "UPDATE rf_order_events SET handled = true WHERE id = ANY(%s)", (list(cancel_ids),)
            )

    def _transaction(self):
        if self.conn is None:
            raise StoreUnavailable("not connected")
        return _Guarded(self, self.conn.transaction())

    def reserve_ids(self, kind: str, n: int) -> list[int]:
        table = {"trades": "rf_trades", "order_events": "rf_order_events"}[kind]
        rows = self._exec(
            f"SELECT nextval(pg_get_serial_sequence('{table}', 'id')) FROM generate_series(1, %s)",
            (n,),
        ).fetchall()
        return [r[0] for r in rows]

    def _record_update(self, robot: str, update: OrderUpdate) -> psycopg.Cursor:
        cur = self._exec(
            "INSERT INTO rf_order_events (id, robot, client_id, kind, reason, ts) VALUES "
            "(coalesce(%s, nextval(pg_get_serial_sequence('rf_order_events', 'id'))), "
            "%s, %s, %s, %s, %s) RETURNING id",
            (
                _reserved(update.ref),
                robot,
                update.client_id,
                update.status,
                update.reason,
                update.ts,
            ),
        )
        self._exec(
            "UPDATE rf_orders SET status = %s WHERE client_id = %s "
            "AND status IN ('new', 'accepted')",
            (update.status, update.client_id),
        )
        return cur

    def _record_fill(self, robot: str, fill: Fill) -> psycopg.Cursor:
        cur = self._exec(
            "INSERT INTO rf_trades (id, robot, client_id, symbol, side, qty, price, fee, ts) "
            "VALUES (coalesce(%s, nextval(pg_get_serial_sequence('rf_trades', 'id'))), "
            "%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (
                _reserved(fill.trade_id),
                robot,
                fill.client_id,
                fill.symbol,
                fill.side,
                fill.qty,
                fill.price,
                fill.fee,
                fill.ts,
            ),
        )
        self._exec(
            "UPDATE rf_orders SET filled = filled + %s, "
            "status = CASE WHEN filled + %s >= qty THEN 'filled' ELSE status END "
            "WHERE client_id = %s",
            (fill.qty, fill.qty, fill.client_id),
        )
        return cur

    def record_update(self, robot: str, update: OrderUpdate) -> int:
        with self._transaction():
            cur = self._record_update(robot, update)
        return cur.fetchone()[0]

    def record_fill(self, robot: str, fill: Fill) -> int:
        with self._transaction():
            cur = self._record_fill(robot, fill)
        return cur.fetchone()[0]

    def record_many(self, items: list) -> None:
        """Updates and fills ``[(robot, OrderUpdate | Fill)]`` in one transaction, sent
        as one pipeline (one network round trip instead of one per statement)."""
        with self._pipeline(), self._transaction():
            for robot, item in items:
                if type(item) is Fill:
                    self._record_fill(robot, item)
                else:
                    self._record_update(robot, item)


class _Guarded:
    """A pipeline context whose connection errors become StoreUnavailable."""

    def __init__(self, store: PgStore, pipeline) -> None:
        self.store = store
        self.pipeline = pipeline

    def __enter__(self):
        return self.pipeline.__enter__()

    def __exit__(self, *exc):
        try:
            return self.pipeline.__exit__(*exc)
        except (psycopg.OperationalError, psycopg.InterfaceError) as err:
            self.store.close()
            raise StoreUnavailable(str(err).strip() or "connection lost") from err
