"""The engine: subjects, dedupe, too-late events, pruning by event time, purge, stored state, alert ids."""

from __future__ import annotations

from datetime import datetime

import pytest

from streams.rules import (
    SubjectMismatch,
    alert_id,
    catalogue_from_mapping,
    decode_state,
    encode_state,
    evaluate,
    obligations_from_incident,
    subject_of,
)
from tests.unit.test_streams.factories import (
    CHILD,
    DEFAULTS,
    HOUSEHOLD,
    OTHER_CHILD,
    RAISED_AT,
    contact_decided,
    contact_received,
    day,
    incident,
    missing_found,
    missing_reported,
    plan_ended,
    plan_started,
    return_interview,
    run,
)


def test_subjects() -> None:
    assert subject_of(missing_reported(day(0))) == ("child", CHILD)
    assert subject_of(incident(day(0))) == ("household", HOUSEHOLD)
    [obligation] = obligations_from_incident(incident(day(0), children=[(OTHER_CHILD, True)]))
    assert subject_of(obligation) == ("child", OTHER_CHILD)


def test_a_state_refuses_another_subjects_input() -> None:
    state, _ = run([missing_reported(day(0))])
    with pytest.raises(SubjectMismatch):
        evaluate(state, missing_reported(day(1), child=OTHER_CHILD), RAISED_AT, DEFAULTS)
    with pytest.raises(SubjectMismatch):
        evaluate(state, incident(day(1)), RAISED_AT, DEFAULTS)


def test_times_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        evaluate(None, missing_reported(day(0)), datetime(2025, 1, 1), DEFAULTS)


def test_outcomes() -> None:
    report = missing_reported(day(0), episode="MP-1")
    first = evaluate(None, report, RAISED_AT, DEFAULTS)
    assert first.outcome == "applied"
    assert evaluate(first.state, report, RAISED_AT, DEFAULTS).outcome == "duplicate"
    purged = evaluate(first.state, missing_reported(day(0), episode="MP-1", purge=True), RAISED_AT, DEFAULTS)
    assert purged.outcome == "purged"
    assert evaluate(purged.state, missing_found(day(1), episode="MP-1"), RAISED_AT, DEFAULTS).outcome == "erased"


def test_one_event_runs_every_rule_that_reads_it() -> None:
    reports = [missing_reported(day(0)), missing_reported(day(1)), missing_reported(day(2), risk_level="high")]
    _, alerts = run(reports)
    assert [a.rule_id for a in alerts] == ["high_risk_missing", "repeat_missing"]


def test_an_event_older_than_the_subjects_horizon_is_too_late() -> None:
    state, _ = run([contact_received(day(1000))])
    # The child's horizon is 24 months (re_referral: 12-month window + 12-month cooldown).
    assert evaluate(state, missing_reported(day(1000 - 731), risk_level="high"), RAISED_AT, DEFAULTS).outcome == (
        "too_late"
    )
    assert evaluate(state, missing_reported(day(1000 - 729)), RAISED_AT, DEFAULTS).outcome == "applied"
    # Plans are kept for ever, so plan events are never too late; purges are always applied.
    assert evaluate(state, plan_started(day(0), plan_id="P1"), RAISED_AT, DEFAULTS).outcome == "applied"
    purge = contact_received(day(0), contact_id="C-0", purge=True)
    assert evaluate(state, purge, RAISED_AT, DEFAULTS).outcome == "purged"


def test_an_event_beyond_a_rules_retention_is_not_stored_but_immediate_rules_still_see_it() -> None:
    state, _ = run([contact_received(day(400))])
    result = evaluate(state, missing_reported(day(100), risk_level="high"), RAISED_AT, DEFAULTS)
    assert result.outcome == "applied"
    assert [a.rule_id for a in result.alerts] == ["high_risk_missing"]
    assert result.state.missing_reports == []  # older than repeat_missing's 90 + 90 days


def test_a_late_event_within_retention_counts_with_what_is_kept() -> None:
    # Days 40 and 60, then day 200; a report for day 50 arrives 150 days late (more than the cooldown,
    # within the 180-day retention): days 40, 50, 60 are all still kept, so it still alerts.
    state, _ = run([missing_reported(day(40)), missing_reported(day(60)), contact_received(day(200))])
    result = evaluate(state, missing_reported(day(50)), RAISED_AT, DEFAULTS)
    assert [(a.rule_id, a.triggered_at) for a in result.alerts] == [("repeat_missing", day(60))]


