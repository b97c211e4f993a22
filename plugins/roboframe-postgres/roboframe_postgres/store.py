"""The PostgreSQL order store: three tables, a trigger, LISTEN/NOTIFY.

Schema (created by :meth:`PgStore.setup`, idempotent)::

    rf_orders(id bigserial PK, robot, run_id, client_id UNIQUE, symbol, side,
              qty, type, price, ts, status, filled)
    rf_order_events(id bigserial PK, robot, client_id, kind, reason, ts, handled,
                    qty, price)
        kind: cancel_request | replace_request (with qty, price), written by robots;
              accepted | rejected | cancelled | replaced | replace_rejected
    rf_trades(id bigserial PK, robot, client_id, symbol, side, qty, price, fee, ts)

Triggers send ``NOTIFY rf_robot_<hash of schema and name>`` for every trade
and exchange-side event of that robot, and ``NOTIFY rf_exchange_<hash of
schema>`` for every new order and request (but for the order rows of the fast
path, which the exchange took over ZeroMQ before its store writer recorded
them). Each carries its
whole row as JSON, so a connected listener learns what happened without a
query (:meth:`PgStore.pushed_changes`, :meth:`PgStore.pushed_requests`).
Whatever a listener may have missed -- the notifications sent while it was
disconnected (LISTEN/NOTIFY keeps none), a row too big for a payload -- it
reads from the store instead: "rows after id N" for robots, rows by state for
the exchange, on every (re)connect and every ``poll_ms``; nothing depends on
a notification arriving.

A URL may carry ``?schema=NAME`` to keep the tables in their own schema.
Channels are a database's, not a schema's: their names include the schema, so
that an exchange serving one store is never woken by, nor fills, the orders of
another store in the same database (a paper schema beside a live one).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import select
import time
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg.types.json import Jsonb

from roboframe.core.events import Fill, NewOrder, OrderUpdate, Replace
from roboframe.errors import ConfigError
from roboframe.store.base import (
    MOVES_FROM,
    REQUEST_KINDS,
    OrderStore,
    StoredOrder,
    StoreUnavailable,
    fill_from,
    id_clash,
    request_from,
    run_id_of,
    update_from,
)

# Each notification carries its whole row as JSON, so a listener need not read
# the store to learn what happened: the order -> fill path saves a query per hop.
# A row too big for a payload (NOTIFY takes under 8000 bytes) is announced by
# id alone ("trade:42"), and the listener reads the store, as for any payload
# it does not understand.
NOTIFY_FUNCTION = """
CREATE OR REPLACE FUNCTION rf_channel(store text, robot text) RETURNS text AS $$
    SELECT 'rf_robot_' || substr(md5(store || '.' || robot), 1, 16)
$$ LANGUAGE sql IMMUTABLE;
CREATE OR REPLACE FUNCTION rf_exchange_channel(store text) RETURNS text AS $$
    SELECT 'rf_exchange_' || substr(md5(store), 1, 16)
$$ LANGUAGE sql IMMUTABLE;
CREATE OR REPLACE FUNCTION rf_notify() RETURNS trigger AS $$
DECLARE
    channel text;
    short text;
    payload text;
