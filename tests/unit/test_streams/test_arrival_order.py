"""Arrival order: the properties `streams.rules.engine` promises, checked with hypothesis.

Each window rule is compared with a brute-force reference written here from rules.md alone (scan
the events in event-time order, ties by event id; alert when the threshold is met within a closed
window and the previous alert is more than the cooldown before). Late arrival is generated as
delivery delays below the rule's lateness limit (the longer of window and cooldown): an event is
read after every event that happened more than that before it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from random import Random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.alerts import AlertRaised
from schemas.events import (
    ContactDecided,
    ContactReceived,
    DomesticIncidentRecorded,
    MissingFound,
    MissingReported,
    MissingReturnInterview,
)
from schemas.topics import CONTACTS, MISSING_EPISODES
from schemas.types import REFERRAL_OUTCOMES
from streams.rules import (
    DaObligation,
    RuleInput,
    SubjectState,
    advance,
    alert_id,
    catalogue_from_mapping,
    evaluate,
    obligations_from_incident,
    subject_of,
)
from tests.unit.test_streams.factories import (
    CHILD,
    RAISED_AT,
    T0,
    contact_decided,
    contact_received,
    incident,
    missing_found,
    missing_reported,
    return_interview,
    run,
)

CATALOGUE = catalogue_from_mapping(
    {
        "re_referral": {"window": "P40D"},
        "repeat_domestic_abuse": {"window": "P40D"},
        "marac_repeat": {"window": "P40D"},
    },
    source="property-test.toml",
)
PROPERTY_SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

Evidence = list[RuleInput]
Finder = Callable[[Evidence, Evidence], Evidence | None]
"""(events in a window ending at τ, those of them at τ) -> the evidence if the rule holds there."""


@dataclass(frozen=True)
class WindowCase:
    """One window rule as the reference sees it, and how to draw events for it."""

    rule_id: str
    window: timedelta
    counted: Callable[[RuleInput], bool]
    find: Finder
    event: Callable[[st.DrawFn, datetime], RuleInput]
    cluster: Callable[[st.DrawFn, list[datetime]], list[RuleInput]]
    """A minimal satisfying set of events at these times (as many times as the threshold needs)."""
    cluster_size: int

    @property
    def cooldown(self) -> timedelta:
        return self.window  # the default


def _distinct_at_least(threshold: int, key: Callable[[RuleInput], str]) -> Finder:
    def find(window: Evidence, at_end: Evidence) -> Evidence | None:
        return window if len({key(event) for event in window}) >= threshold else None

    return find


def _marac_find(window: Evidence, at_end: Evidence) -> Evidence | None:
    repeats = [e for e in at_end if isinstance(e, DomesticIncidentRecorded)]
    referrals = [
        e
        for e in window
        if isinstance(e, DomesticIncidentRecorded)
        and e.marac_referral
        and any(e.incident_id != repeat.incident_id for repeat in repeats)
    ]
    if not referrals:
        return None
    return list({e.event_id: e for e in (*referrals, *repeats)}.values())


def _attr(name: str) -> Callable[[RuleInput], str]:
    return lambda event: str(getattr(event, name))


def _missing(draw: st.DrawFn, at: datetime) -> RuleInput:
    return missing_reported(
        at,
        episode=draw(st.sampled_from(["E1", "E2", "E3", "E4", "E5", "E6", "E7", "E8"])),
        absence_type=draw(st.sampled_from(["missing", "missing", "missing", "away"])),
        risk_level=draw(st.sampled_from(["low", "medium", "high"])),
    )


def _contact(draw: st.DrawFn, at: datetime) -> RuleInput:
    return contact_received(at, agency_type=draw(st.sampled_from(["police", "health", "education", "local_authority"])))


def _decision(draw: st.DrawFn, at: datetime) -> RuleInput:
    outcome = draw(st.sampled_from(["referral", "strategy_discussion", "nfa", "referral"]))
    return contact_decided(at, outcome=outcome, contact_id=draw(st.sampled_from(["C1", "C2", "C3", "C4", "C5", "C6"])))


def _incident(draw: st.DrawFn, at: datetime) -> RuleInput:
    return incident(
        at, incident_id=draw(st.sampled_from(["I1", "I2", "I3", "I4", "I5", "I6", "I7"])), marac=draw(st.booleans())
    )


def _unique(build: Callable[[datetime, int], RuleInput]) -> Callable[[st.DrawFn, list[datetime]], list[RuleInput]]:
    return lambda draw, times: [build(at, i) for i, at in enumerate(times)]


WINDOW_CASES = [
    WindowCase(
        "repeat_missing",
        timedelta(days=90),
        lambda e: isinstance(e, MissingReported) and e.absence_type == "missing",
        _distinct_at_least(3, _attr("episode_id")),
        _missing,
        _unique(lambda at, i: missing_reported(at)),
        3,
    ),
    WindowCase(
        "multi_agency_concern",
        timedelta(days=30),
        lambda e: isinstance(e, ContactReceived),
        _distinct_at_least(3, _attr("agency_type")),
        _contact,
        _unique(lambda at, i: contact_received(at, agency_type=("police", "health", "education")[i])),
        3,
    ),
    WindowCase(
        "re_referral",
        timedelta(days=40),
        lambda e: isinstance(e, ContactDecided) and e.outcome in REFERRAL_OUTCOMES,
        _distinct_at_least(2, _attr("contact_id")),
        _decision,
        _unique(lambda at, i: contact_decided(at)),
        2,
    ),
    WindowCase(
        "repeat_domestic_abuse",
        timedelta(days=40),
        lambda e: isinstance(e, DomesticIncidentRecorded),
        _distinct_at_least(3, _attr("incident_id")),
        _incident,
        _unique(lambda at, i: incident(at)),
        3,
    ),
    WindowCase(
        "marac_repeat",
        timedelta(days=40),
        lambda e: isinstance(e, DomesticIncidentRecorded),
        _marac_find,
        _incident,
        _unique(lambda at, i: incident(at, marac=i == 0)),
        2,
    ),
]
CASE_IDS = [case.rule_id for case in WINDOW_CASES]


# -- the reference semantics -------------------------------------------------------------------------------------------


def _in_window(event: RuleInput, end: datetime, window: timedelta) -> bool:
    return event.occurred_at <= end <= event.occurred_at + window


def reference_alerts(case: WindowCase, events: Sequence[RuleInput]) -> list[tuple[datetime, frozenset[str]]]:
    """rules.md read literally, in event-time order: (triggered_at, evidence ids) of each alert."""
    ordered = sorted((e for e in _unique_events(events) if case.counted(e)), key=lambda e: (e.occurred_at, e.event_id))
    alerts: list[tuple[datetime, frozenset[str]]] = []
    for i, event in enumerate(ordered):
        end = event.occurred_at
        window = [y for y in ordered[: i + 1] if _in_window(y, end, case.window)]
        evidence = case.find(window, [y for y in window if y.occurred_at == end])
        if evidence is not None and (not alerts or end - alerts[-1][0] > case.cooldown):
            alerts.append((end, frozenset(e.event_id for e in evidence)))
    return alerts


def satisfied_ends(case: WindowCase, events: Sequence[RuleInput]) -> dict[datetime, Evidence]:
    """Every event time at which the condition holds in the final history, with its whole window."""
    counted = [e for e in _unique_events(events) if case.counted(e)]
    ends: dict[datetime, Evidence] = {}
    for end in sorted({e.occurred_at for e in counted}):
        window = [y for y in counted if _in_window(y, end, case.window)]
        if case.find(window, [y for y in window if y.occurred_at == end]) is not None:
            ends[end] = window
    return ends


def _unique_events(events: Sequence[RuleInput]) -> list[RuleInput]:
    return list({e.event_id if not isinstance(e, DaObligation) else e.source_event_id: e for e in events}.values())


# -- drawing histories and arrival orders ------------------------------------------------------------------------------


@st.composite
def window_history(draw: st.DrawFn, case: WindowCase) -> list[RuleInput]:
    span_hours = int(case.window / timedelta(hours=1)) * 3
    times = draw(st.lists(st.integers(0, span_hours), min_size=1, max_size=12))
    return [case.event(draw, T0 + timedelta(hours=h)) for h in times]


@st.composite
def isolated_history(draw: st.DrawFn, case: WindowCase) -> list[RuleInput]:
    """Clusters of exactly the threshold within one window, more than window + cooldown apart."""
    window_hours = int(case.window / timedelta(hours=1))
    events: list[RuleInput] = []
    start = 0
    for _ in range(draw(st.integers(1, 3))):
        offsets = sorted(
            draw(
                st.lists(
                    st.integers(0, window_hours - 1),
                    min_size=case.cluster_size,
                    max_size=case.cluster_size,
                    unique=True,
                )
            )
        )
        events += case.cluster(draw, [T0 + timedelta(hours=start + o) for o in offsets])
        start += offsets[-1] + 2 * window_hours + 1 + draw(st.integers(0, window_hours))
    return events


@st.composite
def delivery_order(draw: st.DrawFn, events: list[RuleInput], lateness: timedelta) -> list[RuleInput]:
    """The events as read: each delayed by less than `lateness`, so none arrives later than that."""
    limit = int(lateness / timedelta(minutes=1)) - 1
    delays = draw(st.lists(st.integers(0, limit), min_size=len(events), max_size=len(events)))
    ties = draw(st.permutations(range(len(events))))
    keyed = sorted(
        zip(events, delays, ties, strict=True), key=lambda x: (x[0].occurred_at + timedelta(minutes=x[1]), x[2])
    )
    return [event for event, _, _ in keyed]


def _without_marks(state: SubjectState) -> SubjectState:
    """The state's history without its alert marks (alerts differ by arrival order; the history must not)."""
    twin = state.copy()
    twin.alerts = []
    return twin


