"""How inputs change a subject's history: record, erase (purge) and prune, over one declaration per kind. Pure.

A history kind is declared once (`HistorySpec`): how an input changes its records, which entity a
record belongs to (the purge tombstone that removes it), the time pruning measures it from, and how
long it is kept. `record`, `erase` and `prune` only loop over `HISTORY`; adding a kind is one
declaration and its record type in `state`.

Recording is a function of the *set* of inputs, never of their order: when two events describe
the same thing (two `missing.found` for one episode, two starts of one plan) the earliest in
event time wins, ties broken by event id.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from schemas.events import (
    ContactDecided,
    ContactReceived,
    CpPlanEnded,
    CpPlanStarted,
    DomesticIncidentRecorded,
    MissingFound,
    MissingReported,
    MissingReturnInterview,
)
from schemas.types import REFERRAL_OUTCOMES
from streams.rules.definition import RuleInput
from streams.rules.durations import Duration
from streams.rules.obligations import DaObligation
from streams.rules.state import (
    NEVER,
    NO_RECORDS,
    ContactRecord,
    DaAnswer,
    DaContactDuty,
    HistoryKind,
    IncidentRecord,
    MissingReport,
    PlanRecord,
    ReferralRecord,
    ReturnInterviewDuty,
    SubjectState,
    insert_in_time_order,
    time_key,
)

Retention = Literal["window", "until_resolved", "forever"]
"""window: the kind's readers' retention from its event time; until_resolved: the subject's horizon, but never
while its deadline is pending; forever: never pruned (CP plans: "ever" needs the whole history)."""


@dataclass(frozen=True, kw_only=True)
class HistorySpec:
    """One history kind: how inputs feed it, what entity each record is about, how long it is kept."""

    kind: HistoryKind
    inputs: frozenset[str]
    """The input types (`event_type`) that can change this kind: `feed` is called only for those."""
    feed: Callable[[SubjectState, Any, datetime], bool]
    """Change the state's records of this kind for an input at its event time (UTC); True when something changed."""
    entity: Callable[[Any], str]
    """The purge tombstone (`episode:<id>`, ...) that removes a record."""
    moment: Callable[[Any], datetime | None]
    """The time a record's retention runs from (None: kept)."""
    retention: Retention
    time_ordered: bool
    """True: records are in `time_key` order (pruning keeps a suffix); False: in entity-id order."""
    erase_part: Callable[[Any, str], Any] | None = None
    """For records that hold parts of other entities (a duty's answers): the record without that entity's part."""


def erasure_key(item: RuleInput) -> str:
    """The entity an input is about, as a purge tombstone names it: `episode:<id>`, `contact:<id>`, ..."""
    match item:
        case ContactReceived() | ContactDecided():
            return f"contact:{item.contact_id}"
        case MissingReported() | MissingFound() | MissingReturnInterview():
            return f"episode:{item.episode_id}"
        case CpPlanStarted() | CpPlanEnded():
            return f"plan:{item.plan_id}"
        case DomesticIncidentRecorded() | DaObligation():
            return f"incident:{item.incident_id}"


# --- how each kind is fed ----------------------------------------------------------------------------


def _appended(state: SubjectState, records: list[Any], record: Any) -> list[Any]:
    """`records` with a time-ordered record inserted (a new list for an empty history, which is shared).

    Only a record that becomes the oldest can expire sooner than what was held.
    """
    if not records:
        state.touch(record.occurred_at)
        return [record]
    if record.occurred_at > records[-1].occurred_at:
        records.append(record)  # the common case: the subject's newest event
        return records
    if time_key(record) < time_key(records[0]):
        state.touch(record.occurred_at)
    insert_in_time_order(records, record)
    return records


def _feed_missing_reports(state: SubjectState, item: Any, at: datetime) -> bool:
    if not isinstance(item, MissingReported):
        return False
    report = MissingReport(
        item.event_id,
        at,
        item.la_code,
        item.episode_id,
        item.looked_after,
        item.absence_type,
        item.risk_level,
    )
    state.missing_reports = _appended(state, state.missing_reports, report)
    return True


