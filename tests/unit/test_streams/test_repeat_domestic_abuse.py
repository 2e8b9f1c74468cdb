"""repeat_domestic_abuse: K incidents for a household within W (3 in P12M; Kent and Medway P6M)."""

from __future__ import annotations

from datetime import timedelta

from schemas.alerts import AlertRaised
from streams.rules import RuleInput, catalogue_from_mapping
from tests.unit.test_streams.factories import day, incident, of_rule, run

RULE = "repeat_domestic_abuse"


def _alerts(*events: RuleInput, **overrides: object) -> list[AlertRaised]:
    _, alerts = run(events, catalogue_from_mapping({RULE: overrides}, source="rules.toml"))
    return of_rule(alerts, RULE)


def test_three_incidents_in_12_months() -> None:
    incidents = [incident(day(n)) for n in (0, 100, 365)]  # 2025-01-01 + P12M = 2026-01-01
    [alert] = _alerts(*incidents)
    assert alert.triggered_at == day(365)
    assert (alert.severity, alert.threshold, alert.count, alert.window) == ("high", 3, 3, "P12M")
    assert alert.summary == "Household abab…ab had 3 domestic incidents in 12 months (threshold 3)."


def test_a_second_too_late() -> None:
    assert _alerts(incident(day(0)), incident(day(100)), incident(day(365) + timedelta(seconds=1))) == []


def test_kent_and_medway_six_months() -> None:
    incidents = [incident(day(n)) for n in (0, 100, 200)]
    assert len(_alerts(*incidents)) == 1
    assert _alerts(*incidents, window="P6M") == []
    # 2025-01-01 + P6M = 2025-07-01 (day 181).
    assert len(_alerts(incident(day(0)), incident(day(100)), incident(day(181)), window="P6M")) == 1


def test_two_records_of_one_incident_count_once() -> None:
    assert _alerts(incident(day(0), incident_id="DI-1"), incident(day(1), incident_id="DI-1"), incident(day(2))) == []


def test_purge_of_an_incident() -> None:
    incidents = [incident(day(n), incident_id=f"DI-{n}") for n in (0, 10)]
    purge = incident(day(0), incident_id="DI-0", purge=True)
    assert _alerts(*incidents, purge, incident(day(20))) == []
