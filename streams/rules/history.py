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
from datetime import datetime, timedelta
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
    EPOCH,
    MICROSECOND,
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
    from_micros,
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


_MONTH_AT_LEAST = timedelta(days=27)
"""Shorter than any calendar month, clamping to the month's end included (`Catalogue.earliest_expiry` uses it too)."""
_DAY = timedelta(days=1)
_FLOORS: dict[int, tuple[tuple[Duration, ...], timedelta]] = {}


def _floor(spans: tuple[Duration, ...]) -> timedelta:
    """No less than this separates a moment from its `_expiry`, whatever the moment: a record at or after
    `newest - _floor(spans)` is kept without computing its expiry.

    Remembered per spans object (the catalogue's own tuples, a few per catalogue), by identity: hashing the
    durations would cost more than the arithmetic it saves.
    """
    found = _FLOORS.get(id(spans))
    if found is None or found[0] is not spans:
        floor = max((span.exact + _MONTH_AT_LEAST * span.calendar_months for span in spans), default=timedelta())
        if len(_FLOORS) >= 4096:
            _FLOORS.clear()
        found = _FLOORS[id(spans)] = (spans, floor)
    return found[1]


def prune(
    state: SubjectState,
    *,
    horizon: tuple[Duration, ...],
    kind_retention: Callable[[HistoryKind], tuple[Duration, ...] | None],
    pending_entities: Callable[[], frozenset[str]],
    mark_retention: Mapping[str, tuple[Duration, ...] | None],
    progress: Callable[[HistoryKind], datetime | None] | None = None,
) -> None:
    """Drop what no rule can need any more, relative to the subject's newest event time (never the wall clock).

    Seen ids and resolved deadline duties go after the subject's horizon, window histories after
    their own retention, alert marks after their rule's horizon plus cooldown. A window history is measured from
    the earlier of the newest event time and `progress(kind)`: how far the stream that feeds the kind has been
    applied on the subject's partition (None: not known). Streams are read at their own speeds, so a subject's
    newest event can come from a stream months ahead of another (a worker catching up after a stop: the domestic
    incidents read to February while the contacts are still in September); measured from that newest event, the
    September contacts a late contact counts with would already be gone (seen 2026-12-07: a `multi_agency_concern`
    lost after a restart). The window histories' retentions are the shortest; the horizon (seen ids, duties, marks)
    is the longest window plus cooldown, which no such lag reaches. Deadline duties still
    pending (`pending_entities()`, asked only when a duty may have expired) and plans are kept whatever their age.
    Sets `prune_after`: a newest event time up to which nothing kept can expire, so the engine skips pruning until
    then (a lower bound: pruning earlier finds nothing to drop).

    Cheap on long histories: a record younger than its spans' `_floor` is kept without any date arithmetic, so a
    prune computes expiries only for the records near the end of their retention (and for one record per list, to
    bound the next expiry); time-ordered lists lose their oldest records in place.
    """
    newest = state.newest_event_at
    if newest is None:
        return
    next_expiry = NEVER
    pending: frozenset[str] | None = None

    def kept_from(records: list[Any], spans: tuple[Duration, ...], reference: datetime) -> int:
        """How many of the oldest records expired, measured from `reference`. Keeping is monotone in time, so they are
        a prefix: exactly the records before the first kept one, as found by walking from the oldest.
        """
        nonlocal next_expiry
        cut = reference - _floor(spans)
        start = 0
        count = len(records)
        while start < count:
            moment = records[start].occurred_at
            if moment >= cut:
                break  # kept, without computing its expiry
            if _expiry(moment, spans) >= reference:
                break
            start += 1
        if start < count:
            expiry = _expiry(records[start].occurred_at, spans)
            if expiry < next_expiry:
                next_expiry = expiry
        return start

    seen = state.seen_micros
    if seen:
        # The same walk over the seen ids' event times, held as epoch microseconds.
        cut_micros = (newest - _floor(horizon) - EPOCH) // MICROSECOND
        dropped = 0
        while dropped < len(seen):
            micros = seen[dropped]
            if micros >= cut_micros or _expiry(from_micros(micros), horizon) >= newest:
                break
            dropped += 1
        if dropped < len(seen):
            expiry = _expiry(from_micros(seen[dropped]), horizon)
            if expiry < next_expiry:
                next_expiry = expiry
        if dropped:
            state.forget_oldest_seen(dropped)
    for spec in HISTORY:
        records: list[Any] = getattr(state, spec.kind)
        if spec.retention == "forever" or not records:
            continue
        if spec.retention == "window":
            spans = kind_retention(spec.kind)
            if spans is None:
                continue
            reference = newest
            if progress is not None:
                applied_to = progress(spec.kind)
                if applied_to is not None and applied_to < newest:
                    reference = applied_to  # its stream lags: its late events may still come
            dropped = kept_from(records, spans, reference)
            if dropped:
                if dropped == len(records):
                    setattr(state, spec.kind, NO_RECORDS)
                else:
                    del records[:dropped]  # the state's own list (the shared empty one is never pruned)
            continue
        # until_resolved: in entity order, each kept while its deadline is pending, else for the horizon.
        cut = newest - _floor(horizon)
        moment_of = spec.moment
        oldest_young: datetime | None = None  # the earliest moment of a record kept without computing its expiry
        expired: list[int] | None = None
        for at, r in enumerate(records):
            moment = moment_of(r)
            if moment is None:
                continue
            if moment >= cut:
                if oldest_young is None or moment < oldest_young:
                    oldest_young = moment
                continue
            expiry = _expiry(moment, horizon)
            if expiry >= newest:
                if expiry < next_expiry:
                    next_expiry = expiry  # a pending duty's too: a lower bound, as it must be
                continue
            if pending is None:
                pending = pending_entities()
            if spec.entity(r) in pending:
                continue
            if expired is None:
                expired = [at]
            else:
                expired.append(at)
        if oldest_young is not None:
            # Expiry is monotone in a moment's date and the time of day moves it by less than a day, so no record
            # at or after `oldest_young` expires before this.
            bound = _expiry(oldest_young, horizon) - _DAY
            if bound < next_expiry:
                next_expiry = bound
        if expired is not None:
            gone = set(expired)
            kept = [r for at, r in enumerate(records) if at not in gone]
            setattr(state, spec.kind, kept or NO_RECORDS)
    marks = state.alerts
    if marks:
        cuts: dict[str, datetime | None] = {}
        oldest: dict[str, datetime] = {}
        expired_marks = False
        for mark in marks:
            rule_id = mark.rule_id
            if rule_id in cuts:
                cut_of_rule = cuts[rule_id]
            else:
                spans_of_rule = mark_retention.get(rule_id, horizon)
                cut_of_rule = cuts[rule_id] = None if spans_of_rule is None else newest - _floor(spans_of_rule)
            if cut_of_rule is None:
                continue  # kept for ever
            moment = mark.triggered_at
            if moment >= cut_of_rule:
                held = oldest.get(rule_id)
                if held is None or moment < held:
                    oldest[rule_id] = moment
                continue
            spans_of_mark = mark_retention.get(rule_id, horizon)
            assert spans_of_mark is not None
            expiry = _expiry(moment, spans_of_mark)
            if expiry >= newest:
                if expiry < next_expiry:
                    next_expiry = expiry
            else:
                expired_marks = True
        for rule_id, moment in oldest.items():
            spans_of_mark = mark_retention.get(rule_id, horizon)
            assert spans_of_mark is not None
            bound = _expiry(moment, spans_of_mark) - _DAY
            if bound < next_expiry:
                next_expiry = bound
        if expired_marks:
            kept_marks = []
            for mark in marks:
                cut_of_rule = cuts[mark.rule_id]
                if cut_of_rule is None or mark.triggered_at >= cut_of_rule:
                    kept_marks.append(mark)
                    continue
                spans_of_mark = mark_retention.get(mark.rule_id, horizon)
                assert spans_of_mark is not None
                if _expiry(mark.triggered_at, spans_of_mark) >= newest:
                    kept_marks.append(mark)
            state.alerts = kept_marks or NO_RECORDS
    state.prune_after = next_expiry
