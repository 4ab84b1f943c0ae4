-- Partitioned readers (eventstore/partitions.py, eventstore/leadership.py).
-- `readers` has one row per runner: its kind, fixed partition count and categories.
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
CREATE TABLE readers (
    runner     text PRIMARY KEY,
    kind       text NOT NULL,            -- projection | reactor
    partitions integer NOT NULL CHECK (partitions > 0),
    categories text[],                   -- NULL: every category (for `intake status`'s lag)
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE reader_leases (
    runner      text NOT NULL REFERENCES readers,
    partition   integer NOT NULL CHECK (partition >= 0),
    owner       text,
    lease_until timestamptz,
    taken_at    timestamptz,
    PRIMARY KEY (runner, partition)
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
