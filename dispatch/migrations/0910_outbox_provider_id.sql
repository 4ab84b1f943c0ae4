-- A provider's status report (Twilio's status callback) finds its message by the provider's id.
CREATE INDEX IF NOT EXISTS notification_outbox_provider ON notification_outbox (provider_id)
    WHERE provider_id IS NOT NULL;
