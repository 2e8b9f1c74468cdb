"""How inputs change a subject's history: record, erase (purge) and prune. Pure; the engine calls these.

Recording is a function of the *set* of inputs, never of their order: when two events describe
the same thing (two `missing.found` for one episode, two starts of one plan) the earliest in
event time wins, ties broken by event id.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Protocol, TypeVar

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
from streams.rules.definition import RuleInput, utc
from streams.rules.durations import Duration, reaches
from streams.rules.obligations import DaObligation
from streams.rules.state import (
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
    sorted_records,
)


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


def record(state: SubjectState, item: RuleInput, kinds: frozenset[HistoryKind]) -> SubjectState:
    """The state with this input's facts added to every history kind in `kinds` that it feeds."""
    at = utc(item.occurred_at)
    match item:
        case MissingReported() if "missing_reports" in kinds:
            report = MissingReport(
                event_id=item.event_id,
                occurred_at=at,
                la_code=item.la_code,
                episode_id=item.episode_id,
                looked_after=item.looked_after,
                absence_type=item.absence_type,
                risk_level=item.risk_level,
            )
            return state.model_copy(update={"missing_reports": sorted_records([*state.missing_reports, report])})
        case MissingFound() | MissingReturnInterview() if "return_interviews" in kinds:
            return state.model_copy(update={"return_interviews": _with_episode_step(state.return_interviews, item)})
        case ContactReceived():
            if "contacts" in kinds:
                contact = ContactRecord(
                    event_id=item.event_id,
                    occurred_at=at,
                    la_code=item.la_code,
                    contact_id=item.contact_id,
                    agency_type=item.agency_type,
                )
                state = state.model_copy(update={"contacts": sorted_records([*state.contacts, contact])})
            if "da_contacts" in kinds and item.linked_incident_id is not None:
                answered = _with_da_answer(state.da_contacts, item, item.linked_incident_id)
                state = state.model_copy(update={"da_contacts": answered})
            return state
        case ContactDecided() if "referrals" in kinds and item.outcome in REFERRAL_OUTCOMES:
            referral = ReferralRecord(
                event_id=item.event_id,
                occurred_at=at,
                la_code=item.la_code,
                contact_id=item.contact_id,
                outcome=item.outcome,
            )
            return state.model_copy(update={"referrals": sorted_records([*state.referrals, referral])})
        case DomesticIncidentRecorded() if "incidents" in kinds:
            incident = IncidentRecord(
                event_id=item.event_id,
                occurred_at=at,
                la_code=item.la_code,
                incident_id=item.incident_id,
                marac_referral=item.marac_referral,
                dash_risk=item.dash_risk,
            )
            return state.model_copy(update={"incidents": sorted_records([*state.incidents, incident])})
        case CpPlanStarted() | CpPlanEnded() if "plans" in kinds:
            return state.model_copy(update={"plans": _with_plan_event(state.plans, item)})
        case DaObligation() if "da_contacts" in kinds:
            return state.model_copy(update={"da_contacts": _with_da_obligation(state.da_contacts, item)})
    return state


def _earlier(candidate: tuple[datetime, str], current: tuple[datetime | None, str | None]) -> bool:
    """True when `candidate` (time, event id) should replace `current`: nothing yet, or earlier."""
    time, event_id = current
    return time is None or event_id is None or candidate < (time, event_id)


def _with_episode_step(
    duties: tuple[ReturnInterviewDuty, ...], item: MissingFound | MissingReturnInterview
) -> tuple[ReturnInterviewDuty, ...]:
    at = utc(item.occurred_at)
    duty = next((d for d in duties if d.episode_id == item.episode_id), ReturnInterviewDuty(episode_id=item.episode_id))
    if isinstance(item, MissingFound):
        if _earlier((at, item.event_id), (duty.found_at, duty.found_event_id)):
            update = {"found_at": at, "found_event_id": item.event_id, "la_code": item.la_code}
            duty = duty.model_copy(update={**update, "looked_after": item.looked_after})
    elif duty.interviewed_at is None or at < duty.interviewed_at:
        duty = duty.model_copy(update={"interviewed_at": at})
    others = tuple(d for d in duties if d.episode_id != item.episode_id)
    return tuple(sorted((*others, duty), key=lambda d: d.episode_id))


def _with_da_obligation(duties: tuple[DaContactDuty, ...], item: DaObligation) -> tuple[DaContactDuty, ...]:
    at = utc(item.occurred_at)
    duty = next((d for d in duties if d.incident_id == item.incident_id), DaContactDuty(incident_id=item.incident_id))
    if _earlier((at, item.source_event_id), (duty.incident_at, duty.obligation_event_id)):
        duty = duty.model_copy(
            update={
                "incident_at": at,
                "obligation_event_id": item.source_event_id,
                "household_id": item.household_id,
                "la_code": item.la_code,
            }
        )
    return _replace_duty(duties, duty)


def _with_da_answer(
    duties: tuple[DaContactDuty, ...], item: ContactReceived, incident_id: str
) -> tuple[DaContactDuty, ...]:
    answer = DaAnswer(event_id=item.event_id, contact_id=item.contact_id, occurred_at=utc(item.occurred_at))
    duty = next((d for d in duties if d.incident_id == incident_id), DaContactDuty(incident_id=incident_id))
    answers = sorted((*duty.answers, answer), key=lambda a: (a.occurred_at, a.event_id))
    return _replace_duty(duties, duty.model_copy(update={"answers": tuple(answers)}))


