-- Duplicate-case linking and incidents (dispatch/duplicates.py, dispatch/incidents.py).

-- The linking policy's working memory: recent cases with place, category and
-- caller, written only by the policy (dispatch/linking_policy.py) in log order.
-- `pt` carries a GiST index: the bounding-box prefilter of a space-time query.
CREATE TABLE link_candidates (
    case_id     text PRIMARY KEY,
    category    text NOT NULL,
    at          timestamptz NOT NULL,
    lat         double precision,
    lon         double precision,
    pt          point GENERATED ALWAYS AS (point(lon, lat)) STORED,
    district    text,
    phone       text,
    openid      text,
    incident_id text
);
CREATE INDEX link_candidates_pt ON link_candidates USING gist (pt);
CREATE INDEX link_candidates_at ON link_candidates (at);
CREATE INDEX link_candidates_phone ON link_candidates (phone) WHERE phone IS NOT NULL;
CREATE INDEX link_candidates_openid ON link_candidates (openid) WHERE openid IS NOT NULL;
CREATE INDEX link_candidates_incident ON link_candidates (incident_id) WHERE incident_id IS NOT NULL;

-- Read models (dispatch/projections_links.py): each case's side of its links,
-- the incidents and their members. (`cases.linked_case_ids` / `incident_id`
-- come from the cases projection, which folds the same events into CaseState.)
CREATE TABLE case_links (
    case_id       text NOT NULL,
    other_case_id text NOT NULL,
    reason        text NOT NULL,
    score         double precision,
    linked_at     timestamptz NOT NULL,
    PRIMARY KEY (case_id, other_case_id)
);
CREATE TABLE incidents (
    incident_id             text PRIMARY KEY,
    status                  text NOT NULL,
    category                text NOT NULL,
    district                text NOT NULL,
    lat                     double precision,
    lon                     double precision,
    opened_at               timestamptz NOT NULL,
    case_count              integer NOT NULL DEFAULT 0,
    cause                   text,
    expected_restoration_at timestamptz,
    cause_revision          integer NOT NULL DEFAULT 0,
    resolved_at             timestamptz,
    version                 integer NOT NULL
);
CREATE INDEX incidents_status ON incidents (status, opened_at DESC);
CREATE TABLE incident_cases (
    incident_id text NOT NULL,
    case_id     text NOT NULL,
    added_at    timestamptz NOT NULL,
    PRIMARY KEY (incident_id, case_id)
);
CREATE INDEX incident_cases_case ON incident_cases (case_id);
