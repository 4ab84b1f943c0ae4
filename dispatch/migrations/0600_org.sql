-- The organisation tree (`org-` streams, projected by `dispatch.gis.reference`): the city
-- centre, district sub-centres and units, each under one parent, with the districts served.
-- `seq` grows on every write, so `max(seq)` tells a reader whether the tree changed.
CREATE SEQUENCE ref_org_seq;
CREATE TABLE ref_org (
    id        text PRIMARY KEY,
    name      text NOT NULL,
    level     text NOT NULL CHECK (level IN ('city', 'subcentre', 'unit')),
    parent    text,
    districts text[] NOT NULL DEFAULT '{}',
    props     jsonb NOT NULL DEFAULT '{}',
    seq       bigint NOT NULL DEFAULT nextval('ref_org_seq')
);

-- The organisation node holding each case (dispatch/org; reports group cases by it).
ALTER TABLE cases ADD COLUMN owner text;
CREATE INDEX cases_owner ON cases (owner, accepted_at);
