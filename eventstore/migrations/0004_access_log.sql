-- Who read the log: the access record of the audit API (eventstore/access.py).
-- Reading the log adds nothing to it (a reader tailing it reaches the head);
-- reads are recorded here instead, one row per reader, channel and minute
-- (the first read of a minute at once, the rest of that minute in one more row),
-- hash-chained like the seals (an HMAC with INTAKE_SEAL_KEY) and append-only.
CREATE TABLE access_log (
    seq         bigint PRIMARY KEY CHECK (seq > 0),
    reader      text NOT NULL,
    via         text NOT NULL,
    minute      timestamptz NOT NULL,
    reads       integer NOT NULL CHECK (reads > 0),
    ranges      jsonb NOT NULL,
    first_at    timestamptz NOT NULL,
    last_at     timestamptz NOT NULL,
    keyed       boolean NOT NULL,
    prev_hash   bytea NOT NULL,
    hash        bytea NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX access_log_reader ON access_log (reader, minute);

CREATE TRIGGER access_log_append_only BEFORE UPDATE OR DELETE ON access_log
    FOR EACH ROW EXECUTE FUNCTION intake_refuse_change();
CREATE TRIGGER access_log_no_truncate BEFORE TRUNCATE ON access_log
    FOR EACH STATEMENT EXECUTE FUNCTION intake_refuse_change();
