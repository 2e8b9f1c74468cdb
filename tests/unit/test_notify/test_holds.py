"""Silences and inhibition as pure functions: exact matchers that must all match, the half-open active interval
(start included, end and early expiry excluded), which silence is named, what a silence may be made of, and
Alertmanager-style inhibition (open, unheld sources within the window, equal fields)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from notify.holds import (
    MAX_SILENCE,
    AlertFacts,
    InhibitRule,
    OpenAlert,
    Silence,
    check_silence,
    describe_matchers,
    hold_for,
    inhibitor,
    matchers_of,
    silence_for,
    sources_wanted,
)

T0 = datetime(2025, 6, 2, 10, 0, tzinfo=UTC)
CHILD = "a" * 64
OTHER_CHILD = "b" * 64


def facts(
    alert_id: str = "t1",
    *,
    rule: str = "repeat_missing",
    severity: str = "medium",
    la: str = "383",
    team: str = "front-door",
    subject: str = CHILD,
    at: datetime = T0,
) -> AlertFacts:
    return AlertFacts(alert_id, rule, severity, la, team, subject, at)


def silence(
    silence_id: str = "000000000001",
    *,
    start: datetime = T0,
    hours: float = 2,
    expired_at: datetime | None = None,
    **given: list[str],
) -> Silence:
    return Silence(
        silence_id, matchers_of(given), start, start + timedelta(hours=hours), "school trip, planned absence",
        "dana", start, expired_at, "dana" if expired_at else None,
    )  # fmt: skip


# -- silences ---------------------------------------------------------------------------------------------------


def test_every_matcher_must_match_and_values_within_one_are_alternatives() -> None:
    s = silence(rule=["repeat_missing"], severity=["info", "medium"], la=["383"])
    assert s.matches(facts())
    assert s.matches(facts(severity="info"))
    assert not s.matches(facts(severity="high"))  # one matcher fails: not silenced
    assert not s.matches(facts(la="856"))
    assert not s.matches(facts(rule="high_risk_missing"))


def test_matching_is_exact_not_a_pattern() -> None:
    assert not silence(rule=["repeat"]).matches(facts())  # no prefix match
    assert not silence(rule=["repeat_.*"]).matches(facts())  # no regular expression
    assert not silence(team=["front"]).matches(facts())
    assert silence(subject=[CHILD]).matches(facts())
    assert not silence(subject=[CHILD]).matches(facts(subject=OTHER_CHILD))


def test_a_silence_without_matchers_matches_nothing() -> None:
    assert not silence().matches(facts())


@pytest.mark.parametrize(
    ("offset_s", "active"),
    [(-1, False), (0, True), (3600, True), (7199, True), (7200, False), (7201, False)],
)
def test_active_from_its_start_included_to_its_end_excluded(offset_s: int, active: bool) -> None:
    s = silence(rule=["repeat_missing"])
    now = T0 + timedelta(seconds=offset_s)
    assert s.active_at(now) is active
    assert (silence_for([s], facts(), now) is s) is active


def test_expiring_early_ends_it_at_that_moment() -> None:
    s = silence(rule=["repeat_missing"], expired_at=T0 + timedelta(minutes=30))
    assert s.end == T0 + timedelta(minutes=30)
    assert s.active_at(T0 + timedelta(minutes=29, seconds=59))
    assert not s.active_at(T0 + timedelta(minutes=30))
    assert s.status(T0 + timedelta(minutes=30)) == "expired"
    assert s.status(T0 - timedelta(seconds=1)) == "pending"
    # an "expiry" after its natural end changes nothing
    late = silence(rule=["repeat_missing"], expired_at=T0 + timedelta(hours=3))
    assert late.end == late.ends_at and late.status(T0 + timedelta(hours=3)) == "ended"


def test_of_several_matching_silences_the_one_ending_last_is_named() -> None:
    short = silence("00000000000a", rule=["repeat_missing"], hours=1)
    long = silence("00000000000b", severity=["medium"], hours=5)
    other = silence("00000000000c", la=["856"], hours=9)  # does not match
    pending = silence("00000000000d", rule=["repeat_missing"], start=T0 + timedelta(hours=1), hours=24)
    assert silence_for([short, long, other, pending], facts(), T0) is long
    assert silence_for([short, pending], facts(), T0 + timedelta(hours=1)) is pending


def test_matchers_are_canonical_and_described() -> None:
    m = matchers_of({"subject": [CHILD], "severity": ["medium", "info"], "rule": [], "team": ["edt"]})
    assert [f for f, _ in m] == ["severity", "team", "subject"]  # empty lists left out, fixed order
    assert describe_matchers(m) == f"severity=info|medium team=edt subject={CHILD[:12]}…"


def check(**overrides: object) -> list[str]:
    args: dict[str, object] = {
        "matchers": matchers_of({"rule": ["repeat_missing"]}),
        "starts_at": T0,
        "ends_at": T0 + timedelta(hours=2),
        "reason": "planned absence, school residential",
        "author": "dana",
        "now": T0,
        "known_rules": ["repeat_missing", "high_risk_missing"],
        "teams": ["front-door", "edt"],
    } | overrides
    return check_silence(**args)  # type: ignore[arg-type]


def test_a_good_silence_has_no_problems() -> None:
    assert check() == []
    assert check(ends_at=T0 + MAX_SILENCE) == []


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"matchers": ()}, "at least one matcher"),
        ({"matchers": matchers_of({"rule": ["repeat_mising"]})}, "unknown rule 'repeat_mising'"),
        ({"matchers": matchers_of({"severity": ["urgent"]})}, "'urgent' is not a severity"),
        ({"matchers": matchers_of({"la": ["38"]})}, "'38' is not a three-digit LA code"),
        ({"matchers": matchers_of({"team": ["night"]})}, "'night' is not a team"),
        ({"matchers": matchers_of({"subject": ["9434765919"]})}, "is not a pseudonym"),
        ({"ends_at": T0}, "the end must be after the start"),
        ({"ends_at": T0 + MAX_SILENCE + timedelta(minutes=1)}, "at most 14 days"),
        ({"now": T0 + timedelta(hours=3)}, "the end is in the past"),
        ({"reason": "  "}, "give a reason"),
        ({"reason": "seen at 12 Acacia Avenue"}, "a street address"),
        ({"author": ""}, "the author is required"),
    ],
)
def test_bad_silences_are_refused_with_a_reason(overrides: dict[str, object], problem: str) -> None:
    problems = check(**overrides)
    assert any(problem in p for p in problems), problems


def test_every_problem_is_reported_at_once() -> None:
    problems = check(matchers=matchers_of({"rule": ["nope"], "la": ["x"]}), reason="", ends_at=T0)
    assert len(problems) == 5  # the end both equals the start and is not after now


# -- inhibition -------------------------------------------------------------------------------------------------

RULE = InhibitRule("high-risk-holds-repeat", frozenset({"high_risk_missing"}), frozenset({"repeat_missing"}),
                   timedelta(hours=24))  # fmt: skip


def source(alert_id: str = "s1", *, at: datetime = T0, open: bool = True, held: bool = False, **kw: str) -> OpenAlert:
    return OpenAlert(facts(alert_id, rule="high_risk_missing", severity="high", at=at, **kw), open=open, held=held)


def test_an_open_source_for_the_same_child_holds_the_target_for_its_window() -> None:
    src = source(at=T0)
    target = facts(at=T0 + timedelta(hours=1))
    found = inhibitor([RULE], target, [src], T0 + timedelta(hours=1))
    assert found is not None and found[1].alert_id == "s1" and found[2] == T0 + timedelta(hours=24)
    assert inhibitor([RULE], target, [src], T0 + timedelta(hours=24) - timedelta(seconds=1)) is not None
    assert inhibitor([RULE], target, [src], T0 + timedelta(hours=24)) is None  # the window has ended


@pytest.mark.parametrize(
    "other",
    [
        source(open=False),  # acknowledged
        source(held=True),  # itself silenced or inhibited: inhibits nothing
        source(subject=OTHER_CHILD),  # another child
        source(at=T0 + timedelta(minutes=1)),  # taken on after now
        source("t1"),  # the target itself
        OpenAlert(facts("s2", rule="missing_episode_long", severity="high")),  # not a source rule
    ],
)
def test_no_hold_without_an_open_unheld_source_for_the_same_subject(other: OpenAlert) -> None:
    assert inhibitor([RULE], facts(), [other], T0) is None


def test_severities_and_equal_fields_narrow_a_rule() -> None:
    narrow = InhibitRule("n", frozenset({"high_risk_missing"}), frozenset({"repeat_missing"}), timedelta(hours=24),
                         source_severities=frozenset({"critical"}), target_severities=frozenset({"medium"}),
                         equal=("la",))  # fmt: skip
    high = source()
    critical = OpenAlert(facts("s2", rule="high_risk_missing", severity="critical", subject=OTHER_CHILD))
    assert inhibitor([narrow], facts(), [high], T0) is None  # source severity not in the rule
    found = inhibitor([narrow], facts(), [critical], T0)  # another child, but the same LA: equal = la only
    assert found is not None and found[1].alert_id == "s2"
    assert inhibitor([narrow], facts(severity="high"), [critical], T0) is None  # target severity not in the rule
    assert sources_wanted([narrow], facts(severity="high")) == frozenset()
    assert sources_wanted([narrow], facts()) == {"high_risk_missing"}


def test_of_several_sources_the_one_whose_window_ends_last_is_named() -> None:
    older, newer = source("s1", at=T0 - timedelta(hours=5)), source("s2", at=T0 - timedelta(hours=1))
    found = inhibitor([RULE], facts(), [older, newer], T0)
    assert found is not None and found[1].alert_id == "s2"


def test_a_silence_is_named_before_an_inhibition_and_both_name_what_holds() -> None:
    s = silence(rule=["repeat_missing"])
    hold = hold_for(facts(), [s], [RULE], [source()], T0)
    assert hold is not None and (hold.kind, hold.by, hold.until) == ("silence", s.silence_id, s.end)
    assert s.silence_id in hold.note and "school trip" in hold.note
    hold = hold_for(facts(), [], [RULE], [source()], T0)
    assert hold is not None and (hold.kind, hold.by) == ("inhibition", "s1")
    assert "high_risk_missing alert s1" in hold.note and "high-risk-holds-repeat" in hold.note
    assert hold_for(facts(), [], [RULE], [], T0) is None