def _time_order(events: Sequence[RuleInput]) -> list[RuleInput]:
    return sorted(events, key=lambda e: (e.occurred_at, e.event_id if not isinstance(e, DaObligation) else ""))


def _rule_alerts(events: Sequence[RuleInput], rule_id: str) -> list[AlertRaised]:
    _, alerts = run(events, CATALOGUE)
    return [alert for alert in alerts if alert.rule_id == rule_id]


def _case_history(
    strategy: Callable[[WindowCase], st.SearchStrategy[list[RuleInput]]],
) -> st.SearchStrategy[tuple[WindowCase, list[RuleInput], list[RuleInput]]]:
    return st.sampled_from(WINDOW_CASES).flatmap(
        lambda c: strategy(c).flatmap(
            lambda events: delivery_order(events, max(c.window, c.cooldown)).map(lambda order: (c, events, order))
        )
    )


# -- 4d: event-time order is exactly the reference ---------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(st.sampled_from(WINDOW_CASES).flatmap(lambda c: window_history(c).map(lambda events: (c, events))))
def test_in_event_time_order_the_alerts_are_exactly_the_reference(
    case_and_events: tuple[WindowCase, list[RuleInput]],
) -> None:
    case, events = case_and_events
    alerts = _rule_alerts(_time_order(events), case.rule_id)
    assert [(a.triggered_at, frozenset(a.evidence_event_ids)) for a in alerts] == reference_alerts(case, events)
    subject_type, subject_id = subject_of(events[0])
    for alert in alerts:
        assert alert.alert_id == alert_id(case.rule_id, subject_type, subject_id, tuple(alert.evidence_event_ids))


