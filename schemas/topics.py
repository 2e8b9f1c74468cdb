"""The topic registry: every topic's name, message key, models and partitioning, declared once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from schemas.errors import Issue
from schemas.events import Envelope
from schemas.identifiers import mask_identifiers

DEFAULT_PARTITIONS = 6
_FOREVER = -1


@dataclass(frozen=True)
class TopicSpec:
    """One contract topic. `key_field` names the event field whose value is the message key."""

    name: str
    event_types: tuple[str, ...]
    key_field: str | None
    partitions: int = DEFAULT_PARTITIONS
    cleanup_policy: Literal["delete", "compact"] = "delete"
    retention_ms: int = _FOREVER
    description: str = ""

    def accepts(self, event_type: str) -> bool:
        return event_type in self.event_types


CONTACTS = TopicSpec(
    "safeguarding.contacts.v1",
    ("contact.received", "contact.decided"),
    "child_id",
    description="Contacts reaching the Front Door and their decisions.",
)
MISSING_EPISODES = TopicSpec(
    "safeguarding.missing-episodes.v1",
    ("missing.reported", "missing.found", "missing.return_interview"),
    "child_id",
    description="Missing and away episodes and return interviews.",
)
DOMESTIC_INCIDENTS = TopicSpec(
    "safeguarding.domestic-incidents.v1",
    ("domestic_incident.recorded",),
    "household_id",
    description="Police-recorded domestic incidents, keyed by household.",
)
CP_PLANS = TopicSpec(
    "safeguarding.cp-plans.v1",
    ("cp_plan.started", "cp_plan.ended"),
    "child_id",
    description="Child protection plans starting and ending.",
)
ALERTS = TopicSpec(
    "safeguarding.alerts.v1",
    ("alert.raised",),
    "alert_id",
    cleanup_policy="compact",
    description="Threshold alerts raised by the stream processors.",
)
ALERT_LIFECYCLE = TopicSpec(
    "safeguarding.alert-lifecycle.v1",
    ("alert.lifecycle",),
    "alert_id",
    description="Each alert's delivery history: notified, failed, acknowledged, escalated.",
)
DEAD_LETTER = TopicSpec(
    "safeguarding.dead-letter.v1",
    ("dead_letter",),
    None,
    description="Rejected input with its reason; keyed by the source key.",
)

QUALITY_FINDINGS = TopicSpec(
    "safeguarding.quality-findings.v1",
    ("quality.finding",),
    "event_id",
    description="Events breaking a national data-quality rule (schemas/quality.py), from the importer and the worker.",
)

EVENT_TOPICS: tuple[TopicSpec, ...] = (CONTACTS, MISSING_EPISODES, DOMESTIC_INCIDENTS, CP_PLANS)
TOPICS: tuple[TopicSpec, ...] = (*EVENT_TOPICS, ALERTS, ALERT_LIFECYCLE, DEAD_LETTER, QUALITY_FINDINGS)
_BY_EVENT_TYPE = {t: spec for spec in TOPICS for t in spec.event_types}
_BY_NAME = {spec.name: spec for spec in TOPICS}


def topic_for(event_type: str) -> TopicSpec:
    """The topic an event type is published to. KeyError for an unknown type."""
    return _BY_EVENT_TYPE[event_type]


def topic_named(name: str) -> TopicSpec:
    """The spec of a contract topic by name. KeyError for a topic outside the contract."""
    return _BY_NAME[name]


def message_key(event: Envelope) -> str:
    """The message key the contract prescribes for an event (child_id or household_id)."""
    field = topic_for(event.event_type).key_field
    assert field is not None
    return str(getattr(event, field))


def placement_issues(spec: TopicSpec, event: Envelope, key: bytes | None) -> list[Issue]:
    """Contract breaches of where a valid event was published: wrong topic, or a key other than its id.

    The key matters: per-child state is co-partitioned by key, so a wrong key splits a child's history.
    """
    if not spec.accepts(event.event_type):
        return [
            Issue(
                "event_type",
                f"`{event.event_type}` does not belong on {spec.name} (it goes on {topic_for(event.event_type).name})",
                "wrong_topic",
            )
        ]
    expected = message_key(event)
    if key is None or key.decode("utf-8", "replace") != expected:
        got = "no key" if key is None else f"key {mask_identifiers(key.decode('utf-8', 'replace')[:80])[0]!r}"
        return [
            Issue(
                "",
                f"the message key must be the event's `{spec.key_field}` ({expected}); got {got}",
                "key_mismatch",
            )
        ]
    return []
