"""marac_repeat: any incident for a household within W (P12M) after an incident referred to MARAC."""

from __future__ import annotations

from datetime import timedelta

from schemas.alerts import AlertRaised
from streams.rules import RuleInput, catalogue_from_mapping
from tests.unit.test_streams.factories import day, incident, of_rule, run

RULE = "marac_repeat"


def _alerts(*events: RuleInput, **overrides: object) -> list[AlertRaised]:
    _, alerts = run(events, catalogue_from_mapping({RULE: overrides}, source="rules.toml"))
    return of_rule(alerts, RULE)


def test_incident_within_12_months_of_a_marac_referral() -> None:
    referral, repeat = incident(day(0), marac=True), incident(day(365))
    [alert] = _alerts(referral, repeat)
    assert alert.triggered_at == day(365)
    assert alert.evidence_event_ids == [referral.event_id, repeat.event_id]
    assert (alert.severity, alert.window) == ("high", "P12M")
    assert alert.summary == "Household abab…ab had a domestic incident within 12 months of a MARAC referral."


def test_one_second_after_12_months_is_not() -> None:
    assert _alerts(incident(day(0), marac=True), incident(day(365) + timedelta(seconds=1))) == []


def test_no_referral_no_alert_and_the_referral_itself_is_not_a_repeat() -> None:
    assert _alerts(incident(day(0)), incident(day(10))) == []
    assert _alerts(incident(day(0), incident_id="DI-1", marac=True), incident(day(1), incident_id="DI-1")) == []


def test_incident_before_the_referral_is_not_a_repeat() -> None:
    assert _alerts(incident(day(0)), incident(day(10), marac=True)) == []


def test_late_referral_makes_a_later_incident_a_repeat() -> None:
    repeat, referral = incident(day(50)), incident(day(10), marac=True)
    [alert] = _alerts(repeat, referral)
    assert alert.triggered_at == day(50)
    assert alert.evidence_event_ids == [referral.event_id, repeat.event_id]


def test_cooldown() -> None:
    events = [incident(day(0), marac=True), incident(day(10)), incident(day(20))]
    assert [a.triggered_at for a in _alerts(*events)] == [day(10)]
    assert [a.triggered_at for a in _alerts(*events, cooldown="P5D")] == [day(10), day(20)]
