"""repeat_missing: K missing episodes for a child within W (3 in P90D), inclusive windows, cooldown, overrides."""

from __future__ import annotations

from datetime import timedelta

import pytest

from schemas.alerts import AlertRaised
from schemas.types import RiskLevel
from streams.rules import RuleInput, catalogue_from_mapping, evaluate
from tests.unit.test_streams.factories import CHILD, DEFAULTS, RAISED_AT, day, ids, missing_reported, of_rule, run

RULE = "repeat_missing"


def _alerts(*events: RuleInput, **overrides: object) -> list[AlertRaised]:
    _, alerts = run(events, catalogue_from_mapping({RULE: overrides}, source="rules.toml"))
    return of_rule(alerts, RULE)


def test_day_0_45_90_is_three_in_90_days() -> None:
    reports = [missing_reported(day(n)) for n in (0, 45, 90)]
    [alert] = _alerts(*reports)
    assert alert.triggered_at == day(90)
    assert (alert.threshold, alert.count, alert.window) == (3, 3, "P90D")
    assert alert.evidence_event_ids == [r.event_id for r in reports]
    assert alert.severity == "medium"
    assert alert.subject_type == "child" and alert.subject_id == CHILD
    assert alert.summary == "Child 5f2c…e1 reported missing 3 times in 90 days (threshold 3)."


def test_day_0_45_91_is_not() -> None:
    assert _alerts(*(missing_reported(day(n)) for n in (0, 45, 91))) == []


def test_ninety_days_are_ninety_times_24_hours() -> None:
    late_by_a_second = day(90) + timedelta(seconds=1)
    assert _alerts(missing_reported(day(0)), missing_reported(day(45)), missing_reported(late_by_a_second)) == []


def test_the_same_event_twice_counts_once() -> None:
    first, second = missing_reported(day(0)), missing_reported(day(45))
    state, alerts = run([first, second, second, first])
    assert alerts == []
    assert evaluate(state, second, RAISED_AT, DEFAULTS).outcome == "duplicate"


def test_two_reports_of_one_episode_count_as_one_episode() -> None:
    reports = [missing_reported(day(0), episode="MP-1"), missing_reported(day(1), episode="MP-1")]
    assert _alerts(*reports, missing_reported(day(45))) == []
    [alert] = _alerts(*reports, missing_reported(day(45)), missing_reported(day(50)))
    assert alert.count == 3
    assert len(alert.evidence_event_ids) == 4


def test_out_of_order_arrival_gives_the_same_alert() -> None:
    reports = [missing_reported(day(n)) for n in (0, 45, 90)]
    in_order = _alerts(*reports)
    for order in ([2, 0, 1], [1, 2, 0], [2, 1, 0]):
        assert ids(_alerts(*(reports[i] for i in order))) == ids(in_order)


def test_a_late_event_is_counted_where_it_belongs_in_time() -> None:
    # Days 0, 60 and 100 are in; then a report for day 30 arrives (70 days late).
    on_time = [missing_reported(day(n)) for n in (0, 60, 100)]
    late = missing_reported(day(30))
    [alert] = _alerts(*on_time, late)
    # The window that now holds 3 episodes ends on day 60 (days 0, 30, 60), not at the newest event.
    assert alert.triggered_at == day(60)
    assert alert.evidence_event_ids == [on_time[0].event_id, late.event_id, on_time[1].event_id]


def test_away_episodes_count_only_with_count_away() -> None:
    reports = [missing_reported(day(0)), missing_reported(day(10), absence_type="away"), missing_reported(day(20))]
    assert _alerts(*reports) == []
    [alert] = _alerts(*reports, count_away=True)
    assert alert.summary == "Child 5f2c…e1 reported missing or away 3 times in 90 days (threshold 3)."


def test_an_away_report_cannot_complete_the_count() -> None:
    reports = [missing_reported(day(0)), missing_reported(day(10)), missing_reported(day(20), absence_type="away")]
    assert _alerts(*reports) == []


