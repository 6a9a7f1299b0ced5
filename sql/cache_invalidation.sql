-- Cache invalidation for the bridge: the catch-up log (cache_invalidation_log, read as
-- "Cache Invalidated At" through the view cache_invalidated_at) and the triggers that feed it. Idempotent: rerun after upgrades with
--   psql -v ON_ERROR_STOP=1 -f sql/cache_invalidation.sql "$DATABASE_URL"
-- Requires PostgreSQL 13 or newer (xid8, pg_current_xact_id, publish_via_partition_root).
--
-- Attach to a table, naming its key column (one statement per table):
--   SELECT cache_invalidation_attach('public.posts', 'id');          -- JSON on cache_invalidation, keys only
--   SELECT cache_invalidation_attach('public.orders', 'id', row_data => true);  -- JSON with the row
--   SELECT cache_invalidation_attach('public.users', 'id', 'text');  -- plain key on data_change_notification
--   SELECT cache_invalidation_attach('public.posts', 'id', 'wal');   -- no trigger: the bridge's WAL source
--   SELECT cache_invalidation_detach('public.posts');
-- Tables attached by an older version keep their row triggers until attach is rerun on them.
-- By hand, for a key no table has: SELECT cache_invalidate('page:/home');

BEGIN;
-- A rerun is normal: no "already exists, skipping" notices.
SET LOCAL client_min_messages = warning;

-- The catch-up log: one append-only row per statement (per TRUNCATE, per by-hand or row-trigger
-- key) with every cache key it changed. Written in the same transaction as the change, so a
-- change committed while the bridge is away is still found when it catches up (the bridge reads
-- the rows of writer_xid >= its cursor's resume_xid). Append-only: no row is locked or updated,
-- and the one index is on writer_xid. The bridge trims the rows every cursor has passed;
-- cache_invalidation_prune does too, for what only it may remove.
CREATE TABLE IF NOT EXISTS cache_invalidation_log (
    -- Transaction that wrote the row: the bridge resumes from a transaction id.
    writer_xid xid8        NOT NULL,
    table_name text        NOT NULL,
    cache_keys text[]      NOT NULL,
    logged_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS cache_invalidation_log_writer_xid_idx ON cache_invalidation_log (writer_xid);
-- No key: a publication FOR ALL TABLES would otherwise refuse the trim's DELETEs (logged with
-- the whole row, under wal_level = logical only; inserts log the same either way).
ALTER TABLE cache_invalidation_log REPLICA IDENTITY FULL;

-- Before the log, cache_invalidated_at was a table of one row per key (upserted). Its rows move
-- into the log (one row each, their times kept), and those who could read it may read the log
-- and the view that replaces it.
DO $migrate$
DECLARE
    old     regclass := to_regclass(format('%I.cache_invalidated_at', current_schema()));
    readers text[];
BEGIN
    IF old IS NULL OR (SELECT relkind FROM pg_class WHERE oid = old) <> 'r' THEN
        RETURN;
    END IF;
    SELECT array_agg(DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END)
      INTO readers
      FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) AS a
      LEFT JOIN pg_roles r ON r.oid = a.grantee
     WHERE c.oid = old AND a.privilege_type = 'SELECT' AND a.grantee <> c.relowner;
    INSERT INTO cache_invalidation_log (writer_xid, table_name, cache_keys, logged_at)
    SELECT writer_xid, table_name, ARRAY[cache_key], invalidated_at FROM cache_invalidated_at
     ORDER BY writer_xid;
    DROP TABLE cache_invalidated_at;
    -- The view is created below: its grants wait for it in a setting of this transaction.
    PERFORM set_config('cache_invalidation.readers', coalesce(readers, '{}')::text, true);
END
$migrate$;

