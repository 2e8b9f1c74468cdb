"""The data-quality checks (`schemas.quality`) in the importer, applied as the stream worker applies them.

The worker checks each event against the rule state it keeps per child before it applies it
(`streams.rules.quality`); the importer keeps the same history here, per child pseudonym, event by event in
the order it sends them, and checks each event against it the same way. An event a check flags is reported
(`ImportSummary.flag`) and published as a `QualityFinding`; it is sent on to the rules unless a check says its
dates are impossible (8925, 567), exactly as the worker would decide.

Two places call the checks: `QualityGate` for everything that needs the child's other records (8935, 8940, 574,
and 8840, 8925, 567 across records), and the mappers for what one record shows by itself: a plan or an episode
ending before it starts (`record_breaches`), and a code not in the list (`schemas.quality.value_breaches` on the
source's own code).

Memory: the history holds each child's plans and missing episodes (their ids and two times), for the whole
import, as the worker keeps plans for ever; contacts and referrals are not checked against history.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from schemas.events import AgencyEvent, Envelope
from schemas.quality import Breach, EpisodeSpan, PlanSpan, QualityFinding, feeds, finding, history_breaches

_PLAN_TYPES = frozenset({"cp_plan.started", "cp_plan.ended"})
_EPISODE_TYPES = frozenset({"missing.reported", "missing.found"})


class ImportHistory:
    """One child's plans and missing episodes seen so far (the earliest start and end of each, as the worker keeps)."""

    __slots__ = ("_episodes", "_plans")

    def __init__(self) -> None:
        self._plans: dict[str, tuple[datetime | None, datetime | None]] = {}
        self._episodes: dict[str, tuple[datetime | None, datetime | None]] = {}

    def plans(self) -> Iterator[PlanSpan]:
        for plan_id, (start, end) in self._plans.items():
            yield PlanSpan(plan_id, start, end)

    def episodes(self) -> Iterator[EpisodeSpan]:
        for episode_id, (reported, found) in self._episodes.items():
            yield EpisodeSpan(episode_id, reported, found)

    def feed(self, event: Envelope) -> None:
        """Record a plan's or an episode's start or end (the earliest of each wins, as in the worker's state)."""
        if event.event_type in _PLAN_TYPES:
            table, entity = self._plans, str(getattr(event, "plan_id", ""))
        elif event.event_type in _EPISODE_TYPES:
            table, entity = self._episodes, str(getattr(event, "episode_id", ""))
        else:
            return
        first, second = table.get(entity, (None, None))
        at = event.occurred_at
        if event.event_type in ("cp_plan.started", "missing.reported"):
            first = at if first is None or at < first else first
        else:
            second = at if second is None or at < second else second
        table[entity] = (first, second)


def record_breaches(opening: AgencyEvent, closing: AgencyEvent) -> list[Breach]:
    """The checks a closing event (a plan's end, an episode's find) breaks against its own record's opening event:
    what one row or element shows by itself, checked before the events are sorted by time."""
    history = ImportHistory()
    history.feed(opening)
    return history_breaches(history, closing)


class QualityGate:
    """The import's per-child histories, and the checks applied to each event before it is sent."""

    def __init__(self, found_at: datetime) -> None:
        self._children: dict[str, ImportHistory] = {}
        self._found_at = found_at

    def check(self, event: AgencyEvent) -> tuple[list[QualityFinding], bool]:
        """The findings of an event not sent before in this import, and whether it is to be sent (and recorded)."""
        child_id = getattr(event, "child_id", None)
        if event.event_type not in _PLAN_TYPES | _EPISODE_TYPES or not isinstance(child_id, str):
            return [], True
        history = self._children.get(child_id)
        if history is None:
            history = self._children[child_id] = ImportHistory()
        breaches = history_breaches(history, event)
        fed = feeds(breaches)
        if fed:
            history.feed(event)
        return self.findings(breaches, event, fed=fed), fed

    def findings(self, breaches: list[Breach], event: AgencyEvent, *, fed: bool) -> list[QualityFinding]:
        return [finding(b, event, fed=fed, found_by="importer", found_at=self._found_at) for b in breaches]
