-- Merged incidents (dispatch/incidents.py MergeIncidents): the absorbed incident
-- (status 'merged') names its survivor, the survivor lists what it absorbed.
ALTER TABLE incidents ADD COLUMN merged_into text,
                      ADD COLUMN merged_from text[] NOT NULL DEFAULT '{}';