BEGIN
    IF TG_TABLE_NAME = 'rf_orders' THEN
        IF current_setting('rf.quiet', true) = 'on' THEN
            RETURN NEW;  -- written by the exchange's own store writer: it has the order
        END IF;
        channel := rf_exchange_channel(TG_TABLE_SCHEMA);
        short := 'order:' || NEW.id;
        payload := json_build_object('k', 'order', 'id', NEW.id, 'robot', NEW.robot,
            'client_id', NEW.client_id, 'symbol', NEW.symbol, 'side', NEW.side,
            'qty', NEW.qty, 'type', NEW.type, 'price', NEW.price, 'ts', NEW.ts,
            'status', NEW.status, 'filled', NEW.filled)::text;
    ELSIF TG_TABLE_NAME = 'rf_order_events' THEN
        IF NEW.kind IN ('cancel_request', 'replace_request') THEN
            channel := rf_exchange_channel(TG_TABLE_SCHEMA);
            short := 'request:' || NEW.id;
            payload := json_build_object('k', 'request', 'id', NEW.id, 'robot', NEW.robot,
                'client_id', NEW.client_id, 'kind', NEW.kind, 'qty', NEW.qty,
                'price', NEW.price)::text;
        ELSE
            channel := rf_channel(TG_TABLE_SCHEMA, NEW.robot);
            short := 'event:' || NEW.id;
            payload := json_build_object('k', 'event', 'id', NEW.id, 'robot', NEW.robot,
                'client_id', NEW.client_id, 'kind', NEW.kind, 'reason', NEW.reason,
                'ts', NEW.ts)::text;
        END IF;
    ELSE
        channel := rf_channel(TG_TABLE_SCHEMA, NEW.robot);
        short := 'trade:' || NEW.id;
        payload := json_build_object('k', 'trade', 'id', NEW.id, 'robot', NEW.robot,
            'client_id', NEW.client_id, 'symbol', NEW.symbol, 'side', NEW.side,
            'qty', NEW.qty, 'price', NEW.price, 'fee', NEW.fee, 'ts', NEW.ts)::text;
    END IF;
    IF octet_length(payload) > 7900 THEN
        payload := short;
    END IF;
    PERFORM pg_notify(channel, payload);
    RETURN NEW;
END $$ LANGUAGE plpgsql;
-- the exchange side's writes of updates and fills, in order, as one statement:
-- one round trip and one commit instead of one of each per statement
CREATE OR REPLACE FUNCTION rf_record(items jsonb) RETURNS void AS $$
DECLARE
    item jsonb;
    lots bigint;
    cid text;  -- the order the items in a row are about, updated once for all of them
    cid_lots bigint := 0;
    cid_kind text;
    there record;  -- the row under a reserved id that was there already
