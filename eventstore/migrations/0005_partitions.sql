-- Partitioned readers (eventstore/partitions.py, eventstore/leadership.py).
--
-- A runner (a projection or a reactor) splits the log by a stable hash of
-- each event's stream (or of a keyed reactor's key) into a FIXED number of
-- partitions. Each partition has its own checkpoint, a row of `checkpoints`
-- named after the runner (one partition) or `runner/partition` (several),
-- and its own lease here: the worker process holding it (`owner`) until
-- `lease_until`, renewed by that worker's heartbeat. A projection locks its
-- lease rows FOR UPDATE in the transaction that applies a batch and moves the
-- checkpoints, and only while the lease is its own (the fence); a claim skips
-- rows locked that way.
CREATE TABLE reader_leases (
    runner      text NOT NULL,
    partition   integer NOT NULL,
    partitions  integer NOT NULL CHECK (partitions > 0),
    owner       text,
    lease_until timestamptz,
    taken_at    timestamptz,
    PRIMARY KEY (runner, partition),
    CHECK (partition >= 0 AND partition < partitions)
);
CREATE INDEX reader_leases_owner ON reader_leases (owner) WHERE owner IS NOT NULL;

-- The worker processes alive now: each heartbeat moves `expires_at` on. The
-- partitions of every runner are spread evenly over the rows not expired.
CREATE TABLE reader_workers (
    worker     text PRIMARY KEY,
    host       text NOT NULL,
    pid        integer NOT NULL,
    started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    beat_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    expires_at timestamptz NOT NULL
);
