"""What a rule is: its metadata, its typed parameters and pure functions from state to findings.

A rule never raises an alert itself. Its `evaluate` (and, for deadline rules, `due`) returns
`Finding`s: "the condition holds at this event time, with this evidence". The engine then applies
what is shared by every rule (cooldown, one alert per entity, deterministic ids). Window, count and
deadline rules are built by `streams.rules.builders`, so their modules state only their condition.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeAlias, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

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
from schemas.types import Severity, SubjectType
from streams.rules.durations import Duration
from streams.rules.obligations import DaObligation
from streams.rules.state import HistoryKind, SubjectState

RuleInput: TypeAlias = (
    ContactReceived
    | ContactDecided
    | MissingReported
    | MissingFound
    | MissingReturnInterview
    | DomesticIncidentRecorded
    | CpPlanStarted
    | CpPlanEnded
    | DaObligation
)
"""What the rules read: any agency event, or an incident child obligation re-keyed onto a child."""


def _longer_than_zero(value: Duration) -> Duration:
    if value.is_zero:
        raise ValueError("must be longer than zero")
    return value


PositiveDuration = Annotated[Duration, AfterValidator(_longer_than_zero)]
"""A window, lookback or deadline: an ISO 8601 duration longer than zero."""


class ParamsModel(BaseModel):
    """Frozen and closed: a misspelt key in a rules file is an error, never silently ignored."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class RuleParams(ParamsModel):
    """Settings every rule has. Each rule's model adds its own, with the rules.md defaults."""

    enabled: bool = Field(default=True, description="whether the rule runs at all for this partnership")


P = TypeVar("P", bound=RuleParams)


@dataclass(frozen=True)
class Finding:
    """The rule's condition holds: when (event time), on what evidence, and what to tell the manager.

    `entity` names the thing a per-entity rule alerts about at most once (an episode, a plan, an
    incident); count rules leave it unset and rely on the cooldown.
    """

    triggered_at: datetime
    evidence_event_ids: tuple[str, ...]
    severity: Severity
    la_code: str
    summary: str
    entity: str | None = None
    threshold: int | None = None
    count: int | None = None
    window: Duration | None = None


@dataclass(frozen=True, kw_only=True)
class DeadlineSpec(Generic[P]):
    """How a deadline rule fires: which topic's partition clock drives it, and what is due by a clock."""

    clock_topic: str
    due: Callable[[SubjectState, datetime, P], list[Finding]]
    pending: Callable[[SubjectState, P], list[tuple[str, datetime]]]
    """(entity, deadline) of every duty not answered in time, alerted or not; the engine drops alerted ones."""


@dataclass(frozen=True, kw_only=True)
class RuleDefinition(Generic[P]):
    """One rule of the catalogue (rules.md): self-describing metadata plus its pure functions."""

    rule_id: str
    version: int
    description: str
    source: str
    subject_type: SubjectType
    input_event_types: frozenset[str]
    params_model: type[P]
    reads: frozenset[HistoryKind]
    evaluate: Callable[[SubjectState, RuleInput, P], list[Finding]]
    cooldown: Callable[[P], Duration | None]
    """The effective cooldown: rules.md's default is the rule's window; per-entity rules have none."""
    retention: Callable[[P], tuple[Duration, ...]]
    """How far back, from the subject's newest event, the rule needs its history (see `window_retention`)."""
    keeps_history_forever: bool = False
    deadline: DeadlineSpec[P] | None = None

    def default_params(self) -> P:
        return self.params_model()


def no_findings(state: SubjectState, item: RuleInput, params: Any) -> list[Finding]:
    """`evaluate` of a deadline rule: its inputs only change state; `advance` does the firing."""
    return []


def window_retention(window: Duration, cooldown: Duration) -> tuple[Duration, ...]:
    """How long a window rule keeps its history: window + the longer of window and cooldown.

    A late event is then counted exactly (all its window partners still kept) when it is at most the
    longer of window and cooldown older than the subject's newest event. The two spans are compared
    at each record's own time, because months and days do not compare in general.
    """
    return (window + window, window + cooldown)


def utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def alert_id(rule_id: str, subject_type: SubjectType, subject_id: str, evidence_event_ids: tuple[str, ...]) -> str:
    """Deterministic: the same rule, subject and evidence always give the same id (32 hex characters)."""
    material = "|".join((rule_id, subject_type, subject_id, *sorted(evidence_event_ids)))
    return hashlib.sha256(material.encode("utf-8")).hexdigest()[:32]


def pseudonym_label(subject_type: SubjectType, subject_id: str) -> str:
    """`Child 5f2c…e1`: enough of the pseudonym to find the case, nothing more."""
    noun = "Child" if subject_type == "child" else "Household"
    return f"{noun} {subject_id[:4]}…{subject_id[-2:]}"


def times(count: int) -> str:
    return "once" if count == 1 else f"{count} times"
