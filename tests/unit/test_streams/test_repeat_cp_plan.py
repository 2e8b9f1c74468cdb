"""repeat_cp_plan: a plan for a child who had one before; high within 24 calendar months of its end."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from schemas.alerts import AlertRaised
from streams.rules import RuleInput, catalogue_from_mapping
from tests.unit.test_streams.factories import of_rule, plan_ended, plan_started, run

RULE = "repeat_cp_plan"


def at(year: int, month: int, day: int, hour: int = 10) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


def _alerts(*events: RuleInput, **overrides: object) -> list[AlertRaised]:
    _, alerts = run(events, catalogue_from_mapping({RULE: overrides}, source="rules.toml"))
    return of_rule(alerts, RULE)


def _earlier_plan(ended: datetime) -> list[RuleInput]:
    return [plan_started(ended - timedelta(days=300), plan_id="P1"), plan_ended(ended, plan_id="P1")]


def test_a_first_plan_does_not_alert() -> None:
    assert _alerts(plan_started(at(2025, 1, 1), plan_id="P1"), plan_ended(at(2025, 6, 1), plan_id="P1")) == []


def test_exactly_24_calendar_months_after_the_end_is_high() -> None:
    earlier = _earlier_plan(at(2023, 1, 31))
    start = plan_started(at(2025, 1, 31), plan_id="P2")
    [alert] = _alerts(*earlier, start)
    assert alert.severity == "high"
    assert alert.triggered_at == at(2025, 1, 31)
    assert alert.evidence_event_ids == [start.event_id, earlier[0].event_id, earlier[1].event_id]
    assert alert.summary == (
        "Child 5f2c…e1 started a child protection plan within 24 months of the end of a previous plan."
    )


def test_one_second_later_is_medium() -> None:
    [alert] = _alerts(
        *_earlier_plan(at(2023, 1, 31)), plan_started(at(2025, 1, 31) + timedelta(seconds=1), plan_id="P2")
    )
    assert alert.severity == "medium"
    assert alert.summary == "Child 5f2c…e1 started a second or subsequent child protection plan."


@pytest.mark.parametrize(
    ("ended", "start", "severity"),
    [
        (at(2024, 2, 29), at(2026, 2, 28), "high"),  # P24M after 29 February is 28 February
        (at(2024, 2, 29), at(2026, 3, 1), "medium"),
        (at(2023, 8, 31), at(2025, 8, 31), "high"),
        (at(2023, 8, 31), at(2025, 9, 1), "medium"),
    ],
)
def test_month_end(ended: datetime, start: datetime, severity: str) -> None:
    [alert] = _alerts(*_earlier_plan(ended), plan_started(start, plan_id="P2"))
    assert alert.severity == severity


def test_alert_only_within_the_lookback_when_asked() -> None:
    earlier = _earlier_plan(at(2020, 1, 1))
    assert _alerts(*earlier, plan_started(at(2025, 1, 1), plan_id="P2"), alert_on_any_previous=False) == []
    [alert] = _alerts(*earlier, plan_started(at(2021, 1, 1), plan_id="P2"), alert_on_any_previous=False)
    assert alert.severity == "high"


def test_lookback_override() -> None:
    earlier = _earlier_plan(at(2024, 1, 1))
    assert _alerts(*earlier, plan_started(at(2025, 6, 1), plan_id="P2"), lookback="P12M")[0].severity == "medium"


def test_an_earlier_plan_still_open_at_the_new_start_is_high() -> None:
    earlier = [plan_started(at(2020, 1, 1), plan_id="P1"), plan_ended(at(2025, 3, 1), plan_id="P1")]
    [alert] = _alerts(*earlier, plan_started(at(2025, 1, 1), plan_id="P2"))
    assert alert.severity == "high"


@pytest.mark.parametrize(
    ("previous_plans", "previous_plan_ended_at", "severity"),
    [
        (1, None, "medium"),
        (0, None, None),
        (None, None, None),
        (None, date(2023, 1, 31), "high"),  # the whole day counts: 24 months after 31 January 2023
        (2, date(2023, 1, 30), "medium"),
    ],
)
def test_previous_plan_known_only_from_the_source(
    previous_plans: int | None, previous_plan_ended_at: date | None, severity: str | None
) -> None:
    start = plan_started(
        at(2025, 1, 31, hour=23),
        plan_id="P9",
        previous_plans=previous_plans,
        previous_plan_ended_at=previous_plan_ended_at,
    )
    assert [a.severity for a in _alerts(start)] == ([severity] if severity else [])


def test_a_new_plan_arriving_before_the_plan_it_repeats() -> None:
    new_plan = plan_started(at(2025, 1, 1), plan_id="P2")
    earlier_start, earlier_end = _earlier_plan(at(2024, 1, 1))
    [in_order] = _alerts(earlier_start, earlier_end, new_plan)
    assert in_order.evidence_event_ids == [new_plan.event_id, earlier_start.event_id, earlier_end.event_id]
    # Start first: alerted as soon as the earlier start arrives, at the new plan's start time; the
    # earlier start (2023-03-07) is itself within 24 months, so high is already certain.
    [late] = _alerts(new_plan, earlier_start, earlier_end)
    assert (late.triggered_at, late.severity) == (at(2025, 1, 1), "high")
    assert late.evidence_event_ids == [new_plan.event_id, earlier_start.event_id]


def test_high_only_when_certain_while_the_earlier_end_is_unknown() -> None:
    new_plan = plan_started(at(2025, 1, 1), plan_id="P2")
    # Started 2021, end not seen yet: it may have ended in 2021 or in 2024, so only medium is certain.
    [alert] = _alerts(new_plan, plan_started(at(2021, 1, 1), plan_id="P1"))
    assert alert.severity == "medium"


def test_the_same_start_twice_alerts_once() -> None:
    start = plan_started(at(2025, 1, 1), plan_id="P2")
    restated = plan_started(at(2025, 1, 1), plan_id="P2")
    assert len(_alerts(*_earlier_plan(at(2024, 1, 1)), start, start, restated)) == 1


def test_cooldown_is_the_lookback_by_default() -> None:
    plans = [
        *_earlier_plan(at(2020, 1, 1)),
        plan_started(at(2021, 1, 1), plan_id="P2"),
        plan_ended(at(2021, 3, 1), plan_id="P2"),
        plan_started(at(2021, 6, 1), plan_id="P3"),
    ]
    assert [a.triggered_at for a in _alerts(*plans)] == [at(2021, 1, 1)]
    assert [a.triggered_at for a in _alerts(*plans, cooldown="P0D")] == [at(2021, 1, 1), at(2021, 6, 1)]


def test_purged_earlier_plan_no_longer_makes_a_repeat() -> None:
    purge = plan_started(at(2023, 1, 1), plan_id="P1", purge=True)
    assert _alerts(*_earlier_plan(at(2024, 1, 1)), purge, plan_started(at(2025, 1, 1), plan_id="P2")) == []


def test_plans_are_never_too_late() -> None:
    recent = plan_started(at(2025, 1, 1), plan_id="P2")
    # A plan from ten years before arrives after the recent one: still a repeat ("ever").
    [alert] = _alerts(recent, *_earlier_plan(at(2015, 1, 1)))
    assert alert.severity == "medium"