def _replace_duty(duties: tuple[DaContactDuty, ...], duty: DaContactDuty) -> tuple[DaContactDuty, ...]:
    others = tuple(d for d in duties if d.incident_id != duty.incident_id)
    return tuple(sorted((*others, duty), key=lambda d: d.incident_id))


def _with_plan_event(plans: tuple[PlanRecord, ...], item: CpPlanStarted | CpPlanEnded) -> tuple[PlanRecord, ...]:
    at = utc(item.occurred_at)
    plan = next((p for p in plans if p.plan_id == item.plan_id), PlanRecord(plan_id=item.plan_id, la_code=item.la_code))
    if isinstance(item, CpPlanStarted):
        if _earlier((at, item.event_id), (plan.started_at, plan.start_event_id)):
            plan = plan.model_copy(
                update={
                    "started_at": at,
                    "start_event_id": item.event_id,
                    "la_code": item.la_code,
                    "previous_plans": item.previous_plans,
                    "previous_plan_ended_at": item.previous_plan_ended_at,
                }
            )
    elif _earlier((at, item.event_id), (plan.ended_at, plan.end_event_id)):
        plan = plan.model_copy(update={"ended_at": at, "end_event_id": item.event_id})
    others = tuple(p for p in plans if p.plan_id != item.plan_id)
    return tuple(sorted((*others, plan), key=lambda p: p.plan_id))


def holds_event(state: SubjectState, event_id: str) -> bool:
    """True when a kept-for-ever record carries this event id (dedupe beyond the horizon, for plans)."""
    return any(event_id in (plan.start_event_id, plan.end_event_id) for plan in state.plans)


def erase(state: SubjectState, key: str) -> SubjectState:
    """Remove every record of the entity `key` names and remember the tombstone.

    Alerts already raised stay (they are never retracted), and so do their cooldown marks. An erased
    contact no longer answers a DA duty, exactly as if it had never arrived (so the final state is
    the same wherever the purge falls).
    """
    kind, _, entity_id = key.partition(":")
    update: dict[str, object] = {"erased": tuple(sorted({*state.erased, key}))}
    if kind == "episode":
        update["missing_reports"] = tuple(r for r in state.missing_reports if r.episode_id != entity_id)
        update["return_interviews"] = tuple(d for d in state.return_interviews if d.episode_id != entity_id)
    elif kind == "contact":
        update["contacts"] = tuple(c for c in state.contacts if c.contact_id != entity_id)
        update["referrals"] = tuple(r for r in state.referrals if r.contact_id != entity_id)
        update["da_contacts"] = tuple(
            d.model_copy(update={"answers": tuple(a for a in d.answers if a.contact_id != entity_id)})
            for d in state.da_contacts
        )
    elif kind == "plan":
        update["plans"] = tuple(p for p in state.plans if p.plan_id != entity_id)
    elif kind == "incident":
        update["incidents"] = tuple(i for i in state.incidents if i.incident_id != entity_id)
        update["da_contacts"] = tuple(d for d in state.da_contacts if d.incident_id != entity_id)
    return state.model_copy(update=update)


class _HasTime(Protocol):
    @property
    def occurred_at(self) -> datetime: ...


_Timed = TypeVar("_Timed", bound=_HasTime)


def prune(
    state: SubjectState,
    *,
    horizon: tuple[Duration, ...],
    kind_retention: Callable[[HistoryKind], tuple[Duration, ...] | None],
    pending_entities: frozenset[str],
    mark_retention: Mapping[str, tuple[Duration, ...] | None],
) -> SubjectState:
    """Drop what no rule can need any more, relative to the subject's newest event time (never the wall clock).

    Seen ids and resolved deadline duties go after the subject's horizon, window histories after
    their own retention, alert marks after their rule's horizon plus cooldown. Deadline duties still
    pending (`pending_entities`) and plans are kept whatever their age.
    """
    newest = state.newest_event_at
    if newest is None:
        return state

    def keep(moment: datetime | None, spans: tuple[Duration, ...] | None) -> bool:
        return moment is None or spans is None or reaches(moment, spans, newest)

    def recent(records: tuple[_Timed, ...], spans: tuple[Duration, ...] | None) -> tuple[_Timed, ...]:
        """`keep` is monotone in time, so for records in event-time order it keeps a suffix: when the oldest
        record stays, they all do, and the tuple is returned as is (the common case, checked in O(1))."""
        if not records or keep(records[0].occurred_at, spans):
            return records
        return tuple(r for r in records if keep(r.occurred_at, spans))

    missing, referrals, contacts, incidents = (
        kind_retention(kind) for kind in ("missing_reports", "referrals", "contacts", "incidents")
    )
    return state.model_copy(
        update={
            "seen": recent(state.seen, horizon),
            "missing_reports": recent(state.missing_reports, missing),
            "referrals": recent(state.referrals, referrals),
            "contacts": recent(state.contacts, contacts),
            "incidents": recent(state.incidents, incidents),
            "return_interviews": tuple(
                d
                for d in state.return_interviews
                if f"episode:{d.episode_id}" in pending_entities or keep(d.found_at or d.interviewed_at, horizon)
            ),
            "da_contacts": tuple(
                d
                for d in state.da_contacts
                if f"incident:{d.incident_id}" in pending_entities or keep(d.incident_at or d.answered_at, horizon)
            ),
            "alerts": tuple(m for m in state.alerts if keep(m.triggered_at, mark_retention.get(m.rule_id, horizon))),
        }
    )
