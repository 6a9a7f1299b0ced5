-- Cache invalidation for the bridge: the "Cache Invalidated At" store and the triggers
-- that feed it. Idempotent: rerun after upgrades with
--   psql -v ON_ERROR_STOP=1 -f sql/cache_invalidation.sql "$DATABASE_URL"
-- Requires PostgreSQL 13 or newer (xid8, pg_current_xact_id).
--
-- Attach to a table, naming its key column (one statement per table):
--   SELECT cache_invalidation_attach('public.posts', 'id');          -- JSON on cache_invalidation, keys only
--   SELECT cache_invalidation_attach('public.orders', 'id', row_data => true);  -- JSON with the row
--   SELECT cache_invalidation_attach('public.users', 'id', 'text');  -- plain key on data_change_notification
--   SELECT cache_invalidation_detach('public.posts');

BEGIN;
-- A rerun is normal: no "already exists, skipping" notices.
SET LOCAL client_min_messages = warning;

-- Newest invalidation of every cache key. Written in the same transaction as the change,
-- so a change committed while the bridge is away is still found when it catches up.
CREATE TABLE IF NOT EXISTS cache_invalidated_at (
    cache_key      text        PRIMARY KEY,
    table_name     text        NOT NULL,
    invalidated_at timestamptz NOT NULL,
    -- Transaction that last wrote the row: the bridge resumes from a transaction id.
    writer_xid     xid8        NOT NULL
);
CREATE INDEX IF NOT EXISTS cache_invalidated_at_writer_xid_idx ON cache_invalidated_at (writer_xid);
CREATE INDEX IF NOT EXISTS cache_invalidated_at_time_idx ON cache_invalidated_at (invalidated_at);

-- Where each bridge resumes: every row written by a transaction with id >= resume_xid
-- may not have been published yet.
CREATE TABLE IF NOT EXISTS cache_bridge_cursor (
    name       text        PRIMARY KEY,
    resume_xid xid8        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- The BRIDGE_CHANNEL its stamps are routed by (cache_bridge_stamp.channel): when it changes,
-- the bridge routes its stored stamps anew at startup.
ALTER TABLE cache_bridge_cursor ADD COLUMN IF NOT EXISTS channel_template text;
-- Every stamp with a seq above this may not have been published yet: changes the bridge held
-- back (Soketi away, its queue full) so that PostgreSQL's notification queue never fills, and
-- by-hand NOTIFYs that only the stamps hold. The bridge publishes them from there.
ALTER TABLE cache_bridge_cursor ADD COLUMN IF NOT EXISTS resume_seq bigint NOT NULL DEFAULT 0;

-- What each bridge published: every key's newest stamp, written by the bridge (never by the
-- writers, so a writer never waits on the bridge's row locks). seq is the bridge's receipt
-- time of the change in epoch microseconds, made strictly increasing per bridge: it follows
-- commit order (notifications arrive in commit order), and invalidatedAt = seq / 1000 + 1
-- (integer division) is later than the moment the change became visible. Replays and the
-- snapshot endpoint read this table, so they carry the same values as the live events.
-- channel is the Pusher channel the bridge routes the key to (its BRIDGE_CHANNEL rule).
CREATE TABLE IF NOT EXISTS cache_bridge_stamp (
    bridge_name text   NOT NULL,  -- BRIDGE_CURSOR_NAME
    cache_key   text   NOT NULL,
    channel     text   NOT NULL,
    table_name  text   NOT NULL,  -- '' when unknown
    seq         bigint NOT NULL,
    PRIMARY KEY (bridge_name, cache_key)
);
-- Replays and snapshots: one channel's newest stamps; the held-back changes in seq order.
CREATE INDEX IF NOT EXISTS cache_bridge_stamp_channel_idx ON cache_bridge_stamp (bridge_name, channel, seq);
CREATE INDEX IF NOT EXISTS cache_bridge_stamp_seq_idx ON cache_bridge_stamp (bridge_name, seq);

-- Records an invalidation and returns its timestamp in epoch milliseconds.
-- Timestamps per key only move forward.
CREATE OR REPLACE FUNCTION cache_invalidation_record(p_cache_key text, p_table text)
RETURNS bigint LANGUAGE sql VOLATILE AS $$
    INSERT INTO cache_invalidated_at AS s (cache_key, table_name, invalidated_at, writer_xid)
    VALUES (p_cache_key, p_table, clock_timestamp(), pg_current_xact_id())
    ON CONFLICT (cache_key) DO UPDATE
        SET invalidated_at = greatest(s.invalidated_at, excluded.invalidated_at),
            table_name     = excluded.table_name,
            writer_xid     = excluded.writer_xid
    RETURNING floor(extract(epoch FROM invalidated_at) * 1000)::bigint;
$$;

-- JSON style: {"table","action","id","cache_key"} on one channel for all tables, plus "data"
-- (the row) when attached with row_data => true.
-- TG_ARGV: key column (default id), NOTIFY channel (default cache_invalidation), the attached
-- table's name, 'row_data' to include the row.
CREATE OR REPLACE FUNCTION cache_invalidation_notify_json() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    key_column     text := coalesce(TG_ARGV[0], 'id');
    notify_channel text := coalesce(TG_ARGV[1], 'cache_invalidation');
    -- The attached table's name (a partition's rows are keyed by their partitioned table).
    table_name     text := coalesce(TG_ARGV[2], TG_TABLE_NAME);
    with_row       boolean := coalesce(TG_ARGV[3], '') = 'row_data';
    old_row        jsonb;
    new_row        jsonb;
    row_data       jsonb;
    cache_key      text;
    payload        text;