# -- 4a, 4b, 4c, 4e: any arrival order within the lateness limit -------------------------------------------------------


@PROPERTY_SETTINGS
@given(_case_history(window_history))
def test_any_arrival_order_is_sound_complete_and_one_alert_per_episode(
    drawn: tuple[WindowCase, list[RuleInput], list[RuleInput]],
) -> None:
    case, events, arrival = drawn
    alerts = _rule_alerts(arrival, case.rule_id)
    by_id = {e.event_id: e for e in events if not isinstance(e, DaObligation)}
    # a. every alert is true of the final history
    for alert in alerts:
        evidence = [by_id[event_id] for event_id in alert.evidence_event_ids]
        assert all(case.counted(e) and _in_window(e, alert.triggered_at, case.window) for e in evidence)
        assert case.find(evidence, [e for e in evidence if e.occurred_at == alert.triggered_at]) is not None
    # b. every time the condition holds is within the cooldown of an alert
    triggered = [alert.triggered_at for alert in alerts]
    for end in satisfied_ends(case, events):
        assert any(abs(end - at) <= case.cooldown for at in triggered), end
    # c. alerts are more than the cooldown apart
    assert all(
        later - earlier > case.cooldown
        for earlier, later in zip(sorted(triggered), sorted(triggered)[1:], strict=False)
    )
    # e. between half and all of the event-time-order count
    in_order = len(reference_alerts(case, events))
    assert in_order / 2 <= len(alerts) <= in_order


