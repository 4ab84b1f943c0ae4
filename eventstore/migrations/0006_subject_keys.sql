-- Personal data with an end (eventstore/shredding.py, README "Personal data").
--
-- Personal fields of events are sealed (AES-256-GCM) with a key per data
-- subject: a normalised phone number, a WeChat OpenID, an elder, a device.
-- The keys live here, never in the log. Erasure deletes a subject's key:
-- the ciphertext stays in the log (its hashes and seals unchanged, so
-- `intake verify` still passes) and can no longer be read by anyone.
-- One live key per subject; a subject who comes back after an erasure gets a
-- new key, and what was erased stays unreadable.
CREATE TABLE subject_keys (
    key_id     uuid PRIMARY KEY,
    subject    text NOT NULL UNIQUE,
    key        bytea NOT NULL CHECK (octet_length(key) = 32),
    created_at timestamptz NOT NULL DEFAULT now()
);
