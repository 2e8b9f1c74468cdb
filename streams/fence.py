"""Each partition's records are applied in offset order from the committed offset, none skipped.

Faust's fetcher does not guarantee it around a rebalance. Seen on 2026-12-07 with two workers (the rebalance test
of tests/integration/test_worker_rocksdb.py): after the seek to the committed offset 1162, the first record
delivered was 1526, from the position before the rebalance; Faust took 1163..1525 for a gap in the log
(`Consumer._add_gap`) and counted them as done, so its next commit could pass records this worker never applied
(a crash then loses them), and records arrived out of order (alerts raised late, or with other evidence).

The worker asks the fence about every record before applying it. A record past the next one is held back: not
applied, not acknowledged (so no commit passes it), and the partition is sought back to the next offset, so the
records in between come (again) first; the seek is repeated every `retry_after_s` until they do (a seek can be
undone by records Faust fetched before it). The fence never skips: a partition whose log has no record at the
next offset (a transactional producer's markers; the contract topics are written without transactions) stalls
there, and the worker says so as an error, rather than lose records. (A first version took a range for a gap
after three seeks answered past it; under load, records queued before the seeks answered, and a contact was lost.)

Pure bookkeeping: the worker passes the committed offset and the time, and carries out the seeks.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

P = TypeVar("P", bound=Hashable)
"""A partition's key: the worker's is Faust's `TP`."""


class Verdict(enum.Enum):
    APPLY = "apply"
    """The next record, or one already applied (read again: the rule state dedupes it by event id)."""
    HOLD = "hold"
    """Past the next record: not applied nor acknowledged; the partition is read again from the next offset."""


@dataclass
class _Rewind:
    to: int
    sought_at: float
    seeks: int = 1


@dataclass
class _Partition:
    next: int
    rewind: _Rewind | None = None


@dataclass
class OffsetFence(Generic[P]):
    retry_after_s: float = 5.0
    _partitions: dict[P, _Partition] = field(default_factory=dict)
    _seeks: dict[P, int] = field(default_factory=dict)
    held: int = 0
    """Records held back so far (for the worker's log)."""

    def admit(self, tp: P, offset: int, *, committed: int | None, now: float) -> Verdict:
        """Whether to apply the record at `offset` of `tp` now. `committed`: the group's next offset to read for
        `tp` (None when it has none: then the first record read starts the partition)."""
        partition = self._partitions.get(tp)
        if partition is None:
            partition = self._partitions[tp] = _Partition(next=offset if committed is None else committed)
        if offset < partition.next:
            return Verdict.APPLY
        if offset == partition.next:
            partition.next = offset + 1
            partition.rewind = None
            return Verdict.APPLY
        if partition.rewind is None:
            partition.rewind = _Rewind(to=partition.next, sought_at=now)
            self._seeks[tp] = partition.next
        else:
            self._seek_again_if_due(tp, partition.rewind, now)
        self.held += 1
        return Verdict.HOLD

    def seen(self, tp: P) -> bool:
        """A record of `tp` has been asked about since the fence last forgot it (the last rebalance)."""
        return tp in self._partitions

    def waiting_for(self, tp: P) -> int | None:
        """The next offset of `tp` to apply; None when `tp` is not seen yet or a seek back is under way (`overdue`
        repeats that one's seeks)."""
        partition = self._partitions.get(tp)
        return None if partition is None or partition.rewind is not None else partition.next

    def rewind(self, tp: P, to: int, *, now: float) -> None:
        """Seek `tp` back to `to`: the consumer's position is past `to` and nothing comes, because Faust did not read
        the partition again from its committed offset after a rebalance, or dropped the records it had fetched."""
        partition = self._partitions.setdefault(tp, _Partition(next=to))
        partition.next = to
        partition.rewind = _Rewind(to=to, sought_at=now)
        self._seeks[tp] = to

    def overdue(self, now: float) -> None:
        """Seek again where a seek brought nothing within `retry_after_s` (no record arrives to ask the fence)."""
        for tp, partition in self._partitions.items():
            if partition.rewind is not None:
                self._seek_again_if_due(tp, partition.rewind, now)

    def _seek_again_if_due(self, tp: P, rewind: _Rewind, now: float) -> None:
        if now - rewind.sought_at >= self.retry_after_s:
            rewind.seeks += 1
            rewind.sought_at = now
            self._seeks[tp] = rewind.to

    def stalled(self, seeks: int) -> dict[P, int]:
        """Partitions sought back at least `seeks` times without their next record coming: each with that offset."""
        return {
            tp: partition.rewind.to
            for tp, partition in self._partitions.items()
            if partition.rewind is not None and partition.rewind.seeks >= seeks
        }

    @property
    def rewinding(self) -> bool:
        """Some partition waits for the records it was sought back to."""
        return any(partition.rewind is not None for partition in self._partitions.values())

    def take_seeks(self) -> dict[P, int]:
        """The partitions to seek back, each to its next offset (asked once per seek)."""
        seeks, self._seeks = self._seeks, {}
        return seeks

    def forget(self, tps: set[P] | None = None) -> None:
        """After a rebalance: these partitions (all, by default) start again from their committed offsets."""
        for tp in list(self._partitions) if tps is None else tps:
            self._partitions.pop(tp, None)
            self._seeks.pop(tp, None)
