"""multi_agency_concern: contacts about a child from N distinct agency types within W (3 in P30D)."""

from __future__ import annotations

from datetime import timedelta

from schemas.alerts import AlertRaised
from streams.rules import RuleInput, catalogue_from_mapping
from tests.unit.test_streams.factories import contact_received, day, of_rule, run

RULE = "multi_agency_concern"


def _alerts(*events: RuleInput, **overrides: object) -> list[AlertRaised]:
    _, alerts = run(events, catalogue_from_mapping({RULE: overrides}, source="rules.toml"))
    return of_rule(alerts, RULE)


def test_three_agency_types_within_30_days() -> None:
    contacts = [
        contact_received(day(0), agency_type="police"),
        contact_received(day(10), agency_type="health"),
        contact_received(day(30), agency_type="education"),
    ]
    [alert] = _alerts(*contacts)
    assert alert.triggered_at == day(30)
    assert (alert.threshold, alert.count, alert.window) == (3, 3, "P30D")
    assert alert.evidence_event_ids == [c.event_id for c in contacts]
    assert alert.summary == (
        "Child 5f2c…e1 is the subject of contacts from 3 kinds of agency in 30 days (threshold 3): "
        "education, health, police."
    )


def test_day_31_is_outside() -> None:
    contacts = [
        contact_received(day(0), agency_type="police"),
        contact_received(day(10), agency_type="health"),
        contact_received(day(30) + timedelta(seconds=1), agency_type="education"),
    ]
    assert _alerts(*contacts) == []


def test_the_same_agency_type_counts_once() -> None:
    assert _alerts(*(contact_received(day(n), agency_type="police") for n in range(5))) == []


def test_late_contact_fills_the_window_where_it_belongs() -> None:
    police, education = (
        contact_received(day(0), agency_type="police"),
        contact_received(day(20), agency_type="education"),
    )
    health = contact_received(day(10), agency_type="health")
    [alert] = _alerts(police, education, health)
    assert alert.triggered_at == day(20)


def test_threshold_override() -> None:
    contacts = [contact_received(day(0), agency_type="police"), contact_received(day(1), agency_type="health")]
    assert _alerts(*contacts) == []
    assert len(_alerts(*contacts, threshold=2)) == 1
