-- Seals: signed manifests of consecutive ranges of the log in read order
-- (tx_id, position). Each seal lists the positions, streams and hashes of the events
-- it covers and chains the previous seal's hash; with INTAKE_SEAL_KEY set its
-- hash is an HMAC. Written by the background sealer (eventstore/tamper.py),
-- append-only like the log itself.
CREATE TABLE seals (
    seq            bigint PRIMARY KEY CHECK (seq > 0),
    after_tx       xid8 NOT NULL,
    after_position bigint NOT NULL,
    last_tx        xid8 NOT NULL,
    last_position  bigint NOT NULL,
    event_count    integer NOT NULL CHECK (event_count > 0),
    positions      bigint[] NOT NULL,
    streams        text[] NOT NULL,
    hashes         bytea[] NOT NULL,
    keyed          boolean NOT NULL,
    prev_hash      bytea NOT NULL,
    hash           bytea NOT NULL,
    sealed_at      timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TRIGGER seals_append_only BEFORE UPDATE OR DELETE ON seals
    FOR EACH ROW EXECUTE FUNCTION intake_refuse_change();
CREATE TRIGGER seals_no_truncate BEFORE TRUNCATE ON seals
    FOR EACH STATEMENT EXECUTE FUNCTION intake_refuse_change();
