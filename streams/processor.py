"""The stateful step between intake and the alerts topic: per-subject state, partition clocks, deadlines.

Framework-free and I/O-free: the Faust worker passes its tables in as mutable mappings and sends what
comes back (alerts, re-keyed obligations). New states are held back (`pending_writes`) until the caller
has the alerts they raised safely published, and only then written with `flush()`: a state written
before its alerts are delivered would, after a crash, dedupe the replayed event and lose the alert.

All rule arithmetic is in `streams.rules`; this module only decides *which* state a rule call reads
and writes, which partition clock moves, and which subjects' deadlines that clock has reached.

State lives in two tables, keyed as the topics are (children by `child_id`, households by
`household_id`), so each table partition holds the subjects of the same-numbered topic partition.
Partition clocks (rules.md "Deadline rules") are kept per (topic, partition) for the topics that
drive deadlines, and persisted by the worker so a restart does not move them back.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from schemas.alerts import AlertRaised
from schemas.deadletter import DeadLetter
from schemas.events import AgencyEvent, DomesticIncidentRecorded
from schemas.quality import QualityFinding
from schemas.topics import topic_for
from schemas.types import SubjectType
from streams.rules import (
    Catalogue,
    DaObligation,
    Outcome,
    PartitionClock,
    RuleInput,
    SubjectState,
    advance,
    evaluate,
    next_deadlines,
    obligations_from_incident,
    subject_of,
)
from streams.rules.codec import decode_state, encode_state, holds_any
from streams.rules.history import HISTORY
from streams.rules.quality import PASSED, check_input
from streams.rules.state import HistoryKind

StateTable = MutableMapping[str, Any]
"""A table of subject id → `encode_state(state)` bytes (a Faust table, or a dict in tests); older
tables may still hold version-1 JSON, upgraded as it is read."""

ClockKey = tuple[str, int]
"""(topic, partition) of a partition clock."""


@dataclass
class Step:
    """What one input (or one timer tick) produced: alerts to publish and obligations to re-key by child."""

    outcome: Outcome | None = None
    alerts: list[AlertRaised] = field(default_factory=list)
    obligations: list[DaObligation] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    findings: list[QualityFinding] = field(default_factory=list)
    """Data-quality findings (`streams.rules.quality`) of the input, for the findings topic."""
    held: bool = False
    """The input was flagged by a check whose events do not feed the rules: not applied (state unchanged)."""


class RuleProcessor:
    """Applies inputs to subject state and fires deadlines. One instance per worker; not thread-safe.

    `partition_of(subject_id)` gives the partition a subject lives on (the topics' key partitioner);
    it is used only to rebuild the deadline index from the tables after a restart.
    """

    def __init__(
        self,
        catalogue: Catalogue,
        *,
        children: StateTable,
        households: StateTable,
        partition_of: Callable[[str], int],
        cache_size: int = 50_000,
    ) -> None:
        self.catalogue = catalogue
        self.tables: dict[SubjectType, StateTable] = {"child": children, "household": households}
        self.partition_of = partition_of
        self.clocks: dict[ClockKey, PartitionClock] = {}
        self._deadlines: dict[ClockKey, dict[str, datetime]] = {}
        self._queues: dict[ClockKey, list[tuple[datetime, str]]] = {}
        self._indexed = False
        self._cache: OrderedDict[tuple[SubjectType, str], SubjectState] = OrderedDict()
        self._cache_size = cache_size
        self._dirty: dict[tuple[SubjectType, str], SubjectState] = {}
        self._clock_topics: dict[SubjectType, tuple[str, ...]] = {
            subject: catalogue.clock_topics(subject) for subject in ("child", "household")
        }
        self._kind_topics = _window_kind_topics()
        # Clocks are kept for the deadline rules' topics and for the topics that feed window histories: a clock is
        # also how far its topic has been applied on its partition (`_progress`), whichever rules are enabled.
        self._all_clock_topics = frozenset(
            [*self._clock_topics["child"], *self._clock_topics["household"]]
            + [topic for topics in self._kind_topics.values() for topic in topics]
        )

    # --- inputs -------------------------------------------------------------------------------------

    def apply(self, item: AgencyEvent | DaObligation, *, topic: str, partition: int, raised_at: datetime) -> Step:
        """Apply one valid input read from `topic`[`partition`]: state, clocks, then any deadlines now due."""
        if not self._indexed:
            self._ensure_index()
        obligations = obligations_from_incident(item) if isinstance(item, DomesticIncidentRecorded) else []
        rule_input: RuleInput = item
        subject_type, subject_id = subject_of(rule_input)
        state = self._load(subject_type, subject_id)
        checked = PASSED if isinstance(item, DaObligation) else check_input(state, item, raised_at)
        if not checked.feeds:
            return Step(None, [], [], findings=checked.findings, held=True)
        if topic in self._all_clock_topics and not isinstance(item, DaObligation):
            # Before the rules: the clock is also how far this stream has been applied (`_progress`).
            key = (topic, partition)
            clock = self.clocks.get(key)
            self.clocks[key] = (clock or PartitionClock()).observe(
                item.occurred_at, wall_clock=raised_at, settings=self.catalogue.deadlines
            )
        try:
            result = evaluate(state, rule_input, raised_at, self.catalogue, progress=partial(self._progress, partition))
        except BaseException:
            self._evict(subject_type, subject_id)
            raise
        alerts = result.alerts  # a new list of each evaluation: the step's own
        if result.changed:
            # Pruning never drops a duty still waiting: unless a duty was opened, answered, alerted or purged,
            # the subject's next deadline is still the one indexed.
            self._store(result.state, partition, index=result.deadlines_changed)
        for clock_topic in self._clock_topics[subject_type]:
            key = (clock_topic, partition)
            queue = self._queues.get(key)
            if queue:
                clock = self.clocks.get(key)
                if clock is not None and clock.reading is not None and queue[0][0] <= clock.reading:
                    alerts += self._fire_due(key, raised_at)
        return Step(result.outcome, alerts, obligations, findings=checked.findings)

    # --- the live clock -----------------------------------------------------------------------------

    def tick(self, wall_clock: datetime, *, caught_up: Callable[[str, int], bool]) -> list[AlertRaised]:
        """On a timer: let caught-up partitions' clocks follow the wall clock, and fire what is then due."""
        self._ensure_index()
        alerts: list[AlertRaised] = []
        for key, clock in list(self.clocks.items()):
            moved = clock.tick(wall_clock, caught_up=caught_up(*key), settings=self.catalogue.deadlines)
            if moved != clock:
                self.clocks[key] = moved
            alerts += self._fire_due(key, wall_clock)
        return alerts

    def restore_clocks(
        self, saved: Iterable[tuple[ClockKey, PartitionClock]], *, wall_clock: datetime
    ) -> list[ClockKey]:
        """Clocks persisted by an earlier run: a clock never goes back, so each field takes the later value.

        A saved clock further ahead of `wall_clock` than `max_lead` (persisted before clocks were bounded) is
        brought back to that bound; the keys of such clocks are returned so the caller can say so.
        """
        reset: list[ClockKey] = []
        for key, clock in saved:
            bounded = clock.bounded(wall_clock, self.catalogue.deadlines)
            if bounded != clock:
                reset.append(key)
            current = self.clocks.get(key)
            self.clocks[key] = bounded if current is None else _merge(current, bounded)
        return reset

    @property
    def pending_deadlines(self) -> int:
        """How many subjects have an open deadline (for the worker's log)."""
        self._ensure_index()
        return sum(len(subjects) for subjects in self._deadlines.values())

    # --- internals ----------------------------------------------------------------------------------

    def _fire_due(self, key: ClockKey, raised_at: datetime) -> list[AlertRaised]:
        queue = self._queues.get(key)
        if not queue:
            return []
        clock = self.clocks.get(key)
        subjects = self._deadlines.get(key)
        if clock is None or clock.reading is None or not subjects or queue[0][0] > clock.reading:
            return []
        reading = clock.reading
        due: set[str] = set()
        while queue and queue[0][0] <= reading:
            deadline, subject_id = heapq.heappop(queue)
            if subjects.get(subject_id) == deadline:  # otherwise a stale entry: the deadline moved or closed
                due.add(subject_id)
        alerts: list[AlertRaised] = []
        topic, partition = key
        for subject_id in sorted(due):
            subject_type = self._subject_type_for(topic)
            state = self._load(subject_type, subject_id)
            try:
                result = advance(
                    state,
                    reading,
                    raised_at,
                    self.catalogue,
                    clock_topic=topic,
                    progress=partial(self._progress, partition),
                )
            except BaseException:
                self._evict(subject_type, subject_id)
                raise
            alerts += result.alerts
            self._store(result.state, partition)
        return alerts

    def _progress(self, partition: int, kind: HistoryKind) -> datetime | None:
        """How far the topics that feed `kind` have been applied on `partition`: the earliest of their partition
        clocks' readings (None when one has no clock here yet: nothing read from it, or nothing since a rebalance).

        The engine prunes the kind's records from no later than this (`streams.rules.history.prune`): topics are read
        at their own speeds, and a subject's newest event may come from a topic far ahead of this kind's.
        """
        topics = self._kind_topics.get(kind)
        if topics is None:
            return None
        earliest: datetime | None = None
        for topic in topics:
            clock = self.clocks.get((topic, partition))
            if clock is None or clock.reading is None:
                return None
            if earliest is None or clock.reading < earliest:
                earliest = clock.reading
        return earliest

    def _subject_type_for(self, clock_topic: str) -> SubjectType:
        return "child" if clock_topic in self._clock_topics["child"] else "household"

    def _load(self, subject_type: SubjectType, subject_id: str) -> SubjectState:
        """The subject's state: from the cache of recently used states, else decoded from the table."""
        cached = self._cache.get((subject_type, subject_id))
        if cached is not None:
            self._cache.move_to_end((subject_type, subject_id))
            return cached
        stored = self.tables[subject_type].get(subject_id)
        if stored is None:
            return SubjectState.empty(subject_type, subject_id)
        state = decode_state(subject_type, subject_id, stored)
        self._cache[(subject_type, subject_id)] = state
        return state

    def _evict(self, subject_type: SubjectType, subject_id: str) -> None:
        """Forget a working state a failed rule call may have half changed: it is read again from the table.

        Its changes since the last flush are lost with it; the inputs that made them were applied and their
        alerts stand, and a replay of them raises the same alert ids again (never fewer).
        """
        self._cache.pop((subject_type, subject_id), None)
        self._dirty.pop((subject_type, subject_id), None)

    def _store(self, state: SubjectState, partition: int, *, index: bool = True) -> None:
        key = (state.subject_type, state.subject_id)
        if self._cache.get(key) is not state:  # a state `_load` took from the cache is already the most recent
            self._cache[key] = state
        self._dirty[key] = state
        if index:
            self._index(state, partition)

    @property
    def pending_writes(self) -> int:
        """States changed since the last `flush()` (read from memory meanwhile, not yet in the tables)."""
        return len(self._dirty)

    def flush(self) -> int:
        """Write the changed states to the tables. Call it once the alerts and obligations they raised are published."""
        for (subject_type, subject_id), state in self._dirty.items():
            self.tables[subject_type][subject_id] = encode_state(state)
        written = len(self._dirty)
        self._dirty.clear()
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return written

    def forget_cached_states(self) -> None:
        """After a rebalance the tables may hold other partitions' states: decode afresh from them.

        Changed states not yet flushed stay: they are this worker's latest word on their subjects.
        """
        self._cache = OrderedDict((key, state) for key, state in self._cache.items() if key in self._dirty)
        self._deadlines.clear()
        self._queues.clear()
        self._indexed = False

    def _index(self, state: SubjectState, partition: int) -> None:
        deadlines = next_deadlines(state, self.catalogue)
        for clock_topic in self._clock_topics[state.subject_type]:
            subjects = self._deadlines.setdefault((clock_topic, partition), {})
            deadline = deadlines.get(clock_topic)
            if deadline is None:
                subjects.pop(state.subject_id, None)
            elif subjects.get(state.subject_id) != deadline:
                subjects[state.subject_id] = deadline
                heapq.heappush(self._queues.setdefault((clock_topic, partition), []), (deadline, state.subject_id))

    def _ensure_index(self) -> None:
        """After a restart the tables are recovered from their changelogs; the deadline index is rebuilt once."""
        if self._indexed:
            return
        self._indexed = True
        for subject_type, table in self.tables.items():
            if not self._clock_topics[subject_type]:
                continue
            kinds = self.catalogue.deadline_reads(subject_type)  # a state holding none of these has no open duty
            for subject_id, stored in table.items():
                if stored is None or (subject_type, subject_id) in self._dirty or not holds_any(stored, kinds):
                    continue
                self._index(decode_state(subject_type, subject_id, stored), self.partition_of(subject_id))
        for state in self._dirty.values():  # changed since the last flush: newer than what the tables hold
            if self._clock_topics[state.subject_type]:
                self._index(state, self.partition_of(state.subject_id))


def _window_kind_topics() -> dict[HistoryKind, tuple[str, ...]]:
    """Per window history kind, the contract topics whose events feed it (their clocks are its progress)."""
    return {
        spec.kind: tuple(sorted({topic_for(event_type).name for event_type in spec.inputs}))
        for spec in HISTORY
        if spec.retention == "window"
    }


def _merge(a: PartitionClock, b: PartitionClock) -> PartitionClock:
    def later(x: datetime | None, y: datetime | None) -> datetime | None:
        return y if x is None else x if y is None else max(x, y)

    return PartitionClock(
        newest_event_at=later(a.newest_event_at, b.newest_event_at), reading=later(a.reading, b.reading)
    )