@PROPERTY_SETTINGS
@given(_case_history(window_history))
def test_the_final_history_does_not_depend_on_arrival_order(
    drawn: tuple[WindowCase, list[RuleInput], list[RuleInput]],
) -> None:
    _, events, arrival = drawn
    in_order, _ = run(_time_order(events), CATALOGUE)
    as_read, _ = run(arrival, CATALOGUE)
    assert in_order is not None and as_read is not None
    assert _without_marks(in_order) == _without_marks(as_read)


# -- 4f: identical ids in every order for isolated, minimal windows ----------------------------------------------------


@PROPERTY_SETTINGS
@given(_case_history(isolated_history))
def test_isolated_minimal_windows_give_identical_ids_in_every_order(
    drawn: tuple[WindowCase, list[RuleInput], list[RuleInput]],
) -> None:
    case, events, arrival = drawn
    # The precondition, checked with the reference: satisfied ends far apart, each window minimal.
    ends = satisfied_ends(case, events)
    assert all(b - a > case.cooldown for a, b in zip(list(ends), list(ends)[1:], strict=False))
    for end, window in ends.items():
        for dropped in window:
            rest = [e for e in window if e is not dropped]
            assert case.find(rest, [e for e in rest if e.occurred_at == end]) is None
    expected = {frozenset(evidence) for _, evidence in reference_alerts(case, events)}
    assert len(expected) == len(ends) >= 1
    assert {frozenset(a.evidence_event_ids) for a in _rule_alerts(arrival, case.rule_id)} == expected


# -- 2: immediate rules ------------------------------------------------------------------------------------------------


@st.composite
def immediate_history(draw: st.DrawFn) -> list[RuleInput]:
    hours = draw(st.lists(st.integers(0, 24 * 60), min_size=1, max_size=10))
    return [
        missing_reported(T0 + timedelta(hours=h), risk_level=draw(st.sampled_from(["low", "medium", "high"])))
        for h in hours
    ]


@st.composite
def household_history(draw: st.DrawFn) -> list[RuleInput]:
    hours = draw(st.lists(st.integers(0, 24 * 60), min_size=1, max_size=10))
    return [
        incident(
            T0 + timedelta(hours=h),
            children=[(CHILD, draw(st.booleans()))],
            dash_risk=draw(st.sampled_from(["standard", "medium", "high"])),
            marac=draw(st.booleans()),
        )
        for h in hours
    ]


@PROPERTY_SETTINGS
@given(st.one_of(immediate_history(), household_history()).flatmap(lambda e: st.tuples(st.just(e), st.permutations(e))))
def test_immediate_rules_raise_the_same_ids_in_any_order(drawn: tuple[list[RuleInput], list[RuleInput]]) -> None:
    events, arrival = drawn
    immediate = {"high_risk_missing", "domestic_abuse_child_present"}
    _, in_order = run(_time_order(events), CATALOGUE)
    _, as_read = run(arrival, CATALOGUE)
    assert {a.alert_id for a in in_order if a.rule_id in immediate} == {
        a.alert_id for a in as_read if a.rule_id in immediate
    }


# -- 3: deadline rules -------------------------------------------------------------------------------------------------


@st.composite
def deadline_history(draw: st.DrawFn) -> list[RuleInput]:
    events: list[RuleInput] = []
    for episode in ("E1", "E2", "E3"):
        if draw(st.booleans()):
            events.append(missing_found(T0 + timedelta(hours=draw(st.integers(0, 100))), episode=episode))
        for _ in range(draw(st.integers(0, 2))):
            events.append(return_interview(T0 + timedelta(hours=draw(st.integers(0, 200))), episode=episode))
    for incident_id in ("I1", "I2"):
        if draw(st.booleans()):
            events += obligations_from_incident(
                incident(
                    T0 + timedelta(hours=draw(st.integers(0, 50))), incident_id=incident_id, children=[(CHILD, True)]
                )
            )
        for _ in range(draw(st.integers(0, 2))):
            at = T0 + timedelta(hours=draw(st.integers(0, 100)))
            events.append(contact_received(at, linked_incident_id=incident_id))
    events.append(contact_received(T0))  # so every history has at least one input for the child
    return events


