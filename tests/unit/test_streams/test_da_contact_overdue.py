"""da_contact_overdue: a child present at a domestic incident needs a Front Door contact within 24 hours."""

from __future__ import annotations

from datetime import datetime, timedelta

from schemas.alerts import AlertRaised
from schemas.topics import CONTACTS, MISSING_EPISODES
from streams.rules import (
    DaObligation,
    RuleInput,
    advance,
    catalogue_from_mapping,
    evaluate,
    next_deadline,
    obligations_from_incident,
)
from tests.unit.test_streams.factories import (
    CHILD,
    DEFAULTS,
    HOUSEHOLD,
    OTHER_CHILD,
    RAISED_AT,
    contact_received,
    day,
    incident,
    of_rule,
    run,
    run_then_advance,
)

RULE = "da_contact_overdue"
INCIDENT_AT = day(0)
DEADLINE = day(1)  # PT24H
LATER = day(10)


def _obligation(child: str = CHILD, incident_id: str = "DI-1", **kwargs: object) -> DaObligation:
    event = incident(INCIDENT_AT, incident_id=incident_id, children=[(child, True)], **kwargs)  # type: ignore[arg-type]
    [obligation] = obligations_from_incident(event)
    return obligation


def _alerts(*inputs: RuleInput, clock: datetime = LATER) -> list[AlertRaised]:
    _, alerts = run_then_advance(inputs, clock, CONTACTS.name)
    return of_rule(alerts, RULE)


def test_obligations_are_for_children_present_each_once() -> None:
    event = incident(
        INCIDENT_AT, incident_id="DI-1", children=[(CHILD, True), (OTHER_CHILD, False), (CHILD, True)], dash_risk="high"
    )
    [obligation] = obligations_from_incident(event)
    assert obligation == DaObligation(
        incident_id="DI-1",
        child_id=CHILD,
        household_id=HOUSEHOLD,
        occurred_at=INCIDENT_AT,
        la_code="383",
        source_event_id=event.event_id,
    )
    assert obligations_from_incident(incident(INCIDENT_AT, children=[(CHILD, False)])) == []


def test_a_purge_reaches_every_child_listed() -> None:
    purge = incident(INCIDENT_AT, incident_id="DI-1", children=[(CHILD, True), (OTHER_CHILD, False)], purge=True)
    assert [(o.child_id, o.purge) for o in obligations_from_incident(purge)] == [(CHILD, True), (OTHER_CHILD, True)]


def test_no_contact_within_24_hours_alerts_at_the_deadline() -> None:
    obligation = _obligation()
    [alert] = _alerts(obligation)
    assert alert.triggered_at == DEADLINE
    assert alert.severity == "high"
    assert alert.subject_type == "child" and alert.subject_id == CHILD
    assert alert.evidence_event_ids == [obligation.source_event_id]
    assert alert.summary == (
        "Child 5f2c…e1 was present at a domestic incident and no contact about it reached the Front Door "
        "within 24 hours."
    )


def test_contact_one_hour_before_the_deadline_answers_it() -> None:
    answer = contact_received(DEADLINE - timedelta(hours=1), linked_incident_id="DI-1")
    assert _alerts(_obligation(), answer) == []


def test_contact_one_hour_after_the_deadline_does_not() -> None:
    answer = contact_received(DEADLINE + timedelta(hours=1), linked_incident_id="DI-1")
    assert len(_alerts(_obligation(), answer)) == 1


def test_contact_for_another_incident_or_none_does_not_answer() -> None:
    assert len(_alerts(_obligation(), contact_received(day(0.5), linked_incident_id="DI-2"))) == 1
    assert len(_alerts(_obligation(), contact_received(day(0.5)))) == 1


def test_contact_arriving_before_the_obligation_answers_it() -> None:
    assert _alerts(contact_received(day(0.5), linked_incident_id="DI-1"), _obligation()) == []


def test_fires_only_once_the_contacts_clock_reaches_the_deadline() -> None:
    assert _alerts(_obligation(), clock=DEADLINE - timedelta(seconds=1)) == []
    assert len(_alerts(_obligation(), clock=DEADLINE)) == 1
    state, _ = run([_obligation()])
    assert state is not None
    assert advance(state, LATER, RAISED_AT, DEFAULTS, clock_topic=MISSING_EPISODES.name).alerts == []


def test_an_answer_after_the_alert_does_not_cancel_it() -> None:
    state, _ = run([_obligation()])
    assert state is not None
    fired = advance(state, DEADLINE, RAISED_AT, DEFAULTS, clock_topic=CONTACTS.name)
    assert len(fired.alerts) == 1
    answered = evaluate(fired.state, contact_received(day(0.5), linked_incident_id="DI-1"), RAISED_AT, DEFAULTS)
    assert advance(answered.state, LATER, RAISED_AT, DEFAULTS, clock_topic=CONTACTS.name).alerts == []


def test_one_alert_per_child_and_incident() -> None:
    obligation = _obligation()
    assert len(_alerts(obligation, obligation)) == 1  # redelivered
    assert len(_alerts(obligation, _obligation(incident_id="DI-2"))) == 2
    _, other_child = run_then_advance([_obligation(child=OTHER_CHILD)], LATER, CONTACTS.name)
    assert [a.subject_id for a in of_rule(other_child, RULE)] == [OTHER_CHILD]


def test_next_deadline() -> None:
    state, _ = run([_obligation()])
    assert state is not None
    assert next_deadline(state, DEFAULTS, clock_topic=CONTACTS.name) == DEADLINE


def test_purged_incident_removes_the_obligation_and_keeps_it_out() -> None:
    purge = obligations_from_incident(incident(INCIDENT_AT, incident_id="DI-1", children=[(CHILD, True)], purge=True))
    assert _alerts(_obligation(), *purge) == []
    assert _alerts(*purge, _obligation()) == []


def test_deadline_override() -> None:
    catalogue = catalogue_from_mapping({RULE: {"deadline": "PT4H"}}, source="x")
    state, alerts = run_then_advance([_obligation()], day(0, hours=4), CONTACTS.name, catalogue)
    assert [a.triggered_at for a in of_rule(alerts, RULE)] == [day(0, hours=4)]
    assert state.da_contacts[0].incident_id == "DI-1"
