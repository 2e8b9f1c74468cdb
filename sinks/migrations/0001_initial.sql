-- 0001: one table per event family, the alerts, their lifecycle, dead letters and the sink's data-quality findings.
--
-- Rendered by sinks/migrate.py: {{db}} is the database, {{ttl:<class>:<column>}} the retention clause from the
-- settings (events, alerts, dead_letters; empty when the retention is `forever`).
-- Every table is a ReplacingMergeTree keyed by its idempotency key (event_id, alert_id, dead_letter_id, or the
-- Kafka position for findings), so a re-read after a crash replaces rows instead of adding them: read with FINAL.
-- ORDER BY holds only values fixed by that key. Agency events carry `purge` (UInt8) as the is_deleted column:
-- an erasure tombstone with the same event_id hides the event from FINAL reads.

CREATE TABLE IF NOT EXISTS {{db}}.contacts
(
    event_id String,
    event_type LowCardinality(String),
    schema_version UInt8,
    la_code LowCardinality(String),
    agency_type LowCardinality(String),
    agency_code LowCardinality(String),
    occurred_at DateTime64(3, 'UTC'),
    recorded_at DateTime64(3, 'UTC'),
    purge UInt8,
    contact_id String,
    child_id String,
    household_id Nullable(String),
    contact_source LowCardinality(String),
    concerns Array(LowCardinality(String)),
    route LowCardinality(Nullable(String)),
    linked_incident_id Nullable(String),
    kafka_topic LowCardinality(String),
    kafka_partition Int32,
    kafka_offset Int64,
    ingested_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(ingested_at, purge)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (la_code, event_id)
{{ttl:events:occurred_at}}
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS {{db}}.contact_decisions
(
    event_id String,
    event_type LowCardinality(String),
    schema_version UInt8,
    la_code LowCardinality(String),
    agency_type LowCardinality(String),
    agency_code LowCardinality(String),
    occurred_at DateTime64(3, 'UTC'),
    recorded_at DateTime64(3, 'UTC'),
    purge UInt8,
    contact_id String,
    child_id String,
    outcome LowCardinality(String),
    is_referral Bool,
    primary_need LowCardinality(Nullable(String)),
    kafka_topic LowCardinality(String),
    kafka_partition Int32,
    kafka_offset Int64,
    ingested_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(ingested_at, purge)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (la_code, event_id)
{{ttl:events:occurred_at}}
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS {{db}}.missing_episodes
(
    event_id String,
    event_type LowCardinality(String),
    schema_version UInt8,
    la_code LowCardinality(String),
    agency_type LowCardinality(String),
    agency_code LowCardinality(String),
    occurred_at DateTime64(3, 'UTC'),
    recorded_at DateTime64(3, 'UTC'),
    purge UInt8,
    episode_id String,
    child_id String,
    looked_after Bool,
    absence_type LowCardinality(String),
    risk_level LowCardinality(String),
    interview LowCardinality(Nullable(String)),
    kafka_topic LowCardinality(String),
    kafka_partition Int32,
    kafka_offset Int64,
    ingested_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(ingested_at, purge)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (la_code, event_id)
{{ttl:events:occurred_at}}
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS {{db}}.domestic_incidents
(
    event_id String,
    event_type LowCardinality(String),
    schema_version UInt8,
    la_code LowCardinality(String),
    agency_type LowCardinality(String),
    agency_code LowCardinality(String),
    occurred_at DateTime64(3, 'UTC'),
    recorded_at DateTime64(3, 'UTC'),
    purge UInt8,
    incident_id String,
    household_id String,
    victim_id Nullable(String),
    perpetrator_id Nullable(String),
    dash_risk LowCardinality(String),
    dash_score Nullable(UInt8),
    is_crime Bool,
    marac_referral Bool,
    children_count UInt32,
    children_present UInt32,
    kafka_topic LowCardinality(String),
    kafka_partition Int32,
    kafka_offset Int64,
    ingested_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(ingested_at, purge)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (la_code, event_id)
{{ttl:events:occurred_at}}
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS {{db}}.domestic_incident_children
(
    event_id String,
    la_code LowCardinality(String),
    agency_type LowCardinality(String),
    agency_code LowCardinality(String),
    occurred_at DateTime64(3, 'UTC'),
    recorded_at DateTime64(3, 'UTC'),
    purge UInt8,
    incident_id String,
    household_id String,
    dash_risk LowCardinality(String),
    marac_referral Bool,
    child_id String,
    present Bool,
    school_urn Nullable(String),
    kafka_topic LowCardinality(String),
    kafka_partition Int32,
    kafka_offset Int64,
    ingested_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(ingested_at, purge)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (la_code, event_id, child_id)
{{ttl:events:occurred_at}}
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS {{db}}.cp_plans
(
    event_id String,
    event_type LowCardinality(String),
    schema_version UInt8,
    la_code LowCardinality(String),
    agency_type LowCardinality(String),
    agency_code LowCardinality(String),
    occurred_at DateTime64(3, 'UTC'),
    recorded_at DateTime64(3, 'UTC'),
    purge UInt8,
    plan_id String,
    child_id String,
    category LowCardinality(String),
    previous_plans Nullable(Int64),
    previous_plan_ended_at Nullable(Date32),
    kafka_topic LowCardinality(String),
    kafka_partition Int32,
    kafka_offset Int64,
    ingested_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(ingested_at, purge)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (la_code, event_id)
{{ttl:events:occurred_at}}
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS {{db}}.alerts
(
    alert_id String,
    event_type LowCardinality(String),
    schema_version UInt8,
    rule_id LowCardinality(String),
    rule_version Int64,
    severity LowCardinality(String),
    la_code LowCardinality(String),
    subject_type LowCardinality(String),
    subject_id String,
    triggered_at DateTime64(3, 'UTC'),
    raised_at DateTime64(3, 'UTC'),
    threshold Nullable(Int64),
    count Nullable(Int64),
    window LowCardinality(Nullable(String)),
    evidence_event_ids Array(String),
    summary String,
    kafka_topic LowCardinality(String),
    kafka_partition Int32,
    kafka_offset Int64,
    ingested_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(triggered_at)
ORDER BY (la_code, alert_id)
{{ttl:alerts:triggered_at}}
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS {{db}}.alert_lifecycle
(
    event_id String,
    event_type LowCardinality(String),
    schema_version UInt8,
    alert_id String,
    state LowCardinality(String),
    occurred_at DateTime64(3, 'UTC'),
    rule_id LowCardinality(String),
    severity LowCardinality(String),
    la_code LowCardinality(String),
    team Nullable(String),
    channel LowCardinality(Nullable(String)),
    recipient Nullable(String),
    actor String,
    escalation_level Int64,
    note Nullable(String),
    error Nullable(String),
    kafka_topic LowCardinality(String),
    kafka_partition Int32,
    kafka_offset Int64,
    ingested_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (la_code, alert_id, event_id)
{{ttl:alerts:occurred_at}}
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS {{db}}.dead_letters
(
    dead_letter_id String,
    event_type LowCardinality(String),
    schema_version UInt8,
    source LowCardinality(String),
    source_topic LowCardinality(Nullable(String)),
    source_partition Nullable(Int64),
    source_offset Nullable(Int64),
    source_file Nullable(String),
    source_line Nullable(Int64),
    source_key Nullable(String),
    original_b64 String,
    reason_code LowCardinality(String),
    error String,
    dead_lettered_at DateTime64(3, 'UTC'),
    claimed_event_id Nullable(String),
    claimed_event_type LowCardinality(Nullable(String)),
    kafka_topic LowCardinality(String),
    kafka_partition Int32,
    kafka_offset Int64,
    ingested_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(dead_lettered_at)
ORDER BY dead_letter_id
{{ttl:dead_letters:dead_lettered_at}}
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS {{db}}.data_quality_findings
(
    finding_id String,
    kafka_topic LowCardinality(String),
    kafka_partition Int32,
    kafka_offset Int64,
    message_timestamp DateTime64(3, 'UTC'),
    message_key Nullable(String),
    original_b64 String,
    reason_code LowCardinality(String),
    error String,
    claimed_event_id Nullable(String),
    claimed_event_type LowCardinality(Nullable(String)),
    row_stored Bool,
    found_at DateTime64(3, 'UTC'),
    ingested_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(message_timestamp)
ORDER BY (kafka_topic, kafka_partition, kafka_offset, finding_id)
{{ttl:dead_letters:message_timestamp}}
SETTINGS non_replicated_deduplication_window = 1000;
