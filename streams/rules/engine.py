"""Apply one input, or one clock reading, to a subject's state: the two calls the worker makes. Pure.

`evaluate` applies an agency event (or a `DaObligation`) to the state of the subject it is about and
runs every enabled rule that reads it; `advance` fires the deadline rules driven by one topic's
partition clock. Both return the new state, to be stored as is, and the alerts to publish.

Arrival order
-------------
Rules reason in event time. A late event is recorded where it belongs and every window that
contains it is examined again, so it counts exactly as if it had arrived on time. Alerts, though,
are never retracted, and "one alert per episode" (the cooldown) is measured from alerts already
raised. What holds, precisely (tests/unit/test_streams/test_arrival_order.py checks each):

1. Duplicates never alert. An event id already applied to the subject is ignored, so processing
   the same history again raises nothing; processing it into an empty state raises the same ids.
2. Immediate rules (`high_risk_missing`, `domestic_abuse_child_present`) with their default (no)
   cooldown raise the same alert ids for every arrival order, when each episode / incident has one
   qualifying event (with several, the first to arrive is the evidence: one alert per entity).
3. Deadline rules (`return_interview_overdue`, `da_contact_overdue`): if no clock at or past a
   deadline is applied before every event of that episode / incident, whether it alerts and the
   alert id are the same for every arrival order. An answer applied after the clock reached the
   deadline does not cancel the alert (rules.md).
4. Window rules (`repeat_missing`, `re_referral`, `multi_agency_concern`, `repeat_domestic_abuse`,
   `marac_repeat`), for events arriving at most the longer of the rule's window and cooldown (by
   default: the window) after the newest event time of their own stream (`progress`: without it, of
   the subject's newest event, whichever stream that came from), and one threshold per subject (no
   looked-after override, or a child whose looked-after status does not change):
   a. every alert is true of the final history (its evidence meets the threshold in one window
      ending at `triggered_at`);
   b. every event time at which the condition holds in the final history lies within the cooldown
      of an alert (no episode of concern goes unalerted);
   c. a subject's alerts for a rule are more than the cooldown apart (rules.md's cooldown, applied
      on both sides because a late event can complete an earlier window);
   d. in event-time order the alerts are exactly the reference semantics (scan event times in order,
      alert when the condition holds and the previous alert is more than the cooldown before);
   e. in any other order there are at most as many alerts as in event-time order and at least half
      as many, and
   f. the alert ids are identical for every order when each window where the condition holds is
      minimal (dropping any one of its events breaks the condition) and those windows end more than
      the cooldown apart.
   Equal counts in every order cannot be had without retraction: with K=3, W=cooldown=90 days,
   triples ending on days 2, 62 and 152 give alerts on days 2 and 152 in event-time order, but if
   the day-62 triple arrives first its alert covers both others.
5. `repeat_cp_plan`: a start that arrives before the plan it repeats is alerted when that plan
   arrives, with the same `triggered_at`. Severity and evidence are fixed when the alert is raised:
   an earlier plan whose end has not been seen is taken to have ended when it started, so `high`
   is only raised when certain (an end arriving after the alert could have made a `medium` `high`).
6. Purge: the final state does not depend on where a purge falls in the order (tombstones keep an
   erased entity's later events out); alerts raised before the purge stay.

Window-rule events later than that but within the rule's retention (window + the longer of
window and cooldown) are still counted with what is retained: that can miss an alert, never
repeat one. Events older than the subject's horizon (`Catalogue.horizon`) cannot be deduplicated
any more and are refused as `too_late`, except CP plan events (plans are kept for ever) and
purges (an erasure is always applied).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple

from schemas.alerts import AlertRaised
from schemas.events import CpPlanEnded, CpPlanStarted, DomesticIncidentRecorded
from schemas.types import SubjectType
from streams.rules.catalogue import Catalogue
from streams.rules.definition import Finding, RuleDefinition, RuleInput, alert_id, utc
from streams.rules.durations import Duration, reaches, within
from streams.rules.history import erase, erasure_key, holds_event, prune
from streams.rules.obligations import DaObligation
from streams.rules.state import AlertMark, HistoryKind, SubjectState

Outcome = Literal["applied", "duplicate", "too_late", "purged", "erased", "advanced"]
"""What happened to the input: applied; ignored as a duplicate, as too late, or because its entity
was erased; a purge applied; or (for `advance`) the clock applied."""


class Evaluation(NamedTuple):
    """The subject's state (the one passed in, changed in place, or a new one) and the alerts to publish.

    `changed` says whether the state must be stored again; alerts are in `triggered_at` order.
    `deadlines_changed` is False when no duty a deadline rule reads was opened, answered or alerted (the
    subject's `next_deadline` is then what it was).
    """

    state: SubjectState
    alerts: list[AlertRaised]
    outcome: Outcome
    changed: bool = True
    deadlines_changed: bool = True


class SubjectMismatch(ValueError):
    """The state passed in belongs to another subject than the input: a wiring error in the caller."""


def subject_of(item: RuleInput) -> tuple[SubjectType, str]:
    """Whose state an input belongs to: the household for incidents, otherwise the child."""
    if isinstance(item, DomesticIncidentRecorded):
        return "household", item.household_id
    return "child", item.child_id


def input_id(item: RuleInput) -> str:
    """The id that dedupes an input on its subject: the event id (the incident's, for an obligation)."""
    return item.source_event_id if isinstance(item, DaObligation) else item.event_id


Progress = Callable[[HistoryKind], datetime | None]
"""How far the stream that feeds a history kind has been applied on the subject's partition (the worker's partition
clock of its topic), None when not known. Window histories are pruned from the earlier of it and the subject's newest
event, so a stream read behind the subject's others still finds what its late events count with (`history.prune`)."""


def evaluate(
    state: SubjectState | None,
    item: RuleInput,
    raised_at: datetime,
    catalogue: Catalogue,
    *,
    progress: Progress | None = None,
) -> Evaluation:
    """Apply one input to its subject's state (None: a subject not seen before) and run its rules.

    The state passed in is changed in place (take `state.copy()` first to keep the old one).
    `raised_at` is the processing time written on any alert; nothing here reads a clock.
    """
    if raised_at.tzinfo is not UTC:
        _require_aware(raised_at, "raised_at")
    subject_type, subject_id = subject_of(item)
    if state is None:
        current = SubjectState.empty(subject_type, subject_id)
    else:
        current = state
        if current.subject_id != subject_id or current.subject_type != subject_type:
            raise SubjectMismatch(
                f"state of {current.subject_type} {current.subject_id} given an input about {subject_type} {subject_id}"
            )
    if item.purge:
        erase(current, erasure_key(item))
        _tidy(current, catalogue, progress)
        return Evaluation(current, [], "purged")
    event_id = input_id(item)
    if current.has_seen(event_id) or (current.plans and holds_event(current, event_id)):
        return Evaluation(current, [], "duplicate", False, False)
    occurred_at = utc(item.occurred_at)
    newest = current.newest_event_at
    if newest is None or occurred_at > newest:
        current.newest_event_at = newest = occurred_at
    elif (
        occurred_at < newest
        and not isinstance(item, CpPlanStarted | CpPlanEnded)  # plans are kept for ever: never too late
        and not reaches(occurred_at, catalogue.horizon(subject_type), newest)
    ):
        return Evaluation(current, [], "too_late", False, False)
    current.add_seen(event_id, occurred_at)
    if current.erased and erasure_key(item) in current.erased:
        _tidy(current, catalogue, progress)
        return Evaluation(current, [], "erased", True, False)
    plan = catalogue.input_plan(item.event_type, subject_type)
    deadlines_changed = False
    for spec in plan.feeds:
        if spec.feed(current, item, occurred_at) and spec.kind in plan.deadline_kinds:
            deadlines_changed = True
    alerts: list[AlertRaised] = []
    for rule, params, cooldown in plan.steps:
        findings = rule.evaluate(current, item, params)
        if findings:
            raised = _raise(current, rule, params, cooldown, findings, raised_at)
            if raised:
                alerts += raised
                deadlines_changed = deadlines_changed or rule.deadline is not None
    if current.touched is not None or current.prune_after is None or newest > current.prune_after:
        _tidy(current, catalogue, progress)
    if len(alerts) > 1:
        alerts.sort(key=_alert_order)
    return Evaluation(current, alerts, "applied", True, deadlines_changed)


def advance(
    state: SubjectState,
    clock: datetime,
    raised_at: datetime,
    catalogue: Catalogue,
    *,
    clock_topic: str,
    progress: Progress | None = None,
) -> Evaluation:
    """Fire the deadline rules driven by `clock_topic` whose deadline is at or before `clock`. Changes `state`.

    `clock` is that topic's partition clock (`PartitionClock.reading`) for the subject's partition,
    never a global or wall clock. Call it whenever that clock moves, for every subject whose
    `next_deadline` it has reached, before applying further inputs of that partition.
    """
    _require_aware(clock, "clock")
    _require_aware(raised_at, "raised_at")
    alerts: list[AlertRaised] = []
    at = utc(clock)
    for rule in catalogue.deadline_rules(clock_topic, state.subject_type):
        assert rule.deadline is not None
        params = catalogue.params_for(rule)
        findings = rule.deadline.due(state, at, params)
        if findings:
            alerts += _raise(state, rule, params, rule.cooldown(params), findings, raised_at)
    _tidy(state, catalogue, progress)
    if len(alerts) > 1:
        alerts.sort(key=_alert_order)
    return Evaluation(state, alerts, "advanced")


def next_deadline(state: SubjectState, catalogue: Catalogue, *, clock_topic: str) -> datetime | None:
    """The earliest deadline still open on this state for rules driven by `clock_topic` (for the worker's index)."""
    earliest: datetime | None = None
    for _, deadline in _open_duties(state, catalogue, clock_topic):
        if earliest is None or deadline < earliest:
            earliest = deadline
    return earliest


def next_deadlines(state: SubjectState, catalogue: Catalogue) -> dict[str, datetime]:
    """`next_deadline` for every clock topic at once: topic -> earliest open deadline (topics with none left out)."""
    earliest: dict[str, datetime] = {}
    for rule in catalogue.deadline_rules(None, state.subject_type):
        assert rule.deadline is not None
        topic = rule.deadline.clock_topic
        for _, deadline in _open_duties_of(state, catalogue, rule):
            current = earliest.get(topic)
            if current is None or deadline < current:
                earliest[topic] = deadline
    return earliest


def _open_duties(state: SubjectState, catalogue: Catalogue, clock_topic: str | None) -> list[tuple[str, datetime]]:
    duties: list[tuple[str, datetime]] = []
    for rule in catalogue.deadline_rules(clock_topic, state.subject_type):
        duties += _open_duties_of(state, catalogue, rule)
    return duties


def _open_duties_of(state: SubjectState, catalogue: Catalogue, rule: RuleDefinition[Any]) -> list[tuple[str, datetime]]:
    """(entity, deadline) of the rule's duties not answered in time and not alerted yet."""
    for kind in rule.reads:
        if getattr(state, kind):
            break
    else:
        return []  # nothing this rule reads is held: no duty (the common case, without calling the rule)
    assert rule.deadline is not None
    pending = rule.deadline.pending(state, catalogue.params_for(rule))
    if not pending or not state.alerts:
        return pending
    alerted = {mark.entity for mark in state.alerts if mark.rule_id == rule.rule_id}
    return [(entity, at) for entity, at in pending if entity not in alerted] if alerted else pending


def _raise(
    state: SubjectState,
    rule: RuleDefinition[Any],
    params: Any,
    cooldown: Duration | None,
    findings: list[Finding],
    raised_at: datetime,
) -> list[AlertRaised]:
    """Findings become alerts, earliest first, unless the cooldown or an alert on the same entity holds them back.

    Each alert raised leaves its mark on `state` (cooldowns, one alert per entity).
    """
    marks = state.marks_for(rule.rule_id)
    alerts: list[AlertRaised] = []
    if len(findings) > 1:
        findings = sorted(findings, key=_finding_order)
    for finding in findings:
        if marks and _held_back(finding, marks, cooldown):
            continue
        alert = _alert(state, rule, finding, raised_at)
        mark = AlertMark(rule.rule_id, alert.alert_id, finding.triggered_at, finding.entity)
        marks.append(mark)
        state.add_mark(mark)
        alerts.append(alert)
        if rule.deadline is not None:
            state.prune_after = None  # its duty stops waiting: kept from its own (earlier) moment now
        else:
            state.touch(finding.triggered_at)  # the mark is kept from its trigger time
    return alerts


def _finding_order(finding: Finding) -> tuple[datetime, tuple[str, ...]]:
    return (finding.triggered_at, finding.evidence_event_ids)


def _alert_order(alert: AlertRaised) -> tuple[datetime, str, str]:
    return (alert.triggered_at, alert.rule_id, alert.alert_id)


def _held_back(finding: Finding, marks: list[AlertMark], cooldown: Duration | None) -> bool:
    if finding.entity is not None and any(mark.entity == finding.entity for mark in marks):
        return True
    if cooldown is None:
        return False
    at = finding.triggered_at
    return any(within(mark.triggered_at, at, cooldown) or within(at, mark.triggered_at, cooldown) for mark in marks)


def _alert(state: SubjectState, rule: RuleDefinition[Any], finding: Finding, raised_at: datetime) -> AlertRaised:
    return AlertRaised(
        alert_id=alert_id(rule.rule_id, state.subject_type, state.subject_id, finding.evidence_event_ids),
        rule_id=rule.rule_id,
        rule_version=rule.version,
        severity=finding.severity,
        la_code=finding.la_code,
        subject_type=state.subject_type,
        subject_id=state.subject_id,
        triggered_at=finding.triggered_at,
        raised_at=raised_at,
        threshold=finding.threshold,
        count=finding.count,
        window=None if finding.window is None else str(finding.window),
        evidence_event_ids=list(finding.evidence_event_ids),
        summary=finding.summary,
    )


def _tidy(state: SubjectState, catalogue: Catalogue, progress: Progress | None = None) -> None:
    """Prune with the catalogue's retentions; duties still open are kept whatever their age.

    Skipped while nothing held can have expired: `prune_after` (set by the last prune), lowered by the
    shortest retention after `touched` (the earliest moment anything added since is kept from).
    """
    newest = state.newest_event_at
    if newest is None:
        return
    prune_after = state.prune_after
    touched = state.touched
    if touched is not None:
        state.touched = None
        if prune_after is not None:
            floor = catalogue.earliest_expiry(state.subject_type, touched)
            if floor < prune_after:
                state.prune_after = prune_after = floor
    if prune_after is not None and newest <= prune_after:
        return
    prune(
        state,
        horizon=catalogue.horizon(state.subject_type),
        kind_retention=catalogue.kind_retention,
        pending_entities=lambda: frozenset(entity for entity, _ in _open_duties(state, catalogue, None)),
        mark_retention=catalogue.mark_retention(state.subject_type),
        progress=progress,
    )


def _require_aware(moment: datetime, name: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {moment.isoformat()}")