BEGIN
    FOR item IN  -- a closing item without an order settles the last one
        SELECT value FROM jsonb_array_elements(items || '[{"k": "end"}]'::jsonb)
        WITH ORDINALITY ORDER BY ordinality
    LOOP
        IF cid IS DISTINCT FROM item->>'client_id' THEN
            IF cid IS NOT NULL AND (cid_lots > 0 OR cid_kind IS NOT NULL) THEN
                -- as if item by item: a trade completing the order makes it filled;
                -- an event moves a new or accepted order on (accepted, then cancelled);
                -- a replace's new qty is in the row already (written at its item)
                UPDATE rf_orders SET filled = filled + cid_lots,
                    status = CASE
                        WHEN cid_lots > 0 AND filled + cid_lots >= qty THEN 'filled'
                        WHEN cid_kind = 'rejected' AND status <> 'new' THEN status
                        WHEN cid_kind IS NOT NULL AND status IN ('new', 'accepted')
                            THEN cid_kind
                        ELSE status END
                WHERE client_id = cid;
            END IF;
            cid := item->>'client_id';
            cid_lots := 0;
            cid_kind := NULL;
        END IF;
        IF item->>'k' = 'order' THEN  -- the fast path's order row; a retry is a no-op
            -- the exchange took this order over ZeroMQ: no need to wake it (this
            -- transaction only; a restarted exchange still reads rows left new)
            PERFORM set_config('rf.quiet', 'on', true);
            INSERT INTO rf_orders (robot, run_id, client_id, symbol, side, qty, type, price, ts)
            VALUES (item->>'robot', item->>'run_id', cid, item->>'symbol', item->>'side',
                    (item->>'qty')::bigint, item->>'type', (item->>'price')::bigint,
                    (item->>'ts')::bigint)
            ON CONFLICT (client_id) DO NOTHING;
        ELSIF item->>'k' = 'trade' THEN
            lots := (item->>'qty')::bigint;
            cid_lots := cid_lots + lots;
            IF item->>'id' IS NULL THEN  -- the column default; a reserved id otherwise
                INSERT INTO rf_trades (robot, client_id, symbol, side, qty, price, fee, ts)
                VALUES (item->>'robot', cid, item->>'symbol', item->>'side',
                        lots, (item->>'price')::bigint, item->>'fee', (item->>'ts')::bigint);
            ELSE  -- under a reserved id: written already by a retried call, a no-op
                INSERT INTO rf_trades (id, robot, client_id, symbol, side, qty, price, fee, ts)
                VALUES ((item->>'id')::bigint, item->>'robot', cid, item->>'symbol',
                        item->>'side', lots, (item->>'price')::bigint, item->>'fee',
                        (item->>'ts')::bigint)
                ON CONFLICT (id) DO NOTHING;
                IF NOT FOUND THEN
                    cid_lots := cid_lots - lots;
                    -- a retry's row is this very row; another trade there means the
                    -- ids restarted below the rows (a store restored or recreated):
                    -- this fill would be lost without a word
                    SELECT * INTO there FROM rf_trades WHERE id = (item->>'id')::bigint;
                    IF (there.robot, there.client_id, there.symbol, there.side, there.qty,
                            there.price, there.fee, there.ts)
                        IS DISTINCT FROM (item->>'robot', cid, item->>'symbol', item->>'side',
                            lots, (item->>'price')::bigint, item->>'fee', (item->>'ts')::bigint)
                    THEN
                        RAISE EXCEPTION 'rf_record: id clash' USING DETAIL = json_build_object(
                            'kind', 'trade', 'there', row_to_json(there), 'new', item)::text;
                    END IF;
                END IF;
            END IF;
        ELSIF item->>'k' = 'replace' THEN  -- took effect: the order as it stands now
            -- while open, counting the items before it not yet settled
            UPDATE rf_orders SET qty = (item->>'qty')::bigint, price = (item->>'price')::bigint
            WHERE client_id = cid AND status IN ('new', 'accepted')
                AND filled + cid_lots < qty AND coalesce(cid_kind, 'accepted') = 'accepted';
        ELSIF item->>'k' = 'event' THEN
            -- a repeat moves the order nowhere new; a replace's answers and a
            -- cancel's refusal, nowhere; 'rejected' only a new order (after it is
            -- accepted, a bridge's 'rejected' is a refused cancel: see MOVES_FROM)
            IF (item->>'kind' IN ('accepted', 'cancelled')
                    AND (cid_kind IS NULL OR cid_kind = 'accepted'))
                    OR (item->>'kind' = 'rejected' AND cid_kind IS NULL) THEN
                cid_kind := item->>'kind';
            END IF;
            IF item->>'id' IS NULL THEN
                INSERT INTO rf_order_events (robot, client_id, kind, reason, ts)
                VALUES (item->>'robot', cid, item->>'kind', item->>'reason',
                        (item->>'ts')::bigint);
            ELSE
                INSERT INTO rf_order_events (id, robot, client_id, kind, reason, ts)
                VALUES ((item->>'id')::bigint, item->>'robot', cid, item->>'kind',
                        item->>'reason', (item->>'ts')::bigint)
                ON CONFLICT (id) DO NOTHING;
                IF NOT FOUND THEN  -- as for a trade: a retry's row, or a clash
                    SELECT * INTO there FROM rf_order_events
                    WHERE id = (item->>'id')::bigint;
                    IF (there.robot, there.client_id, there.kind, there.reason, there.ts)
                        IS DISTINCT FROM (item->>'robot', cid, item->>'kind',
                            item->>'reason', (item->>'ts')::bigint)
                    THEN
                        RAISE EXCEPTION 'rf_record: id clash' USING DETAIL = json_build_object(
                            'kind', 'order event', 'there', row_to_json(there),
                            'new', item)::text;
                    END IF;
                END IF;
            END IF;
        END IF;
    END LOOP;
END $$ LANGUAGE plpgsql;
CREATE OR REPLACE FUNCTION rf_schema_version() RETURNS integer AS $$
    SELECT {version}
