"""Data-quality checks of rules.md ("Data-quality checks"), from the national CIN census and SSDA903 validators.

One small check per national rule, each with its metadata (national id, name, message, the event types it
reads, whether an event it flags still feeds the rules), applied the same way by the history importer and
by the stream worker. Pure: no I/O, no clock (the time a finding is made comes in), nothing of the project
beyond `schemas`.

Two kinds:

- **history checks** read one event and the child's history before it (`ChildHistory`: the plans and missing
  episodes seen so far). The worker gives them a view of the rule state it keeps per child
  (`streams.rules.quality`); the importer a history it builds the same way, event by event
  (`producers.history.quality`). 8925, 8840, 8935, 8940 (plans), 567, 574 (missing episodes).
- **value checks** read one event's fields as the source gave them, before the contract's code lists are
  applied: 8905/8910 (category), 8866 (referral source), 1006 (missing or away). A contract event cannot hold
  such a value (its enums refuse it), so the worker applies them to the fields of a record its intake
  dead-letters; the importer to the source's own codes.

Each finding is a `QualityFinding` on `safeguarding.quality-findings.v1`, stored by the sink in
`quality_findings`. Its id is derived from the rule and the event id only, so the importer and the worker
flagging the same event make one row. Messages name dates and codes, never an identifier.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NamedTuple, Protocol, get_args
from zoneinfo import ZoneInfo

from pydantic import TypeAdapter, ValidationError

from schemas.errors import DecodeError, InvalidEvent, Issue
from schemas.events import ContractModel, Envelope
from schemas.identifiers import is_pseudonym
from schemas.types import AbsenceType, ContactSource, Flag, PlanCategory, Pseudonym, Timestamp

_NAMESPACE = uuid.UUID("8c1d6e2a-3f4b-4a5c-9d7e-0b1a2c3d4e5f")
_ENGLAND = ZoneInfo("Europe/London")

FoundBy = Literal["importer", "worker"]


class QualityFinding(ContractModel):
    """One event found breaking a national data-quality rule: which rule, which event, what, and whether it was fed."""

    finding_id: str
    event_type: Literal["quality.finding"] = "quality.finding"
    schema_version: Literal[1] = 1
    rule_id: str
    """The national validator's rule id, e.g. `8925`."""
    check_name: str
    """The check's short name, e.g. `plan_ends_before_start`."""
    message: str
    event_id: str
    """The flagged event's id (for a value check in the worker: the id the dead-lettered record claims)."""
    checked_event_type: str
    la_code: str | None = None
    child_id: Pseudonym | None = None
    occurred_at: Timestamp | None = None
    fed: Flag
    """Whether the flagged event went on to the rules (see docs/history-import.md, "Data-quality checks")."""
    found_by: FoundBy
    found_at: Timestamp


_FINDING_ADAPTER: TypeAdapter[QualityFinding] = TypeAdapter(QualityFinding)


