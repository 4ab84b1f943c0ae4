-- The `cases` read model (dispatch/projections_cases.py), projected from the
-- `case-` streams. Owned by the case lifecycle; other components read it only.
-- Open = status not in (completed, called_back, archived, closed).
CREATE TABLE cases (
    case_id          text PRIMARY KEY,
    status           text NOT NULL,
    category         text NOT NULL,
    priority         integer NOT NULL,
    channel          text NOT NULL,
    caller_name      text,
    caller_phone     text,
    caller_openid    text,
    caller_email     text,
    lat              double precision,
    lon              double precision,
    district         text,
    address          text,
    description      text NOT NULL DEFAULT '',
    light            text NOT NULL DEFAULT 'green' CHECK (light IN ('green', 'yellow', 'red')),
    deadline         timestamptz,
    assigned_to      text,
    incident_id      text,
    linked_case_ids  text[] NOT NULL DEFAULT '{}',
    flags            text[] NOT NULL DEFAULT '{}',
    elder_id         text,
    version          integer NOT NULL,
    created_at       timestamptz NOT NULL,
    accepted_at      timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    closed_at        timestamptz,
    -- lifecycle instants and SLA limits (docs/cases-sla.md)
    assignee_kind    text,
    dispatched_at    timestamptz,
    confirm_by       timestamptz,
    confirmed_at     timestamptz,
    complete_by      timestamptz,
    completed_at     timestamptz,
    callback_by      timestamptz,
    callback_outcome text,
    archived_at      timestamptz,
    last_touched_at  timestamptz,
    yellow_at        timestamptz,
    red_at           timestamptz,
    data             jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX cases_status ON cases (status, accepted_at);
CREATE INDEX cases_category ON cases (category);
CREATE INDEX cases_district ON cases (district);
CREATE INDEX cases_assigned ON cases (assigned_to);
CREATE INDEX cases_light ON cases (light);
CREATE INDEX cases_linked ON cases USING gin (linked_case_ids);
CREATE INDEX cases_incident ON cases (incident_id);
CREATE INDEX cases_elder ON cases (elder_id);
CREATE INDEX cases_caller_phone ON cases (caller_phone);
CREATE INDEX cases_overdue_confirm ON cases (confirm_by) WHERE status = 'dispatched';
CREATE INDEX cases_overdue_complete ON cases (complete_by) WHERE status IN ('confirmed', 'in_progress');
CREATE INDEX cases_overdue_callback ON cases (callback_by)
    WHERE completed_at IS NOT NULL AND callback_outcome IS NULL;

-- Per receiving unit / provider assessment counters (rejections, wrong
-- rejections, call-back answers per handler), projected from the same streams.
CREATE TABLE case_unit_stats (
    unit_id          text PRIMARY KEY,
    dispatched       integer NOT NULL DEFAULT 0,
    confirmed        integer NOT NULL DEFAULT 0,
    rejected         integer NOT NULL DEFAULT 0,
    wrong_rejections integer NOT NULL DEFAULT 0,
    completed        integer NOT NULL DEFAULT 0,
    chased           integer NOT NULL DEFAULT 0,
    satisfied        integer NOT NULL DEFAULT 0,
    unsatisfied      integer NOT NULL DEFAULT 0,
    not_confirmed    integer NOT NULL DEFAULT 0
);
