-- 0003: summaries the dashboards read instead of grouping millions of events at every refresh (docs/sink.md,
-- "Summaries for the dashboards").
--
-- Each summary is an AggregatingMergeTree kept by ClickHouse itself: a materialized view on the event table adds
-- every inserted block to it, and the INSERT ... SELECT after each view (the view's own SELECT) backfills the rows
-- stored before it existed; `safeguard sink rebuild-summaries` runs those again. A view sees inserted blocks, not
-- the table after ReplacingMergeTree has deduplicated it, so no summary keeps a bare count: it keeps event ids,
-- and an event stored twice (a replayed batch, a re-sent event, the backfill over rows a view has already added)
-- is still one event, while its erasure tombstone (purge = 1, same event_id) marks it erased. This relies on
-- what the event tables' month partitions already rely on: every copy of an event carries the same fields, its
-- tombstone included (docs/operations.md, "Retention and erasure"). Read every summary with FINAL.
--
-- * Monthly summaries: one row per local authority, local month (Europe/London, as the dashboards count), agency
--   (an agency's row policy applies to them as to the event tables) and the columns the panels group by.
--   `event_ids` and `purged_ids` are sets of sipHash64(event_id) (groupUniqArrayArray): the month's events are
--   length(event_ids) - length(purged_ids). A month's rows expire with the month's first day.
-- * Per-subject summaries (household, child, episode): one row per local authority and subject holding its events
--   as a map (maxMap) from the event, a tuple of occurred_at, xxHash32(event_id) and what the panels need of it
--   (local date as a YYYYMMDD number, flags), to whether it was erased (a tombstone's 1 wins over the event's 0).
--   maxMap keeps the keys sorted, so a subject's events are in time order. `newest_at` is the newest event's time
--   (subjects with nothing since the start of a range are skipped); a subject's row expires with its newest event.
-- * alert_acknowledgements: one row per alert, from alerts and alert_lifecycle (below).
--
-- Reading with FINAL is cheap while a partition is one merged part and costly while it has several (every row of it
-- then goes through the aggregate functions), so parts are merged within about 30 s of their insert
-- (min_age_to_force_merge_seconds) and each backfill is followed by OPTIMIZE ... FINAL. The per-subject summaries are
-- partitioned by 64 buckets of local authorities: an insert touches only its authorities' buckets, and at most 64
-- partitions, under ClickHouse's limit of 100 per inserted block (max_partitions_per_insert_block), however many
-- authorities share a store.

-- Contacts per month and referral source.
CREATE TABLE IF NOT EXISTS {{db}}.contacts_by_month
(
    la_code LowCardinality(String),
    month Date,
    agency_type LowCardinality(String),
    agency_code LowCardinality(String),
    contact_source LowCardinality(String),
    event_ids SimpleAggregateFunction(groupUniqArrayArray, Array(UInt64)),
    purged_ids SimpleAggregateFunction(groupUniqArrayArray, Array(UInt64))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(month)
ORDER BY (la_code, month, agency_type, agency_code, contact_source)
{{ttl:events:month}}
SETTINGS min_age_to_force_merge_seconds = 30;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.contacts_by_month_mv TO {{db}}.contacts_by_month AS
SELECT
    la_code,
    toStartOfMonth(occurred_at, 'Europe/London') AS month,
    agency_type,
    agency_code,
    contact_source,
    groupUniqArray(sipHash64(event_id)) AS event_ids,
    groupUniqArrayIf(sipHash64(event_id), purge = 1) AS purged_ids
FROM {{db}}.contacts
GROUP BY la_code, month, agency_type, agency_code, contact_source;

INSERT INTO {{db}}.contacts_by_month
SELECT
    la_code,
    toStartOfMonth(occurred_at, 'Europe/London') AS month,
    agency_type,
    agency_code,
    contact_source,
    groupUniqArray(sipHash64(event_id)) AS event_ids,
    groupUniqArrayIf(sipHash64(event_id), purge = 1) AS purged_ids
FROM {{db}}.contacts
GROUP BY la_code, month, agency_type, agency_code, contact_source;

-- Decisions per month and outcome.
CREATE TABLE IF NOT EXISTS {{db}}.contact_decisions_by_month
(
    la_code LowCardinality(String),
    month Date,
    agency_type LowCardinality(String),
    agency_code LowCardinality(String),
    outcome LowCardinality(String),
    is_referral Bool,
    event_ids SimpleAggregateFunction(groupUniqArrayArray, Array(UInt64)),
    purged_ids SimpleAggregateFunction(groupUniqArrayArray, Array(UInt64))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(month)
ORDER BY (la_code, month, agency_type, agency_code, outcome, is_referral)
{{ttl:events:month}}
SETTINGS min_age_to_force_merge_seconds = 30;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.contact_decisions_by_month_mv TO {{db}}.contact_decisions_by_month AS
SELECT
    la_code,
    toStartOfMonth(occurred_at, 'Europe/London') AS month,
    agency_type,
    agency_code,
    outcome,
    is_referral,
    groupUniqArray(sipHash64(event_id)) AS event_ids,
    groupUniqArrayIf(sipHash64(event_id), purge = 1) AS purged_ids
FROM {{db}}.contact_decisions
GROUP BY la_code, month, agency_type, agency_code, outcome, is_referral;

INSERT INTO {{db}}.contact_decisions_by_month
SELECT
    la_code,
    toStartOfMonth(occurred_at, 'Europe/London') AS month,
    agency_type,
    agency_code,
    outcome,
    is_referral,
    groupUniqArray(sipHash64(event_id)) AS event_ids,
    groupUniqArrayIf(sipHash64(event_id), purge = 1) AS purged_ids
FROM {{db}}.contact_decisions
GROUP BY la_code, month, agency_type, agency_code, outcome, is_referral;

-- Domestic incidents per month, DASH risk level, child present, crime and MARAC referral.
CREATE TABLE IF NOT EXISTS {{db}}.domestic_incidents_by_month
(
    la_code LowCardinality(String),
    month Date,
    agency_type LowCardinality(String),
    agency_code LowCardinality(String),
    dash_risk LowCardinality(String),
    any_child_present Bool,
    is_crime Bool,
    marac_referral Bool,
    event_ids SimpleAggregateFunction(groupUniqArrayArray, Array(UInt64)),
    purged_ids SimpleAggregateFunction(groupUniqArrayArray, Array(UInt64))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(month)
ORDER BY (la_code, month, agency_type, agency_code, dash_risk, any_child_present, is_crime, marac_referral)
{{ttl:events:month}}
SETTINGS min_age_to_force_merge_seconds = 30;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.domestic_incidents_by_month_mv TO {{db}}.domestic_incidents_by_month AS
SELECT
    la_code,
    toStartOfMonth(occurred_at, 'Europe/London') AS month,
    agency_type,
    agency_code,
    dash_risk,
    children_present > 0 AS any_child_present,
    is_crime,
    marac_referral,
    groupUniqArray(sipHash64(event_id)) AS event_ids,
    groupUniqArrayIf(sipHash64(event_id), purge = 1) AS purged_ids
FROM {{db}}.domestic_incidents
GROUP BY la_code, month, agency_type, agency_code, dash_risk, any_child_present, is_crime, marac_referral;

INSERT INTO {{db}}.domestic_incidents_by_month
SELECT
    la_code,
    toStartOfMonth(occurred_at, 'Europe/London') AS month,
    agency_type,
    agency_code,
    dash_risk,
    children_present > 0 AS any_child_present,
    is_crime,
    marac_referral,
    groupUniqArray(sipHash64(event_id)) AS event_ids,
    groupUniqArrayIf(sipHash64(event_id), purge = 1) AS purged_ids
FROM {{db}}.domestic_incidents
GROUP BY la_code, month, agency_type, agency_code, dash_risk, any_child_present, is_crime, marac_referral;

-- Each household's incidents: (occurred_at, id, local date as YYYYMMDD) -> erased.
CREATE TABLE IF NOT EXISTS {{db}}.household_incidents
(
    la_code LowCardinality(String),
    household_id String,
    incidents SimpleAggregateFunction(maxMap, Tuple(Array(Tuple(DateTime64(3, 'UTC'), UInt32, UInt32)), Array(UInt8))),
    newest_at SimpleAggregateFunction(max, DateTime64(3, 'UTC'))
)
ENGINE = AggregatingMergeTree
PARTITION BY sipHash64(la_code) % 64
ORDER BY (la_code, household_id)
{{ttl:events:newest_at}}
SETTINGS min_age_to_force_merge_seconds = 30;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.household_incidents_mv TO {{db}}.household_incidents AS
SELECT
    la_code,
    household_id,
    maxMap(tuple([(occurred_at, xxHash32(event_id), toYYYYMMDD(occurred_at, 'Europe/London'))], [purge])) AS incidents,
    max(occurred_at) AS newest_at
FROM {{db}}.domestic_incidents
GROUP BY la_code, household_id;

INSERT INTO {{db}}.household_incidents
SELECT
    la_code,
    household_id,
    maxMap(tuple([(occurred_at, xxHash32(event_id), toYYYYMMDD(occurred_at, 'Europe/London'))], [purge])) AS incidents,
    max(occurred_at) AS newest_at
FROM {{db}}.domestic_incidents
GROUP BY la_code, household_id;

-- Each child's referrals (decisions with outcome referral or strategy_discussion): (occurred_at, id, local date as
-- YYYYMMDD) -> erased.
CREATE TABLE IF NOT EXISTS {{db}}.child_referrals
(
    la_code LowCardinality(String),
    child_id String,
    referrals SimpleAggregateFunction(maxMap, Tuple(Array(Tuple(DateTime64(3, 'UTC'), UInt32, UInt32)), Array(UInt8))),
    newest_at SimpleAggregateFunction(max, DateTime64(3, 'UTC'))
)
ENGINE = AggregatingMergeTree
PARTITION BY sipHash64(la_code) % 64
ORDER BY (la_code, child_id)
{{ttl:events:newest_at}}
SETTINGS min_age_to_force_merge_seconds = 30;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.child_referrals_mv TO {{db}}.child_referrals AS
SELECT
    la_code,
    child_id,
    maxMap(tuple([(occurred_at, xxHash32(event_id), toYYYYMMDD(occurred_at, 'Europe/London'))], [purge])) AS referrals,
    max(occurred_at) AS newest_at
FROM {{db}}.contact_decisions
WHERE is_referral
GROUP BY la_code, child_id;

INSERT INTO {{db}}.child_referrals
SELECT
    la_code,
    child_id,
    maxMap(tuple([(occurred_at, xxHash32(event_id), toYYYYMMDD(occurred_at, 'Europe/London'))], [purge])) AS referrals,
    max(occurred_at) AS newest_at
FROM {{db}}.contact_decisions
WHERE is_referral
GROUP BY la_code, child_id;

-- Each child's missing.reported events: (occurred_at, id, looked_after, absence_type) -> erased.
CREATE TABLE IF NOT EXISTS {{db}}.child_missing_reports
(
    la_code LowCardinality(String),
    child_id String,
    reports SimpleAggregateFunction(maxMap, Tuple(Array(Tuple(DateTime64(3, 'UTC'), UInt32, Bool, String)), Array(UInt8))),
    newest_at SimpleAggregateFunction(max, DateTime64(3, 'UTC'))
)
ENGINE = AggregatingMergeTree
PARTITION BY sipHash64(la_code) % 64
ORDER BY (la_code, child_id)
{{ttl:events:newest_at}}
SETTINGS min_age_to_force_merge_seconds = 30;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.child_missing_reports_mv TO {{db}}.child_missing_reports AS
SELECT
    la_code,
    child_id,
    maxMap(tuple([(occurred_at, xxHash32(event_id), looked_after, toString(absence_type))], [purge])) AS reports,
    max(occurred_at) AS newest_at
FROM {{db}}.missing_episodes
WHERE event_type = 'missing.reported'
GROUP BY la_code, child_id;

INSERT INTO {{db}}.child_missing_reports
SELECT
    la_code,
    child_id,
    maxMap(tuple([(occurred_at, xxHash32(event_id), looked_after, toString(absence_type))], [purge])) AS reports,
    max(occurred_at) AS newest_at
FROM {{db}}.missing_episodes
WHERE event_type = 'missing.reported'
GROUP BY la_code, child_id;

-- Each missing episode's missing.found and missing.return_interview events: (occurred_at, id, is the found event)
-- -> erased.
CREATE TABLE IF NOT EXISTS {{db}}.missing_episode_steps
(
    la_code LowCardinality(String),
    episode_id String,
    steps SimpleAggregateFunction(maxMap, Tuple(Array(Tuple(DateTime64(3, 'UTC'), UInt32, Bool)), Array(UInt8))),
    newest_at SimpleAggregateFunction(max, DateTime64(3, 'UTC'))
)
ENGINE = AggregatingMergeTree
PARTITION BY sipHash64(la_code) % 64
ORDER BY (la_code, episode_id)
{{ttl:events:newest_at}}
SETTINGS min_age_to_force_merge_seconds = 30;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.missing_episode_steps_mv TO {{db}}.missing_episode_steps AS
SELECT
    la_code,
    episode_id,
    maxMap(tuple([(occurred_at, xxHash32(event_id), event_type = 'missing.found')], [purge])) AS steps,
    max(occurred_at) AS newest_at
FROM {{db}}.missing_episodes
WHERE event_type IN ('missing.found', 'missing.return_interview')
GROUP BY la_code, episode_id;

INSERT INTO {{db}}.missing_episode_steps
SELECT
    la_code,
    episode_id,
    maxMap(tuple([(occurred_at, xxHash32(event_id), event_type = 'missing.found')], [purge])) AS steps,
    max(occurred_at) AS newest_at
FROM {{db}}.missing_episodes
WHERE event_type IN ('missing.found', 'missing.return_interview')
GROUP BY la_code, episode_id;

-- Each child's plan events: (occurred_at, id, is a start, sipHash64(plan_id), previous_plans,
-- previous_plan_ended_at) -> erased.
CREATE TABLE IF NOT EXISTS {{db}}.child_plans
(
    la_code LowCardinality(String),
    child_id String,
    plan_events SimpleAggregateFunction(maxMap, Tuple(
        Array(Tuple(DateTime64(3, 'UTC'), UInt32, Bool, UInt64, Nullable(Int64), Nullable(Date32))),
        Array(UInt8)
    )),
    newest_at SimpleAggregateFunction(max, DateTime64(3, 'UTC'))
)
ENGINE = AggregatingMergeTree
PARTITION BY sipHash64(la_code) % 64
ORDER BY (la_code, child_id)
{{ttl:events:newest_at}}
SETTINGS min_age_to_force_merge_seconds = 30;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.child_plans_mv TO {{db}}.child_plans AS
SELECT
    la_code,
    child_id,
    maxMap(tuple(
        [(occurred_at, xxHash32(event_id), event_type = 'cp_plan.started', sipHash64(plan_id), previous_plans,
          previous_plan_ended_at)],
        [purge]
    )) AS plan_events,
    max(occurred_at) AS newest_at
FROM {{db}}.cp_plans
GROUP BY la_code, child_id;

INSERT INTO {{db}}.child_plans
SELECT
    la_code,
    child_id,
    maxMap(tuple(
        [(occurred_at, xxHash32(event_id), event_type = 'cp_plan.started', sipHash64(plan_id), previous_plans,
          previous_plan_ended_at)],
        [purge]
    )) AS plan_events,
    max(occurred_at) AS newest_at
FROM {{db}}.cp_plans
GROUP BY la_code, child_id;

-- Each alert with its first acknowledgement: raised_at and severity from `alerts` (the zero time and '' from the
-- acknowledgements, which max ignores), the first `acknowledged` lifecycle event's time (NULL until there is one).
-- An alert and its lifecycle keep their ids across re-deliveries, and min and max do not count, so replays change
-- nothing.
CREATE TABLE IF NOT EXISTS {{db}}.alert_acknowledgements
(
    la_code LowCardinality(String),
    alert_id String,
    raised_at SimpleAggregateFunction(max, DateTime64(3, 'UTC')),
    severity SimpleAggregateFunction(max, LowCardinality(String)),
    first_acknowledged_at SimpleAggregateFunction(min, Nullable(DateTime64(3, 'UTC'))),
    newest_at SimpleAggregateFunction(max, DateTime64(3, 'UTC'))
)
ENGINE = AggregatingMergeTree
PARTITION BY sipHash64(la_code) % 64
ORDER BY (la_code, alert_id)
{{ttl:alerts:newest_at}}
SETTINGS min_age_to_force_merge_seconds = 30;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.alert_acknowledgements_raised_mv TO {{db}}.alert_acknowledgements AS
SELECT
    la_code,
    alert_id,
    raised_at,
    severity,
    CAST(NULL AS Nullable(DateTime64(3, 'UTC'))) AS first_acknowledged_at,
    raised_at AS newest_at
FROM {{db}}.alerts;

INSERT INTO {{db}}.alert_acknowledgements
SELECT
    la_code,
    alert_id,
    raised_at,
    severity,
    CAST(NULL AS Nullable(DateTime64(3, 'UTC'))) AS first_acknowledged_at,
    raised_at AS newest_at
FROM {{db}}.alerts;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.alert_acknowledgements_acknowledged_mv TO {{db}}.alert_acknowledgements AS
SELECT
    la_code,
    alert_id,
    toDateTime64(0, 3, 'UTC') AS raised_at,
    '' AS severity,
    CAST(min(occurred_at) AS Nullable(DateTime64(3, 'UTC'))) AS first_acknowledged_at,
    max(occurred_at) AS newest_at
FROM {{db}}.alert_lifecycle
WHERE state = 'acknowledged'
GROUP BY la_code, alert_id;

INSERT INTO {{db}}.alert_acknowledgements
SELECT
    la_code,
    alert_id,
    toDateTime64(0, 3, 'UTC') AS raised_at,
    '' AS severity,
    CAST(min(occurred_at) AS Nullable(DateTime64(3, 'UTC'))) AS first_acknowledged_at,
    max(occurred_at) AS newest_at
FROM {{db}}.alert_lifecycle
WHERE state = 'acknowledged'
GROUP BY la_code, alert_id;

-- The backfills above leave many parts; fold each summary into one part per partition (see the top).
OPTIMIZE TABLE {{db}}.contacts_by_month FINAL;
OPTIMIZE TABLE {{db}}.contact_decisions_by_month FINAL;
OPTIMIZE TABLE {{db}}.domestic_incidents_by_month FINAL;
OPTIMIZE TABLE {{db}}.household_incidents FINAL;
OPTIMIZE TABLE {{db}}.child_referrals FINAL;
OPTIMIZE TABLE {{db}}.child_missing_reports FINAL;
OPTIMIZE TABLE {{db}}.missing_episode_steps FINAL;
OPTIMIZE TABLE {{db}}.child_plans FINAL;
OPTIMIZE TABLE {{db}}.alert_acknowledgements FINAL;
