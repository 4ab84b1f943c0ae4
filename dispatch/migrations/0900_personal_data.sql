-- Personal data with an end (dispatch/personal): erasures, retention runs, legal holds.

-- One row per erasure, written with its PersonalDataErased event: the keyed pseudonyms of the
-- identifiers erased (never the identifiers) and the cases, so that an access request after
-- an erasure still finds what is left of the person (dispatch/personal/access.py).
CREATE TABLE erasures (
    erasure_id  text PRIMARY KEY,
    subjects    text[] NOT NULL,
    case_ids    text[] NOT NULL,
    legal_basis text NOT NULL,
    at          timestamptz NOT NULL
);
CREATE INDEX erasures_subjects ON erasures USING gin (subjects);

-- The daily retention job's runs, one per day (UTC): a restarted or second worker does not
-- run it again that day (dispatch/personal/retention.py).
CREATE TABLE retention_runs (
    day         date PRIMARY KEY,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz,
    erased      integer NOT NULL DEFAULT 0,
    skipped     integer NOT NULL DEFAULT 0
);

-- The erasure and the retention job find a person's cases by OpenID too (widening, once per
-- person): without this each look-up scans every case.
CREATE INDEX IF NOT EXISTS cases_caller_openid ON cases (caller_openid) WHERE caller_openid IS NOT NULL;
