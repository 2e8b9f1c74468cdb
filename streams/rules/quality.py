"""The data-quality checks (`schemas.quality`) against the rule state the worker keeps per child. Pure.

The checks read a child's plans and missing episodes through `schemas.quality.ChildHistory`; `StateHistory`
is that view of a `SubjectState`: plans from its `plans` (kept for ever), episodes from its missing reports
(when each began) and its return-interview duties (when the child was found). The state holds what the
enabled rules read, for as long as they read it, so an episode older than the missing rules' retention is not
compared any more (docs/history-import.md, "Data-quality checks").

`check_input` is what `streams.processor` calls before it applies an event: the findings, and whether the
event still goes on to the rules.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import NamedTuple
from uuid import UUID

from schemas.codec import parse_json_object
from schemas.errors import ContractError
from schemas.events import AgencyEvent
from schemas.quality import (
    EpisodeSpan,
    PlanSpan,
    QualityFinding,
    feeds,
    finding,
    finding_of_fields,
    history_breaches,
    value_breaches,
)
from streams.rules.history import holds_event
from streams.rules.state import SubjectState

_CHECKED = frozenset({"cp_plan.started", "cp_plan.ended", "missing.reported", "missing.found"})
"""The event types a history check reads (the rest pass unchecked, at no cost)."""


class StateHistory:
    """A child's `SubjectState` as the history the checks read."""

    __slots__ = ("_episodes", "_state")

    def __init__(self, state: SubjectState) -> None:
        self._state = state
        self._episodes: list[EpisodeSpan] | None = None

    def plans(self) -> Iterator[PlanSpan]:
        for plan in self._state.plans:
            yield PlanSpan(plan.plan_id, plan.started_at, plan.ended_at)

    def episodes(self) -> Iterator[EpisodeSpan]:
        """Worked out once per view: the checks of one event ask several times, and the state does not change."""
        if self._episodes is None:
            self._episodes = list(self._episode_spans())
        return iter(self._episodes)

    def _episode_spans(self) -> Iterator[EpisodeSpan]:
        found = {duty.episode_id: duty.found_at for duty in self._state.return_interviews}
        reported: dict[str, datetime] = {}
        for report in self._state.missing_reports:
            reported.setdefault(report.episode_id, report.occurred_at)
        for episode_id in reported.keys() | found.keys():
            yield EpisodeSpan(episode_id, reported.get(episode_id), found.get(episode_id))


class Checked(NamedTuple):
    """The findings of one event, and whether it still goes on to the rules."""

    findings: list[QualityFinding]
    feeds: bool


PASSED = Checked([], True)


def check_input(state: SubjectState, event: AgencyEvent, found_at: datetime) -> Checked:
    """Check an event against its child's state before it is applied (an event already applied, or a purge, is not
    checked: its findings were made the first time)."""
    if event.event_type not in _CHECKED or event.purge or state.has_seen(event.event_id):
        return PASSED
    if state.plans and holds_event(state, event.event_id):
        return PASSED
    breaches = history_breaches(StateHistory(state), event)
    if not breaches:
        return PASSED
    fed = feeds(breaches)
    return Checked([finding(b, event, fed=fed, found_by="worker", found_at=found_at) for b in breaches], fed)


def check_dead_lettered(value: bytes | None, found_at: datetime) -> list[QualityFinding]:
    """The value checks (8905/8910, 8866, 1006) of a record the intake dead-lettered: a contract event cannot hold a
    code outside the contract's lists, so this is where the worker meets them. The record stays a dead letter (not
    fed); the finding names its national rule. Only a record claiming a UUID event id can be named. Never raises.
    """
    if not value:
        return []
    try:
        fields = parse_json_object(value)
    except (ContractError, ValueError, RecursionError):
        return []
    event_id = fields.get("event_id")
    if not isinstance(event_id, str) or not _is_uuid(event_id):
        return []
    try:
        return [
            finding_of_fields(b, fields, event_id=event_id, fed=False, found_by="worker", found_at=found_at)
            for b in value_breaches(fields)
        ]
    except ValueError:  # a field the finding keeps has a shape the model refuses: the dead letter alone says it
        return []


def _is_uuid(text: str) -> bool:
    try:
        return str(UUID(text)) == text.lower() and len(text) == 36
    except ValueError:
        return False
