-- A group-committed flush (eventstore/group.py) writes its appends together:
-- one subtransaction and one INSERT for the whole batch, instead of one
-- subtransaction and four SPI statements per append.
--
-- Measured (`pg_stat_statements`, 60 flushes of 64 one-event appends, each a
-- new stream with a key): 82-87 us of server time per append one by one, 40-44
-- us together. In `bench.worker` the worker's flushes were PostgreSQL's largest
-- cost (0.33 ms per SMS of 1.05), and the gateway's are one per contact.
--
-- `intake_append_together` takes the arguments of `intake_append_many` and
-- does what `intake_append` does for each append, set-based: the stored-key
-- lookup for all keys, the head of each stream (version and hash), each
-- append's version check against its stream's head as the appends before it
-- in the batch leave it, the hash chain (the same inlined `intake_event_hash`,
-- so `verify` cannot tell the paths apart), one INSERT of every event in batch
-- order (positions ascend in that order, as one by one: the function checks
-- it), and one INSERT of the keys with their final positions. It answers the
-- events' positions and each append's first version.
--
-- It takes only the plain case. Anything else - a stored key, a wrong expected
-- version, a unique violation or deadlock with a concurrent transaction (a
-- repeated key in one batch is one too), any refused value - raises, the
-- subtransaction rolls everything of it back, and `intake_append_many` runs
-- its one-by-one loop (migrations 0001, 0007) unchanged, which gives each
-- append its own status. The first two are found before anything is written,
-- so a batch with a duplicate costs one index probe more than before. A batch
-- with an append refused for its subject's key (`rekey`, 0007) goes one by one
-- from the start. An aborted subtransaction leaves the backend's subxid cache,
-- so the loop's 64 subtransactions after it still fit (group.py MAX_BATCH).
--
-- All appends of a batch share one `recorded_at` (the events of one
-- transaction; one by one, each append took its own clock reading).
CREATE FUNCTION intake_append_together(
    p_streams text[], p_categories text[], p_expected integer[], p_keys text[],
    p_counts integer[], p_types text[], p_schema_versions integer[], p_data jsonb[],
    p_metadata jsonb[], OUT out_positions bigint[], OUT out_first integer[])
LANGUAGE plpgsql AS $$
DECLARE
    v_now      timestamptz := clock_timestamp();
    v_heads    text[];      -- each stream of the batch once,
    v_versions integer[];   -- its version as the appends so far leave it (-1: none),
    v_hashes   bytea[];     -- and its last hash
    v_h        integer;
    v_streams  text[] := '{}';  -- per event: stream, category, version, previous hash, hash
    v_cats     text[] := '{}';
    v_ver      integer[] := '{}';
    v_prev     bytea[] := '{}';
    v_hash     bytea[] := '{}';
    v_j        integer := 0;
BEGIN
    IF EXISTS (SELECT 1 FROM idempotency_keys k WHERE k.key = ANY (p_keys)) THEN
        RAISE EXCEPTION 'a key of the batch is stored' USING ERRCODE = 'IX100';
    END IF;
    SELECT array_agg(s.stream), array_agg(coalesce(h.version, -1)),
           array_agg(coalesce(h.hash, '\x'::bytea))
        INTO v_heads, v_versions, v_hashes
        FROM (SELECT DISTINCT unnest(p_streams) AS stream) s
        LEFT JOIN LATERAL (SELECT e.version, e.hash FROM events e WHERE e.stream = s.stream
                           ORDER BY e.version DESC LIMIT 1) h ON true;
    out_first := '{}';
    FOR i IN 1 .. array_length(p_streams, 1) LOOP
        v_h := array_position(v_heads, p_streams[i]);
        IF (p_expected[i] >= 0 AND p_expected[i] <> v_versions[v_h])
           OR (p_expected[i] = -1 AND v_versions[v_h] <> -1)
           OR (p_expected[i] = -2 AND v_versions[v_h] = -1) THEN
            RAISE EXCEPTION 'a wrong expected version in the batch' USING ERRCODE = 'IX100';
        END IF;
        out_first := out_first || (v_versions[v_h] + 1);
        FOR k IN 1 .. p_counts[i] LOOP
            v_j := v_j + 1;
            v_versions[v_h] := v_versions[v_h] + 1;
            v_streams[v_j] := p_streams[i];
            v_cats[v_j] := p_categories[i];
            v_ver[v_j] := v_versions[v_h];
            v_prev[v_j] := v_hashes[v_h];
            v_hashes[v_h] := intake_event_hash(v_hashes[v_h], p_streams[i], v_versions[v_h],
                p_types[v_j], p_schema_versions[v_j], p_data[v_j], p_metadata[v_j], v_now);
            v_hash[v_j] := v_hashes[v_h];
        END LOOP;
    END LOOP;
    WITH ins AS (
        INSERT INTO events (stream, category, version, type, schema_version, data, metadata,
                            recorded_at, prev_hash, hash)
        SELECT e.stream, e.category, e.version, e.type, e.schema_version, e.data, e.metadata,
               v_now, e.prev_hash, e.hash
            FROM unnest(v_streams, v_cats, v_ver, p_types, p_schema_versions, p_data,
                        p_metadata, v_prev, v_hash) WITH ORDINALITY
                AS e (stream, category, version, type, schema_version, data, metadata,
                      prev_hash, hash, n)
            ORDER BY e.n
        RETURNING stream, version, position)
    SELECT array_agg(ins.position ORDER BY x.n) INTO out_positions
        FROM unnest(v_streams, v_ver) WITH ORDINALITY AS x (stream, version, n)
        JOIN ins ON ins.stream = x.stream AND ins.version = x.version;
    IF out_positions <> (SELECT array_agg(p ORDER BY p) FROM unnest(out_positions) AS p) THEN
        RAISE EXCEPTION 'positions out of the batch order' USING ERRCODE = 'IX100';
    END IF;
    INSERT INTO idempotency_keys (key, stream, positions, first_version, last_version)
    SELECT a.key, a.stream, out_positions[a.upto - a.count + 1 : a.upto], out_first[a.n],
           out_first[a.n] + a.count - 1
        FROM (SELECT k.key, k.stream, k.count, k.n, sum(k.count) OVER (ORDER BY k.n) AS upto
                  FROM unnest(p_keys, p_streams, p_counts) WITH ORDINALITY
                      AS k (key, stream, count, n)) a
        WHERE a.key IS NOT NULL;
