-- Read models of reference data (districts, providers, units, agents, elders),
-- projected from the `district-`, `provider-`, `unit-`, `agent-`, `elder-` streams.
CREATE TABLE ref_districts (
    adcode   text PRIMARY KEY,
    name     text NOT NULL,
    geometry jsonb NOT NULL,
    props    jsonb NOT NULL DEFAULT '{}'
);
CREATE TABLE ref_providers (
    id        text PRIMARY KEY,
    name      text NOT NULL,
    phone     text NOT NULL,
    skills    text[] NOT NULL DEFAULT '{}',
    capacity  integer NOT NULL,
    districts text[] NOT NULL DEFAULT '{}',
    available boolean NOT NULL DEFAULT true,
    lat       double precision NOT NULL,
    lon       double precision NOT NULL,
    props     jsonb NOT NULL DEFAULT '{}'
);
CREATE TABLE ref_units (
    id    text PRIMARY KEY,
    name  text NOT NULL,
    phone text NOT NULL,
    lat   double precision,
    lon   double precision,
    props jsonb NOT NULL DEFAULT '{}'
);
CREATE TABLE ref_agents (
    id     text PRIMARY KEY,
    name   text NOT NULL,
    skills text[] NOT NULL DEFAULT '{}',
    props  jsonb NOT NULL DEFAULT '{}'
);
CREATE TABLE ref_elders (
    id         text PRIMARY KEY,
    name       text NOT NULL,
    phone      text NOT NULL,
    devices    text[] NOT NULL DEFAULT '{}',
    contacts   jsonb NOT NULL DEFAULT '[]',
    district   text,
    conditions jsonb NOT NULL DEFAULT '[]',
    lat        double precision NOT NULL,
    lon        double precision NOT NULL,
    props      jsonb NOT NULL DEFAULT '{}'
);
CREATE TABLE ref_devices (
    account  text PRIMARY KEY,
    elder_id text NOT NULL
);
CREATE INDEX ref_devices_elder ON ref_devices (elder_id);