def _feed_contacts(state: SubjectState, item: Any, at: datetime) -> bool:
    if not isinstance(item, ContactReceived):
        return False
    contact = ContactRecord(item.event_id, at, item.la_code, item.contact_id, item.agency_type)
    state.contacts = _appended(state, state.contacts, contact)
    return True


def _feed_referrals(state: SubjectState, item: Any, at: datetime) -> bool:
    if not isinstance(item, ContactDecided) or item.outcome not in REFERRAL_OUTCOMES:
        return False
    referral = ReferralRecord(item.event_id, at, item.la_code, item.contact_id, item.outcome)
    state.referrals = _appended(state, state.referrals, referral)
    return True


def _feed_incidents(state: SubjectState, item: Any, at: datetime) -> bool:
    if not isinstance(item, DomesticIncidentRecorded):
        return False
    incident = IncidentRecord(item.event_id, at, item.la_code, item.incident_id, item.marac_referral, item.dash_risk)
    state.incidents = _appended(state, state.incidents, incident)
    return True


def _earlier(candidate: tuple[datetime, str], current: tuple[datetime | None, str | None]) -> bool:
    """True when `candidate` (time, event id) should replace `current`: nothing yet, or earlier."""
    time, event_id = current
    return time is None or event_id is None or candidate < (time, event_id)


def _put(records: list[Any], entity_id: str, record: Any, key: Callable[[Any], str]) -> list[Any]:
    """`records` with the record of `entity_id` inserted or replaced, in entity-id order (a new list if empty)."""
    if not records:
        return [record]
    at = bisect_left(records, entity_id, key=key)
    if at < len(records) and key(records[at]) == entity_id:
        records[at] = record
    else:
        records.insert(at, record)
    return records


def _find(records: list[Any], entity_id: str, key: Callable[[Any], str]) -> Any:
    at = bisect_left(records, entity_id, key=key)
    return records[at] if at < len(records) and key(records[at]) == entity_id else None


def _episode_of(duty: ReturnInterviewDuty) -> str:
    return duty.episode_id


def _incident_of(duty: DaContactDuty) -> str:
    return duty.incident_id


def _plan_of(plan: PlanRecord) -> str:
    return plan.plan_id


def _feed_return_interviews(state: SubjectState, item: Any, at: datetime) -> bool:
    if not isinstance(item, MissingFound | MissingReturnInterview):
        return False
    duty = _find(state.return_interviews, item.episode_id, _episode_of) or ReturnInterviewDuty(item.episode_id)
    if isinstance(item, MissingFound):
        if _earlier((at, item.event_id), (duty.found_at, duty.found_event_id)):
            duty = duty._replace(
                found_at=at, found_event_id=item.event_id, la_code=item.la_code, looked_after=item.looked_after
            )
    elif duty.interviewed_at is None or at < duty.interviewed_at:
        duty = duty._replace(interviewed_at=at)
    state.return_interviews = _put(state.return_interviews, item.episode_id, duty, _episode_of)
    state.touch(duty.found_at or duty.interviewed_at or at)  # its deadline may have closed: kept from its moment
    return True


def _feed_da_contacts(state: SubjectState, item: Any, at: datetime) -> bool:
    if isinstance(item, DaObligation):
        duty = _find(state.da_contacts, item.incident_id, _incident_of) or DaContactDuty(item.incident_id)
        if _earlier((at, item.source_event_id), (duty.incident_at, duty.obligation_event_id)):
            duty = duty._replace(
                incident_at=at,
                obligation_event_id=item.source_event_id,
                household_id=item.household_id,
                la_code=item.la_code,
            )
        incident_id = item.incident_id
    elif isinstance(item, ContactReceived) and item.linked_incident_id is not None:
        incident_id = item.linked_incident_id
        answer = DaAnswer(item.event_id, item.contact_id, at)
        duty = _find(state.da_contacts, incident_id, _incident_of) or DaContactDuty(incident_id)
        answers = sorted((*duty.answers, answer), key=lambda a: (a.occurred_at, a.event_id))
        duty = duty._replace(answers=tuple(answers))
    else:
        return False
    state.da_contacts = _put(state.da_contacts, incident_id, duty, _incident_of)
    state.touch(duty.incident_at or duty.answered_at or at)  # as for return interviews
    return True


