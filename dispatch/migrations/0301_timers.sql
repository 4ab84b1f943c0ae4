-- Durable timers (dispatch/timers.py): one row per pending timer, keyed by a
-- caller-chosen key; the worker fires due rows as bus commands and deletes them.
CREATE TABLE timers (
    key        text PRIMARY KEY,
    due_at     timestamptz NOT NULL,
    command    text NOT NULL,
    payload    jsonb NOT NULL,
    attempts   integer NOT NULL DEFAULT 0,
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX timers_due ON timers (due_at);
