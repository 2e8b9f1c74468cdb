"""Per-subject rule state: the event-time history the rules need, as mutable working state.

One `SubjectState` per child or household. The engine changes a state in place (no copy per event)
and says whether it changed; `streams.rules.codec` turns it into the compact, versioned bytes the
worker's tables and changelogs hold. Records are small immutable tuples; each history list is kept
in its declared order by insertion (`streams.rules.history`), never re-sorted. All times are event
times (`occurred_at`) in UTC.
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Iterable
from datetime import UTC, date, datetime
from operator import attrgetter
from typing import Any, Literal, NamedTuple, Protocol, TypeVar

from schemas.types import AbsenceType, AgencyType, DashRisk, Outcome, RiskLevel, SubjectType

NEVER = datetime.max.replace(tzinfo=UTC)
"""`SubjectState.prune_after` when nothing held can ever expire (an empty state, or only plans)."""

STATE_VERSION = 2
"""The layout `streams.rules.codec` writes. 1: the pydantic JSON of releases up to 83c166b (read and upgraded)."""


class Timed(Protocol):
    """What window helpers need of a record: its event id and event time."""

    @property
    def event_id(self) -> str: ...

    @property
    def occurred_at(self) -> datetime: ...


class SeenEvent(NamedTuple):
    """An event id already applied to this subject (dedupe), with its event time (for pruning)."""

    event_id: str
    occurred_at: datetime


class MissingReport(NamedTuple):
    """A `missing.reported` event."""

    event_id: str
    occurred_at: datetime
    la_code: str
    episode_id: str
    looked_after: bool
    absence_type: AbsenceType
    risk_level: RiskLevel


class ReferralRecord(NamedTuple):
    """A `contact.decided` whose outcome makes it a referral (`referral`, `strategy_discussion`)."""

    event_id: str
    occurred_at: datetime
    la_code: str
    contact_id: str
    outcome: Outcome


class ContactRecord(NamedTuple):
    """A `contact.received` event: which kind of agency the contact came from."""

    event_id: str
    occurred_at: datetime
    la_code: str
    contact_id: str
    agency_type: AgencyType


class IncidentRecord(NamedTuple):
    """A `domestic_incident.recorded` event, on the household's state."""

    event_id: str
    occurred_at: datetime
    la_code: str
    incident_id: str
    marac_referral: bool
    dash_risk: DashRisk


class ReturnInterviewDuty(NamedTuple):
    """One missing episode's return-interview deadline: when the child was found, and the first interview step."""

    episode_id: str
    la_code: str | None = None
    found_event_id: str | None = None
    found_at: datetime | None = None
    looked_after: bool = False
    interviewed_at: datetime | None = None


class DaAnswer(NamedTuple):
    """A `contact.received` for the child carrying the incident id as `linked_incident_id`."""

    event_id: str
    contact_id: str
    occurred_at: datetime


class DaContactDuty(NamedTuple):
    """One domestic incident a child was present at: the Front Door contact that must follow it.

    The obligation (from the incident) and the answers (contacts carrying the incident id) can
    arrive in either order, so either side may be missing. Answers are in event-time order.
    """

    incident_id: str
    obligation_event_id: str | None = None
    incident_at: datetime | None = None
    household_id: str | None = None
    la_code: str | None = None
    answers: tuple[DaAnswer, ...] = ()

    @property
    def answered_at(self) -> datetime | None:
        """When the first contact about the incident happened, if any has arrived."""
        return self.answers[0].occurred_at if self.answers else None


class PlanRecord(NamedTuple):
    """A child protection plan: its start and end as seen on the stream, and what the source knew before it."""

    plan_id: str
    la_code: str
    start_event_id: str | None = None
    started_at: datetime | None = None
    end_event_id: str | None = None
    ended_at: datetime | None = None
    previous_plans: int | None = None
    previous_plan_ended_at: date | None = None


class AlertMark(NamedTuple):
    """An alert this state has raised: for cooldowns and for "one alert per episode / incident"."""

    rule_id: str
    alert_id: str
    triggered_at: datetime
    entity: str | None = None


HistoryKind = Literal[
    "missing_reports", "return_interviews", "plans", "referrals", "contacts", "da_contacts", "incidents"
]
"""The parts of a state a rule can read; the engine records a kind only when an enabled rule reads it."""

HISTORY_KINDS: tuple[HistoryKind, ...] = (
    "missing_reports",
    "return_interviews",
    "plans",
    "referrals",
    "contacts",
    "da_contacts",
    "incidents",
)