def _expected_deadline_evidence(events: list[RuleInput]) -> set[str]:
    """The reference: overdue when the earliest found (or obligation) has no answer at or before its deadline."""
    overdue = set()
    for episode in ("E1", "E2", "E3"):
        found = sorted(
            (e for e in events if isinstance(e, MissingFound) and e.episode_id == episode),
            key=lambda e: (e.occurred_at, e.event_id),
        )
        answers = [e for e in events if isinstance(e, MissingReturnInterview) and e.episode_id == episode]
        if found and not any(a.occurred_at <= found[0].occurred_at + timedelta(hours=72) for a in answers):
            overdue.add(found[0].event_id)
    for incident_id in ("I1", "I2"):
        obligations = [e for e in events if isinstance(e, DaObligation) and e.incident_id == incident_id]
        answers = [e for e in events if isinstance(e, ContactReceived) and e.linked_incident_id == incident_id]
        if obligations and not any(a.occurred_at <= obligations[0].occurred_at + timedelta(hours=24) for a in answers):
            overdue.add(obligations[0].source_event_id)
    return overdue


@PROPERTY_SETTINGS
@given(deadline_history().flatmap(lambda e: st.tuples(st.just(e), st.permutations(e))))
def test_deadline_rules_with_the_clock_applied_after_the_events_are_order_independent(
    drawn: tuple[list[RuleInput], list[RuleInput]],
) -> None:
    events, arrival = drawn
    results = []
    for order in (_time_order(events), arrival):
        state, _ = run(order, CATALOGUE)
        assert state is not None
        for topic in (MISSING_EPISODES.name, CONTACTS.name):
            fired = advance(state, T0 + timedelta(days=30), RAISED_AT, CATALOGUE, clock_topic=topic)
            state = fired.state
            results.append({(a.rule_id, a.evidence_event_ids[0], a.alert_id) for a in fired.alerts})
    assert results[0] | results[1] == results[2] | results[3]
    assert {evidence for _, evidence, _ in results[0] | results[1]} == _expected_deadline_evidence(events)


# -- 1: duplicates and replays -----------------------------------------------------------------------------------------


@st.composite
def mixed_history(draw: st.DrawFn) -> list[RuleInput]:
    child = [
        draw(st.sampled_from([_missing, _contact, _decision]))(draw, T0 + timedelta(hours=h))
        for h in draw(st.lists(st.integers(0, 24 * 200), max_size=12))
    ]
    found = [
        missing_found(T0 + timedelta(hours=h), episode="E1")
        for h in draw(st.lists(st.integers(0, 24 * 200), max_size=2))
    ]
    return [*child, *found, contact_received(T0)]


@PROPERTY_SETTINGS
@given(mixed_history(), st.randoms(use_true_random=False))
def test_processing_the_same_history_twice_raises_nothing_new(events: list[RuleInput], random: Random) -> None:
    ordered = _time_order(events)
    state, first = run(ordered, CATALOGUE)
    again, second = run(ordered, CATALOGUE, state=state)
    assert second == []
    assert again == state
    # Each is a duplicate, or so old that the horizon no longer covers it: ignored either way.
    assert {evaluate(state, e, RAISED_AT, CATALOGUE).outcome for e in ordered} <= {"duplicate", "too_late"}
    # From an empty state the same history gives the same ids (deterministic alert ids).
    _, fresh = run(ordered, CATALOGUE)
    assert [a.alert_id for a in fresh] == [a.alert_id for a in first]
    # Redelivered copies mixed in (each after its original) change nothing.
    originals = [(float(i), event) for i, event in enumerate(ordered)]
    copies = [(random.uniform(i + 0.5, len(ordered)), event) for i, event in enumerate(ordered)]
    with_copies = [event for _, event in sorted(originals + copies, key=lambda pair: pair[0])]
    _, redelivered = run(with_copies, CATALOGUE)
    assert [a.alert_id for a in redelivered] == [a.alert_id for a in first]


# -- 6: purge ----------------------------------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(mixed_history(), st.data())
def test_the_final_state_does_not_depend_on_where_a_purge_falls(events: list[RuleInput], data: st.DataObject) -> None:
    ordered = _time_order(events)
    target = data.draw(st.sampled_from(ordered))
    purge = target.model_copy(update={"purge": True, "event_id": "ffffffff-0000-0000-0000-000000000000"})
    finals: list[SubjectState] = []
    for position in {0, len(ordered) // 2, len(ordered)}:
        state, _ = run([*ordered[:position], purge, *ordered[position:]], CATALOGUE)
        assert state is not None
        finals.append(_without_marks(state))
    assert all(final == finals[0] for final in finals)
