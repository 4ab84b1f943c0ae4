-- The board keeps the cases of blacklisted numbers off (they are in the harassment queue): the
-- case board's `queue` filter looks a case up here.
CREATE INDEX caller_contacts_blacklisted_case ON caller_contacts (case_id) WHERE blacklisted AND kind = 'case';
