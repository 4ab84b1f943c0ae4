-- The gazetteer (`place-` streams, projected by `dispatch.gis.reference`): each place's
-- names, type, district and representative WGS84 point (a polygon's point on surface).
-- `seq` grows on every write, so `max(seq)` tells a reader whether the gazetteer changed.
CREATE SEQUENCE ref_places_seq;
CREATE TABLE ref_places (
    id       text PRIMARY KEY,
    name     text NOT NULL,
    type     text,
    district text,
    aliases  text[] NOT NULL DEFAULT '{}',
    lat      double precision NOT NULL,
    lon      double precision NOT NULL,
    geometry jsonb NOT NULL,
    props    jsonb NOT NULL DEFAULT '{}',
    seq      bigint NOT NULL DEFAULT nextval('ref_places_seq')
);
CREATE INDEX ref_places_seq_idx ON ref_places (seq);
