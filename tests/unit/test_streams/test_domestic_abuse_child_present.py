"""domestic_abuse_child_present: a household incident with a child present; one alert per incident."""

from __future__ import annotations

import pytest

from schemas.alerts import AlertRaised
from schemas.types import DashRisk
from streams.rules import RuleInput, catalogue_from_mapping
from tests.unit.test_streams.factories import CHILD, HOUSEHOLD, OTHER_CHILD, day, incident, of_rule, run

RULE = "domestic_abuse_child_present"


def _alerts(*events: RuleInput, **overrides: object) -> list[AlertRaised]:
    _, alerts = run(events, catalogue_from_mapping({RULE: overrides}, source="rules.toml"))
    return of_rule(alerts, RULE)


def test_child_present_alerts_for_the_household() -> None:
    event = incident(day(0), children=[(CHILD, True), (OTHER_CHILD, True)], dash_risk="medium")
    [alert] = _alerts(event)
    assert (alert.subject_type, alert.subject_id) == ("household", HOUSEHOLD)
    assert alert.triggered_at == day(0)
    assert alert.evidence_event_ids == [event.event_id]
    assert alert.summary == "Household abab…ab had a domestic incident with 2 children present (DASH risk medium)."


@pytest.mark.parametrize(("dash_risk", "severity"), [("high", "high"), ("medium", "medium"), ("standard", "medium")])
def test_severity(dash_risk: DashRisk, severity: str) -> None:
    [alert] = _alerts(incident(day(0), children=[(CHILD, True)], dash_risk=dash_risk))
    assert alert.severity == severity


def test_no_child_present_no_alert() -> None:
    assert _alerts(incident(day(0), children=[(CHILD, False)]), incident(day(1), children=[])) == []


def test_one_alert_per_incident() -> None:
    first = incident(day(0), incident_id="DI-1", children=[(CHILD, True)])
    restated = incident(day(0), incident_id="DI-1", children=[(CHILD, True)], dash_risk="high")
    other = incident(day(0), incident_id="DI-2", children=[(CHILD, True)])
    assert len(_alerts(first, first, restated, other)) == 2
