-- Scratch steps between a bare INSERT and intake_append, for run.sh's breakdown of
-- the append's server time (bench/RESULTS.md, "Session 8"). Each is intake_append
-- for ONE event with one thing left out; none is used by intake itself.

-- Head lookup, version check and INSERT; no hash, no key, no loop.
CREATE FUNCTION bench_append_nohash(
    p_stream text, p_category text, p_expected integer, p_key text,
    p_types text[], p_schema_versions integer[], p_data jsonb[], p_metadata jsonb[],
    OUT out_stream text, OUT out_positions bigint[], OUT out_first integer,
    OUT out_last integer, OUT out_duplicate boolean)
LANGUAGE plpgsql AS $$
DECLARE v_version integer; v_hash bytea; v_now timestamptz := clock_timestamp(); v_pos bigint;
BEGIN
    SELECT e.version, e.hash INTO v_version, v_hash FROM events e
        WHERE e.stream = p_stream ORDER BY e.version DESC LIMIT 1;
    IF NOT FOUND THEN v_version := -1; v_hash := '\x'::bytea; END IF;
    IF (p_expected >= 0 AND p_expected <> v_version) OR (p_expected = -1 AND v_version <> -1)
       OR (p_expected = -2 AND v_version = -1) THEN
        RAISE EXCEPTION 'wrong expected version' USING ERRCODE = 'IX409', DETAIL = v_version::text;
    END IF;
    out_stream := p_stream; out_first := v_version + 1; v_version := v_version + 1;
    INSERT INTO events (stream, category, version, type, schema_version, data, metadata,
                        recorded_at, prev_hash, hash)
    VALUES (p_stream, p_category, v_version, p_types[1], p_schema_versions[1], p_data[1],
            p_metadata[1], v_now, v_hash, '\x')
    RETURNING position INTO v_pos;
    out_positions := ARRAY[v_pos]; out_last := v_version; out_duplicate := false;
END $$;

-- The same with the hash: intake_append without its key and its loop over events.
CREATE FUNCTION bench_append_one(
    p_stream text, p_category text, p_expected integer, p_key text,
    p_types text[], p_schema_versions integer[], p_data jsonb[], p_metadata jsonb[],
    OUT out_stream text, OUT out_positions bigint[], OUT out_first integer,
    OUT out_last integer, OUT out_duplicate boolean)
LANGUAGE plpgsql AS $$
DECLARE v_version integer; v_hash bytea; v_now timestamptz := clock_timestamp(); v_pos bigint;
BEGIN
    SELECT e.version, e.hash INTO v_version, v_hash FROM events e
        WHERE e.stream = p_stream ORDER BY e.version DESC LIMIT 1;
    IF NOT FOUND THEN v_version := -1; v_hash := '\x'::bytea; END IF;
    IF (p_expected >= 0 AND p_expected <> v_version) OR (p_expected = -1 AND v_version <> -1)
       OR (p_expected = -2 AND v_version = -1) THEN
        RAISE EXCEPTION 'wrong expected version' USING ERRCODE = 'IX409', DETAIL = v_version::text;
    END IF;
    out_stream := p_stream; out_first := v_version + 1; v_version := v_version + 1;
    INSERT INTO events (stream, category, version, type, schema_version, data, metadata,
                        recorded_at, prev_hash, hash)
    VALUES (p_stream, p_category, v_version, p_types[1], p_schema_versions[1], p_data[1],
            p_metadata[1], v_now, v_hash,
            intake_event_hash(v_hash, p_stream, v_version, p_types[1], p_schema_versions[1],
                p_data[1], p_metadata[1], v_now))
    RETURNING position INTO v_pos;
    out_positions := ARRAY[v_pos]; out_last := v_version; out_duplicate := false;
END $$;
