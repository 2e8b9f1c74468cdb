"""Contract models → table rows: pure functions, no I/O, no clock (the time of ingestion is passed in).

Every function returns `(table, row)` pairs; a row is a dict holding exactly the columns `TABLE_COLUMNS[table]`
names (docs/sink.md describes each). Rows carry where the message came from (`kafka_topic`, `kafka_partition`,
`kafka_offset`) and when the sink took it (`ingested_at`, the ReplacingMergeTree version). Loading without Kafka
(a simulated year straight into chDB) leaves `source` unset: the topic is then the one the contract names,
partition and offset are -1, and `ingested_at` defaults to the event's own `recorded_at`. Agency-event rows also
carry `published_by`, the gateway principal that published the event (None unless given).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.alerts import AlertLifecycle, AlertRaised
from schemas.deadletter import DeadLetter, safe_error, safe_key, stored_original
from schemas.events import (
    AgencyEvent,
    ContactDecided,
    ContactReceived,
    CpPlanEnded,
    CpPlanStarted,
    DomesticIncidentRecorded,
    Envelope,
    MissingFound,
    MissingReported,
    MissingReturnInterview,
)
from schemas.quality import QualityFinding
from schemas.topics import ALERT_LIFECYCLE, ALERTS, DEAD_LETTER, QUALITY_FINDINGS, topic_for
from schemas.types import REFERRAL_OUTCOMES

Row = dict[str, Any]
TableRow = tuple[str, Row]

_FINDING_NAMESPACE = uuid.UUID("0d7a3c1e-5b2f-4e8a-9c6d-1f2e3a4b5c6d")

_ENVELOPE = (
    "event_id",
    "event_type",
    "schema_version",
    "la_code",
    "agency_type",
    "agency_code",
    "occurred_at",
    "recorded_at",
    "purge",
)
_SOURCE = ("kafka_topic", "kafka_partition", "kafka_offset", "ingested_at")
_EVENT_SOURCE = (*_SOURCE, "published_by")
"""Agency-event rows also say who published them: the `safeguard-principal` header, or None (migration 0005)."""
_ORIGINAL = ("original_size", "original_sha256", "original_truncated", "original_masked")
"""What a dead letter or finding says of the rejected message it keeps (migration 0002)."""

TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "contacts": (
        *_ENVELOPE,
        "contact_id",
        "child_id",
        "household_id",
        "contact_source",
        "concerns",
        "route",
        "linked_incident_id",
        *_EVENT_SOURCE,
    ),
    "contact_decisions": (
        *_ENVELOPE,
        "contact_id",
        "child_id",
        "outcome",
        "is_referral",
        "primary_need",
        *_EVENT_SOURCE,
    ),
    "missing_episodes": (
        *_ENVELOPE,
        "episode_id",
        "child_id",
        "looked_after",
        "absence_type",
        "risk_level",
        "interview",
        *_EVENT_SOURCE,
    ),
    "domestic_incidents": (
        *_ENVELOPE,
        "incident_id",
        "household_id",
        "victim_id",
        "perpetrator_id",
        "dash_risk",
        "dash_score",
        "is_crime",
        "marac_referral",
        "children_count",
        "children_present",
        *_EVENT_SOURCE,
    ),
    "domestic_incident_children": (
        "event_id",
        "la_code",
        "agency_type",
        "agency_code",
        "occurred_at",
        "recorded_at",
        "purge",
        "incident_id",
        "household_id",
        "dash_risk",
        "marac_referral",
        "child_id",
        "present",
        "school_urn",
        *_EVENT_SOURCE,
    ),
    "cp_plans": (
        *_ENVELOPE,
        "plan_id",
        "child_id",
        "category",
        "previous_plans",
        "previous_plan_ended_at",
        *_EVENT_SOURCE,
    ),
    "alerts": (
        "alert_id",
        "event_type",
        "schema_version",
        "rule_id",
        "rule_version",
        "severity",
        "la_code",
        "subject_type",
        "subject_id",
        "triggered_at",
        "raised_at",
        "threshold",
        "count",
        "window",
        "evidence_event_ids",
        "summary",
        *_SOURCE,
    ),
    "alert_lifecycle": (
        "event_id",
        "event_type",
        "schema_version",
        "alert_id",
        "state",
        "occurred_at",
        "rule_id",
        "severity",
        "la_code",
        "team",
        "channel",
        "recipient",
        "actor",
        "escalation_level",
        "note",
        "error",
        *_SOURCE,
        "outcome",
    ),
    "dead_letters": (
        "dead_letter_id",
        "event_type",
        "schema_version",
        "source",
        "source_topic",
        "source_partition",
        "source_offset",
        "source_file",
        "source_line",
        "source_key",
        "original_b64",
        "reason_code",
        "error",
        "dead_lettered_at",
        "claimed_event_id",
        "claimed_event_type",
        *_SOURCE,
        *_ORIGINAL,
    ),
    "data_quality_findings": (
        "finding_id",
        "kafka_topic",
        "kafka_partition",
        "kafka_offset",
        "message_timestamp",
        "message_key",
        "original_b64",
        "reason_code",
        "error",
        "claimed_event_id",
        "claimed_event_type",
        "row_stored",
        "found_at",
        "ingested_at",
        *_ORIGINAL,
    ),
    "quality_findings": (
        "finding_id",
        "rule_id",
        "check_name",
        "message",
        "event_id",
        "checked_event_type",
        "la_code",
        "child_id",
        "occurred_at",
        "fed",
        "found_by",
        "found_at",
        *_SOURCE,
    ),
}
"""Every table the sink writes, with its columns in insert order (the DDL in sinks/migrations/ has the types)."""

EVENT_TABLES: dict[str, str] = {
    "contact.received": "contacts",
    "contact.decided": "contact_decisions",
    "missing.reported": "missing_episodes",
    "missing.found": "missing_episodes",
    "missing.return_interview": "missing_episodes",
    "domestic_incident.recorded": "domestic_incidents",
    "cp_plan.started": "cp_plans",
    "cp_plan.ended": "cp_plans",
}
"""The table holding each agency event type (one row per event; domestic incidents add child rows)."""

TOPIC_TABLES: dict[str, tuple[str, ...]] = {
    "safeguarding.contacts.v1": ("contacts", "contact_decisions"),
    "safeguarding.missing-episodes.v1": ("missing_episodes",),
    "safeguarding.domestic-incidents.v1": ("domestic_incidents",),
    "safeguarding.cp-plans.v1": ("cp_plans",),
    ALERTS.name: ("alerts",),
    ALERT_LIFECYCLE.name: ("alert_lifecycle",),
    DEAD_LETTER.name: ("dead_letters",),
    QUALITY_FINDINGS.name: ("quality_findings",),
}
"""The tables holding one row per message of each topic (child rows are extra and not listed)."""

KEY_COLUMNS: dict[str, str] = {
    "contacts": "event_id",
    "contact_decisions": "event_id",
    "missing_episodes": "event_id",
    "domestic_incidents": "event_id",
    "cp_plans": "event_id",
    "alerts": "alert_id",
    "alert_lifecycle": "event_id",
    "dead_letters": "dead_letter_id",
    "quality_findings": "finding_id",
}
"""The idempotency key of each one-row-per-message table."""


@dataclass(frozen=True)
class KafkaSource:
    """Where a message was read: topic, partition, offset."""

    topic: str
    partition: int
    offset: int


_ZERO = timedelta(0)


def _utc(value: datetime) -> datetime:
    """The instant in UTC (most contract timestamps already are: then the value itself, no new object)."""
    return value if value.utcoffset() == _ZERO else value.astimezone(UTC)


def _source(topic: str, source: KafkaSource | None, ingested_at: datetime) -> Row:
    if source is None:
        source = KafkaSource(topic, -1, -1)
    return {
        "kafka_topic": source.topic,
        "kafka_partition": source.partition,
        "kafka_offset": source.offset,
        "ingested_at": _utc(ingested_at),
    }


def _envelope(event: Envelope) -> Row:
    return {
        "event_id": event.event_id,
        "event_type": event.event_type,
        "schema_version": event.schema_version,
        "la_code": event.la_code,
        "agency_type": event.agency_type,
        "agency_code": event.agency_code,
        "occurred_at": _utc(event.occurred_at),
        "recorded_at": _utc(event.recorded_at),
        "purge": 1 if event.purge else 0,
    }


def rows_for_event(
    event: AgencyEvent,
    source: KafkaSource | None = None,
    ingested_at: datetime | None = None,
    *,
    published_by: str | None = None,
) -> list[TableRow]:
    """The rows of one agency event: one in its family's table; a domestic incident adds one row per child.

    `published_by` is the principal that published it (the gateway's `safeguard-principal` header), if any."""
    tail = _source(topic_for(event.event_type).name, source, ingested_at or event.recorded_at)
    tail["published_by"] = published_by
    head = _envelope(event)
    if isinstance(event, ContactReceived):
        return [
            (
                "contacts",
                {
                    **head,
                    "contact_id": event.contact_id,
                    "child_id": event.child_id,
                    "household_id": event.household_id,
                    "contact_source": event.contact_source,
                    "concerns": list(event.concerns),
                    "route": event.route,
                    "linked_incident_id": event.linked_incident_id,
                    **tail,
                },
            )
        ]
    if isinstance(event, ContactDecided):
        return [
            (
                "contact_decisions",
                {
                    **head,
                    "contact_id": event.contact_id,
                    "child_id": event.child_id,
                    "outcome": event.outcome,
                    "is_referral": event.outcome in REFERRAL_OUTCOMES,
                    "primary_need": event.primary_need,
                    **tail,
                },
            )
        ]
    if isinstance(event, MissingReported | MissingFound | MissingReturnInterview):
        return [
            (
                "missing_episodes",
                {
                    **head,
                    "episode_id": event.episode_id,
                    "child_id": event.child_id,
                    "looked_after": event.looked_after,
                    "absence_type": event.absence_type,
                    "risk_level": event.risk_level,
                    "interview": event.interview if isinstance(event, MissingReturnInterview) else None,
                    **tail,
                },
            )
        ]
    if isinstance(event, DomesticIncidentRecorded):
        incident: TableRow = (
            "domestic_incidents",
            {
                **head,
                "incident_id": event.incident_id,
                "household_id": event.household_id,
                "victim_id": event.victim_id,
                "perpetrator_id": event.perpetrator_id,
                "dash_risk": event.dash_risk,
                "dash_score": event.dash_score,
                "is_crime": event.is_crime,
                "marac_referral": event.marac_referral,
                "children_count": len(event.children),
                "children_present": sum(1 for child in event.children if child.present),
                **tail,
            },
        )
        shared = {
            "event_id": event.event_id,
            "la_code": event.la_code,
            "agency_type": event.agency_type,
            "agency_code": event.agency_code,
            "occurred_at": head["occurred_at"],
            "recorded_at": head["recorded_at"],
            "purge": head["purge"],
            "incident_id": event.incident_id,
            "household_id": event.household_id,
            "dash_risk": event.dash_risk,
            "marac_referral": event.marac_referral,
        }
        children: list[TableRow] = [
            (
                "domestic_incident_children",
                {**shared, "child_id": c.child_id, "present": c.present, "school_urn": c.school_urn, **tail},
            )
            for c in event.children
        ]
        return [incident, *children]
    if isinstance(event, CpPlanStarted | CpPlanEnded):
        return [
            (
                "cp_plans",
                {
                    **head,
                    "plan_id": event.plan_id,
                    "child_id": event.child_id,
                    "category": event.category,
                    "previous_plans": event.previous_plans,
                    "previous_plan_ended_at": event.previous_plan_ended_at,
                    **tail,
                },
            )
        ]
    raise TypeError(f"no table for event type {event.event_type!r}")  # unreachable while the union is covered


def row_for_alert(
    alert: AlertRaised, source: KafkaSource | None = None, ingested_at: datetime | None = None
) -> TableRow:
    """The `alerts` row of an alert."""
    return (
        "alerts",
        {
            "alert_id": alert.alert_id,
            "event_type": alert.event_type,
            "schema_version": alert.schema_version,
            "rule_id": alert.rule_id,
            "rule_version": alert.rule_version,
            "severity": alert.severity,
            "la_code": alert.la_code,
            "subject_type": alert.subject_type,
            "subject_id": alert.subject_id,
            "triggered_at": _utc(alert.triggered_at),
            "raised_at": _utc(alert.raised_at),
            "threshold": alert.threshold,
            "count": alert.count,
            "window": alert.window,
            "evidence_event_ids": list(alert.evidence_event_ids),
            "summary": alert.summary,
            **_source(ALERTS.name, source, ingested_at or alert.raised_at),
        },
    )


def row_for_lifecycle(
    event: AlertLifecycle, source: KafkaSource | None = None, ingested_at: datetime | None = None
) -> TableRow:
    """The `alert_lifecycle` row of a delivery-state change."""
    return (
        "alert_lifecycle",
        {
            "event_id": event.event_id,
            "event_type": event.event_type,
            "schema_version": event.schema_version,
            "alert_id": event.alert_id,
            "state": event.state,
            "occurred_at": _utc(event.occurred_at),
            "rule_id": event.rule_id,
            "severity": event.severity,
            "la_code": event.la_code,
            "team": event.team,
            "channel": event.channel,
            "recipient": event.recipient,
            "actor": event.actor,
            "escalation_level": event.escalation_level,
            "note": event.note,
            "error": event.error,
            **_source(ALERT_LIFECYCLE.name, source, ingested_at or event.occurred_at),
            "outcome": event.outcome,  # migration 0006
        },
    )


def row_for_dead_letter(
    letter: DeadLetter, source: KafkaSource | None = None, ingested_at: datetime | None = None
) -> TableRow:
    """The `dead_letters` row of a dead letter (the rejected bytes stay base64, as on the topic)."""
    return (
        "dead_letters",
        {
            "dead_letter_id": letter.dead_letter_id,
            "event_type": letter.event_type,
            "schema_version": letter.schema_version,
            "source": letter.source,
            "source_topic": letter.source_topic,
            "source_partition": letter.source_partition,
            "source_offset": letter.source_offset,
            "source_file": letter.source_file,
            "source_line": letter.source_line,
            "source_key": letter.source_key,
            "original_b64": letter.original_b64,
            "reason_code": letter.reason_code,
            "error": letter.error,
            "dead_lettered_at": _utc(letter.dead_lettered_at),
            "claimed_event_id": letter.claimed_event_id,
            "claimed_event_type": letter.claimed_event_type,
            **_source(DEAD_LETTER.name, source, ingested_at or letter.dead_lettered_at),
            "original_size": letter.original_size,
            "original_sha256": letter.original_sha256,
            "original_truncated": letter.original_truncated,
            "original_masked": letter.original_masked,
        },
    )


def row_for_quality_finding(
    finding: QualityFinding, source: KafkaSource | None = None, ingested_at: datetime | None = None
) -> TableRow:
    """The `quality_findings` row of a data-quality finding (schemas/quality.py): one row per rule and event."""
    return (
        "quality_findings",
        {
            "finding_id": finding.finding_id,
            "rule_id": finding.rule_id,
            "check_name": finding.check_name,
            "message": finding.message,
            "event_id": finding.event_id,
            "checked_event_type": finding.checked_event_type,
            "la_code": finding.la_code,
            "child_id": finding.child_id,
            "occurred_at": _utc(finding.occurred_at or finding.found_at),
            "fed": finding.fed,
            "found_by": finding.found_by,
            "found_at": _utc(finding.found_at),
            **_source(QUALITY_FINDINGS.name, source, ingested_at or finding.found_at),
        },
    )


def finding_id(source: KafkaSource, reason_code: str) -> str:
    """Deterministic from the message's position and the kind of finding, so a re-read replaces, never adds."""
    return str(uuid.uuid5(_FINDING_NAMESPACE, f"{source.topic}:{source.partition}:{source.offset}:{reason_code}"))


def row_for_finding(
    *,
    source: KafkaSource,
    key: bytes | None,
    value: bytes | None,
    message_timestamp: datetime,
    reason_code: str,
    error: str,
    row_stored: bool,
    found_at: datetime,
) -> TableRow:
    """A `data_quality_findings` row: a message the sink could not store as it is (`row_stored` false), or
    stored but found breaking a placement rule of the contract (`row_stored` true: wrong topic, wrong key).

    `message_timestamp` is the Kafka record's timestamp: fixed for the message, so partitioning and TTL are
    the same on every re-read.
    """
    kept = stored_original(value or b"")
    return (
        "data_quality_findings",
        {
            "finding_id": finding_id(source, reason_code),
            "kafka_topic": source.topic,
            "kafka_partition": source.partition,
            "kafka_offset": source.offset,
            "message_timestamp": _utc(message_timestamp),
            "message_key": safe_key(key),
            "original_b64": kept.b64,
            "reason_code": reason_code,
            "error": safe_error(error),
            "claimed_event_id": kept.claimed_event_id,
            "claimed_event_type": kept.claimed_event_type,
            "row_stored": row_stored,
            "found_at": _utc(found_at),
            "ingested_at": _utc(found_at),
            "original_size": kept.size,
            "original_sha256": kept.sha256,
            "original_truncated": kept.truncated,
            "original_masked": kept.masked,
        },
    )
