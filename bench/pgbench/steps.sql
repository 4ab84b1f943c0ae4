-- A scratch step between a bare INSERT and intake_append, for run.sh's breakdown of
-- the append's server time (bench/RESULTS.md, "Session 8"); not used by intake itself.
-- intake_append for ONE event without its key and its loop: head lookup, version
-- check, INSERT, and the hash chain when p_hashed (append_one.sql) or an empty hash
-- when not (append_nohash.sql).
CREATE FUNCTION bench_append_step(
    p_hashed boolean, p_stream text, p_category text, p_expected integer, p_key text,
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
            CASE WHEN p_hashed THEN intake_event_hash(v_hash, p_stream, v_version, p_types[1],
                p_schema_versions[1], p_data[1], p_metadata[1], v_now) ELSE '\x'::bytea END)
    RETURNING position INTO v_pos;
    out_positions := ARRAY[v_pos]; out_last := v_version; out_duplicate := false;
END $$;
