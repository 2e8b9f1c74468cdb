"""return_interview_overdue: a deadline of 72 hours from `missing.found`, answered by any interview step."""

from __future__ import annotations

from datetime import datetime, timedelta

from schemas.alerts import AlertRaised
from schemas.topics import CONTACTS, MISSING_EPISODES
from streams.rules import Catalogue, RuleInput, advance, catalogue_from_mapping, evaluate, next_deadline
from tests.unit.test_streams.factories import (
    DEFAULTS,
    RAISED_AT,
    day,
    missing_found,
    missing_reported,
    of_rule,
    return_interview,
    run,
    run_then_advance,
)

RULE = "return_interview_overdue"
FOUND = day(0)
DEADLINE = day(3)  # PT72H
LATER = day(30)


def _alerts(*events: RuleInput, clock: datetime = LATER, catalogue: Catalogue = DEFAULTS) -> list[AlertRaised]:
    _, alerts = run_then_advance(events, clock, MISSING_EPISODES.name, catalogue)
    return of_rule(alerts, RULE)


def test_no_interview_within_72_hours_alerts_at_the_deadline() -> None:
    found = missing_found(FOUND, episode="MP-1")
    [alert] = _alerts(missing_reported(day(-1), episode="MP-1"), found)
    assert alert.triggered_at == DEADLINE
    assert alert.evidence_event_ids == [found.event_id]
    assert alert.severity == "medium"
    assert alert.summary == "Child 5f2c…e1 has no return interview recorded within 72 hours of being found."


def test_looked_after_child_is_high() -> None:
    [alert] = _alerts(missing_found(FOUND, episode="MP-1", looked_after=True))
    assert alert.severity == "high"
    assert alert.summary.startswith("Child 5f2c…e1 (looked after) has no return interview")


def test_interview_one_hour_before_the_deadline_answers_it() -> None:
    found = missing_found(FOUND, episode="MP-1")
    assert _alerts(found, return_interview(DEADLINE - timedelta(hours=1), episode="MP-1")) == []


def test_interview_exactly_at_the_deadline_answers_it() -> None:
    assert _alerts(missing_found(FOUND, episode="MP-1"), return_interview(DEADLINE, episode="MP-1")) == []


def test_interview_one_hour_after_the_deadline_does_not() -> None:
    found = missing_found(FOUND, episode="MP-1")
    [alert] = _alerts(found, return_interview(DEADLINE + timedelta(hours=1), episode="MP-1"))
    assert alert.triggered_at == DEADLINE


def test_any_interview_step_answers() -> None:
    for step in ("offered", "accepted", "declined", "completed"):
        interview = return_interview(day(1), episode="MP-1", interview=step)  # type: ignore[arg-type]
        assert _alerts(missing_found(FOUND, episode="MP-1"), interview) == []


def test_interview_for_another_episode_does_not_answer() -> None:
    assert len(_alerts(missing_found(FOUND, episode="MP-1"), return_interview(day(1), episode="MP-2"))) == 1


def test_interview_arriving_before_the_found_event_answers_it() -> None:
    assert _alerts(return_interview(day(1), episode="MP-1"), missing_found(FOUND, episode="MP-1")) == []


def test_fires_only_once_the_clock_reaches_the_deadline() -> None:
    found = missing_found(FOUND, episode="MP-1")
    assert _alerts(found, clock=DEADLINE - timedelta(seconds=1)) == []
    assert len(_alerts(found, clock=DEADLINE)) == 1


def test_an_answer_applied_after_the_alert_does_not_cancel_it() -> None:
    state, _ = run([missing_found(FOUND, episode="MP-1")])
    assert state is not None
    fired = advance(state, DEADLINE, RAISED_AT, DEFAULTS, clock_topic=MISSING_EPISODES.name)
    assert len(fired.alerts) == 1
    answered = evaluate(fired.state, return_interview(day(1), episode="MP-1"), RAISED_AT, DEFAULTS)
    again = advance(answered.state, LATER, RAISED_AT, DEFAULTS, clock_topic=MISSING_EPISODES.name)
    assert again.alerts == []


def test_one_alert_per_episode() -> None:
    first = missing_found(FOUND, episode="MP-1")
    correction = missing_found(FOUND + timedelta(hours=2), episode="MP-1")
    other = missing_found(FOUND, episode="MP-2")
    state, alerts = run_then_advance([first, correction, other], LATER, MISSING_EPISODES.name)
    assert len(of_rule(alerts, RULE)) == 2
    # The earliest found event opens the deadline; a later correction does not move it.
    assert {a.evidence_event_ids[0] for a in of_rule(alerts, RULE)} == {first.event_id, other.event_id}
    repeat = advance(state, LATER, RAISED_AT, DEFAULTS, clock_topic=MISSING_EPISODES.name)
    assert repeat.alerts == []


def test_the_contacts_clock_does_not_drive_it() -> None:
    state, _ = run([missing_found(FOUND, episode="MP-1")])
    assert state is not None
    assert advance(state, LATER, RAISED_AT, DEFAULTS, clock_topic=CONTACTS.name).alerts == []


def test_next_deadline() -> None:
    state, _ = run([missing_found(FOUND, episode="MP-1")])
    assert state is not None
    assert next_deadline(state, DEFAULTS, clock_topic=MISSING_EPISODES.name) == DEADLINE
    assert next_deadline(state, DEFAULTS, clock_topic=CONTACTS.name) is None
    fired = advance(state, DEADLINE, RAISED_AT, DEFAULTS, clock_topic=MISSING_EPISODES.name)
    assert next_deadline(fired.state, DEFAULTS, clock_topic=MISSING_EPISODES.name) is None
    answered, _ = run([missing_found(FOUND, episode="MP-2"), return_interview(day(1), episode="MP-2")])
    assert answered is not None
    assert next_deadline(answered, DEFAULTS, clock_topic=MISSING_EPISODES.name) is None


def test_purge_of_the_episode_removes_the_deadline() -> None:
    found = missing_found(FOUND, episode="MP-1")
    assert _alerts(found, missing_found(FOUND, episode="MP-1", purge=True)) == []


def test_deadline_override_and_disable() -> None:
    found = missing_found(FOUND, episode="MP-1")
    interview = return_interview(day(2, hours=1), episode="MP-1")  # 49 hours after being found
    assert _alerts(found, interview) == []
    [alert] = _alerts(found, interview, catalogue=catalogue_from_mapping({RULE: {"deadline": "PT48H"}}, source="x"))
    assert alert.triggered_at == day(2)
    assert alert.summary.endswith("within 48 hours of being found.")
    disabled = catalogue_from_mapping({RULE: {"enabled": False}}, source="x")
    state, alerts = run_then_advance([found], LATER, MISSING_EPISODES.name, disabled)
    assert alerts == [] and state.return_interviews == []
