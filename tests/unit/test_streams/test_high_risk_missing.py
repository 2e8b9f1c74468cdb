"""high_risk_missing: every high-risk missing report alerts at once, one alert per episode."""

from __future__ import annotations

from schemas.alerts import AlertRaised
from streams.rules import RuleInput, catalogue_from_mapping
from tests.unit.test_streams.factories import day, missing_reported, of_rule, run

RULE = "high_risk_missing"


def _alerts(*events: RuleInput, **overrides: object) -> list[AlertRaised]:
    _, alerts = run(events, catalogue_from_mapping({RULE: overrides}, source="rules.toml"))
    return of_rule(alerts, RULE)


def test_high_risk_report_alerts_at_once_as_critical() -> None:
    report = missing_reported(day(3), risk_level="high")
    [alert] = _alerts(report)
    assert alert.severity == "critical"
    assert alert.triggered_at == day(3)
    assert alert.evidence_event_ids == [report.event_id]
    assert alert.summary == "Child 5f2c…e1 reported missing at high risk (police risk grading)."
    assert (alert.threshold, alert.count, alert.window) == (None, None, None)


def test_other_risk_levels_do_not() -> None:
    assert _alerts(*(missing_reported(day(0), risk_level=r) for r in ("no_apparent_risk", "low", "medium"))) == []


def test_one_alert_per_episode_and_per_event() -> None:
    report = missing_reported(day(0), episode="MP-1", risk_level="high")
    update = missing_reported(day(0, hours=2), episode="MP-1", risk_level="high")
    other = missing_reported(day(0, hours=3), episode="MP-2", risk_level="high")
    assert len(_alerts(report, report, update, other)) == 2


def test_no_cooldown_by_default_but_one_can_be_set() -> None:
    reports = [missing_reported(day(n), risk_level="high") for n in (0, 1, 2)]
    assert len(_alerts(*reports)) == 3
    assert len(_alerts(*reports, cooldown="P1D")) == 2  # day 1 is within a day of day 0; day 2 is not of day 0


def test_disabled() -> None:
    assert _alerts(missing_reported(day(0), risk_level="high"), enabled=False) == []
