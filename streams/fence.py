"""Each partition's records are applied in offset order from the committed offset, none skipped.

Faust's fetcher does not guarantee it around a rebalance. Seen on 2026-12-07 with two workers (the rebalance test
of tests/integration/test_worker_rocksdb.py): after the seek to the committed offset 1162, the first record
delivered was 1526, from the position before the rebalance; Faust took 1163..1525 for a gap in the log
(`Consumer._add_gap`) and counted them as done, so its next commit could pass records this worker never applied
(a crash then loses them), and records arrived out of order (alerts raised late, or with other evidence).

The worker asks the fence about every record before applying it. A record past the next one is held back: not
applied, not acknowledged (so no commit passes it), and the partition is sought back to the next offset, so the
records in between come (again) first. Only if the log keeps answering a seek with a later record (offsets that
hold no record, such as transaction markers) is the range taken for a gap, once the fence has sought
`seeks_before_gap` times, `retry_after_s` apart; the worker then marks it for Faust's commit.

Pure bookkeeping: the worker passes the committed offset and the time, and carries out the seeks and gaps.
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
    answered_past: int = 0
    """Seeks answered with a record past `to` (not one of those queued before the seek: it came `retry_after_s` on)."""


@dataclass
class _Partition:
    next: int
    rewind: _Rewind | None = None


@dataclass
class OffsetFence(Generic[P]):
    retry_after_s: float = 5.0
    seeks_before_gap: int = 3
    _partitions: dict[P, _Partition] = field(default_factory=dict)
    _seeks: dict[P, int] = field(default_factory=dict)
    _gaps: list[tuple[P, int, int]] = field(default_factory=list)
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
        rewind = partition.rewind
        if rewind is None:
            partition.rewind = _Rewind(to=partition.next, sought_at=now)
            self._seeks[tp] = partition.next
        elif now - rewind.sought_at >= self.retry_after_s:
            rewind.answered_past += 1
            if rewind.answered_past >= self.seeks_before_gap:
                self._gaps.append((tp, partition.next, offset - 1))
                partition.next = offset + 1
                partition.rewind = None
                return Verdict.APPLY
            rewind.sought_at = now
            self._seeks[tp] = partition.next
        self.held += 1
        return Verdict.HOLD

    def seen(self, tp: P) -> bool:
        """A record of `tp` has been asked about since the fence last forgot it (the last rebalance)."""
        return tp in self._partitions

    def rewind(self, tp: P, to: int, *, now: float) -> None:
        """Seek `tp` back to `to`, a partition nothing was delivered from since the rebalance although the consumer's
        position is past its committed offset `to` (Faust did not read it again from there)."""
        partition = self._partitions.setdefault(tp, _Partition(next=to))
        partition.next = to
        partition.rewind = _Rewind(to=to, sought_at=now)
        self._seeks[tp] = to

    def overdue(self, now: float) -> None:
        """Seek again where a seek brought nothing within `retry_after_s` (the fetcher may have missed it)."""
        for tp, partition in self._partitions.items():
            rewind = partition.rewind
            if rewind is not None and now - rewind.sought_at >= self.retry_after_s:
                rewind.sought_at = now
                self._seeks[tp] = rewind.to

    @property
    def rewinding(self) -> bool:
        """Some partition waits for the records it was sought back to."""
        return any(partition.rewind is not None for partition in self._partitions.values())

    def take_seeks(self) -> dict[P, int]:
        """The partitions to seek back, each to its next offset (asked once per seek)."""
        seeks, self._seeks = self._seeks, {}
        return seeks

    def take_gaps(self) -> list[tuple[P, int, int]]:
        """Offset ranges (first, last) the log answered seeks past: offsets with no record, for Faust's commit."""
        gaps, self._gaps = self._gaps, []
        return gaps

    def forget(self, tps: set[P] | None = None) -> None:
        """After a rebalance: these partitions (all, by default) start again from their committed offsets."""
        for tp in list(self._partitions) if tps is None else tps:
            self._partitions.pop(tp, None)
            self._seeks.pop(tp, None)
