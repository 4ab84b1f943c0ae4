-- Outbox lanes: a due message of a more urgent lane goes out first (an elder's emergency alert
-- before a storm's thousands of acknowledgements, those before an incident's broadcast).
ALTER TABLE notification_outbox ADD COLUMN IF NOT EXISTS lane smallint NOT NULL DEFAULT 1;
DROP INDEX IF EXISTS notification_outbox_due;
CREATE INDEX IF NOT EXISTS notification_outbox_due_by_lane ON notification_outbox (lane, next_attempt_at, id)
    WHERE status IN ('pending', 'retry', 'sending');