def decode_quality_finding(data: bytes | str) -> QualityFinding:
    """A finding from its wire form; DecodeError (not a JSON object) or InvalidEvent (not a finding) otherwise.

    The errors name fields and pydantic's messages, never the values (a raw identifier must not travel on)."""
    try:
        return _FINDING_ADAPTER.validate_json(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        if errors and errors[0]["type"] in {"json_invalid", "model_type", "model_attributes_type"}:
            raise DecodeError([Issue("", "the message is not a JSON object", "not_json")]) from None
        raise InvalidEvent(
            [Issue(".".join(str(part) for part in e["loc"]), e["msg"], "invalid") for e in errors]
        ) from None


def finding_id(rule_id: str, event_id: str) -> str:
    """Deterministic: one finding per rule and event, whoever finds it and however often."""
    return str(uuid.uuid5(_NAMESPACE, f"{rule_id}:{event_id}"))


# --- what a history check reads --------------------------------------------------------------------------------


class PlanSpan(NamedTuple):
    """A child protection plan as far as it has been seen (either end may not have arrived yet)."""

    plan_id: str
    started_at: datetime | None
    ended_at: datetime | None


class EpisodeSpan(NamedTuple):
    """A missing or away episode as far as it has been seen."""

    episode_id: str
    reported_at: datetime | None
    found_at: datetime | None


class ChildHistory(Protocol):
    """The child's plans and missing episodes seen before the event checked."""

    def plans(self) -> Iterable[PlanSpan]: ...

    def episodes(self) -> Iterable[EpisodeSpan]: ...


HistoryCondition = Callable[[ChildHistory, Envelope], str | None]
"""The condition of a history check: the message of what is wrong, or None."""
ValueCondition = Callable[[Mapping[str, Any]], str | None]
"""The condition of a value check, over the event's fields as the source gave them."""


@dataclass(frozen=True)
class QualityCheck:
    """One national rule: its metadata and its condition (exactly one of `history` and `value`)."""

    rule_id: str
    name: str
    description: str
    event_types: frozenset[str]
    feeds: bool
    """Whether an event this check flags still goes on to the rules: False where its dates (or type) are impossible."""
    history: HistoryCondition | None = None
    value: ValueCondition | None = None


def _day(moment: datetime) -> str:
    return moment.astimezone(_ENGLAND).date().isoformat()


def _same_plan(history: ChildHistory, plan_id: str) -> PlanSpan | None:
    return next((plan for plan in history.plans() if plan.plan_id == plan_id), None)


def _same_episode(history: ChildHistory, episode_id: str) -> EpisodeSpan | None:
    return next((ep for ep in history.episodes() if ep.episode_id == episode_id), None)


def _span(history: ChildHistory, event: Envelope) -> tuple[datetime | None, datetime | None]:
    """The (start, end) of the event's plan with the event itself taken into account."""
    plan = _same_plan(history, str(getattr(event, "plan_id", "")))
    start, end = (plan.started_at, plan.ended_at) if plan is not None else (None, None)
    if event.event_type == "cp_plan.started":
        start = event.occurred_at
    else:
        end = event.occurred_at
    return start, end


# --- history checks: plans --------------------------------------------------------------------------------------


def plan_ends_before_start(history: ChildHistory, event: Envelope) -> str | None:
    """8925: the plan's end is before its start (whichever of the two arrives second is flagged)."""
    start, end = _span(history, event)
    if start is None or end is None or end >= start:
        return None
    return f"the plan ends ({_day(end)}) before it starts ({_day(start)})"


def plan_ends_same_day(history: ChildHistory, event: Envelope) -> str | None:
    """8840: the plan ends on the day it starts (in England)."""
    start, end = _span(history, event)
    if start is None or end is None or end < start or _day(start) != _day(end):
        return None
    return f"the plan ends on the day it starts ({_day(start)})"


def second_open_plan(history: ChildHistory, event: Envelope) -> str | None:
    """8935: a plan starts while another plan of the child, started no later, has no end recorded."""
    plan_id = getattr(event, "plan_id", None)
    for plan in history.plans():
        open_before = plan.ended_at is None and plan.started_at is not None and plan.started_at <= event.occurred_at
        if plan.plan_id != plan_id and open_before:
            assert plan.started_at is not None
            started = _day(plan.started_at)
            return f"a plan starts ({_day(event.occurred_at)}) while another, started {started}, is open"
    return None


def overlapping_plans(history: ChildHistory, event: Envelope) -> str | None:
    """8940: a plan starts strictly inside another's start and end (a plan may start the day another ends)."""
    plan_id = getattr(event, "plan_id", None)
    start, end = _span(history, event)
    for other in history.plans():
        if other.plan_id == plan_id or other.started_at is None:
            continue
        if event.event_type == "cp_plan.started":
            if other.ended_at is not None and other.started_at < event.occurred_at < other.ended_at:
                return (
                    f"the plan starts ({_day(event.occurred_at)}) within another "
                    f"({_day(other.started_at)} to {_day(other.ended_at)})"
                )
        elif start is not None and end is not None and start < other.started_at < end:
            return f"another plan starts ({_day(other.started_at)}) within this one ({_day(start)} to {_day(end)})"
    return None


# --- history checks: missing episodes ---------------------------------------------------------------------------


def _episode_span(history: ChildHistory, event: Envelope) -> tuple[datetime | None, datetime | None]:
    episode = _same_episode(history, str(getattr(event, "episode_id", "")))
    reported, found = (episode.reported_at, episode.found_at) if episode is not None else (None, None)
    if event.event_type == "missing.reported":
        reported = event.occurred_at
    else:
        found = event.occurred_at
    return reported, found


def found_before_reported(history: ChildHistory, event: Envelope) -> str | None:
    """567: the child is found before the episode began (whichever of the two arrives second is flagged)."""
    reported, found = _episode_span(history, event)
    if reported is None or found is None or found >= reported:
        return None
    return f"the episode ends ({_day(found)}) before it starts ({_day(reported)})"


def overlapping_missing(history: ChildHistory, event: Envelope) -> str | None:
    """574: an episode starts strictly inside another episode of the child (start and end both known)."""
    episode_id = getattr(event, "episode_id", None)
    reported, found = _episode_span(history, event)
    for other in history.episodes():
        if other.episode_id == episode_id or other.reported_at is None:
            continue
        if event.event_type == "missing.reported":
            if other.found_at is not None and other.reported_at < event.occurred_at < other.found_at:
                return (
                    f"the episode starts ({_day(event.occurred_at)}) within another "
                    f"({_day(other.reported_at)} to {_day(other.found_at)})"
                )
        elif reported is not None and found is not None and reported < other.reported_at < found:
            return (
                f"another episode starts ({_day(other.reported_at)}) within this one "
                f"({_day(reported)} to {_day(found)})"
            )
    return None


# --- value checks -----------------------------------------------------------------------------------------------

CATEGORIES: frozenset[str] = frozenset(get_args(PlanCategory))
"""The CIN census's categories of abuse, as the contract lists them (NEG, PHY, SAB, EMO, MUL)."""
REFERRAL_SOURCES: frozenset[str] = frozenset(get_args(ContactSource))
"""The CIN census's referral sources, as the contract lists them (1A ... 10)."""
ABSENCE_TYPES: frozenset[str] = frozenset(get_args(AbsenceType))
"""missing (the 903's M) and away (A)."""


def _shown(value: Any) -> str:
    """A code as it was given when it has the shape of a code, else only what kind of value it was."""
    if isinstance(value, str) and 0 < len(value) <= 4 and value.isascii() and value.isalnum():
        return repr(value)
    if value is None:
        return "none"
    return f"a value of {len(value)} characters" if isinstance(value, str) else f"a {type(value).__name__}"


def _not_in(field: str, codes: frozenset[str], what: str) -> ValueCondition:
    def condition(fields: Mapping[str, Any]) -> str | None:
        value = fields.get(field)
        if isinstance(value, str) and value in codes:
            return None
        return f"{field} {_shown(value)} is not {what}"

    return condition


_START, _END = frozenset({"cp_plan.started"}), frozenset({"cp_plan.ended"})
_PLANS = _START | _END
_EPISODES = frozenset({"missing.reported", "missing.found"})
_MISSING = frozenset({"missing.reported", "missing.found", "missing.return_interview"})

CHECKS: tuple[QualityCheck, ...] = (
    QualityCheck("8925", "plan_ends_before_start", "a plan ends before it starts", _PLANS, False,
                 history=plan_ends_before_start),
    QualityCheck("8840", "plan_ends_same_day", "a plan ends on the day it starts", _PLANS, True,
                 history=plan_ends_same_day),
    QualityCheck("8935", "second_open_plan", "a second open plan for the same child", _START, True,
                 history=second_open_plan),
    QualityCheck("8940", "overlapping_plans", "two plans of the child overlap", _PLANS, True,
                 history=overlapping_plans),
    QualityCheck("567", "found_before_reported", "a missing episode ends before it starts", _EPISODES, False,
                 history=found_before_reported),
    QualityCheck("574", "overlapping_missing", "two missing episodes of the child overlap", _EPISODES, True,
                 history=overlapping_missing),
    QualityCheck("8905", "initial_category_not_in_list", "a plan's initial category of abuse is not in the list",
                 _START, True, value=_not_in("category", CATEGORIES, "a category of abuse (NEG, PHY, SAB, EMO, MUL)")),
    QualityCheck("8910", "latest_category_not_in_list", "a plan's latest category of abuse is not in the list",
                 _END, True, value=_not_in("category", CATEGORIES, "a category of abuse (NEG, PHY, SAB, EMO, MUL)")),
    QualityCheck("8866", "referral_source_not_valid", "a referral source is not a valid code",
                 frozenset({"contact.received"}), True,
                 value=_not_in("contact_source", REFERRAL_SOURCES, "a referral source code (1A ... 10)")),
    QualityCheck("1006", "missing_type_not_valid", "a missing episode's type is not missing (M) or away (A)",
                 _MISSING, False, value=_not_in("absence_type", ABSENCE_TYPES, "missing (M) or away (A)")),
)  # fmt: skip
"""Every check, by national rule id. 8905/8910 and 8866 are fed where the source allows (the other category; the
referral source `10`, unknown); 1006 cannot be (whether a child was missing or away changes what the episode is)."""

CHECKS_BY_ID: dict[str, QualityCheck] = {check.rule_id: check for check in CHECKS}
_EVENT_TYPES = frozenset(t for check in CHECKS for t in check.event_types)
_HISTORY = {t: tuple(c for c in CHECKS if c.history and t in c.event_types) for t in _EVENT_TYPES}
_VALUE = {t: tuple(c for c in CHECKS if c.value and t in c.event_types) for t in _EVENT_TYPES}


@dataclass(frozen=True)
class Breach:
    """A check an event failed, with the message saying how (before it becomes a `QualityFinding`)."""

    check: QualityCheck
    message: str


def history_breaches(history: ChildHistory, event: Envelope) -> list[Breach]:
    """The history checks `event` fails against the child's history before it."""
    breaches: list[Breach] = []
    for check in _HISTORY.get(event.event_type, ()):
        assert check.history is not None
        message = check.history(history, event)
        if message is not None:
            breaches.append(Breach(check, message))
    return breaches


def value_breaches(fields: Mapping[str, Any]) -> list[Breach]:
    """The value checks an event's fields (as the source gave them) fail; none for an unknown event type."""
    event_type = fields.get("event_type")
    if not isinstance(event_type, str):
        return []
    breaches: list[Breach] = []
    for check in _VALUE.get(event_type, ()):
        assert check.value is not None
        message = check.value(fields)
        if message is not None:
            breaches.append(Breach(check, message))
    return breaches


def feeds(breaches: Iterable[Breach]) -> bool:
    """Whether an event with these breaches still goes on to the rules (not when its dates are impossible)."""
    return all(breach.check.feeds for breach in breaches)


def finding(breach: Breach, event: Envelope, *, fed: bool, found_by: FoundBy, found_at: datetime) -> QualityFinding:
    """The finding of a contract event failing a check."""
    child_id = getattr(event, "child_id", None)
    return QualityFinding(
        finding_id=finding_id(breach.check.rule_id, event.event_id),
        rule_id=breach.check.rule_id,
        check_name=breach.check.name,
        message=breach.message,
        event_id=event.event_id,
        checked_event_type=event.event_type,
        la_code=event.la_code,
        child_id=child_id if isinstance(child_id, str) else None,
        occurred_at=event.occurred_at,
        fed=fed,
        found_by=found_by,
        found_at=found_at,
    )


def finding_of_fields(
    breach: Breach, fields: Mapping[str, Any], *, event_id: str, fed: bool, found_by: FoundBy, found_at: datetime
) -> QualityFinding:
    """The finding of raw fields failing a value check: only what has the contract's shape is kept (a child id that
    is not a pseudonym, an LA code that is not three digits, an unparsable time are left out)."""
    child_id = fields.get("child_id")
    la_code = fields.get("la_code")
    occurred_at = fields.get("occurred_at")
    try:
        at = datetime.fromisoformat(occurred_at) if isinstance(occurred_at, str) else None
    except ValueError:
        at = None
    return QualityFinding(
        finding_id=finding_id(breach.check.rule_id, event_id),
        rule_id=breach.check.rule_id,
        check_name=breach.check.name,
        message=breach.message,
        event_id=event_id,
        checked_event_type=str(fields.get("event_type")),
        la_code=la_code if isinstance(la_code, str) and len(la_code) == 3 and la_code.isdigit() else None,
        child_id=child_id if isinstance(child_id, str) and is_pseudonym(child_id) else None,
        occurred_at=at if at is not None and at.tzinfo is not None else None,
        fed=fed,
        found_by=found_by,
        found_at=found_at,
    )
