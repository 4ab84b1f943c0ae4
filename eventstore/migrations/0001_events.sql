-- The append-only log. Read order is (tx_id, position): readers only return
-- rows whose transaction id is below the commit horizon (intake_horizon(): the
-- oldest transaction of this database still running), so a row that commits
-- late can never be ordered before rows a reader already returned. See
-- eventstore/README.md.
CREATE TABLE events (
    position       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tx_id          xid8 NOT NULL DEFAULT pg_current_xact_id(),
    stream         text NOT NULL,
    category       text NOT NULL,
    version        integer NOT NULL,
    type           text NOT NULL,
    schema_version integer NOT NULL,
    data           jsonb NOT NULL,
    metadata       jsonb NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    prev_hash      bytea NOT NULL,
    hash           bytea NOT NULL,
    CONSTRAINT events_stream_version UNIQUE (stream, version)
);
CREATE INDEX events_read_order ON events (tx_id, position);
CREATE INDEX events_category_order ON events (category, tx_id, position);

CREATE TABLE idempotency_keys (
    key           text PRIMARY KEY,
    stream        text NOT NULL,
    positions     bigint[] NOT NULL,
    first_version integer NOT NULL,
    last_version  integer NOT NULL
);

CREATE TABLE checkpoints (
    name       text PRIMARY KEY,
    tx_id      xid8 NOT NULL,
    position   bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The commit horizon of the current statement's snapshot S: every committed
-- row of this database with tx_id below it is visible in S, and every row
-- that commits later has a tx_id at or above it. It is the oldest xid still
-- running in S (min of pg_snapshot_xip), or pg_snapshot_xmax when none runs,
-- skipping xids positively identified as belonging to a backend connected to
-- ANOTHER database (it cannot write our tables): the activity of that backend
-- shows the xid as its backend_xid AND pg_locks shows the same backend (pid)
-- holding the xid's own lock. Any other xid is kept, so without the
-- privilege to see backend_xid this is pg_snapshot_xmin(S). Proof and limits:
-- eventstore/README.md. STABLE plpgsql: runs in the caller's snapshot, plans
-- cached per session; the activity and lock tables are only read when some
-- row is actually held back by the plain xmin.
CREATE FUNCTION intake_horizon() RETURNS xid8 LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_snap pg_snapshot := pg_current_snapshot();
    v_xmin xid8 := pg_snapshot_xmin(v_snap);
BEGIN
    IF v_xmin = pg_snapshot_xmax(v_snap)
       OR NOT EXISTS (SELECT 1 FROM events WHERE tx_id >= v_xmin) THEN
        RETURN v_xmin;
    END IF;
    RETURN coalesce((
        SELECT min(x) FROM pg_snapshot_xip(v_snap) AS x
        WHERE NOT EXISTS (
            SELECT 1 FROM pg_stat_get_activity(NULL) a JOIN pg_locks l ON l.pid = a.pid
            WHERE a.datid <> (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())
              AND a.backend_xid = l.transactionid
              AND l.locktype = 'transactionid' AND l.mode = 'ExclusiveLock' AND l.granted
              AND l.transactionid::text::bigint = x::text::bigint % 4294967296)),
        pg_snapshot_xmax(v_snap));
END
$$;

-- The hash of one event: covers its content and the previous hash of its stream.
-- STABLE, not IMMUTABLE: its body (concat_ws, to_char) is stable, and only a
-- function whose body is no more volatile than declared can be inlined.
CREATE FUNCTION intake_event_hash(
    p_prev bytea, p_stream text, p_version integer, p_type text,
    p_schema_version integer, p_data jsonb, p_metadata jsonb, p_recorded_at timestamptz
) RETURNS bytea LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT sha256(p_prev || convert_to(concat_ws(chr(31),
        p_stream, p_version::text, p_type, p_schema_version::text,
        p_data::text, p_metadata::text,
        to_char(p_recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US')), 'UTF8'))
$$;

-- Append events to one stream in a single round trip. Raises SQLSTATE IX409
-- (detail = actual version) on a wrong expected version; on a stored
-- idempotency key returns the first append's positions with duplicate = true.
-- Expected version: >= 0 exact, -1 no stream, -2 stream exists, -3 any.
-- The key row is written once, last, with the final positions: a concurrent
-- append of the same key blocks on that primary key (or on the stream's
-- (stream, version)) until the first one ends, then fails with a unique
-- violation if it committed; the client then reads the stored key and
-- answers with it as a duplicate (eventstore/postgres.py).
CREATE FUNCTION intake_append(
    p_stream text, p_category text, p_expected integer, p_key text,
    p_types text[], p_schema_versions integer[], p_data jsonb[], p_metadata jsonb[],
    OUT out_stream text, OUT out_positions bigint[], OUT out_first integer,
    OUT out_last integer, OUT out_duplicate boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_version integer;
    v_hash    bytea;
    v_now     timestamptz := clock_timestamp();
    v_pos     bigint;
BEGIN
    IF p_key IS NOT NULL THEN
        SELECT k.stream, k.positions, k.first_version, k.last_version, true
            INTO out_stream, out_positions, out_first, out_last, out_duplicate
            FROM idempotency_keys k WHERE k.key = p_key;
        IF FOUND THEN
            RETURN;
        END IF;
    END IF;
    SELECT e.version, e.hash INTO v_version, v_hash
        FROM events e WHERE e.stream = p_stream ORDER BY e.version DESC LIMIT 1;
    IF NOT FOUND THEN
        v_version := -1;
        v_hash := '\x'::bytea;
    END IF;
    IF (p_expected >= 0 AND p_expected <> v_version)
       OR (p_expected = -1 AND v_version <> -1)
       OR (p_expected = -2 AND v_version = -1) THEN
        RAISE EXCEPTION 'wrong expected version' USING ERRCODE = 'IX409', DETAIL = v_version::text;
    END IF;
    out_stream := p_stream;
    out_first := v_version + 1;
    out_positions := '{}';
    FOR i IN 1 .. array_length(p_types, 1) LOOP
        v_version := v_version + 1;
        -- The hash inside the INSERT, whose plan (cached per session) inlines
        -- intake_event_hash; not inlined, a SQL function is parsed and planned
        -- again in every transaction (~100 us of server CPU per append).
        INSERT INTO events (stream, category, version, type, schema_version, data,
                            metadata, recorded_at, prev_hash, hash)
        VALUES (p_stream, p_category, v_version, p_types[i], p_schema_versions[i],
                p_data[i], p_metadata[i], v_now, v_hash,
                intake_event_hash(v_hash, p_stream, v_version, p_types[i],
                    p_schema_versions[i], p_data[i], p_metadata[i], v_now))
        RETURNING position, hash INTO v_pos, v_hash;
        out_positions := out_positions || v_pos;
    END LOOP;
    out_last := v_version;
    out_duplicate := false;
    IF p_key IS NOT NULL THEN
        INSERT INTO idempotency_keys (key, stream, positions, first_version, last_version)
        VALUES (p_key, p_stream, out_positions, out_first, out_last);
    END IF;
END
$$;

-- Group commit (eventstore/group.py): many appends in ONE transaction, each in
-- its own subtransaction (a BEGIN ... EXCEPTION block), so that one append's
-- failure rolls back only its own rows and the others still commit. Append i
-- has p_counts[i] events, taken in order from the flattened event arrays.
-- One row per append, in order: status 'ok' (with intake_append's result),
-- 'wrong' (actual = the stream's version), 'retry' (a unique violation or
-- deadlock with a concurrent transaction: nothing of it was written; the
-- client settles it with a plain append, which reads the stored key or the
-- new version), or 'error' (message: any other refusal, e.g. bad data).
-- Callers keep batches at most 64 appends: more subtransactions than the
-- backend's subxid cache (64) overflow every snapshot taken meanwhile.
CREATE FUNCTION intake_append_many(
    p_streams text[], p_categories text[], p_expected integer[], p_keys text[],
    p_counts integer[], p_types text[], p_schema_versions integer[], p_data jsonb[],
    p_metadata jsonb[])
RETURNS TABLE (status text, out_stream text, out_positions bigint[], out_first integer,
               out_last integer, out_duplicate boolean, actual integer, message text)
LANGUAGE plpgsql AS $$
DECLARE
    v_from integer := 1;
    v_to   integer;
    v_detail text;
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_streams, 1), 0) LOOP
        v_to := v_from + p_counts[i] - 1;
        status := 'ok'; out_stream := NULL; out_positions := NULL; out_first := NULL;
        out_last := NULL; out_duplicate := NULL; actual := NULL; message := NULL;
        BEGIN
            SELECT a.out_stream, a.out_positions, a.out_first, a.out_last, a.out_duplicate
                INTO out_stream, out_positions, out_first, out_last, out_duplicate
                FROM intake_append(p_streams[i], p_categories[i], p_expected[i], p_keys[i],
                    p_types[v_from:v_to], p_schema_versions[v_from:v_to],
                    p_data[v_from:v_to], p_metadata[v_from:v_to]) a;
        EXCEPTION
            WHEN SQLSTATE 'IX409' THEN
                GET STACKED DIAGNOSTICS v_detail = PG_EXCEPTION_DETAIL;
                status := 'wrong';
                actual := v_detail::integer;
            WHEN unique_violation OR deadlock_detected THEN
                status := 'retry';
            WHEN OTHERS THEN
                status := 'error';
                message := SQLERRM;
        END;
        RETURN NEXT;
        v_from := v_to + 1;
    END LOOP;
END
$$;

-- The log is append-only: the database itself refuses to change or remove it.
CREATE FUNCTION intake_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'table % is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'IX403';
END
$$;
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION intake_refuse_change();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION intake_refuse_change();