-- The newest invalidation of every cache key the log holds, as the table of before had it:
-- for reads (the stamp seeding of a new bridge name, tests, users' queries). The log is
-- trimmed of what every bridge published, so it holds the keys of the recent past, not all.
CREATE OR REPLACE VIEW cache_invalidated_at AS
    SELECT DISTINCT ON (k.cache_key) k.cache_key, l.table_name, l.logged_at AS invalidated_at, l.writer_xid
      FROM cache_invalidation_log l CROSS JOIN LATERAL unnest(l.cache_keys) AS k(cache_key)
     ORDER BY k.cache_key, l.logged_at DESC, l.writer_xid DESC;

DO $grant$
DECLARE
    reader text;
BEGIN
    FOR reader IN SELECT unnest(coalesce(nullif(current_setting('cache_invalidation.readers', true), ''), '{}')::text[]) LOOP
        EXECUTE format('GRANT SELECT ON cache_invalidated_at, cache_invalidation_log TO %s', reader);
    END LOOP;
END
$grant$;

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

-- Records an invalidation of one key (a log row of its own) and returns its timestamp in
-- epoch milliseconds.
CREATE OR REPLACE FUNCTION cache_invalidation_record(p_cache_key text, p_table text)
RETURNS bigint LANGUAGE sql VOLATILE AS $$
    INSERT INTO cache_invalidation_log (writer_xid, table_name, cache_keys)
    VALUES (pg_current_xact_id(), p_table, ARRAY[p_cache_key])
    RETURNING floor(extract(epoch FROM logged_at) * 1000)::bigint;
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
        -- Only a key of kilobytes gets here; the bridge would refuse it anyway. The log row
        -- stays, so catch-up still serves it; the user's write goes through.
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

-- Which tables are attached, and how: written by cache_invalidation_attach/_detach, read by the
-- bridge's WAL source (which tables, which key column). table_name is the name cache keys and
-- events carry: the relname for a table in schema public, schema.relname otherwise (so two
-- tables named posts in two schemas get different keys; public keeps the names of before).
CREATE TABLE IF NOT EXISTS cache_invalidation_table (
    relid          regclass PRIMARY KEY,
    table_name     text     NOT NULL,
    key_column     name     NOT NULL,
    source         text     NOT NULL CHECK (source IN ('notify', 'wal')),
    style          text,                     -- json or text (notify); NULL for wal
    row_data       boolean  NOT NULL DEFAULT false,
    publication    name,                     -- wal: the publication the table is a member of
    notify_channel text                      -- notify: the NOTIFY channel
);

-- The name a table's cache keys and events carry (see cache_invalidation_table.table_name).
CREATE OR REPLACE FUNCTION cache_invalidation_table_name(target regclass)
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN n.nspname = 'public' THEN c.relname::text ELSE n.nspname || '.' || c.relname END
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = target;
$$;

-- The lean triggers (statement-level, one per event, with transition tables) hand their keys
-- here: p_new and p_old are the DISTINCT non-NULL keys of the new and old rows as JSON text
-- (to_jsonb(key)::text), read from the transition tables without the rest of the row.
-- Logs every key in one row (one INSERT, no row locked: two statements cannot deadlock on the
-- log), then NOTIFYs. An old key no new row carries (a DELETE, or an UPDATE that changed the
-- key) goes out as a delete.
-- p_style: 'json' (ids payloads, split under NOTIFY's 8000 bytes), 'text' (one NOTIFY per key,
-- the key itself), 'rows' (the caller NOTIFYs each row with its data; here only the old keys
-- of an UPDATE that changed them).
CREATE OR REPLACE FUNCTION cache_invalidation_changed(
    p_table text, p_channel text, p_style text, p_action text, p_new text[], p_old text[])
RETURNS void LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    gone text[];
    id   text;
    key  text;
BEGIN
    IF coalesce(cardinality(p_new), 0) + coalesce(cardinality(p_old), 0) = 0 THEN
        RETURN;
    END IF;
    -- (Both arrays come sorted from array_agg(DISTINCT ...): an UPDATE that kept its keys has
    -- equal ones, and costs no query here.)
    gone := CASE WHEN p_action = 'delete' THEN p_old
                 WHEN p_old IS NULL OR p_old = p_new THEN '{}'
                 ELSE ARRAY(SELECT unnest(p_old) EXCEPT SELECT unnest(p_new)) END;
    -- The new keys and the gone ones: each distinct key once.
    INSERT INTO cache_invalidation_log (writer_xid, table_name, cache_keys)
    VALUES (pg_current_xact_id(), p_table, ARRAY(
        SELECT p_table || ':' || (j::jsonb #>> '{}')
          FROM unnest(CASE WHEN p_action = 'delete' THEN gone ELSE coalesce(p_new, '{}') || gone END) AS j));

    IF p_style = 'json' THEN
        IF cardinality(gone) > 0 THEN
            PERFORM cache_invalidation_notify_ids(p_channel, p_table, 'delete', gone);
        END IF;
        IF p_action <> 'delete' AND cardinality(p_new) > 0 THEN
            PERFORM cache_invalidation_notify_ids(p_channel, p_table, p_action, p_new);
        END IF;
    ELSIF p_style = 'text' THEN
        FOR key IN
            SELECT p_table || ':' || (j::jsonb #>> '{}') FROM unnest(gone) AS j
            UNION ALL
            SELECT p_table || ':' || (j::jsonb #>> '{}') FROM unnest(p_new) AS j WHERE p_action <> 'delete'
        LOOP
            PERFORM cache_invalidation_notify_key(p_channel, key, key);
        END LOOP;
    ELSIF p_style = 'rows' AND p_action = 'update' THEN
        FOREACH id IN ARRAY gone LOOP
            key := p_table || ':' || (id::jsonb #>> '{}');
            PERFORM cache_invalidation_notify_key(p_channel, key, jsonb_build_object(
                'table', p_table, 'action', 'delete', 'id', id::jsonb, 'cache_key', key)::text);
        END LOOP;
    END IF;
END;
$$;

-- NOTIFY of one payload about `key`, unless it cannot be sent: NOTIFY refuses 8000 bytes or
-- more, which would fail the user's write. Only a key of kilobytes gets there; the bridge would
-- refuse it anyway. The log row stays, so catch-up still serves it.
CREATE OR REPLACE FUNCTION cache_invalidation_notify_key(p_channel text, p_key text, p_payload text)
RETURNS void LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF octet_length(p_payload) >= 8000 THEN
        RAISE WARNING 'cache invalidation: key of % bytes is too long to NOTIFY', octet_length(p_key);
        RETURN;
    END IF;
    PERFORM pg_notify(p_channel, p_payload);
END;
$$;

-- {"table":...,"action":...,"ids":[...]}: as few NOTIFYs as fit the ids, each under 8000 bytes.
-- p_ids: JSON texts of the ids. The ids starting at byte offsets [c*w, (c+1)*w) of their
-- comma-joined list form payload c, with w = room - longest + 1: a payload then holds less than
-- w + longest bytes of ids, which fits. An id too long for a payload of its own is left out
-- with a warning (its log row stays).
CREATE OR REPLACE FUNCTION cache_invalidation_notify_ids(
    p_channel text, p_table text, p_action text, p_ids text[])
RETURNS void LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    head    text := '{"table":' || to_json(p_table)::text || ',"action":' || to_json(p_action)::text || ',"ids":[';
    room    int  := 7999 - octet_length(head) - 2;  -- bytes for the ids and their commas
    id      text;
    payload text;
BEGIN
    IF coalesce(cardinality(p_ids), 0) = 0 THEN
        RETURN;
    END IF;
    -- One query: the payloads, and (payload NULL) the ids too long for one, to warn about.
    FOR payload, id IN
        WITH item AS (
            SELECT n, j, octet_length(j) + 1 AS len, octet_length(j) > room AS too_long
              FROM unnest(p_ids) WITH ORDINALITY AS u(j, n)),
        placed AS (
            SELECT n, j, (sum(len) OVER (ORDER BY n) - len) / greatest(room + 1 - max(len) OVER (), 1) AS chunk
              FROM item WHERE NOT too_long)
        SELECT p, i FROM (
            SELECT head || string_agg(j, ',' ORDER BY n) || ']}' AS p, NULL AS i, chunk FROM placed GROUP BY chunk
            UNION ALL
            SELECT NULL, j, -1 FROM item WHERE too_long) AS out
        ORDER BY chunk
    LOOP
        IF payload IS NULL THEN
            RAISE WARNING 'cache invalidation: key of % bytes is too long to NOTIFY',
                octet_length(p_table || ':' || (id::jsonb #>> '{}'));
        ELSE
            PERFORM pg_notify(p_channel, payload);
        END IF;
    END LOOP;
END;
$$;

-- JSON style with row data: one NOTIFY per row, {"table","action","id","cache_key","data"}, as
-- the row triggers sent (data dropped for "data_omitted": true above 8000 bytes). A row
-- whose key is NULL has no cache entry: nothing to send.
CREATE OR REPLACE FUNCTION cache_invalidation_notify_row(
    p_channel text, p_table text, p_action text, p_key_column text, p_row jsonb)
RETURNS void LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    key     text := p_table || ':' || (p_row ->> p_key_column);
    payload text;
BEGIN
    IF p_row ->> p_key_column IS NULL THEN
        RETURN;
    END IF;
    payload := jsonb_build_object('table', p_table, 'action', p_action, 'id', p_row -> p_key_column,
                                  'cache_key', key, 'data', p_row)::text;
    IF octet_length(payload) >= 8000 THEN
        payload := jsonb_build_object('table', p_table, 'action', p_action, 'id', p_row -> p_key_column,
                                      'cache_key', key, 'data_omitted', true)::text;
    END IF;
    PERFORM cache_invalidation_notify_key(p_channel, key, payload);
END;
$$;

-- TRUNCATE: every key of the table is stale. One log row and one NOTIFY for the cache key
-- that is the table's name: {"table":"posts","action":"truncate","cache_key":"posts"} (JSON
-- style), "posts" (text style).
CREATE OR REPLACE FUNCTION cache_invalidation_truncated(p_table text, p_channel text, p_style text)
RETURNS void LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM cache_invalidation_record(p_table, p_table);
    PERFORM cache_invalidation_notify_key(p_channel, p_table, CASE WHEN p_style = 'text' THEN p_table ELSE
        jsonb_build_object('table', p_table, 'action', 'truncate', 'cache_key', p_table)::text END);
END;
$$;

-- The relations a table's triggers go on: the table, and for a partitioned table every
-- partition below it too (a statement-level trigger fires only for the table a statement
-- names: the root's for writes through the root, a partition's for writes straight to it).
CREATE OR REPLACE FUNCTION cache_invalidation_tree(target regclass)
RETURNS SETOF regclass LANGUAGE sql STABLE AS $$
    SELECT target
    UNION
    SELECT t.relid FROM pg_partition_tree(target) AS t
      JOIN pg_class c ON c.oid = t.relid
     WHERE c.relkind IN ('r', 'p');
$$;

-- Removes what attach put on a table for the notify source: the row trigger of before
-- (cache_invalidation), the statement triggers, and the generated trigger function.
CREATE OR REPLACE FUNCTION cache_invalidation_drop_triggers(target regclass)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    rel regclass;
    trg name;
    fn  regprocedure := to_regprocedure(format('%I.%I()', current_schema(), 'cache_invalidation_t' || target::oid));
BEGIN
    FOR rel, trg IN
        SELECT t.tgrelid::regclass, t.tgname FROM pg_trigger t
         WHERE t.tgrelid IN (SELECT cache_invalidation_tree(target)) AND NOT t.tgisinternal
           AND t.tgname IN ('cache_invalidation', 'cache_invalidation_insert', 'cache_invalidation_update',
                            'cache_invalidation_delete', 'cache_invalidation_truncate')
    LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', trg, rel);
    END LOOP;
    IF fn IS NOT NULL THEN
        EXECUTE format('DROP FUNCTION %s', fn);
    END IF;
END;
$$;

-- Takes a table out of the publication it was attached to with source wal, if it is a member.
CREATE OR REPLACE FUNCTION cache_invalidation_unpublish(target regclass, pub name)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF pub IS NOT NULL AND EXISTS (
            SELECT 1 FROM pg_publication_rel r JOIN pg_publication p ON p.oid = r.prpubid
             WHERE p.pubname = pub AND r.prrelid = target) THEN
        EXECUTE format('ALTER PUBLICATION %I DROP TABLE %s', pub, target);
    END IF;
END;
$$;

-- Fails unless the replica identity of every table holding the rows (the table, or each leaf
-- partition) covers key_column, so that a DELETE or a key change carries the old key in the WAL.
CREATE OR REPLACE FUNCTION cache_invalidation_check_replica_identity(target regclass, key_column text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    rel     regclass;
    ident   "char";
    covered boolean;
BEGIN
    FOR rel, ident IN
        SELECT c.oid, c.relreplident FROM cache_invalidation_tree(target) AS t(relid)
          JOIN pg_class c ON c.oid = t.relid WHERE c.relkind = 'r'
    LOOP
        covered := CASE ident
            WHEN 'f' THEN true
            WHEN 'n' THEN false
            ELSE EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a
                                    ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
                          WHERE i.indrelid = rel AND a.attname = key_column
                            AND CASE ident WHEN 'd' THEN i.indisprimary ELSE i.indisreplident END)
        END;
        IF NOT covered THEN
            RAISE EXCEPTION 'cache_invalidation_attach: the replica identity of % does not cover column %', rel, key_column
                USING DETAIL = format('Replica identity %s: a DELETE, or an UPDATE that changes %I, would not carry the old key in the WAL.',
                                      CASE ident WHEN 'd' THEN 'default (the primary key'
                                                        || CASE WHEN EXISTS (SELECT 1 FROM pg_index WHERE indrelid = rel AND indisprimary)
                                                                THEN ')' ELSE ', and there is none)' END
                                                    WHEN 'i' THEN 'USING INDEX' ELSE 'NOTHING' END, key_column),
                      HINT = format('ALTER TABLE %s REPLICA IDENTITY FULL, or ALTER TABLE %s REPLICA IDENTITY USING INDEX <a unique index on NOT NULL columns including %I>.',
                                    rel, rel, key_column);
        END IF;
    END LOOP;
END;
$$;

-- Attaches (or re-attaches) a table. style:
--   'json' (default): statement-level triggers NOTIFY {"table","action","ids":[...]} on
--     notify_channel (default cache_invalidation); with row_data => true one NOTIFY per row
--     with the row in "data" (whoever may subscribe to the channel reads it: on a public
--     channel anyone with the app key; opt in only for private- channels).
--   'text': one NOTIFY per key, the key itself, on notify_channel (default data_change_notification).
--   'wal': no trigger: the table joins `publication` (created if missing) for the bridge's WAL
--     source, whose DELETEs and key changes need a replica identity that covers key_column.
-- Rerun it on a table attached by an older version to switch it to the lean triggers.
-- Records (or replaces) an attached table's registry row: what the WAL source reads.
CREATE OR REPLACE FUNCTION cache_invalidation_register(
    p_relid regclass, p_table_name text, p_key_column name, p_source text, p_style text,
    p_row_data boolean, p_publication name, p_notify_channel text)
RETURNS void LANGUAGE sql VOLATILE AS $$
    INSERT INTO cache_invalidation_table
           (relid, table_name, key_column, source, style, row_data, publication, notify_channel)
    VALUES (p_relid, p_table_name, p_key_column, p_source, p_style, p_row_data, p_publication, p_notify_channel)
    ON CONFLICT (relid) DO UPDATE SET table_name = excluded.table_name, key_column = excluded.key_column,
        source = excluded.source, style = excluded.style, row_data = excluded.row_data,
        publication = excluded.publication, notify_channel = excluded.notify_channel;
$$;

DROP FUNCTION IF EXISTS cache_invalidation_attach(regclass, text, text, text);           -- before row_data
DROP FUNCTION IF EXISTS cache_invalidation_attach(regclass, text, text, text, boolean);  -- before wal
CREATE OR REPLACE FUNCTION cache_invalidation_attach(
    target regclass, key_column text DEFAULT 'id', style text DEFAULT 'json',
    notify_channel text DEFAULT NULL, row_data boolean DEFAULT false,
    publication name DEFAULT 'cache_invalidation')
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    table_name text := cache_invalidation_table_name(target);
    previous   cache_invalidation_table;
    fn         text := 'cache_invalidation_t' || target::oid;
    rel        regclass;
    body       text;
BEGIN
    IF style IS NULL OR style NOT IN ('json', 'text', 'wal') THEN
        RAISE EXCEPTION 'cache_invalidation_attach: style must be json, text or wal, not %', style;
    END IF;
    IF row_data AND style = 'text' THEN
        RAISE EXCEPTION 'cache_invalidation_attach: row_data needs the json style (or wal)';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_attribute
                   WHERE attrelid = target AND attname = key_column AND attnum > 0 AND NOT attisdropped) THEN
        RAISE EXCEPTION 'cache_invalidation_attach: % has no column %', target, key_column;
    END IF;
    -- The bridge takes a string or a number as a key's id (an array, a row or a boolean makes
    -- no cache key it would accept).
    IF style <> 'wal' AND EXISTS (SELECT 1 FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
                                  WHERE a.attrelid = target AND a.attname = key_column
                                    AND t.typcategory IN ('A', 'B', 'C')) THEN
        RAISE EXCEPTION 'cache_invalidation_attach: column % of % is of type %: a key column must hold strings or numbers',
            key_column, target, (SELECT format_type(atttypid, atttypmod) FROM pg_attribute
                                  WHERE attrelid = target AND attname = key_column);
    END IF;
    PERFORM cache_invalidation_forget_dropped();
    SELECT * INTO previous FROM cache_invalidation_table t WHERE t.relid = target;

    IF style = 'wal' THEN
        PERFORM cache_invalidation_check_replica_identity(target, key_column);
        PERFORM cache_invalidation_drop_triggers(target);
        IF previous.publication IS DISTINCT FROM publication THEN
            PERFORM cache_invalidation_unpublish(target, previous.publication);
        END IF;
        IF NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = publication) THEN
            EXECUTE format('CREATE PUBLICATION %I WITH (publish_via_partition_root = true)', publication);
        END IF;
        IF NOT EXISTS (SELECT 1 FROM pg_publication p WHERE p.pubname = publication
                          AND (p.puballtables OR EXISTS (SELECT 1 FROM pg_publication_rel r
                                                          WHERE r.prpubid = p.oid AND r.prrelid = target))) THEN
            EXECUTE format('ALTER PUBLICATION %I ADD TABLE %s', publication, target);
        END IF;
        IF current_setting('wal_level') <> 'logical' THEN
            RAISE WARNING 'cache_invalidation_attach: wal_level is %, not logical: the WAL source cannot read % until it is',
                current_setting('wal_level'), target
                USING HINT = 'ALTER SYSTEM SET wal_level = logical, then restart PostgreSQL.';
        END IF;
        PERFORM cache_invalidation_register(target, table_name, key_column, 'wal', NULL, row_data, publication, NULL);
        RETURN;
    END IF;

    notify_channel := coalesce(notify_channel,
        CASE style WHEN 'json' THEN 'cache_invalidation' ELSE 'data_change_notification' END);
    -- Only the key column is read from the transition tables (no row is detoasted), except
    -- for row data, which is the opt-in that costs the row.
    body := CASE WHEN row_data THEN format($f$
DECLARE
    new_ids text[];
    old_ids text[];
    r       jsonb;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM cache_invalidation_truncated(%2$L, %3$L, 'json');
        RETURN NULL;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        SELECT array_agg(DISTINCT to_jsonb(n.%1$I)::text) INTO new_ids FROM new_rows n WHERE n.%1$I IS NOT NULL;
    END IF;
    IF TG_OP <> 'INSERT' THEN
        SELECT array_agg(DISTINCT to_jsonb(o.%1$I)::text) INTO old_ids FROM old_rows o WHERE o.%1$I IS NOT NULL;
    END IF;
    PERFORM cache_invalidation_changed(%2$L, %3$L, 'rows', lower(TG_OP), new_ids, old_ids);
    IF TG_OP = 'DELETE' THEN
        FOR r IN SELECT to_jsonb(o.*) FROM old_rows o WHERE o.%1$I IS NOT NULL LOOP
            PERFORM cache_invalidation_notify_row(%3$L, %2$L, 'delete', %1$L, r);
        END LOOP;
    ELSE
        FOR r IN SELECT to_jsonb(n.*) FROM new_rows n WHERE n.%1$I IS NOT NULL LOOP
            PERFORM cache_invalidation_notify_row(%3$L, %2$L, lower(TG_OP), %1$L, r);
        END LOOP;
    END IF;
    RETURN NULL;
END
$f$, key_column, table_name, notify_channel)
    ELSE format($f$
DECLARE
    new_ids text[];
    old_ids text[];
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM cache_invalidation_truncated(%2$L, %3$L, %4$L);
        RETURN NULL;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        SELECT array_agg(DISTINCT to_jsonb(n.%1$I)::text) INTO new_ids FROM new_rows n WHERE n.%1$I IS NOT NULL;
    END IF;
    IF TG_OP <> 'INSERT' THEN
        SELECT array_agg(DISTINCT to_jsonb(o.%1$I)::text) INTO old_ids FROM old_rows o WHERE o.%1$I IS NOT NULL;
    END IF;
    PERFORM cache_invalidation_changed(%2$L, %3$L, %4$L, lower(TG_OP), new_ids, old_ids);
    RETURN NULL;
END
$f$, key_column, table_name, notify_channel, style) END;

    PERFORM cache_invalidation_drop_triggers(target);
    IF previous.source = 'wal' THEN
        PERFORM cache_invalidation_unpublish(target, previous.publication);
    END IF;
    -- Pinned like the shared functions, and run with the rights of whoever attached (the
    -- installer): writers need no rights on the store, and nobody else may execute it.
    EXECUTE format('CREATE FUNCTION %I.%I() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER '
                   'SET search_path = %I, pg_temp AS %L', current_schema(), fn, current_schema(), body);
    EXECUTE format('REVOKE EXECUTE ON FUNCTION %I.%I() FROM PUBLIC', current_schema(), fn);
    FOR rel IN SELECT cache_invalidation_tree(target) LOOP
        -- A trigger with transition tables may have only one event: one trigger per event.
        EXECUTE format('CREATE TRIGGER cache_invalidation_insert AFTER INSERT ON %s '
                       'REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION %I.%I()',
                       rel, current_schema(), fn);
        EXECUTE format('CREATE TRIGGER cache_invalidation_update AFTER UPDATE ON %s '
                       'REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION %I.%I()',
                       rel, current_schema(), fn);
        EXECUTE format('CREATE TRIGGER cache_invalidation_delete AFTER DELETE ON %s '
                       'REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION %I.%I()',
                       rel, current_schema(), fn);
        EXECUTE format('CREATE TRIGGER cache_invalidation_truncate AFTER TRUNCATE ON %s '
                       'FOR EACH STATEMENT EXECUTE FUNCTION %I.%I()', rel, current_schema(), fn);
    END LOOP;
    PERFORM cache_invalidation_register(target, table_name, key_column, 'notify', style, row_data, NULL, notify_channel);
END;
$$;

-- Undoes attach: drops the triggers and the generated function, takes the table out of its
-- publication (source wal), and deletes its registry row.
CREATE OR REPLACE FUNCTION cache_invalidation_detach(target regclass)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    previous cache_invalidation_table;
BEGIN
    PERFORM cache_invalidation_forget_dropped();
    SELECT * INTO previous FROM cache_invalidation_table t WHERE t.relid = target;
    PERFORM cache_invalidation_drop_triggers(target);
    IF previous.source = 'wal' THEN
        PERFORM cache_invalidation_unpublish(target, previous.publication);
    END IF;
    DELETE FROM cache_invalidation_table t WHERE t.relid = target;
END;
$$;

-- Registry rows of tables dropped since they were attached (their triggers went with them),
-- and their generated functions. A dropped table leaves its oid behind in the regclass column.
CREATE OR REPLACE FUNCTION cache_invalidation_forget_dropped()
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    gone oid;
BEGIN
    FOR gone IN DELETE FROM cache_invalidation_table t
                 WHERE NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = t.relid) RETURNING t.relid::oid LOOP
        EXECUTE format('DROP FUNCTION IF EXISTS %I.%I()', current_schema(), 'cache_invalidation_t' || gone);
    END LOOP;
END;
$$;

-- The invalidation by hand, for a key no trigger knows (a page, a query's result): records
-- the log row, NOTIFYs the key on notify_channel, and, when wal_level is logical, writes it
-- to the WAL as a transactional logical message (prefix cache_invalidation) for the WAL
-- source. Works under both sources; everything happens at COMMIT, or not at all.
CREATE OR REPLACE FUNCTION cache_invalidate(cache_key text, notify_channel text DEFAULT 'cache_invalidation')
RETURNS void LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    colon int := position(':' IN coalesce(cache_key, ''));
BEGIN
    IF cache_key IS NULL OR cache_key = '' THEN
        RAISE EXCEPTION 'cache_invalidate: empty cache key';
    END IF;
    IF octet_length(cache_key) > 1024 THEN
        RAISE EXCEPTION 'cache_invalidate: cache key of % bytes, the bridge takes at most 1024', octet_length(cache_key);
    END IF;
    -- As the bridge reads a plain key: the text before its first ':' is the table.
    PERFORM cache_invalidation_record(cache_key, CASE WHEN colon > 1 THEN left(cache_key, colon - 1) ELSE '' END);
    -- A key the bridge would read as JSON, or trim, goes as {"cache_key": ...}.
    PERFORM pg_notify(notify_channel, CASE WHEN cache_key ~ '^\s*[{\[]' OR cache_key ~ '^\s|\s$'
        THEN jsonb_build_object('cache_key', cache_key)::text ELSE cache_key END);
    IF current_setting('wal_level') = 'logical' THEN
        IF has_function_privilege('pg_logical_emit_message(boolean, text, text)', 'EXECUTE') THEN
            PERFORM pg_logical_emit_message(true, 'cache_invalidation', cache_key);
        ELSE
            RAISE WARNING 'cache_invalidate: % may not execute pg_logical_emit_message: the WAL source does not see %',
                current_user, cache_key
                USING HINT = 'GRANT EXECUTE ON FUNCTION pg_logical_emit_message(boolean, text, text) TO the role that installed sql/cache_invalidation.sql.';
        END IF;
    END IF;
END;
$$;

-- Writers may have another search_path, and no rights on the store: pin the functions to the
-- schema they were installed in, and let the functions that write the store do so with the
-- owner's rights. (CREATE OR REPLACE resets these attributes, so this runs on every install.)
-- Only the triggers (and the owner) may write the store: the trigger functions (the shared row
-- ones of before, and those attach generates, which it pins and revokes the same way) run with
-- the owner's rights, and nobody else may execute them or the functions they call. A trigger
-- function cannot be called directly, and creating a trigger with it needs EXECUTE.
-- cache_invalidate is the one way a writer may write the store by hand: PUBLIC may execute it
-- (see its comment). attach and detach run with the caller's rights (they need the table's
-- ownership and write the registry); they are pinned so that they find the functions and
-- create the generated ones in this schema.
DO $pin$
DECLARE
    f text;
BEGIN
    FOREACH f IN ARRAY ARRAY[
            'cache_invalidation_record(text, text)', 'cache_invalidation_notify_json()', 'cache_invalidation_notify_text()',
            'cache_invalidation_changed(text, text, text, text, text[], text[])',
            'cache_invalidation_truncated(text, text, text)', 'cache_invalidate(text, text)'] LOOP
        EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER SET search_path = %I, pg_temp', f, current_schema());
    END LOOP;
    FOREACH f IN ARRAY ARRAY[
            'cache_invalidation_notify_key(text, text, text)', 'cache_invalidation_notify_ids(text, text, text, text[])',
            'cache_invalidation_notify_row(text, text, text, text, jsonb)', 'cache_invalidation_table_name(regclass)',
            'cache_invalidation_tree(regclass)', 'cache_invalidation_drop_triggers(regclass)',
            'cache_invalidation_unpublish(regclass, name)', 'cache_invalidation_check_replica_identity(regclass, text)',
            'cache_invalidation_forget_dropped()',
            'cache_invalidation_attach(regclass, text, text, text, boolean, name)', 'cache_invalidation_detach(regclass)'] LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = %I, pg_temp', f, current_schema());
    END LOOP;
END
$pin$;
REVOKE EXECUTE ON FUNCTION cache_invalidation_record(text, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION cache_invalidation_notify_json() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION cache_invalidation_notify_text() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION cache_invalidation_changed(text, text, text, text, text[], text[]) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION cache_invalidation_truncated(text, text, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION cache_invalidation_notify_key(text, text, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION cache_invalidation_notify_ids(text, text, text, text[]) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION cache_invalidation_notify_row(text, text, text, text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION cache_invalidate(text, text) TO PUBLIC;

-- Forgets log rows older than `older_than` that every bridge's cursor has passed (so nothing
-- unpublished goes), and stamps older than that. Returns how many rows it deleted. The notify
-- source trims the log of what every cursor has passed by itself; schedule this (pg_cron, a
-- cron job) for the stamps, and for log rows no bridge trims (cache_invalidate under the WAL
-- source). Replay never looks further back than BRIDGE_REPLAY_MAX_AGE_S anyway.
CREATE OR REPLACE FUNCTION cache_invalidation_prune(older_than interval)
RETURNS bigint LANGUAGE sql VOLATILE AS $$
    WITH gone AS (
        DELETE FROM cache_invalidation_log
        WHERE writer_xid < (SELECT min(resume_xid) FROM cache_bridge_cursor)
          AND logged_at < now() - older_than
        RETURNING 1),
    stamps_gone AS (
        DELETE FROM cache_bridge_stamp
        WHERE seq < floor(extract(epoch FROM now() - older_than) * 1000000)::bigint
        RETURNING 1)
    SELECT (SELECT count(*) FROM gone) + (SELECT count(*) FROM stamps_gone);
$$;

COMMIT;
