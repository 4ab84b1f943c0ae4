-- Read models of the phone / SMS channels (issue 3): calls, call-back tasks,
-- and the notification outbox (written with its NotificationRequested event).
CREATE TABLE calls (
    call_id      text PRIMARY KEY,
    caller       text,
    queue        text,
    agent        text,
    source       text,
    status       text NOT NULL,
    offered_at   timestamptz,
    answered_at  timestamptz,
    abandoned_at timestamptz,
    ended_at     timestamptz,
    reason       text,
    recording    text,
    case_id      text,
    version      integer NOT NULL
);
CREATE INDEX calls_abandoned ON calls (abandoned_at) WHERE abandoned_at IS NOT NULL;
CREATE INDEX calls_case ON calls (case_id) WHERE case_id IS NOT NULL;

CREATE TABLE missed_calls (
    task_id           text PRIMARY KEY,
    stream            text NOT NULL,
    caller            text NOT NULL,
    queue             text,
    status            text NOT NULL,
    attempts          integer NOT NULL,
    callback_attempts integer NOT NULL DEFAULT 0,
    first_missed_at   timestamptz NOT NULL,
    last_missed_at    timestamptz NOT NULL,
    assigned_to       text,
    assigned_at       timestamptz,
    due_at            timestamptz,
    outcome           text,
    closed_at         timestamptz,
    close_reason      text,
    call_ids          text[] NOT NULL DEFAULT '{}',
    pinned            boolean NOT NULL DEFAULT false,
    version           integer NOT NULL
);
CREATE INDEX missed_calls_open ON missed_calls (status, assigned_to);
CREATE UNIQUE INDEX missed_calls_one_open ON missed_calls (caller) WHERE status = 'open';

CREATE TABLE notification_outbox (
    id              bigserial PRIMARY KEY,
    dedup_key       text NOT NULL UNIQUE,
    stream          text NOT NULL,
    case_id         text,
    channel         text NOT NULL,
    to_addr         text NOT NULL,
    body            text NOT NULL,
    reason          text NOT NULL DEFAULT '',
    status          text NOT NULL DEFAULT 'pending',
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease_until     timestamptz,
    provider_id     text,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notification_outbox_due ON notification_outbox (next_attempt_at)
    WHERE status IN ('pending', 'retry', 'sending');
CREATE INDEX notification_outbox_case ON notification_outbox (case_id);