@pytest.mark.parametrize(
    ("looked_after", "risk_level", "severity"),
    [(False, "medium", "medium"), (True, "medium", "high"), (False, "high", "high"), (False, "low", "medium")],
)
def test_severity_high_if_any_evidence_episode_is_looked_after_or_high_risk(
    looked_after: bool, risk_level: RiskLevel, severity: str
) -> None:
    reports = [
        missing_reported(day(0)),
        missing_reported(day(10), looked_after=looked_after, risk_level=risk_level),
        missing_reported(day(20)),
    ]
    [alert] = _alerts(*reports)
    assert alert.severity == severity


def test_cooldown_edge_exactly_the_cooldown_after_is_still_held_back() -> None:
    first = [missing_reported(day(n)) for n in (0, 45, 90)]
    # Days 100, 135, 180: three in 90 days, but day 180 is exactly 90 days after the alert on day 90.
    assert len(_alerts(*first, *(missing_reported(day(n)) for n in (100, 135, 180)))) == 1
    # One second later the cooldown has passed.
    later = [missing_reported(day(100)), missing_reported(day(135)), missing_reported(day(180) + timedelta(seconds=1))]
    second = _alerts(*first, *later)
    assert [a.triggered_at for a in second] == [day(90), day(180) + timedelta(seconds=1)]


def test_cooldown_holds_back_an_earlier_window_completed_by_a_late_event() -> None:
    # The alert on day 62 (days 60, 61, 62) covers a late triple on days 0, 1, 2: one episode of concern.
    alerts = _alerts(*(missing_reported(day(n)) for n in (60, 61, 62, 0, 1, 2)))
    assert [a.triggered_at for a in alerts] == [day(62)]


def test_cooldown_override() -> None:
    reports = [missing_reported(day(n)) for n in (0, 1, 2, 40)]
    assert len(_alerts(*reports)) == 1
    assert [a.triggered_at for a in _alerts(*reports, cooldown="P30D")] == [day(2), day(40)]


def test_three_in_twelve_calendar_months() -> None:
    reports = [missing_reported(day(0)), missing_reported(day(200))]
    # 2025-01-01 09:00 plus P12M is 2026-01-01 09:00 (365 days).
    assert len(_alerts(*reports, missing_reported(day(365)), window="P12M")) == 1
    assert _alerts(*reports, missing_reported(day(365) + timedelta(seconds=1)), window="P12M") == []


def test_threshold_override() -> None:
    reports = [missing_reported(day(n)) for n in (0, 10, 20)]
    assert _alerts(*reports, threshold=4) == []
    [alert] = _alerts(*reports, missing_reported(day(30)), threshold=4)
    assert (alert.threshold, alert.count) == (4, 4)


def test_separate_threshold_for_looked_after_children() -> None:
    looked_after = [missing_reported(day(n), looked_after=True) for n in (0, 10, 20)]
    assert _alerts(*looked_after, looked_after={"threshold": 4}) == []
    [alert] = _alerts(*looked_after, missing_reported(day(30), looked_after=True), looked_after={"threshold": 4})
    assert alert.summary.endswith("(threshold 4 for a looked-after child).")
    # A child not looked after still alerts at 3.
    assert len(_alerts(*(missing_reported(day(n)) for n in (0, 10, 20)), looked_after={"threshold": 4})) == 1


def test_separate_window_for_looked_after_children() -> None:
    spread = [missing_reported(day(n), looked_after=True) for n in (0, 150, 300)]
    assert _alerts(*spread) == []
    [alert] = _alerts(*spread, looked_after={"window": "P12M"})
    assert alert.window == "P12M"


def test_purge_removes_the_episode_from_the_count() -> None:
    reports = [missing_reported(day(n), episode=f"MP-{n}") for n in (0, 45)]
    purge = missing_reported(day(0), episode="MP-0", purge=True)
    state, alerts = run([*reports, purge, missing_reported(day(90))])
    assert alerts == []
    assert state is not None
    assert "MP-0" not in {report.episode_id for report in state.missing_reports}
    assert len(state.missing_reports) == 2


def test_purge_before_the_event_keeps_it_out() -> None:
    purge = missing_reported(day(0), episode="MP-0", purge=True)
    late = missing_reported(day(0), episode="MP-0")
    state, alerts = run([purge, late, missing_reported(day(45)), missing_reported(day(90))])
    assert alerts == []
    assert state is not None and "episode:MP-0" in state.erased


def test_disabled() -> None:
    assert _alerts(*(missing_reported(day(n)) for n in (0, 45, 90)), enabled=False) == []
