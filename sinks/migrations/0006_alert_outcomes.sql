-- 0006: how a manager resolved an alert. The notifier's `resolved` lifecycle events carry an outcome
-- (contact_made, strategy_discussion, no_further_action, duplicate); other states leave it NULL. The Alerts
-- dashboard reads it for outcomes per rule; time to resolve comes from the `resolved` events' occurred_at.

ALTER TABLE {{db}}.alert_lifecycle
    ADD COLUMN IF NOT EXISTS outcome LowCardinality(Nullable(String));
