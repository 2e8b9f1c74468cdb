"""A simulated partnership year in a chDB store, without Kafka: generated events mapped with the sink's own
mapping, the alerts the pure rule engine raises over them in event-time order, and a few alert acknowledgements,
dead letters and data-quality findings with known values, so every dashboard has something to show.

Each scenario goes into its own database of one store, so both can be checked in one chDB process.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from producers.simulate import Scenario, generate
from safeguard.settings import ClickHouseSettings
from schemas.alerts import AlertLifecycle, AlertRaised
from schemas.deadletter import dead_letter_from_kafka
from schemas.events import AgencyEvent, DomesticIncidentRecorded
from schemas.quality import CHECKS_BY_ID, QualityFinding
from schemas.quality import finding_id as quality_finding_id
from sinks.mapping import (
    KafkaSource,
    TableRow,
    row_for_alert,
    row_for_dead_letter,
    row_for_finding,
    row_for_lifecycle,
    row_for_quality_finding,
    rows_for_event,
)
from sinks.migrate import migrate
from sinks.store import insert_rows
from streams.rules import Catalogue, advance, evaluate, obligations_from_incident, subject_of

PROCESSING_DELAY = timedelta(seconds=2)
"""Alerts are raised this long after the event that triggered them, as in live running (the rules never read it)."""

DEADLINE_TOPICS = ("safeguarding.missing-episodes.v1", "safeguarding.contacts.v1")
DEAD_LETTER_REASONS = {"invalid": 7, "undecodable": 3, "wrong_topic": 1}
FINDING_REASONS = {"not_a_contract_model": 4, "wrong_key": 9}
QUALITY_RULES = {"8925": 2, "8866": 3, "574": 1}
"""Data-quality findings of national rules (schemas/quality.py) put in each year; 8925's are not fed."""
ACK_MINUTES = (3, 8, 15, 42, 90, 240)
"""Acknowledgement delays given to the first alerts of each severity (cycled)."""
RESOLVE_MINUTES = (45, 240, 1440, 20)
"""Resolution delays after the acknowledgement (cycled; every fifth acknowledged alert stays unresolved)."""
OUTCOMES = ("contact_made", "strategy_discussion", "no_further_action", "duplicate", "contact_made")


@dataclass
class LoadedYear:
    """What went into one database, for the tests to count from."""

    scenario: Scenario
    database: str
    events: list[AgencyEvent]
    alerts: list[AlertRaised]
    acknowledgements: list[AlertLifecycle] = field(default_factory=list)
    resolutions: list[AlertLifecycle] = field(default_factory=list)
    dead_letter_reasons: dict[str, int] = field(default_factory=dict)
    finding_reasons: dict[str, int] = field(default_factory=dict)
    quality_rules: dict[str, int] = field(default_factory=dict)
    extra_times: dict[str, datetime] = field(default_factory=dict)


def run_rules(events: list[AgencyEvent], catalogue: Catalogue | None = None) -> list[AlertRaised]:
    """The alerts of the default catalogue over `events` (in event-time order, as the generator emits them),
    with per-subject state kept in a dict; deadline rules fire once the events are exhausted."""
    catalogue = catalogue or Catalogue.default()
    states: dict[tuple[str, str], Any] = {}
    alerts: list[AlertRaised] = []
    for event in events:
        inputs: list[Any] = [event]
        if isinstance(event, DomesticIncidentRecorded):
            inputs += obligations_from_incident(event)
        for item in inputs:
            key = subject_of(item)
            result = evaluate(states.get(key), item, event.occurred_at + PROCESSING_DELAY, catalogue)
            states[key] = result.state
            alerts += result.alerts
    end = max(e.occurred_at for e in events) + timedelta(days=30)
    for key, state in states.items():
        for topic in DEADLINE_TOPICS:
            result = advance(state, end, end, catalogue, clock_topic=topic)
            state = result.state
            alerts += result.alerts
        states[key] = state
    return alerts


def acknowledgements(alerts: list[AlertRaised], since: datetime) -> list[AlertLifecycle]:
    """Acknowledgements of the first alerts of each severity raised from `since`, ACK_MINUTES after raising."""
    acks: list[AlertLifecycle] = []
    seen: dict[str, int] = {}
    for alert in sorted(alerts, key=lambda a: a.raised_at):
        if alert.raised_at < since:
            continue
        n = seen.get(alert.severity, 0)
        if n >= 2 * len(ACK_MINUTES):
            continue
        seen[alert.severity] = n + 1
        at = alert.raised_at + timedelta(minutes=ACK_MINUTES[n % len(ACK_MINUTES)])
        acks.append(
            AlertLifecycle(
                event_id=f"ack-{alert.alert_id}",
                alert_id=alert.alert_id,
                state="acknowledged",
                occurred_at=at,
                rule_id=alert.rule_id,
                severity=alert.severity,
                la_code=alert.la_code,
                actor="duty.manager",
            )
        )
    return acks


