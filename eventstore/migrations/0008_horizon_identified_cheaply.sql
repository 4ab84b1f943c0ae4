-- The commit horizon's identification (migration 0001, renamed by 0003) is
-- the same answer for less work.
--
-- A worker under load holds rows back past the patience of 0003 with its own
-- transactions, so the identification ran on about every other read
-- (`bench.worker`'s whole worker, `pg_stat_statements`, tracking nested
-- statements: 305 of 546 reads), and each paid ~2.7 ms of server time for an
-- answer that was the plain xmin:
-- - its test "is any row held back" was `NOT EXISTS (... tx_id >= v_xmin)`,
--   which plpgsql's generic plan ran as a sequential scan of `events` (the
--   held-back rows are the newest, at the end of the heap): 1.8 ms;
-- - the activity and lock tables were then read for every xid running: 0.9 ms.
--
-- Now the first test is an ordered probe of the read-order index, and the
-- oldest xid running (`min(xip(S))`) is returned at once unless the activity
-- table shows it as another database's: an xid not shown there cannot be
-- identified, so it is the horizon (`h = min(xip(S) \ E)`, eventstore/README.md:
-- the oldest xid not in E). Only when it is shown is the identification of
-- migration 0001 run, unchanged. The answer is the same in every case.
CREATE OR REPLACE FUNCTION intake_horizon_identified() RETURNS xid8 LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_snap   pg_snapshot := pg_current_snapshot();
    v_xmin   xid8 := pg_snapshot_xmin(v_snap);
    v_oldest xid8;
BEGIN
    IF v_xmin = pg_snapshot_xmax(v_snap)
       OR (SELECT e.tx_id FROM events e WHERE e.tx_id >= v_xmin ORDER BY e.tx_id LIMIT 1) IS NULL THEN
        RETURN v_xmin;
    END IF;
    -- Not the xmin itself: that may be this transaction's own xid, which is not in xip.
    v_oldest := (SELECT min(x) FROM pg_snapshot_xip(v_snap) AS x);
    IF v_oldest IS NULL THEN
        RETURN pg_snapshot_xmax(v_snap);
    END IF;
    IF NOT EXISTS (
            SELECT 1 FROM pg_stat_get_activity(NULL) a
            WHERE a.datid <> (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())
              AND a.backend_xid::text::bigint = v_oldest::text::bigint % 4294967296) THEN
        RETURN v_oldest;
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
