"""re_referral: a referral within 12 calendar months of a previous referral (DfE)."""

from __future__ import annotations

from datetime import timedelta

from schemas.alerts import AlertRaised
from streams.rules import RuleInput, catalogue_from_mapping
from tests.unit.test_streams.factories import contact_decided, day, of_rule, run

RULE = "re_referral"


def _alerts(*events: RuleInput, **overrides: object) -> list[AlertRaised]:
    _, alerts = run(events, catalogue_from_mapping({RULE: overrides}, source="rules.toml"))
    return of_rule(alerts, RULE)


def test_second_referral_within_12_months() -> None:
    first, second = contact_decided(day(0)), contact_decided(day(200), outcome="strategy_discussion")
    [alert] = _alerts(first, second)
    assert alert.triggered_at == day(200)
    assert (alert.threshold, alert.count, alert.window) == (2, 2, "P12M")
    assert alert.evidence_event_ids == [first.event_id, second.event_id]
    assert alert.severity == "medium"
    assert alert.summary == "Child 5f2c…e1 referred again within 12 months of a previous referral (2 referrals)."


def test_exactly_12_calendar_months_is_within_one_second_more_is_not() -> None:
    # 2025-01-01 09:00 + P12M = 2026-01-01 09:00, 365 days later.
    assert len(_alerts(contact_decided(day(0)), contact_decided(day(365)))) == 1
    assert _alerts(contact_decided(day(0)), contact_decided(day(365) + timedelta(seconds=1))) == []


def test_only_referral_outcomes_count() -> None:
    others = [contact_decided(day(n), outcome=o) for n, o in ((1, "nfa"), (2, "advice"), (3, "early_help"))]
    assert _alerts(contact_decided(day(0)), *others) == []


def test_two_decisions_on_one_contact_are_one_referral() -> None:
    assert _alerts(contact_decided(day(0), contact_id="C-1"), contact_decided(day(1), contact_id="C-1")) == []


def test_a_late_earlier_referral() -> None:
    later, earlier = contact_decided(day(100)), contact_decided(day(0))
    assert [a.triggered_at for a in _alerts(later, earlier)] == [day(100)]


def test_cooldown_and_window_override() -> None:
    referrals = [contact_decided(day(n)) for n in (0, 100, 200, 400)]
    # Day 400 still has days 100 and 200 within 12 months, but it is within the cooldown of day 100.
    assert [a.triggered_at for a in _alerts(*referrals)] == [day(100)]
    assert [a.triggered_at for a in _alerts(*referrals, cooldown="P30D")] == [day(100), day(200), day(400)]
    # Three calendar months from 1 January reach 1 April (day 90): day 89 is a re-referral, day 91 is not.
    assert len(_alerts(contact_decided(day(0)), contact_decided(day(89)), window="P3M")) == 1
    assert _alerts(contact_decided(day(0)), contact_decided(day(91)), window="P3M") == []


def test_purged_contact_is_not_a_previous_referral() -> None:
    first = contact_decided(day(0), contact_id="C-1")
    purge = contact_decided(day(0), contact_id="C-1", purge=True)
    assert _alerts(first, purge, contact_decided(day(10))) == []