$$ LANGUAGE sql IMMUTABLE;
"""
# 1: id-only payloads, no rf_record; 2: row payloads, rf_record;
# 3: rf_record leaves ids to the column defaults (pg_get_serial_sequence per row
# cost a catalog search, more than the rest of the function) and updates an order
# once for the items in a row about it; 4: rf_record takes order rows too, and
# they do not wake the exchange (it has them already); 5: a row under a reserved
# id that is there already (a retry after a lost answer) is a no-op; 6: channel
# names include the schema (two stores in one database woke each other's
# exchange); replace requests (rf_order_events.qty, .price), rf_record takes
# replaces that took effect, and a replace's answers leave the order's status alone;
# 7: a "rejected" answer moves only a new order (a refused cancel left a live order
# marked rejected); 8: a row under a reserved id where another row is (not a retry's:
# the ids restarted below the rows) raises, instead of losing the write
SCHEMA_VERSION = 8
NOTIFY_FUNCTION = NOTIFY_FUNCTION.replace("{version}", str(SCHEMA_VERSION))

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
    handled boolean NOT NULL DEFAULT false,
    qty bigint,
    price bigint
);
{requests_index}CREATE INDEX IF NOT EXISTS rf_order_events_robot ON rf_order_events (robot, id);
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
{notify}DROP TRIGGER IF EXISTS rf_orders_notify ON rf_orders;
CREATE TRIGGER rf_orders_notify AFTER INSERT ON rf_orders
    FOR EACH ROW EXECUTE FUNCTION rf_notify();
DROP TRIGGER IF EXISTS rf_order_events_notify ON rf_order_events;
CREATE TRIGGER rf_order_events_notify AFTER INSERT ON rf_order_events
    FOR EACH ROW EXECUTE FUNCTION rf_notify();
DROP TRIGGER IF EXISTS rf_trades_notify ON rf_trades;
CREATE TRIGGER rf_trades_notify AFTER INSERT ON rf_trades
    FOR EACH ROW EXECUTE FUNCTION rf_notify();
"""
REQUESTS_INDEX = """CREATE INDEX IF NOT EXISTS rf_order_events_requests ON rf_order_events (id)
    WHERE kind IN ('cancel_request', 'replace_request') AND NOT handled;
"""
DDL = DDL.replace("{notify}", NOTIFY_FUNCTION).replace("{requests_index}", REQUESTS_INDEX)
# What a store made by an older version lacks besides the functions (before 6:
# the replace columns, and a pending-requests index that covered cancels only).
UPGRADE = (
    """
ALTER TABLE rf_order_events ADD COLUMN IF NOT EXISTS qty bigint,
    ADD COLUMN IF NOT EXISTS price bigint;
DROP INDEX IF EXISTS rf_order_events_pending;
"""
    + REQUESTS_INDEX
    + NOTIFY_FUNCTION
)


# A peer gone without closing (a host lost, a cable pulled) is noticed in about
# 25 s on both ends: the default is two hours, during which a dead exchange's or
# robot's lock would stay held.
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5,
              "keepalives_count": 3}  # fmt: skip
SERVER_KEEPALIVES = (
    "SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3"
)


def _reserved(text: str) -> int | None:
    """An id the writer reserved (digits), or None to let the table assign one."""
    return int(text) if text.isdigit() else None


def robot_channel(robot: str, schema: str = "public") -> str:
    """The NOTIFY channel of a robot in the store in ``schema`` (robot and schema
    names may not be valid identifiers)."""
    return "rf_robot_" + hashlib.md5(f"{schema}.{robot}".encode()).hexdigest()[:16]


