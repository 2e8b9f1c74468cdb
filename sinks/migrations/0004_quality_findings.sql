-- 0004: data-quality findings of the national validators' rules (schemas/quality.py, docs/history-import.md
-- "Data-quality checks"), from safeguarding.quality-findings.v1: one row per rule and flagged event. The importer
-- and the worker give the same event the same finding_id, so a finding made by both is one row (the later wins).
-- `fed` says whether the flagged event went on to the rules. `child_id` is the pseudonym, never an identifier.
-- `occurred_at` is the flagged event's time (`found_at` for a dead-lettered record whose time could not be read).
CREATE TABLE IF NOT EXISTS {{db}}.quality_findings
(
    finding_id String,
    rule_id LowCardinality(String),
    check_name LowCardinality(String),
    message String,
    event_id String,
    checked_event_type LowCardinality(String),
    la_code LowCardinality(Nullable(String)),
    child_id Nullable(String),
    occurred_at DateTime64(3, 'UTC'),
    fed Bool,
    found_by LowCardinality(String),
    found_at DateTime64(3, 'UTC'),
    kafka_topic LowCardinality(String),
    kafka_partition Int32,
    kafka_offset Int64,
    ingested_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(found_at)
ORDER BY (rule_id, finding_id)
{{ttl:dead_letters:found_at}}
SETTINGS non_replicated_deduplication_window = 1000;
