-- The order store as roboframe created it at schema version 5, before replace
-- requests: what the upgrade test starts from.

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
DECLARE
    channel text;
    short text;
    payload text;
BEGIN
    IF TG_TABLE_NAME = 'rf_orders' THEN
        IF current_setting('rf.quiet', true) = 'on' THEN
            RETURN NEW;  -- written by the exchange's own store writer: it has the order
        END IF;
        channel := 'rf_exchange';
        short := 'order:' || NEW.id;
        payload := json_build_object('k', 'order', 'id', NEW.id, 'robot', NEW.robot,
            'client_id', NEW.client_id, 'symbol', NEW.symbol, 'side', NEW.side,
            'qty', NEW.qty, 'type', NEW.type, 'price', NEW.price, 'ts', NEW.ts,
            'status', NEW.status, 'filled', NEW.filled)::text;
    ELSIF TG_TABLE_NAME = 'rf_order_events' THEN
        IF NEW.kind = 'cancel_request' THEN
            channel := 'rf_exchange';
            short := 'cancel:' || NEW.id;
            payload := json_build_object('k', 'cancel', 'id', NEW.id, 'robot', NEW.robot,
                'client_id', NEW.client_id)::text;
        ELSE
            channel := rf_channel(NEW.robot);
            short := 'event:' || NEW.id;
            payload := json_build_object('k', 'event', 'id', NEW.id, 'robot', NEW.robot,
                'client_id', NEW.client_id, 'kind', NEW.kind, 'reason', NEW.reason,
                'ts', NEW.ts)::text;
        END IF;
    ELSE
        channel := rf_channel(NEW.robot);
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
BEGIN
    FOR item IN  -- a closing item without an order settles the last one
        SELECT value FROM jsonb_array_elements(items || '[{"k": "end"}]'::jsonb)
        WITH ORDINALITY ORDER BY ordinality
    LOOP
        IF cid IS DISTINCT FROM item->>'client_id' THEN
            IF cid IS NOT NULL AND (cid_lots > 0 OR cid_kind IS NOT NULL) THEN
                -- as if item by item: a trade completing the order makes it filled;
                -- an event moves a new or accepted order on (accepted, then cancelled)
                UPDATE rf_orders SET filled = filled + cid_lots,
                    status = CASE
                        WHEN cid_lots > 0 AND filled + cid_lots >= qty THEN 'filled'
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
                END IF;
            END IF;
        ELSIF item->>'k' = 'event' THEN
            IF cid_kind IS NULL OR cid_kind IN ('new', 'accepted') THEN
                cid_kind := item->>'kind';  -- a repeat moves the order nowhere new
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
            END IF;
        END IF;
    END LOOP;
END $$ LANGUAGE plpgsql;
CREATE OR REPLACE FUNCTION rf_schema_version() RETURNS integer AS $$
    SELECT 5
$$ LANGUAGE sql IMMUTABLE;
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