def exchange_channel(schema: str = "public") -> str:
    """The NOTIFY channel of new orders and requests in the store in ``schema``."""
    return "rf_exchange_" + hashlib.md5(schema.encode()).hexdigest()[:16]


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
        self._encoding = "utf-8"
        self.connect()

    # -- connection -----------------------------------------------------------

    def connect(self) -> None:
        self._missed()
        try:
            self.conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=3, **KEEPALIVES)
            # the server notices a vanished host within half a minute too, and
            # frees the locks it held (the exchange's, a robot's)
            self.conn.execute(SERVER_KEEPALIVES)
            if self.schema:
                # another connection may create it at the same moment
                with contextlib.suppress(psycopg.errors.UniqueViolation):
                    self.conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
                self.conn.execute(f'SET search_path TO "{self.schema}"')
            for channel in self._listening:
                self.conn.execute(f"LISTEN {channel}")
            # a notification that comes in with a query's reply is handed over here
            self.conn.add_notify_handler(self._noted)
            self._encoding = self.conn.info.encoding
        except psycopg.OperationalError as exc:
            self.conn = None
            raise StoreUnavailable(str(exc).strip().splitlines()[0]) from exc
        except psycopg.errors.InsufficientPrivilege as exc:
            self.close()
            raise _no_rights(self.schema, exc) from None

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
                exists, versioned = self.conn.execute(
                    "SELECT to_regclass('rf_trades') IS NOT NULL, "
                    "to_regproc('rf_schema_version') IS NOT NULL"
                ).fetchone()
                version = 0
                if versioned:
                    version = self.conn.execute("SELECT rf_schema_version()").fetchone()[0]
                if not exists:
                    self.conn.execute(DDL)
                elif version < SCHEMA_VERSION:  # made by an older roboframe: upgrade it
                    self.conn.execute(UPGRADE)
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            self.close()
            raise StoreUnavailable(str(exc).strip() or "connection lost") from exc
        except psycopg.errors.InsufficientPrivilege as exc:
            self.close()
            raise _no_rights(self.schema, exc) from None

    def fileno(self) -> int | None:
        return self.conn.fileno() if self.conn is not None else None

    def wait(self, timeout: float) -> bool:
        """Read the notifications the socket has (waiting up to ``timeout`` s for
        one) straight from libpq: psycopg's ``notifies()`` costs ten times as much
        per call, and the order path asks several times per order."""
        conn = self.conn
        if conn is None:
            raise StoreUnavailable("not connected")
        pgconn = conn.pgconn
        try:
            pgconn.consume_input()
            came = self._take_socket(pgconn)
            if not came and timeout > 0 and select.select([pgconn.socket], [], [], timeout)[0]:
                pgconn.consume_input()
                came = self._take_socket(pgconn)
        except (psycopg.OperationalError, psycopg.InterfaceError, OSError) as exc:
            self.close()
            raise StoreUnavailable(str(exc).strip() or "connection lost") from exc
        return came

    def _take_socket(self, pgconn) -> bool:
        note = pgconn.notifies()
        if note is None:
            return False
        encoding, notes = self._encoding, []
        while note is not None:
            notes.append(note.extra.decode(encoding))
            note = pgconn.notifies()
        self._hold(notes)
        return True

    def _noted(self, note: psycopg.Notify) -> None:
        """psycopg's handler for a notification read along with a query's reply
        (the socket no longer shows it): held like one :meth:`wait` read."""
        self._hold((note.payload,))

    def _changes_in(self, notes: list[str], robot: str, prefix: str) -> list | None:
        out = []
        for row in map(json.loads, notes):  # an id-only payload ("trade:42"): ValueError
            if row["robot"] != robot or not row["client_id"].startswith(prefix):
                continue  # another run of this robot, or another robot on a colliding channel
            if row["k"] == "trade":
                out.append(fill_from(row))
            elif row["k"] == "event":
                out.append(update_from(row))
            else:
                return None
        return out

    def _requests_in(self, notes: list[str]) -> tuple[list, list] | None:
        orders, requests = [], []
        for row in map(json.loads, notes):
            if row["k"] == "order":
                order = NewOrder(row["client_id"], row["symbol"], row["side"], row["qty"],
                                 row["type"], row["price"])  # fmt: skip
                orders.append(
                    StoredOrder(
                        row["id"], row["robot"], order, row["ts"], row["status"], row["filled"]
                    )
                )
            elif row["k"] == "request":
                requests.append(request_from(row, row["robot"]))
            else:
                return None
        return orders, requests

    def _tables_schema(self) -> str:
        """The schema this connection finds the tables in, as the triggers name it
        (``TG_TABLE_SCHEMA``): part of every channel's name."""
        return self._exec(
            "SELECT coalesce((SELECT n.nspname FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE c.oid = to_regclass('rf_orders')), "
            "current_schema(), 'public')"
        ).fetchone()[0]

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

    def request_replace(self, robot: str, client_id: str, qty: int, price: int, ts: int) -> None:
        self._exec(
            "INSERT INTO rf_order_events (robot, client_id, kind, ts, qty, price) "
            "VALUES (%s, %s, 'replace_request', %s, %s, %s)",
            (robot, client_id, ts, qty, price),
        )

    def listen_robot(self, robot: str) -> None:
        self._listen(robot_channel(robot, self._tables_schema()))

    def changes_after(self, robot: str, prefix: str, trade_id: int, event_id: int):
        self._read_covers_held()
        like = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        with self._pipeline():  # both queries in one round trip
            trades = self._exec(
                "SELECT id, client_id, symbol, side, qty, price, fee, ts FROM rf_trades "
                "WHERE robot = %s AND id > %s AND client_id LIKE %s ORDER BY id",
                (robot, trade_id, like),
            )
            events = self._exec(
                "SELECT id, client_id, kind, reason, ts FROM rf_order_events WHERE robot = %s "
                "AND id > %s AND kind <> ALL(%s) AND client_id LIKE %s ORDER BY id",
                (robot, event_id, list(REQUEST_KINDS), like),
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

    def highest_ids(self, robot: str) -> tuple[int, int]:
        # each a backward step on the (robot, id) index
        row = self._exec(
            "SELECT (SELECT max(id) FROM rf_trades WHERE robot = %s), "
            "(SELECT max(id) FROM rf_order_events WHERE robot = %s)",
            (robot, robot),
        ).fetchone()
        return row[0] or 0, row[1] or 0

    def trade_client(self, robot: str, trade_id: int) -> str:
        row = self._exec(
            "SELECT client_id FROM rf_trades WHERE id = %s AND robot = %s", (trade_id, robot)
        ).fetchone()
        return row[0] if row is not None else ""

    def _pipeline(self):
        if self.conn is None:
            raise StoreUnavailable("not connected")
        return _Guarded(self, self.conn.pipeline())

    # -- exchange side --------------------------------------------------------

    def listen_exchange(self) -> None:
        self._listen(exchange_channel(self._tables_schema()))

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

    def recent_finished(self, limit: int) -> list[str]:
        rows = self._exec(
            "SELECT client_id FROM rf_orders WHERE status NOT IN ('new', 'accepted') "
            "ORDER BY id DESC LIMIT %s",
            (limit,),
        ).fetchall()
        return [r[0] for r in reversed(rows)]

    def new_requests(self):
        self._read_covers_held()
        with self._pipeline():  # both queries in one round trip
            orders = self._exec(
                f"SELECT {self._ORDER_COLUMNS} FROM rf_orders WHERE status = 'new' ORDER BY id"
            )
            requests = self._exec(  # the partial index's very condition
                "SELECT id, robot, client_id, kind, qty, price FROM rf_order_events "
                "WHERE kind IN ('cancel_request', 'replace_request') AND NOT handled ORDER BY id"
            )
        columns = ("id", "robot", "client_id", "kind", "qty", "price")
        rows = [dict(zip(columns, r, strict=True)) for r in requests.fetchall()]
        return self._stored(orders.fetchall()), [request_from(r, r["robot"]) for r in rows]

    def mark_handled(self, request_ids: list[int]) -> None:
        if request_ids:
            self._exec(
                "UPDATE rf_order_events SET handled = true WHERE id = ANY(%s)",
                (list(request_ids),),
            )

    def _transaction(self):
        if self.conn is None:
            raise StoreUnavailable("not connected")
        return _Guarded(self, self.conn.transaction())

    _WRITER_LOCK = "724312, hashtext(current_schema())"  # one per store (schema)

    def try_writer_lock(self, keep: bool) -> bool:
        got = self._exec(f"SELECT pg_try_advisory_lock({self._WRITER_LOCK})").fetchone()[0]
        if got and not keep:
            self._exec(f"SELECT pg_advisory_unlock({self._WRITER_LOCK})")
        return got

    def take_robot_lock(self, robot: str, run_id: str) -> bool:
        return self._exec(
            "SELECT pg_try_advisory_lock(724314, hashtext(current_schema() || '.' || %s))",
            (robot,),
        ).fetchone()[0]

    def take_exchange_lock(self) -> bool:
        # a session lock: it goes with the connection, so a dead exchange frees it
        return self._exec(
            "SELECT pg_try_advisory_lock(724313, hashtext(current_schema()))"
        ).fetchone()[0]

    def _new_ids(self, kind: str, n: int) -> list[int]:
        table = {"trades": "rf_trades", "order_events": "rf_order_events"}[kind]
        rows = self._exec(  # the sequence looked up once, not once per id
            "SELECT nextval(seq) FROM (SELECT pg_get_serial_sequence(%s, 'id')::regclass "
            "AS seq) s, generate_series(1, %s)",
            (table, n),
        ).fetchall()
        return sorted(r[0] for r in rows)

    def _insert_row(self, table: str, row: dict, reserved: int | None) -> psycopg.Cursor:
        """Insert ``row`` under a reserved id, or under the column default's."""
        if reserved is not None:
            row = {"id": reserved, **row}
        columns = ", ".join(row)
        marks = ", ".join(["%s"] * len(row))
        return self._exec(
            f"INSERT INTO {table} ({columns}) VALUES ({marks}) RETURNING id", tuple(row.values())
        )

    def _record_update(self, robot: str, update: OrderUpdate) -> psycopg.Cursor:
        row = {"robot": robot, "client_id": update.client_id, "kind": update.status,
               "reason": update.reason, "ts": update.ts}  # fmt: skip
        cur = self._insert_row("rf_order_events", row, _reserved(update.ref))
        moves_from = MOVES_FROM.get(update.status)
        if moves_from is not None:
            self._exec(
                "UPDATE rf_orders SET status = %s WHERE client_id = %s AND status = ANY(%s)",
                (update.status, update.client_id, list(moves_from)),
            )
        return cur

    def _record_fill(self, robot: str, fill: Fill) -> psycopg.Cursor:
        row = {"robot": robot, "client_id": fill.client_id, "symbol": fill.symbol,
               "side": fill.side, "qty": fill.qty, "price": fill.price, "fee": fill.fee,
               "ts": fill.ts}  # fmt: skip
        cur = self._insert_row("rf_trades", row, _reserved(fill.trade_id))
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

    def record_replace(self, robot: str, replace: Replace) -> None:
        self._exec(
            "UPDATE rf_orders SET qty = %s, price = %s WHERE client_id = %s "
            "AND status IN ('new', 'accepted')",
            (replace.qty, replace.price, replace.client_id),
        )

    records_orders = True

    def record_many(self, items: list) -> None:
        """Orders, updates, fills and replaces that took effect ``[(robot, NewOrder |
        OrderUpdate | Fill | Replace)]``, in order, in one statement (``rf_record``):
        one round trip, one transaction."""
        rows = []
        written = time.time_ns()  # an order row's time: when written, as a robot's own are
        for robot, item in items:
            if type(item) is Replace:
                rows.append({"k": "replace", "robot": robot, "client_id": item.client_id,
                             "qty": item.qty, "price": item.price})  # fmt: skip
            elif type(item) is NewOrder:
                run_id = run_id_of(robot, item.client_id)
                rows.append({"k": "order", "robot": robot, "run_id": run_id,
                             "client_id": item.client_id, "symbol": item.symbol,
                             "side": item.side, "qty": item.qty, "type": item.type,
                             "price": item.price, "ts": written})  # fmt: skip
            elif type(item) is Fill:
                rows.append({"k": "trade", "id": _reserved(item.trade_id), "robot": robot,
                             "client_id": item.client_id, "symbol": item.symbol,
                             "side": item.side, "qty": item.qty, "price": item.price,
                             "fee": item.fee, "ts": item.ts})  # fmt: skip
            else:
                rows.append({"k": "event", "id": _reserved(item.ref), "robot": robot,
                             "client_id": item.client_id, "kind": item.status,
                             "reason": item.reason, "ts": item.ts})  # fmt: skip
        if rows:
            try:
                self._exec("SELECT rf_record(%s)", (Jsonb(rows),))
            except psycopg.errors.RaiseException as exc:
                detail = exc.diag.message_detail
                if exc.diag.message_primary != "rf_record: id clash" or not detail:
                    raise
                clash = json.loads(detail)
                there, new = clash["there"], clash["new"]
                raise id_clash(clash["kind"], there["id"], there, new) from None


def _no_rights(schema: str | None, exc: Exception) -> ConfigError:
    where = f'schema "{schema}"' if schema else "its schema"
    return ConfigError(
        f"order store: {str(exc).strip().splitlines()[0]}; hint: the store's user needs "
        f"to create tables and functions in {where} (GRANT CREATE), or an owner runs "
        "roboframe once to set the store up"
    )


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
