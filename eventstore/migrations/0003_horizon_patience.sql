-- The commit horizon reads the activity and lock tables only for rows that have
-- waited behind the plain xmin for longer than p_patience.
--
-- Identifying other databases' transactions (migration 0001) costs a scan of
-- pg_stat_get_activity and pg_locks: ~0.5-0.7 ms of server CPU per call with a
-- few dozen backends, which a busy worker paid on nearly every read, because
-- its own short transactions almost always hold the plain xmin. Waiting is
-- always safe (pg_snapshot_xmin is a correct horizon, only a lower one), so the
-- refinement is worth its cost only once the oldest held-back row has waited a
-- while: within p_patience a reader simply sees it as pending and re-polls, as
-- it would behind a transaction of its own database. Past p_patience the
-- answer is the same as migration 0001's. See eventstore/README.md (the commit
-- horizon).
DROP FUNCTION intake_horizon();

CREATE FUNCTION intake_horizon(p_patience interval DEFAULT interval '20 milliseconds')
RETURNS xid8 LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_snap  pg_snapshot := pg_current_snapshot();
    v_xmin  xid8 := pg_snapshot_xmin(v_snap);
    v_first timestamptz;
BEGIN
    IF v_xmin = pg_snapshot_xmax(v_snap) THEN
        RETURN v_xmin;
    END IF;
    -- The oldest visible row the plain xmin holds back (read order index).
    SELECT e.recorded_at INTO v_first FROM events e
        WHERE e.tx_id >= v_xmin ORDER BY e.tx_id, e.position LIMIT 1;
    IF NOT FOUND OR v_first > clock_timestamp() - p_patience THEN
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