def test_pruning_is_relative_to_the_subjects_newest_event_time() -> None:
    state, _ = run([missing_reported(day(0)), missing_reported(day(1)), missing_reported(day(2))])
    assert state is not None and len(state.missing_reports) == 3 and len(state.alerts) == 1
    later, _ = run([missing_reported(day(182))], state=state)
    assert later is not None
    assert [r.occurred_at for r in later.missing_reports] == [day(2), day(182)]
    assert len(later.seen) == 4  # seen ids are kept for the horizon (24 months)
    assert len(later.alerts) == 1  # marks are kept for the horizon plus the cooldown
    much_later, _ = run([contact_received(day(2 + 731 + 90))], state=later)
    assert much_later is not None
    assert much_later.alerts == [] and much_later.missing_reports == []
    assert [s.occurred_at for s in much_later.seen] == [day(182), day(2 + 731 + 90)]


def test_disabled_rules_keep_no_history() -> None:
    catalogue = catalogue_from_mapping({"repeat_missing": {"enabled": False}}, source="rules.toml")
    state, _ = run([missing_reported(day(0))], catalogue)
    assert state is not None and state.missing_reports == [] and len(state.seen) == 1


def test_state_round_trips_through_its_stored_form() -> None:
    inputs = [
        missing_reported(day(0), episode="MP-1", looked_after=True),
        missing_found(day(1), episode="MP-1", looked_after=True),
        return_interview(day(2), episode="MP-1"),
        contact_received(day(3), agency_type="health", linked_incident_id="DI-1"),
        contact_decided(day(4)),
        plan_started(day(5), plan_id="P1", previous_plans=1),
        plan_ended(day(6), plan_id="P1"),
        *obligations_from_incident(incident(day(2), household=HOUSEHOLD, incident_id="DI-1", children=[(CHILD, True)])),
        missing_reported(day(7), episode="MP-2", purge=True),
    ]
    state, _ = run(inputs)
    assert state is not None
    assert state.erased and state.return_interviews and state.plans and state.da_contacts  # every part is covered
    assert decode_state("child", CHILD, encode_state(state)) == state


def test_household_state_round_trips() -> None:
    state, _ = run([incident(day(0), marac=True, children=[(CHILD, True)]), incident(day(1))])
    assert state is not None and state.subject_type == "household"
    assert decode_state("household", state.subject_id, encode_state(state)) == state


def test_alert_ids_are_deterministic_and_ignore_evidence_order() -> None:
    first = alert_id("repeat_missing", "child", CHILD, ("b", "a", "c"))
    assert first == alert_id("repeat_missing", "child", CHILD, ("a", "b", "c"))
    assert len(first) == 32 and int(first, 16) >= 0
    assert first != alert_id("repeat_missing", "child", OTHER_CHILD, ("a", "b", "c"))
    assert first != alert_id("re_referral", "child", CHILD, ("a", "b", "c"))


def test_summaries_carry_no_identifying_detail_beyond_the_pseudonym() -> None:
    _, child_alerts = run(
        [missing_reported(day(n), episode=f"MP-SECRET-{n}", risk_level="high") for n in range(3)]
        + [contact_decided(day(n), contact_id=f"C-SECRET-{n}") for n in range(2)]
    )
    _, household_alerts = run([incident(day(n), incident_id=f"DI-SECRET-{n}", marac=True) for n in range(3)])
    alerts = child_alerts + household_alerts
    assert {a.rule_id for a in alerts} >= {"repeat_missing", "high_risk_missing", "re_referral", "marac_repeat"}
    for alert in alerts:
        assert "SECRET" not in alert.summary and alert.subject_id not in alert.summary
        assert all(event_id not in alert.summary for event_id in alert.evidence_event_ids)
        assert alert.summary.endswith(".") and len(alert.summary) < 200


def test_alerts_come_back_in_triggered_at_order() -> None:
    catalogue = catalogue_from_mapping({"repeat_missing": {"cooldown": "PT1H"}}, source="x")
    state, alerts = run([missing_reported(day(n)) for n in (0, 60, 120)], catalogue)
    assert alerts == []
    # A late report for day 55 completes two windows at once: days 0-55-60 and days 55-60-120.
    result = evaluate(state, missing_reported(day(55)), RAISED_AT, catalogue)
    assert [a.triggered_at for a in result.alerts] == [day(60), day(120)]
