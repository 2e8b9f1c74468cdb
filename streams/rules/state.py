"""Per-subject rule state: the event-time history the rules need, small and JSON-serialisable.

One `SubjectState` per child or household. The worker keeps it in a table (changelog as JSON via
`to_json_obj` / `from_json_obj`) and always stores the new value it gets back: states are frozen
and every change returns a new one. All times are event times (`occurred_at`) in UTC.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict

from schemas.types import AbsenceType, AgencyType, DashRisk, Outcome, RiskLevel, SubjectType


class StateModel(BaseModel):
    """Frozen and closed: state written by one version is read back exactly or refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class TimedRecord(StateModel):
    """One input event as a rule remembers it: its id, its event time and the partnership it came from."""

    event_id: str
    occurred_at: AwareDatetime
    la_code: str


class SeenEvent(StateModel):
    """An event id already applied to this subject (dedupe), with its event time (for pruning)."""

    event_id: str
    occurred_at: AwareDatetime


class MissingReport(TimedRecord):
    """A `missing.reported` event."""

    episode_id: str
    looked_after: bool
    absence_type: AbsenceType
    risk_level: RiskLevel


class ReferralRecord(TimedRecord):
    """A `contact.decided` whose outcome makes it a referral (`referral`, `strategy_discussion`)."""

    contact_id: str
    outcome: Outcome


class ContactRecord(TimedRecord):
    """A `contact.received` event: which kind of agency the contact came from."""

    contact_id: str
    agency_type: AgencyType


class IncidentRecord(TimedRecord):
    """A `domestic_incident.recorded` event, on the household's state."""

    incident_id: str
    marac_referral: bool
    dash_risk: DashRisk


class ReturnInterviewDuty(StateModel):
    """One missing episode's return-interview deadline: when the child was found, and the first interview step."""

    episode_id: str
    la_code: str | None = None
    found_event_id: str | None = None
    found_at: AwareDatetime | None = None
    looked_after: bool = False
    interviewed_at: AwareDatetime | None = None


class DaAnswer(StateModel):
    """A `contact.received` for the child carrying the incident id as `linked_incident_id`."""

    event_id: str
    contact_id: str
    occurred_at: AwareDatetime


class DaContactDuty(StateModel):
    """One domestic incident a child was present at: the Front Door contact that must follow it.

    The obligation (from the incident) and the answers (contacts carrying the incident id) can
    arrive in either order, so either side may be missing.
    """

    incident_id: str
    obligation_event_id: str | None = None
    incident_at: AwareDatetime | None = None
    household_id: str | None = None
    la_code: str | None = None
    answers: tuple[DaAnswer, ...] = ()

    @property
    def answered_at(self) -> datetime | None:
        """When the first contact about the incident happened, if any has arrived."""
        return min((answer.occurred_at for answer in self.answers), default=None)


class PlanRecord(StateModel):
    """A child protection plan: its start and end as seen on the stream, and what the source knew before it."""

    plan_id: str
    la_code: str
    start_event_id: str | None = None
    started_at: AwareDatetime | None = None
    end_event_id: str | None = None
    ended_at: AwareDatetime | None = None
    previous_plans: int | None = None
    previous_plan_ended_at: date | None = None


class AlertMark(StateModel):
    """An alert this state has raised: for cooldowns and for "one alert per episode / incident"."""

    rule_id: str
    alert_id: str
    triggered_at: AwareDatetime
    entity: str | None = None


_Record = TypeVar("_Record", bound=TimedRecord)

HistoryKind = Literal[
    "missing_reports", "return_interviews", "plans", "referrals", "contacts", "da_contacts", "incidents"
]
"""The parts of a state a rule can read; the engine records a kind only when an enabled rule reads it."""


class SubjectState(StateModel):
    """Everything the rules remember about one child or one household.

    `newest_event_at` is the subject's own event-time clock: pruning is relative to it, never to the
    wall clock. `seen` dedupes by event id; `erased` holds purge tombstones (`episode:<id>`,
    `contact:<id>`, `plan:<id>`, `incident:<id>`) so an erased entity's events stay out whatever order
    they arrive in. Collections are tuples kept in event-time order.
    """

    subject_type: SubjectType
    subject_id: str
    newest_event_at: AwareDatetime | None = None
    seen: tuple[SeenEvent, ...] = ()
    erased: tuple[str, ...] = ()
    missing_reports: tuple[MissingReport, ...] = ()
    return_interviews: tuple[ReturnInterviewDuty, ...] = ()
    plans: tuple[PlanRecord, ...] = ()
    referrals: tuple[ReferralRecord, ...] = ()
    contacts: tuple[ContactRecord, ...] = ()
    da_contacts: tuple[DaContactDuty, ...] = ()
    incidents: tuple[IncidentRecord, ...] = ()
    alerts: tuple[AlertMark, ...] = ()

    @classmethod
    def empty(cls, subject_type: SubjectType, subject_id: str) -> SubjectState:
        return cls(subject_type=subject_type, subject_id=subject_id)

    def to_json_obj(self) -> dict[str, Any]:
        """The JSON-compatible dict for a table changelog; empty and default fields are left out."""
        return self.model_dump(mode="json", exclude_defaults=True)

    @classmethod
    def from_json_obj(cls, obj: dict[str, Any]) -> SubjectState:
        return cls.model_validate(obj)

    def has_seen(self, event_id: str) -> bool:
        return any(seen.event_id == event_id for seen in self.seen)

    def marks_for(self, rule_id: str) -> tuple[AlertMark, ...]:
        return tuple(mark for mark in self.alerts if mark.rule_id == rule_id)


def sorted_records(records: tuple[_Record, ...] | list[_Record]) -> tuple[_Record, ...]:
    """Records in event-time order (ties broken by event id), the one order every rule reads them in."""
    return tuple(sorted(records, key=lambda record: (record.occurred_at, record.event_id)))
