"""The worker's answers about positions after a rebalance, with the consumer's view of the broker given (this tier
has no broker): when a partition counts as caught up (its clock may then follow the wall clock, firing deadlines),
and when a partition nothing came from is sought back to its committed offset (Faust kept its old position).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from faust.types import TP

from safeguard.settings import KafkaSettings, Settings
from schemas.topics import CONTACTS
from streams.app import Worker

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

CONTACTS_0 = TP(CONTACTS.name, 0)


@dataclass
class Positions:
    """What Faust's consumer knows of one partition: assigned, its end, its committed offset, where it reads."""

    assigned: set[TP] = field(default_factory=lambda: {CONTACTS_0})
    highwaters: dict[TP, int] = field(default_factory=dict)
    _committed_offset: dict[TP, int] = field(default_factory=dict)
    positions: dict[TP, int] = field(default_factory=dict)
    sought: list[dict[TP, int]] = field(default_factory=list)

    def assignment(self) -> set[TP]:
        return self.assigned

    def highwater(self, tp: TP) -> int | None:
        return self.highwaters.get(tp)

    async def position(self, tp: TP) -> int | None:
        return self.positions.get(tp)

    async def seek_wait(self, partitions: dict[TP, int]) -> None:
        self.sought.append(dict(partitions))
        self.positions.update(partitions)


@pytest.fixture
def worker() -> Worker:
    settings = Settings(_env_file=None, kafka=KafkaSettings(bootstrap_servers="127.0.0.1:9"))
    return Worker(settings, "127.0.0.1:9", clock=lambda: datetime(2026, 11, 23, 12, tzinfo=UTC))


def _given(worker: Worker, positions: Positions) -> Positions:
    worker.app.consumer = positions  # type: ignore[assignment]
    return positions


def test_a_partition_with_nothing_to_read_again_after_a_rebalance_is_caught_up(worker: Worker) -> None:
    """Before 2026-12-07 only a partition with a record read since the rebalance could be: a quiet partition's
    deadlines never fired again (ten da_contact_overdue of the rebalance test)."""
    given = _given(worker, Positions(highwaters={CONTACTS_0: 40}, _committed_offset={CONTACTS_0: 40}))
    assert worker._caught_up(CONTACTS.name, 0)
    given._committed_offset[CONTACTS_0] = 39  # one record not yet applied (or not yet committed)
    assert not worker._caught_up(CONTACTS.name, 0)
    worker._read_offsets[(CONTACTS.name, 0)] = 39  # read since: the last record is applied
    assert worker._caught_up(CONTACTS.name, 0)
    given.assigned = set()  # moved to another worker
    assert not worker._caught_up(CONTACTS.name, 0)


def test_a_partition_nothing_came_from_with_the_consumer_past_its_committed_offset_is_sought_back(
    worker: Worker,
) -> None:
    given = _given(
        worker,
        Positions(highwaters={CONTACTS_0: 50}, _committed_offset={CONTACTS_0: 30}, positions={CONTACTS_0: 50}),
    )

    async def two_looks() -> list[dict[TP, int]]:
        await worker._seek_again()
        first = list(given.sought)
        await worker._seek_again()  # a second later, still nothing delivered, still at 50
        return first

    assert asyncio.run(two_looks()) == [], "one look is not enough: records may be on their way to the agent"
    assert given.sought == [{CONTACTS_0: 30}]
    assert worker.fence.rewinding
    assert not worker._caught_up(CONTACTS.name, 0), "not caught up while records are read again"


def test_a_partition_read_from_its_committed_offset_is_left_alone(worker: Worker) -> None:
    given = _given(
        worker,
        Positions(highwaters={CONTACTS_0: 50}, _committed_offset={CONTACTS_0: 30}, positions={CONTACTS_0: 30}),
    )

    async def looks() -> None:
        for _ in range(3):
            await worker._seek_again()

    asyncio.run(looks())
    assert given.sought == [] and not worker.fence.rewinding
