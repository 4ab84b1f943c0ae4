-- Elderly one-touch alerts (dispatch/elderly_alerts.py), projected from the
-- `elderalert-` streams: one row per alarm case, with the agent call-back that
-- must confirm someone reached the elder by `callback_due_at`.
CREATE TABLE elderly_alerts (
    case_id         text PRIMARY KEY,
    alarm_id        text NOT NULL,
    account         text NOT NULL,
    elder_id        text,
    registered      boolean NOT NULL,
    notified        integer NOT NULL DEFAULT 0,
    opened_at       timestamptz NOT NULL,
    callback_due_at timestamptz NOT NULL,
    confirmed_at    timestamptz,
    outcome         text,
    confirmed_by    text,
    nearest_help    jsonb
);
CREATE INDEX elderly_alerts_due ON elderly_alerts (callback_due_at) WHERE confirmed_at IS NULL;
CREATE INDEX elderly_alerts_elder ON elderly_alerts (elder_id);