BEGIN
    IF TG_OP <> 'INSERT' THEN old_row := to_jsonb(OLD); END IF;
    IF TG_OP <> 'DELETE' THEN new_row := to_jsonb(NEW); END IF;
    row_data := coalesce(new_row, old_row);
    IF NOT row_data ? key_column THEN
        RAISE EXCEPTION 'cache invalidation: table % has no column %', TG_TABLE_NAME, key_column;
    END IF;
    -- Same rule as the text style: a NULL key has no cache entry; both NULL is a misconfiguration.
    IF coalesce(row_data ->> key_column, old_row ->> key_column) IS NULL THEN
        RAISE EXCEPTION 'cache invalidation: table % has no non-null column %', TG_TABLE_NAME, key_column;
    END IF;

    -- An UPDATE that changes the key also makes the old key stale.
    IF TG_OP = 'UPDATE' AND old_row ->> key_column IS NOT NULL
       AND old_row -> key_column IS DISTINCT FROM new_row -> key_column THEN
        cache_key := table_name || ':' || (old_row ->> key_column);
        PERFORM cache_invalidation_record(cache_key, table_name);
        PERFORM pg_notify(notify_channel, jsonb_build_object(
            'table', table_name, 'action', 'delete', 'id', old_row -> key_column,
            'cache_key', cache_key)::text);
    END IF;
    IF row_data ->> key_column IS NULL THEN
        RETURN NULL;  -- the key was set to NULL: only the old key is stale
    END IF;

    cache_key := table_name || ':' || (row_data ->> key_column);
    PERFORM cache_invalidation_record(cache_key, table_name);
    -- No timestamp: one taken here precedes the commit. The bridge stamps at receipt.
    payload := CASE WHEN with_row THEN
        jsonb_build_object('table', table_name, 'action', lower(TG_OP), 'id', row_data -> key_column,
                           'cache_key', cache_key, 'data', row_data)
      ELSE
        jsonb_build_object('table', table_name, 'action', lower(TG_OP), 'id', row_data -> key_column,
                           'cache_key', cache_key)
      END::text;
    -- NOTIFY rejects payloads of 8000 bytes or more, which would fail the user's write.
    IF octet_length(payload) >= 8000 THEN
        payload := (payload::jsonb - 'data' || jsonb_build_object('data_omitted', true))::text;
    END IF;
    IF octet_length(payload) >= 8000 THEN
        -- Only a key of kilobytes gets here; the bridge would refuse it anyway. The store row
        -- stays, so replay still serves it; the user's write goes through.
        RAISE WARNING 'cache invalidation: key of % bytes is too long to NOTIFY', octet_length(cache_key);
        RETURN NULL;
    END IF;
    PERFORM pg_notify(notify_channel, payload);
    RETURN NULL;
END;
$$;

-- Plain-text style: the payload is the cache key itself (<table>:<key>).
-- TG_ARGV: key column (default id), NOTIFY channel (default data_change_notification).
CREATE OR REPLACE FUNCTION cache_invalidation_notify_text() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    key_column     text := coalesce(TG_ARGV[0], 'id');
    notify_channel text := coalesce(TG_ARGV[1], 'data_change_notification');
    table_name     text := coalesce(TG_ARGV[2], TG_TABLE_NAME);
    old_key        text;
    new_key        text;
BEGIN
    -- DELETE has no NEW row, INSERT no OLD row: read the one that exists.
    IF TG_OP <> 'INSERT' THEN old_key := to_jsonb(OLD) ->> key_column; END IF;
    IF TG_OP <> 'DELETE' THEN new_key := to_jsonb(NEW) ->> key_column; END IF;
    IF coalesce(new_key, old_key) IS NULL THEN
        RAISE EXCEPTION 'cache invalidation: table % has no non-null column %', TG_TABLE_NAME, key_column;
    END IF;
    IF old_key IS NOT NULL AND old_key IS DISTINCT FROM new_key THEN
        PERFORM cache_invalidation_record(table_name || ':' || old_key, table_name);
        PERFORM pg_notify(notify_channel, table_name || ':' || old_key);
    END IF;
    IF new_key IS NOT NULL THEN
        PERFORM cache_invalidation_record(table_name || ':' || new_key, table_name);
        PERFORM pg_notify(notify_channel, table_name || ':' || new_key);
    END IF;
    RETURN NULL;
