-- The reports' read model (dispatch/reports/read_model.py), rebuilt from the call and case
-- streams by `intake rebuild reports`. `report_facts`: one fact per call and per case (JSON,
-- dispatch/reports/facts.py); `report_callers`: each caller's latest case (repeat contacts);
-- `report_buckets`: per report, grouping (`dim`) and its key, and local day (Asia/Shanghai),
-- the sums of the facts' contributions as a vector in the order of the report's measures
-- (dispatch/reports/definitions.py). A report sums day buckets over its range.
CREATE TABLE report_facts (
    kind text NOT NULL,
    id   text NOT NULL,
    data jsonb NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE TABLE report_callers (
    caller  text PRIMARY KEY,
    case_id text NOT NULL,
    at      timestamptz NOT NULL
);
CREATE TABLE report_buckets (
    report text NOT NULL,
    dim    text NOT NULL,
    day    date NOT NULL,
    key    text NOT NULL,
    sums   bigint[] NOT NULL,
    PRIMARY KEY (report, dim, day, key)
);