def resolutions(acks: list[AlertLifecycle]) -> list[AlertLifecycle]:
    """Resolutions with an outcome of most acknowledged alerts, RESOLVE_MINUTES after their acknowledgement."""
    resolved: list[AlertLifecycle] = []
    for n, ack in enumerate(acks):
        if n % 5 == 4:
            continue
        resolved.append(
            ack.model_copy(
                update={
                    "event_id": f"resolved-{ack.alert_id}",
                    "state": "resolved",
                    "occurred_at": ack.occurred_at + timedelta(minutes=RESOLVE_MINUTES[n % len(RESOLVE_MINUTES)]),
                    "outcome": OUTCOMES[n % len(OUTCOMES)],
                    "note": "dealt with",
                }
            )
        )
    return resolved


def pipeline_rows(at: datetime) -> list[TableRow]:
    """Dead letters and data-quality findings with known reasons, all at `at`."""
    rows: list[TableRow] = []
    offset = 0
    for reason, n in DEAD_LETTER_REASONS.items():
        for _ in range(n):
            offset += 1
            letter = dead_letter_from_kafka(
                topic="safeguarding.contacts.v1",
                partition=0,
                offset=offset,
                key=b"k",
                value=b"{}",
                reason_code=reason,
                error=f"test {reason}",
                at=at,
            )
            rows.append(row_for_dead_letter(letter))
    for reason, n in FINDING_REASONS.items():
        for _ in range(n):
            offset += 1
            rows.append(
                row_for_finding(
                    source=KafkaSource("safeguarding.cp-plans.v1", 1, offset),
                    key=None,
                    value=b"{}",
                    message_timestamp=at,
                    reason_code=reason,
                    error=f"test {reason}",
                    row_stored=reason == "wrong_key",
                    found_at=at,
                )
            )
    for rule_id, n in QUALITY_RULES.items():
        for i in range(n):
            event_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"quality/{rule_id}/{i}"))
            found = QualityFinding(
                finding_id=quality_finding_id(rule_id, event_id),
                rule_id=rule_id,
                check_name=CHECKS_BY_ID[rule_id].name,
                message=f"test {rule_id}",
                event_id=event_id,
                checked_event_type=sorted(CHECKS_BY_ID[rule_id].event_types)[0],
                fed=CHECKS_BY_ID[rule_id].feeds,
                found_by="importer" if i % 2 == 0 else "worker",
                found_at=at,
            )
            rows.append(row_for_quality_finding(found))
    return rows


def load_year(client: Any, database: str, scenario: Scenario, seed: int = 7, days: int | None = None) -> LoadedYear:
    """Generate, map and insert one scenario's year, its alerts and pipeline records into `database`."""
    events = generate(scenario, seed, days=days) if days else generate(scenario, seed)
    # Retention `forever`: a simulated 2019 year is older than the default seven years, and TTL would drop it.
    retention = {"retention_events": "forever", "retention_alerts": "forever", "retention_dead_letters": "forever"}
    migrate(client, ClickHouseSettings(url="chdb://unused", database=database, **retention))
    insert_rows(client, database, [row for event in events for row in rows_for_event(event)])
    alerts = run_rules(events)
    first = scenario.first_day
    acks = acknowledgements(alerts, datetime(first.year, first.month, first.day, 12, tzinfo=UTC))
    resolved = resolutions(acks)
    lifecycle_rows = [row_for_lifecycle(a) for a in [*acks, *resolved]]
    insert_rows(client, database, [row_for_alert(a) for a in alerts] + lifecycle_rows)
    middle = events[len(events) // 2].occurred_at.astimezone(UTC)
    insert_rows(client, database, pipeline_rows(middle))
    return LoadedYear(
        scenario=scenario,
        database=database,
        events=events,
        alerts=alerts,
        acknowledgements=acks,
        resolutions=resolved,
        dead_letter_reasons=dict(DEAD_LETTER_REASONS),
        finding_reasons=dict(FINDING_REASONS),
        quality_rules=dict(QUALITY_RULES),
        extra_times={"pipeline": middle},
    )