def _feed_plans(state: SubjectState, item: Any, at: datetime) -> bool:
    if not isinstance(item, CpPlanStarted | CpPlanEnded):
        return False
    plan = _find(state.plans, item.plan_id, _plan_of) or PlanRecord(item.plan_id, item.la_code)
    if isinstance(item, CpPlanStarted):
        if _earlier((at, item.event_id), (plan.started_at, plan.start_event_id)):
            plan = plan._replace(
                started_at=at,
                start_event_id=item.event_id,
                la_code=item.la_code,
                previous_plans=item.previous_plans,
                previous_plan_ended_at=item.previous_plan_ended_at,
            )
    elif _earlier((at, item.event_id), (plan.ended_at, plan.end_event_id)):
        plan = plan._replace(ended_at=at, end_event_id=item.event_id)
    state.plans = _put(state.plans, item.plan_id, plan, _plan_of)
    return True


def _without_answers_of(duty: DaContactDuty, key: str) -> DaContactDuty:
    kept = tuple(answer for answer in duty.answers if f"contact:{answer.contact_id}" != key)
    return duty if len(kept) == len(duty.answers) else duty._replace(answers=kept)


HISTORY: tuple[HistorySpec, ...] = (
    HistorySpec(
        kind="missing_reports",
        inputs=frozenset({"missing.reported"}),
        feed=_feed_missing_reports,
        entity=lambda r: f"episode:{r.episode_id}",
        moment=lambda r: r.occurred_at,
        retention="window",
        time_ordered=True,
    ),
    HistorySpec(
        kind="return_interviews",
        inputs=frozenset({"missing.found", "missing.return_interview"}),
        feed=_feed_return_interviews,
        entity=lambda d: f"episode:{d.episode_id}",
        moment=lambda d: d.found_at or d.interviewed_at,
        retention="until_resolved",
        time_ordered=False,
    ),
    HistorySpec(
        kind="plans",
        inputs=frozenset({"cp_plan.started", "cp_plan.ended"}),
        feed=_feed_plans,
        entity=lambda p: f"plan:{p.plan_id}",
        moment=lambda p: None,
        retention="forever",
        time_ordered=False,
    ),
    HistorySpec(
        kind="referrals",
        inputs=frozenset({"contact.decided"}),
        feed=_feed_referrals,
        entity=lambda r: f"contact:{r.contact_id}",
        moment=lambda r: r.occurred_at,
        retention="window",
        time_ordered=True,
    ),
    HistorySpec(
        kind="contacts",
        inputs=frozenset({"contact.received"}),
        feed=_feed_contacts,
        entity=lambda c: f"contact:{c.contact_id}",
        moment=lambda c: c.occurred_at,
        retention="window",
        time_ordered=True,
    ),
    HistorySpec(
        kind="da_contacts",
        inputs=frozenset({"da_obligation", "contact.received"}),
        feed=_feed_da_contacts,
        entity=lambda d: f"incident:{d.incident_id}",
        moment=lambda d: d.incident_at or d.answered_at,
        retention="until_resolved",
        time_ordered=False,
        erase_part=_without_answers_of,
    ),
    HistorySpec(
        kind="incidents",
        inputs=frozenset({"domestic_incident.recorded"}),
        feed=_feed_incidents,
        entity=lambda i: f"incident:{i.incident_id}",
        moment=lambda i: i.occurred_at,
        retention="window",
        time_ordered=True,
    ),
)
"""Every history kind, once. `state.HISTORY_KINDS` lists the same names in the same order."""


def record(state: SubjectState, item: RuleInput, at: datetime, specs: tuple[HistorySpec, ...]) -> bool:
    """Add this input's facts (at its event time `at`, UTC) to every history in `specs`; True if any changed.

    `specs` are the kinds some enabled rule reads that this input type can change (`Catalogue.feeds`).
    """
    changed = False
    for spec in specs:
        changed = spec.feed(state, item, at) or changed
    return changed