END
$$;

CREATE OR REPLACE FUNCTION intake_append_many(
    p_streams text[], p_categories text[], p_expected integer[], p_keys text[],
    p_counts integer[], p_types text[], p_schema_versions integer[], p_data jsonb[],
    p_metadata jsonb[], p_key_subjects text[] DEFAULT NULL, p_key_ids uuid[] DEFAULT NULL,
    p_key_bytes bytea[] DEFAULT NULL, p_event_keys uuid[] DEFAULT NULL)
RETURNS TABLE (status text, out_stream text, out_positions bigint[], out_first integer,
               out_last integer, out_duplicate boolean, actual integer, message text)
LANGUAGE plpgsql AS $$
DECLARE
    v_from      integer := 1;
    v_to        integer;
    v_detail    text;
    v_refused   uuid[];
    v_positions bigint[];
    v_firsts    integer[];
BEGIN
    IF cardinality(p_key_ids) > 0 THEN
        WITH made AS (
            INSERT INTO subject_keys (key_id, subject, key)
            SELECT k.key_id, k.subject, k.key
                FROM unnest(p_key_ids, p_key_subjects, p_key_bytes) AS k (key_id, subject, key)
                ORDER BY k.subject
            ON CONFLICT (subject) DO NOTHING
            RETURNING key_id)
        SELECT array_agg(c) INTO v_refused
            FROM unnest(p_key_ids) AS c WHERE c NOT IN (SELECT key_id FROM made);
    END IF;
    IF v_refused IS NULL AND cardinality(p_streams) > 1 THEN
        BEGIN
            SELECT t.out_positions, t.out_first INTO v_positions, v_firsts
                FROM intake_append_together(p_streams, p_categories, p_expected, p_keys,
                    p_counts, p_types, p_schema_versions, p_data, p_metadata) t;
        EXCEPTION WHEN OTHERS THEN  -- not the plain case: one by one, below
            v_positions := NULL;
        END;
        IF v_positions IS NOT NULL THEN
            FOR i IN 1 .. cardinality(p_streams) LOOP
                v_to := v_from + p_counts[i] - 1;
                status := 'ok'; out_stream := p_streams[i];
                out_positions := v_positions[v_from:v_to]; out_first := v_firsts[i];
                out_last := v_firsts[i] + p_counts[i] - 1; out_duplicate := false;
                actual := NULL; message := NULL;
                RETURN NEXT;
                v_from := v_to + 1;
            END LOOP;
            RETURN;
        END IF;
    END IF;
    FOR i IN 1 .. coalesce(array_length(p_streams, 1), 0) LOOP
        v_to := v_from + p_counts[i] - 1;
        status := 'ok'; out_stream := NULL; out_positions := NULL; out_first := NULL;
        out_last := NULL; out_duplicate := NULL; actual := NULL; message := NULL;
        IF v_refused IS NOT NULL AND p_event_keys[v_from:v_to] && v_refused THEN
            status := 'rekey';
        ELSE
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
        END IF;
        RETURN NEXT;
        v_from := v_to + 1;
    END LOOP;
END
$$;
