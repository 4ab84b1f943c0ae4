-- The append-only log. Read order is (tx_id, position): readers only return
-- rows whose transaction id is below the oldest running transaction
-- (pg_snapshot_xmin), so a row that commits late can never be ordered before
-- rows a reader already returned. See eventstore/README.md.
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

-- The hash of one event: covers its content and the previous hash of its stream.
CREATE FUNCTION intake_event_hash(
    p_prev bytea, p_stream text, p_version integer, p_type text,
    p_schema_version integer, p_data jsonb, p_metadata jsonb, p_recorded_at timestamptz
) RETURNS bytea LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT sha256(p_prev || convert_to(concat_ws(chr(31),
        p_stream, p_version::text, p_type, p_schema_version::text,
        p_data::text, p_metadata::text,
        to_char(p_recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US')), 'UTF8'))
$$;

-- Append events to one stream in a single round trip. Raises SQLSTATE IX409
-- (detail = actual version) on a wrong expected version; on a stored
-- idempotency key returns the first append's positions with duplicate = true.
-- Expected version: >= 0 exact, -1 no stream, -2 stream exists, -3 any.
CREATE FUNCTION intake_append(
    p_stream text, p_category text, p_expected integer, p_key text,
    p_types text[], p_schema_versions integer[], p_data jsonb[], p_metadata jsonb[]
) RETURNS TABLE (out_stream text, out_positions bigint[], out_first integer,
                 out_last integer, out_duplicate boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_version integer;
    v_hash    bytea;
    v_prev    bytea;
    v_now     timestamptz := clock_timestamp();
    v_pos     bigint;
    v_positions bigint[] := '{}';
    v_first   integer;
BEGIN
    IF p_key IS NOT NULL THEN
        INSERT INTO idempotency_keys (key, stream, positions, first_version, last_version)
        VALUES (p_key, p_stream, '{}', 0, 0) ON CONFLICT (key) DO NOTHING;
        IF NOT FOUND THEN
            RETURN QUERY SELECT k.stream, k.positions, k.first_version, k.last_version, true
                FROM idempotency_keys k WHERE k.key = p_key;
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
    v_first := v_version + 1;
    FOR i IN 1 .. array_length(p_types, 1) LOOP
        v_version := v_version + 1;
        v_prev := v_hash;
        v_hash := intake_event_hash(v_prev, p_stream, v_version, p_types[i],
            p_schema_versions[i], p_data[i], p_metadata[i], v_now);
        INSERT INTO events (stream, category, version, type, schema_version, data,
                            metadata, recorded_at, prev_hash, hash)
        VALUES (p_stream, p_category, v_version, p_types[i], p_schema_versions[i],
                p_data[i], p_metadata[i], v_now,
                v_prev, v_hash)
        RETURNING position INTO v_pos;
        v_positions := v_positions || v_pos;
    END LOOP;
    IF p_key IS NOT NULL THEN
        UPDATE idempotency_keys SET positions = v_positions, first_version = v_first,
            last_version = v_version WHERE key = p_key;
    END IF;
    RETURN QUERY SELECT p_stream, v_positions, v_first, v_version, false;
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
