"""The worker's rule step over a list of events, in one process: no Kafka, no Faust, the same pure code.

What the worker would raise replaying the same events: each event applied on its key's partition (Kafka's
murmur2 partitioner, as the publisher and the worker place it), the deadline rules firing on the partition
clocks, and each domestic incident's obligations applied right after it on each child's partition (as if the
re-keying hop were instant). Used by the backtest (`safeguard rules backtest`) and by the integration tests as
the reference the real worker must agree with.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from schemas.alerts import AlertRaised
from schemas.events import AgencyEvent
from schemas.topics import message_key, topic_for
from streams.processor import RuleProcessor
from streams.rules import Catalogue, PartitionClock

PartitionOf = Callable[[str], int]
"""The partition of a message key (a child or household pseudonym)."""

OBLIGATIONS_TOPIC = "replay-da-obligations"
"""Stands for the worker's `<app_id>-da-obligations` topic: obligations move no clock, so only its name differs."""


def kafka_partitions(partitions: int) -> PartitionOf:
    """Kafka's default partitioner over `partitions` partitions: where the publisher puts a key, and the worker."""
    from streams.tables import murmur2_partition  # imports Faust: only when a caller wants the real placement

    return lambda key: murmur2_partition(key.encode("utf-8"), partitions)


class Replay:
    """Feeds events one at a time to a `RuleProcessor` with in-memory tables; `close` fires what is due at the end.

    `raised_at` is written on every alert and bounds the partition clocks (`max_lead` past it), exactly as the
    wall clock does in the worker: pass a time after the newest event (the present, for history).
    """

    def __init__(self, catalogue: Catalogue, *, partition_of: PartitionOf, raised_at: datetime) -> None:
        self.catalogue = catalogue
        self.raised_at = raised_at
        # A subject's partition is worked out once (Kafka's murmur2 in Python costs more than the lookup): the replay
        # holds every subject's state anyway, so one more entry per subject is little beside it.
        partitions: dict[str, int] = {}

        def remembered_partition_of(key: str) -> int:
            found = partitions.get(key)
            if found is None:
                found = partitions[key] = partition_of(key)
            return found

        self._partition_of = remembered_partition_of
        # States are never flushed: the processor keeps every changed state in memory, which is all a replay needs.
        self._processor = RuleProcessor(catalogue, children={}, households={}, partition_of=partition_of)

    def apply(self, event: AgencyEvent) -> list[AlertRaised]:
        """The alerts of one event (and of its obligations), in the order the worker would raise them."""
        processor, raised_at = self._processor, self.raised_at
        step = processor.apply(
            event,
            topic=topic_for(event.event_type).name,
            partition=self._partition_of(message_key(event)),
            raised_at=raised_at,
        )
        alerts = step.alerts
        for obligation in step.obligations:
            partition = self._partition_of(obligation.child_id)
            alerts += processor.apply(
                obligation, topic=OBLIGATIONS_TOPIC, partition=partition, raised_at=raised_at
            ).alerts
        return alerts

    def close(self, at: datetime, partitions: Iterable[int]) -> list[AlertRaised]:
        """Move every deadline clock on `partitions` to `at` (never back) and fire the deadlines now due.

        As a worker caught up at `at` would: a history that ends at `at` still says which duties went unanswered
        by then. Without it a deadline fires only once a later event on its partition moves the clock past it.
        """
        topics = dict.fromkeys(self.catalogue.clock_topics("child") + self.catalogue.clock_topics("household"))
        clocks = [((topic, partition), PartitionClock(at, at)) for topic in topics for partition in partitions]
        self._processor.restore_clocks(clocks, wall_clock=self.raised_at)
        return self._processor.tick(self.raised_at, caught_up=lambda _topic, _partition: False)


def replay_alerts(
    events: Iterable[AgencyEvent],
    catalogue: Catalogue,
    *,
    partitions: int,
    raised_at: datetime,
    close_at: datetime | None = None,
) -> list[AlertRaised]:
    """Every alert of replaying `events` in the order given (optionally closing the clocks at `close_at`)."""
    replay = Replay(catalogue, partition_of=kafka_partitions(partitions), raised_at=raised_at)
    alerts: list[AlertRaised] = []
    for event in events:
        alerts += replay.apply(event)
    if close_at is not None:
        alerts += replay.close(close_at, range(partitions))
    return alerts