END;
$$;

-- Attaches (or re-attaches) the trigger to a table. style: 'json' or 'text'. row_data (JSON
-- style only) puts the row in every event: whoever may subscribe to the channel reads it (on
-- a public channel, anyone with the app key), so opt in only for private- channels.
DROP FUNCTION IF EXISTS cache_invalidation_attach(regclass, text, text, text);  -- before row_data
CREATE OR REPLACE FUNCTION cache_invalidation_attach(
    target regclass, key_column text DEFAULT 'id', style text DEFAULT 'json',
    notify_channel text DEFAULT NULL, row_data boolean DEFAULT false)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    trigger_function text;
BEGIN
    IF style NOT IN ('json', 'text') THEN
        RAISE EXCEPTION 'cache_invalidation_attach: style must be json or text, not %', style;
    END IF;
    IF row_data AND style <> 'json' THEN
        RAISE EXCEPTION 'cache_invalidation_attach: row_data needs the json style';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_attribute
                   WHERE attrelid = target AND attname = key_column AND attnum > 0 AND NOT attisdropped) THEN
        RAISE EXCEPTION 'cache_invalidation_attach: % has no column %', target, key_column;
    END IF;
    trigger_function := 'cache_invalidation_notify_' || style;
    notify_channel := coalesce(notify_channel,
        CASE style WHEN 'json' THEN 'cache_invalidation' ELSE 'data_change_notification' END);
    EXECUTE format('DROP TRIGGER IF EXISTS cache_invalidation ON %s', target);
    EXECUTE format('CREATE TRIGGER cache_invalidation AFTER INSERT OR UPDATE OR DELETE ON %s '
                   'FOR EACH ROW EXECUTE FUNCTION %I(%L, %L, %L, %L)',
                   target, trigger_function, key_column, notify_channel,
                   (SELECT relname FROM pg_class WHERE oid = target),
                   CASE WHEN row_data THEN 'row_data' ELSE 'keys' END);
END;
$$;

-- Writers may have another search_path, and no rights on the store: pin the functions to the
-- schema they were installed in, and let cache_invalidation_record write with the owner's rights.
-- (CREATE OR REPLACE resets these attributes, so this runs on every install.)
-- Only the triggers (and the owner) may write the store: the trigger functions run with the
-- owner's rights, and nobody else may execute them or the record function. A trigger function
-- cannot be called directly, and creating a trigger with it needs EXECUTE.
DO $pin$
BEGIN
    EXECUTE format('ALTER FUNCTION cache_invalidation_record(text, text) SECURITY DEFINER SET search_path = %I, pg_temp', current_schema());
    EXECUTE format('ALTER FUNCTION cache_invalidation_notify_json() SECURITY DEFINER SET search_path = %I, pg_temp', current_schema());
    EXECUTE format('ALTER FUNCTION cache_invalidation_notify_text() SECURITY DEFINER SET search_path = %I, pg_temp', current_schema());
END
$pin$;
REVOKE EXECUTE ON FUNCTION cache_invalidation_record(text, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION cache_invalidation_notify_json() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION cache_invalidation_notify_text() FROM PUBLIC;

-- Forgets keys invalidated longer ago than `older_than` that every bridge's cursor has passed
-- (so nothing unpublished goes). Returns how many rows it deleted. Schedule it (pg_cron, a
-- cron job) if the store should not keep every key ever invalidated; replay never looks
-- further back than BRIDGE_REPLAY_MAX_AGE_S anyway.
CREATE OR REPLACE FUNCTION cache_invalidation_prune(older_than interval)
RETURNS bigint LANGUAGE sql VOLATILE AS $$
    WITH gone AS (
        DELETE FROM cache_invalidated_at
        WHERE invalidated_at < now() - older_than
          AND writer_xid < (SELECT min(resume_xid) FROM cache_bridge_cursor)
        RETURNING 1),
    stamps_gone AS (
        DELETE FROM cache_bridge_stamp
        WHERE seq < floor(extract(epoch FROM now() - older_than) * 1000000)::bigint
        RETURNING 1)
    SELECT (SELECT count(*) FROM gone) + (SELECT count(*) FROM stamps_gone);
$$;

CREATE OR REPLACE FUNCTION cache_invalidation_detach(target regclass)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('DROP TRIGGER IF EXISTS cache_invalidation ON %s', target);
END;
$$;

COMMIT;
