"""Per-subject rule state: the event-time history the rules need, as mutable working state.

One `SubjectState` per child or household. The engine changes a state in place (no copy per event)
and says whether it changed; `streams.rules.codec` turns it into the compact, versioned bytes the
worker's tables and changelogs hold. Records are small immutable tuples; each history list is kept
in its declared order by insertion (`streams.rules.history`), never re-sorted. All times are event
times (`occurred_at`) in UTC.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, NamedTuple, Protocol, TypeVar

from schemas.types import AbsenceType, AgencyType, DashRisk, Outcome, RiskLevel, SubjectType

NEVER = datetime.max.replace(tzinfo=UTC)
"""`SubjectState.prune_after` when nothing held can ever expire (an empty state, or only plans)."""

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


def from_micros(micros: int) -> datetime:
    """An event time held as integer epoch microseconds (UTC), as a datetime."""
    return EPOCH + timedelta(microseconds=micros)


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

_NO_ERASURES: frozenset[str] = frozenset()
"""The empty tombstone set every state starts with, shared (each state's own would be one more object to collect)."""


def _set_of(ids: list[str]) -> set[str] | None:
    return set(ids) if len(ids) > _SCANNED else None


_FIELDS = ("subject_type", "subject_id", "newest_event_at", "seen", "erased", *HISTORY_KINDS, "alerts")
"""What a state holds, in the order `content` compares it (`seen` is read from `seen_ids` and `seen_micros`)."""


def time_key(record: Timed) -> tuple[datetime, str]:
    """The one order every time-ordered history is kept and read in: event time, ties broken by event id."""
    return (record.occurred_at, record.event_id)


class SubjectState:
    """Everything the rules remember about one child or one household. Mutable: the engine changes it in place.

    `newest_event_at` is the subject's own event-time clock: pruning is relative to it, never to the
    wall clock. `seen` dedupes by event id (beyond a few ids a set beside it answers `has_seen`); it is held as two
    parallel lists, `seen_ids` and `seen_micros` (event times as integer epoch microseconds, as the stored form has
    them): one seen event costs no object of its own for the memory or the cyclic collector (the worker holds one per
    event of the last two years), and storing it converts nothing; `erased` holds
    purge tombstones (`episode:<id>`, `contact:<id>`, `plan:<id>`, `incident:<id>`) so an erased entity's
    events stay out whatever order they arrive in. Time-ordered lists (`seen`, missing reports, referrals,
    contacts, incidents) are in `time_key` order; duties and plans in entity-id order; marks as raised.

    `prune_after` and `touched` are bookkeeping, not content: nothing can expire while `newest_event_at` is
    at or before `prune_after` (None: not known, prune to find out), except what was kept from `touched` on
    (the earliest moment from which something added since, or something that may have stopped waiting for
    its deadline, is kept; None: nothing). The engine lowers `prune_after` by the shortest retention after
    `touched` before it decides whether to prune. Neither is stored or takes part in equality.
    """

    __slots__ = (
        *(name for name in _FIELDS if name != "seen"),
        "seen_ids",
        "seen_micros",
        "_seen_set",
        "prune_after",
        "touched",
    )

    _seen_set: set[str] | None

    subject_type: SubjectType
    subject_id: str
    newest_event_at: datetime | None
    seen_ids: list[str]
    seen_micros: list[int]
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
        self.keep_seen(sorted(seen, key=time_key))
        self.erased = frozenset(erased) or _NO_ERASURES
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
        state.seen_ids = NO_RECORDS
        state.seen_micros = NO_RECORDS
        state._seen_set = None
        state.erased = _NO_ERASURES
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
        twin.seen_ids = list(self.seen_ids) or NO_RECORDS
        twin.seen_micros = list(self.seen_micros) or NO_RECORDS
        twin._seen_set = None if self._seen_set is None else set(self._seen_set)
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
        return f"SubjectState({self.subject_type} {self.subject_id[:8]}…, seen={len(self.seen_ids)}, {held})"

    # --- the seen set -------------------------------------------------------------------------------

    @property
    def seen(self) -> list[SeenEvent]:
        """The seen event ids with their event times, in `time_key` order (a new list: change it with the methods)."""
        return [
            SeenEvent(event_id, from_micros(at)) for event_id, at in zip(self.seen_ids, self.seen_micros, strict=True)
        ]

    def has_seen(self, event_id: str) -> bool:
        ids = self._seen_set
        if ids is not None:
            return event_id in ids
        return event_id in self.seen_ids  # a few ids: scanned (a set each would cost more than it saves)

    def add_seen(self, event_id: str, occurred_at: datetime) -> None:
        """Remember an applied event id, in event-time order (ties by event id, as `time_key`)."""
        ids = self.seen_ids
        micros = (occurred_at - EPOCH) // MICROSECOND
        if not ids:
            self.seen_ids = [event_id]
            self.seen_micros = [micros]
            self.touch(occurred_at)
            return
        times = self.seen_micros
        if micros > times[-1] or (micros == times[-1] and event_id >= ids[-1]):
            ids.append(event_id)  # the common case: the subject's newest event
            times.append(micros)
        else:
            if (micros, event_id) < (times[0], ids[0]):
                self.touch(occurred_at)  # the new oldest id may expire sooner than what was held
            low = bisect_left(times, micros)
            at = bisect_right(ids, event_id, low, bisect_right(times, micros, low))
            ids.insert(at, event_id)
            times.insert(at, micros)
        if self._seen_set is not None:
            self._seen_set.add(event_id)
        elif len(ids) > _SCANNED:
            self._seen_set = set(ids)

    def keep_seen(self, kept: list[SeenEvent]) -> None:
        """Replace the seen ids by these, already in `time_key` order."""
        self.set_seen(
            [event.event_id for event in kept], [(event.occurred_at - EPOCH) // MICROSECOND for event in kept]
        )

    def set_seen(self, ids: list[str], times: list[int]) -> None:
        """Replace the seen ids by these, with their event times in epoch microseconds (parallel lists, already in
        `time_key` order; the state takes them)."""
        self.seen_ids = ids or NO_RECORDS
        self.seen_micros = times or NO_RECORDS
        self._seen_set = _set_of(ids)

    def forget_oldest_seen(self, count: int) -> None:
        """Drop the `count` oldest seen ids (pruning), in place: the set beside the lists loses just those."""
        ids = self.seen_ids
        if count >= len(ids):
            self.set_seen([], [])
            return
        held = self._seen_set
        if held is not None:
            if len(ids) - count > _SCANNED:
                held.difference_update(ids[:count])
            else:
                self._seen_set = None
        del ids[:count]
        del self.seen_micros[:count]

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