def holds_event(state: SubjectState, event_id: str) -> bool:
    """True when a kept-for-ever record carries this event id (dedupe beyond the horizon, for plans)."""
    return any(event_id in (plan.start_event_id, plan.end_event_id) for plan in state.plans)


def erase(state: SubjectState, key: str) -> None:
    """Remove every record of the entity `key` names and remember the tombstone.

    Alerts already raised stay (they are never retracted), and so do their cooldown marks. An erased
    entity's later events are ignored by the engine (the tombstone), whatever order they arrive in.
    """
    state.erased = state.erased | {key}
    for spec in HISTORY:
        records: list[Any] = getattr(state, spec.kind)
        kept = [r for r in records if spec.entity(r) != key]
        if spec.erase_part is not None:
            kept = [spec.erase_part(r, key) for r in kept]
        setattr(state, spec.kind, kept or NO_RECORDS)
    state.prune_after = None


def _expiry(moment: datetime, spans: tuple[Duration, ...]) -> datetime:
    """The last `newest_event_at` at which a record of this time is still kept (`reaches`, solved for newest).

    No spans (a subject type no rule of the catalogue needs history for): a zero horizon, as `reaches` has it.
    """
    latest = moment
    for span in spans:
        at = span.after(moment)
        if at > latest:
            latest = at
    return latest


def prune(
    state: SubjectState,
    *,
    horizon: tuple[Duration, ...],
    kind_retention: Callable[[HistoryKind], tuple[Duration, ...] | None],
    pending_entities: Callable[[], frozenset[str]],
    mark_retention: Mapping[str, tuple[Duration, ...] | None],
) -> None:
    """Drop what no rule can need any more, relative to the subject's newest event time (never the wall clock).

    Seen ids and resolved deadline duties go after the subject's horizon, window histories after
    their own retention, alert marks after their rule's horizon plus cooldown. Deadline duties still
    pending (`pending_entities()`, asked only when a duty is held) and plans are kept whatever their age.
    Sets `prune_after`: the newest event time up to which nothing kept can expire, so the engine skips
    pruning until then.
    """
    newest = state.newest_event_at
    if newest is None:
        return
    next_expiry = NEVER
    pending: frozenset[str] | None = None

    def kept_suffix(records: list[Any], spans: tuple[Duration, ...] | None) -> list[Any]:
        """Keeping is monotone in time, so time-ordered records keep a suffix, found from the oldest."""
        nonlocal next_expiry
        if spans is None or not records:
            return records
        start = 0
        while start < len(records) and _expiry(records[start].occurred_at, spans) < newest:
            start += 1
        if start < len(records):
            next_expiry = min(next_expiry, _expiry(records[start].occurred_at, spans))
        return records if start == 0 else records[start:]

    kept_seen = kept_suffix(state.seen, horizon)
    if kept_seen is not state.seen:
        state.keep_seen(kept_seen)
    for spec in HISTORY:
        records: list[Any] = getattr(state, spec.kind)
        if spec.retention == "forever" or not records:
            continue
        if spec.retention == "window":
            setattr(state, spec.kind, kept_suffix(records, kind_retention(spec.kind)) or NO_RECORDS)
            continue
        if pending is None:
            pending = pending_entities()
        kept = []
        for r in records:
            moment = spec.moment(r)
            if moment is None or spec.entity(r) in pending:
                kept.append(r)
                continue
            expiry = _expiry(moment, horizon)
            if expiry >= newest:
                kept.append(r)
                next_expiry = min(next_expiry, expiry)
        if len(kept) != len(records):
            setattr(state, spec.kind, kept or NO_RECORDS)
    marks = []
    for mark in state.alerts:
        spans = mark_retention.get(mark.rule_id, horizon)
        if spans is None:
            marks.append(mark)
            continue
        expiry = _expiry(mark.triggered_at, spans)
        if expiry >= newest:
            marks.append(mark)
            next_expiry = min(next_expiry, expiry)
    if len(marks) != len(state.alerts):
        state.alerts = marks or NO_RECORDS
    state.prune_after = next_expiry
