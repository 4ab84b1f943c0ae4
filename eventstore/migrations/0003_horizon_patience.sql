-- The commit horizon identifies other databases' transactions (migration 0001)
-- only for rows that have waited behind the plain xmin longer than p_patience.
--
-- That identification scans pg_stat_get_activity and pg_locks: ~0.5-0.7 ms of
-- server CPU per call with a few dozen backends, which a busy worker paid on
-- nearly every read, because its own short transactions almost always hold the
-- plain xmin. Waiting is always safe (pg_snapshot_xmin is a correct horizon,
-- only a lower one), so the identification is worth its cost only once the
-- oldest held-back row has waited a while: within p_patience a reader simply
-- sees it as pending and re-polls, as it would behind a transaction of its own
-- database. Past p_patience the answer is migration 0001's, which stays the one
-- definition of it, renamed. See eventstore/README.md (the commit horizon).
ALTER FUNCTION intake_horizon() RENAME TO intake_horizon_identified;

CREATE FUNCTION intake_horizon(p_patience interval DEFAULT interval '20 milliseconds')
RETURNS xid8 LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_xmin  xid8 := pg_snapshot_xmin(pg_current_snapshot());
    v_first timestamptz;
BEGIN
    -- The oldest visible row the plain xmin holds back (read order index).
    SELECT e.recorded_at INTO v_first FROM events e
        WHERE e.tx_id >= v_xmin ORDER BY e.tx_id, e.position LIMIT 1;
    IF NOT FOUND OR v_first > clock_timestamp() - p_patience THEN
        RETURN v_xmin;
    END IF;
    RETURN intake_horizon_identified();  -- STABLE: the same snapshot as the caller's
END
$$;
