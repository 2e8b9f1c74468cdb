-- 0005: who published each agency event. The ingestion gateway (gateway/, docs/gateway.md) puts the authenticated
-- principal's name on every message as the Kafka header `safeguard-principal`; the sink stores it here. NULL for a
-- message without the header (a direct producer, kcat, `safeguard publish`, rows loaded without Kafka). The header
-- is what the message says: only the gateway sets it, but Kafka cannot stop a producer allowed to write an event
-- topic from setting it too (docs/sink.md, "Who published an event").
-- New columns go last, so the dashboards' summaries (0003), which select named columns, are unchanged.

ALTER TABLE {{db}}.contacts
    ADD COLUMN IF NOT EXISTS published_by LowCardinality(Nullable(String));

ALTER TABLE {{db}}.contact_decisions
    ADD COLUMN IF NOT EXISTS published_by LowCardinality(Nullable(String));

ALTER TABLE {{db}}.missing_episodes
    ADD COLUMN IF NOT EXISTS published_by LowCardinality(Nullable(String));

ALTER TABLE {{db}}.domestic_incidents
    ADD COLUMN IF NOT EXISTS published_by LowCardinality(Nullable(String));

ALTER TABLE {{db}}.domestic_incident_children
    ADD COLUMN IF NOT EXISTS published_by LowCardinality(Nullable(String));

ALTER TABLE {{db}}.cp_plans
    ADD COLUMN IF NOT EXISTS published_by LowCardinality(Nullable(String));
