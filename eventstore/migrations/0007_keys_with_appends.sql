-- Group commit stores new subjects' keys in the transaction of the appends
-- sealed with them (eventstore/group.py, eventstore/shredding.py).
--
-- A flush seals the personal data of a subject whose key it has not cached
-- with a key it makes itself, without asking the database first: one round
-- trip and one transaction per flush instead of two (a storm of new callers
-- paid a key statement and its transaction in most flushes). The flush sends
-- those keys along: p_key_subjects, p_key_ids and p_key_bytes, and for each
-- event the id of the new key it is sealed with (p_event_keys, NULL where
-- none). They are stored first, in subject order (two flushes making keys for
-- the same subjects wait for each other in one order). A subject that has a
-- key already (made by another process, or one this process no longer has
-- cached) keeps it: its new key is not stored, and every append with an event
-- sealed with such a key gets status 'rekey' and writes nothing (the client
-- looks the subject's key up and appends again). A key stored here commits
-- with the events sealed with it, so no event is ever durable without its key.
--
-- The four key arguments default to NULL: a call with the nine arguments of
-- migration 0001 (a process of the previous release during a rolling
-- upgrade) behaves as it did.
DROP FUNCTION intake_append_many(text[], text[], integer[], text[], integer[], text[], integer[],
                                 jsonb[], jsonb[]);

CREATE FUNCTION intake_append_many(
    p_streams text[], p_categories text[], p_expected integer[], p_keys text[],
    p_counts integer[], p_types text[], p_schema_versions integer[], p_data jsonb[],
    p_metadata jsonb[], p_key_subjects text[] DEFAULT NULL, p_key_ids uuid[] DEFAULT NULL,
    p_key_bytes bytea[] DEFAULT NULL, p_event_keys uuid[] DEFAULT NULL)
RETURNS TABLE (status text, out_stream text, out_positions bigint[], out_first integer,
               out_last integer, out_duplicate boolean, actual integer, message text)
LANGUAGE plpgsql AS $$
DECLARE
    v_from    integer := 1;
    v_to      integer;
    v_detail  text;
    v_refused uuid[];
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