class _NoRecords(list[Any]):
    """The empty history every state starts with, shared by all of them: it refuses to change.

    A state holds ten lists and most are empty (a household has no referrals); sharing one empty list saves
    their memory and the collector's time. Code that adds a record to an empty history gives the state a
    list of its own (`if not records: state.kind = [record]`); changing the shared one in place raises.
    """

    __slots__ = ()

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("the shared empty history cannot change: give the state a list of its own")

    append = insert = extend = remove = pop = clear = sort = reverse = _refuse
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse


NO_RECORDS: list[Any] = _NoRecords()
"""The shared, unchangeable empty history (equal to `[]`)."""

_SCANNED = 16
"""Up to this many seen ids `has_seen` scans the list; beyond it a set beside the list answers."""


_event_id = attrgetter("event_id")


def _ids_of(seen: list[SeenEvent]) -> set[str] | None:
    return {event.event_id for event in seen} if len(seen) > _SCANNED else None


_FIELDS = ("subject_type", "subject_id", "newest_event_at", "seen", "erased", *HISTORY_KINDS, "alerts")


def time_key(record: Timed) -> tuple[datetime, str]:
    """The one order every time-ordered history is kept and read in: event time, ties broken by event id."""
    return (record.occurred_at, record.event_id)


class SubjectState:
    """Everything the rules remember about one child or one household. Mutable: the engine changes it in place.

    `newest_event_at` is the subject's own event-time clock: pruning is relative to it, never to the
    wall clock. `seen` dedupes by event id (beyond a few ids a set beside it answers `has_seen`); `erased` holds
    purge tombstones (`episode:<id>`, `contact:<id>`, `plan:<id>`, `incident:<id>`) so an erased entity's
    events stay out whatever order they arrive in. Time-ordered lists (`seen`, missing reports, referrals,
    contacts, incidents) are in `time_key` order; duties and plans in entity-id order; marks as raised.

    `prune_after` and `touched` are bookkeeping, not content: nothing can expire while `newest_event_at` is
    at or before `prune_after` (None: not known, prune to find out), except what was kept from `touched` on
    (the earliest moment from which something added since, or something that may have stopped waiting for
    its deadline, is kept; None: nothing). The engine lowers `prune_after` by the shortest retention after
    `touched` before it decides whether to prune. Neither is stored or takes part in equality.
    """

    __slots__ = (*_FIELDS, "_seen_ids", "prune_after", "touched")

    _seen_ids: set[str] | None

    subject_type: SubjectType
    subject_id: str
    newest_event_at: datetime | None
    seen: list[SeenEvent]
    erased: frozenset[str]
    missing_reports: list[MissingReport]
    return_interviews: list[ReturnInterviewDuty]
    plans: list[PlanRecord]
    referrals: list[ReferralRecord]
    contacts: list[ContactRecord]
    da_contacts: list[DaContactDuty]
    incidents: list[IncidentRecord]
    alerts: list[AlertMark]
    prune_after: datetime | None
    touched: datetime | None

    def __init__(
        self,
        subject_type: SubjectType,
        subject_id: str,
        *,
        newest_event_at: datetime | None = None,
        seen: Iterable[SeenEvent] = (),
        erased: Iterable[str] = (),
        missing_reports: Iterable[MissingReport] = (),
        return_interviews: Iterable[ReturnInterviewDuty] = (),
        plans: Iterable[PlanRecord] = (),
        referrals: Iterable[ReferralRecord] = (),
        contacts: Iterable[ContactRecord] = (),
        da_contacts: Iterable[DaContactDuty] = (),
        incidents: Iterable[IncidentRecord] = (),
        alerts: Iterable[AlertMark] = (),
    ) -> None:
        self.subject_type = subject_type
        self.subject_id = subject_id
        self.newest_event_at = newest_event_at
        self.seen = sorted(seen, key=time_key) or NO_RECORDS
        self._seen_ids = _ids_of(self.seen)
        self.erased = frozenset(erased)
        self.missing_reports = sorted(missing_reports, key=time_key) or NO_RECORDS
        self.return_interviews = sorted(return_interviews, key=lambda duty: duty.episode_id) or NO_RECORDS
        self.plans = sorted(plans, key=lambda plan: plan.plan_id) or NO_RECORDS
        self.referrals = sorted(referrals, key=time_key) or NO_RECORDS
        self.contacts = sorted(contacts, key=time_key) or NO_RECORDS
        self.da_contacts = sorted(da_contacts, key=lambda duty: duty.incident_id) or NO_RECORDS
        self.incidents = sorted(incidents, key=time_key) or NO_RECORDS
        self.alerts = list(alerts) or NO_RECORDS
        self.prune_after = None
        self.touched = None

    @classmethod
    def empty(cls, subject_type: SubjectType, subject_id: str) -> SubjectState:
        """A subject not seen before: nothing held, so nothing can expire (built without sorting anything)."""
        state = cls.__new__(cls)
        state.subject_type = subject_type
        state.subject_id = subject_id
        state.newest_event_at = None
        state.seen = NO_RECORDS
        state._seen_ids = None
        state.erased = frozenset()
        state.missing_reports = NO_RECORDS
        state.return_interviews = NO_RECORDS
        state.plans = NO_RECORDS
        state.referrals = NO_RECORDS
        state.contacts = NO_RECORDS
        state.da_contacts = NO_RECORDS
        state.incidents = NO_RECORDS
        state.alerts = NO_RECORDS
        state.prune_after = NEVER
        state.touched = None
        return state

    def touch(self, moment: datetime) -> None:
        """Something kept from `moment` on was added (or may have stopped waiting for its deadline)."""
        touched = self.touched
        if touched is None or moment < touched:
            self.touched = moment

    def copy(self) -> SubjectState:
        """An independent copy (the records are immutable, so the lists are copied, not the records)."""
        twin = SubjectState(self.subject_type, self.subject_id, newest_event_at=self.newest_event_at)
        twin.seen = list(self.seen) or NO_RECORDS
        twin._seen_ids = None if self._seen_ids is None else set(self._seen_ids)
        twin.erased = self.erased
        for kind in HISTORY_KINDS:
            setattr(twin, kind, list(getattr(self, kind)) or NO_RECORDS)
        twin.alerts = list(self.alerts) or NO_RECORDS
        twin.prune_after = self.prune_after
        twin.touched = self.touched
        return twin

    def content(self) -> tuple[Any, ...]:
        """Everything the state holds, as one comparable value (what equality compares)."""
        return tuple(
            frozenset(self.erased) if name == "erased" else tuple(value) if isinstance(value, list) else value
            for name in _FIELDS
            for value in (getattr(self, name),)
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SubjectState):
            return NotImplemented
        return self.content() == other.content()

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        held = ", ".join(f"{kind}={len(getattr(self, kind))}" for kind in HISTORY_KINDS if getattr(self, kind))
        return f"SubjectState({self.subject_type} {self.subject_id[:8]}…, seen={len(self.seen)}, {held})"

    # --- the seen set -------------------------------------------------------------------------------

    def has_seen(self, event_id: str) -> bool:
        ids = self._seen_ids
        if ids is not None:
            return event_id in ids
        return event_id in map(_event_id, self.seen)  # a few ids: scanned (a set each would cost more than it saves)

    def add_seen(self, event_id: str, occurred_at: datetime) -> None:
        """Remember an applied event id, in event-time order."""
        seen = SeenEvent(event_id, occurred_at)
        records = self.seen
        if not records:
            self.seen = [seen]
            self.touch(occurred_at)
        elif occurred_at > records[-1].occurred_at:
            records.append(seen)  # the common case: the subject's newest event
        else:
            if (occurred_at, event_id) < (records[0].occurred_at, records[0].event_id):
                self.touch(occurred_at)  # the new oldest id may expire sooner than what was held
            insert_in_time_order(records, seen)
        if self._seen_ids is not None:
            self._seen_ids.add(event_id)
        elif len(self.seen) > _SCANNED:
            self._seen_ids = _ids_of(self.seen)

    def keep_seen(self, kept: list[SeenEvent]) -> None:
        """Replace the seen list by the part of it pruning kept."""
        self.seen = kept or NO_RECORDS
        self._seen_ids = _ids_of(kept)

    def marks_for(self, rule_id: str) -> list[AlertMark]:
        return [mark for mark in self.alerts if mark.rule_id == rule_id]

    def add_mark(self, mark: AlertMark) -> None:
        if self.alerts:
            self.alerts.append(mark)
        else:
            self.alerts = [mark]


_Record = TypeVar("_Record", bound=Timed)


def insert_in_time_order(records: list[_Record], record: _Record) -> None:
    """Insert keeping `time_key` order: an append in the common case (events mostly arrive in time order)."""
    if not records or time_key(records[-1]) <= time_key(record):
        records.append(record)
    else:
        insort(records, record, key=time_key)
