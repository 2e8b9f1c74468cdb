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
from schemas.topics import CONTACTS, MISSING_EPISODES
from streams.app import Worker, _clock_to_json
from streams.rules import PartitionClock

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

CONTACTS_0 = TP(CONTACTS.name, 0)
CONTACTS_1 = TP(CONTACTS.name, 1)
MISSING_0 = TP(MISSING_EPISODES.name, 0)


@dataclass
class Positions:
    """What Faust's consumer knows of one partition: assigned, its end, its committed offset, where it reads."""

    assigned: set[TP] = field(default_factory=lambda: {CONTACTS_0})
    highwaters: dict[TP, int] = field(default_factory=dict)
    _committed_offset: dict[TP, int] = field(default_factory=dict)
    positions: dict[TP, int] = field(default_factory=dict)
    sought: list[dict[TP, int]] = field(default_factory=list)
    starts: dict[TP, int] = field(default_factory=dict)
    """Where the broker says the group reads each partition from (its committed offset, else the log start)."""
    asked: list[set[TP]] = field(default_factory=list)

    def assignment(self) -> set[TP]:
        return self.assigned

    def highwater(self, tp: TP) -> int | None:
        return self.highwaters.get(tp)

    async def position(self, tp: TP) -> int | None:
        return self.positions.get(tp)

    async def group_starts(self, partitions: set[TP]) -> dict[TP, int]:
        self.asked.append(set(partitions))
        if not self.starts:
            raise ConnectionError("the broker is away")
        return {tp: self.starts[tp] for tp in partitions}

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


def test_a_partition_the_group_never_committed_nothing_came_from_is_sought_back_to_the_log_start(
    worker: Worker,
) -> None:
    """Seen 2026-12-07 (scale-out test, a member killed before any commit): Faust's map has no committed offset for
    such a partition, so it was never sought back, and the records Faust had fetched and dropped in the rebalance
    (1,506 of them) were never applied. The broker says where the group reads it from: the log start."""
    given = _given(worker, Positions(highwaters={CONTACTS_0: 50}, positions={CONTACTS_0: 50}, starts={CONTACTS_0: 0}))

    async def two_looks() -> None:
        await worker._seek_again()
        await worker._seek_again()

    asyncio.run(two_looks())
    assert given.sought == [{CONTACTS_0: 0}]
    assert given.asked == [{CONTACTS_0}], "asked once, then remembered until the next rebalance"
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


def test_a_partition_whose_records_stopped_coming_short_of_the_consumers_position_is_sought_back(
    worker: Worker,
) -> None:
    """Seen 2026-12-07 (scale-out test, one of two workers killed): the survivor applied offsets 0-10 of partitions it
    took over and nothing more. Faust had dropped the rest of a fetch that reached their end, so no later record came
    to show the gap to the fence, and 1,536 records were never applied."""
    given = _given(worker, Positions(highwaters={CONTACTS_0: 320}, starts={CONTACTS_0: 0}))
    assert _deliver(worker, list(range(11))) == list(range(11))
    given.positions[CONTACTS_0] = 320  # fetched to the end; 11-319 never delivered

    async def looks(n: int) -> None:
        for _ in range(n):
            await worker._seek_again()

    asyncio.run(looks(2))
    assert given.sought == [], "records may still be waiting behind other agents' batches"
    asyncio.run(looks(1))
    assert given.sought == [{CONTACTS_0: 11}]
    assert not worker._caught_up(CONTACTS.name, 0)
    assert _deliver(worker, list(range(11, 320))) == list(range(11, 320))
    assert not worker.fence.rewinding
    assert worker._caught_up(CONTACTS.name, 0)


def test_a_partition_still_being_applied_is_not_sought_back_nor_its_position_asked(worker: Worker) -> None:
    asked: list[TP] = []

    class Counting(Positions):
        async def position(self, tp: TP) -> int | None:
            asked.append(tp)
            return await super().position(tp)

    given = _given(worker, Counting(highwaters={CONTACTS_0: 320}, starts={CONTACTS_0: 0}, positions={CONTACTS_0: 320}))
    for first in range(0, 100, 10):  # a batch of it applied between every two looks
        _deliver(worker, list(range(first, first + 10)))
        asyncio.run(worker._seek_again())
    assert given.sought == []
    assert asked == [], "a partition making progress costs no call into the consumer's thread"


@dataclass
class Record:
    """What the fence looks at of a delivered record."""

    offset: int
    topic: str = CONTACTS.name
    partition: int = 0
    acked: bool = False


def _deliver(worker: Worker, offsets: list[int]) -> list[int]:
    """Run one batch of records at `offsets` of contacts[0]; the offsets applied, in order."""
    applied: list[int] = []
    asyncio.run(
        worker._run_batch([Record(offset) for offset in offsets], lambda record, _step: applied.append(record.offset))
    )
    return applied


def test_a_partition_the_group_never_committed_starts_at_the_log_start_not_at_the_first_record_delivered(
    worker: Worker,
) -> None:
    """Seen 2026-12-07 (kcat scale-out test): two workers starting together, Faust dropped the records it had fetched
    during the rebalance, and the fence, knowing no committed offset, started the partition at the first record
    delivered after them: a child's first two reports were never applied."""
    given = _given(worker, Positions(starts={CONTACTS_0: 0}))  # never committed: the broker's log starts at 0
    assert _deliver(worker, [2, 3]) == [], "records past the log start come first: held back"
    assert given.sought == [{CONTACTS_0: 0}], "read again from the log start"
    assert _deliver(worker, [0, 1, 2, 3]) == [0, 1, 2, 3]
    assert given.asked == [{CONTACTS_0}], "the broker is asked once per partition per assignment"


def test_the_partitions_new_in_a_batch_are_asked_about_in_one_question(worker: Worker) -> None:
    """Each question waits for the broker (1.5 s each while it was asked behind a long-polling fetch, 2026-12-07),
    with the state lane held: one per batch, not one per partition."""
    contacts = [TP(CONTACTS.name, p) for p in range(3)]
    given = _given(worker, Positions(starts=dict.fromkeys(contacts, 0)))
    batch = [Record(offset, partition=tp.partition) for offset in (0, 1) for tp in contacts]
    applied: list[tuple[int, int]] = []
    asyncio.run(worker._run_batch(batch, lambda r, _step: applied.append((r.partition, r.offset))))
    assert sorted(applied) == [(p, o) for p in range(3) for o in (0, 1)]
    assert given.asked == [set(contacts)]


def test_records_delivered_before_the_rebalance_finished_are_read_again_not_applied(worker: Worker) -> None:
    """Seen 2026-12-08 (the SIGKILL restart test): records applied and committed while Faust was still seeking back to
    the committed offsets had their commit undone in Faust's map, and its commits of the partition stopped for good."""
    given = _given(worker, Positions(starts={CONTACTS_0: 30}))
    worker.app.rebalancing = True
    delivered = [Record(offset) for offset in (30, 31)]
    applied: list[int] = []
    asyncio.run(worker._run_batch(delivered, lambda record, _step: applied.append(record.offset)))
    assert applied == []
    assert all(record.acked for record in delivered), "never counted done by Faust"
    assert not worker.fence.seen(CONTACTS_0) and given.asked == []
    worker.app.rebalancing = False  # Faust has sought back: the records come again
    assert _deliver(worker, [30, 31]) == [30, 31]
    assert worker.set_aside_in_rebalance == 2


def test_a_committed_partition_starts_at_the_brokers_committed_offset_when_fausts_map_lacks_it(worker: Worker) -> None:
    """Seen 2026-12-07 after a SIGKILL restart: Faust's map had no entry for a partition the group had committed."""
    given = _given(worker, Positions(starts={CONTACTS_0: 30}))  # Faust's `_committed_offset` is empty
    assert _deliver(worker, [32]) == [], "30 and 31 are the group's to read first"
    assert given.sought == [{CONTACTS_0: 30}]
    assert _deliver(worker, [30, 31, 32]) == [30, 31, 32]
    assert not worker.fence.rewinding


def test_after_a_rebalance_the_broker_is_asked_again(worker: Worker) -> None:
    given = _given(worker, Positions(starts={CONTACTS_0: 30}))
    assert _deliver(worker, [30]) == [30]
    asyncio.run(worker._forget_offsets(None, {CONTACTS_0}))  # revoked
    given.starts[CONTACTS_0] = 31  # committed meanwhile, by the worker or the partition's next owner
    assert _deliver(worker, [32]) == []
    assert given.sought == [{CONTACTS_0: 31}]
    assert given.asked == [{CONTACTS_0}, {CONTACTS_0}]


def test_when_the_broker_cannot_say_the_fence_starts_from_fausts_view(worker: Worker) -> None:
    given = _given(worker, Positions(_committed_offset={CONTACTS_0: 30}))  # no `starts`: the lookup fails
    assert _deliver(worker, [31]) == [], "Faust's committed offset is used: 30 must come first"
    assert given.sought == [{CONTACTS_0: 30}]


def test_the_saved_clocks_of_the_partitions_a_rebalance_brings_are_restored_once_their_tables_are(
    worker: Worker,
) -> None:
    """Seen 2026-12-07 (scale-out test, one of two workers killed): saved clocks were restored once per process, so a
    partition moved from the killed worker with nothing left to read there had no clock at all, and its deadlines
    (fifteen `da_contact_overdue`) never fired. Now after every recovery; never a partition assigned elsewhere, nor
    one whose own clock waits on the side until its records are read again (`_stash_revoked_clocks`)."""
    given = _given(worker, Positions(assigned={CONTACTS_1}))
    worker._restore_clocks()  # at start: contacts[0] is another worker's
    assert worker.processor.clocks == {}

    late, later = datetime(2019, 3, 29, tzinfo=UTC), datetime(2019, 3, 30, tzinfo=UTC)
    saved, stashed = PartitionClock(later, later), PartitionClock(late, late)
    for tp in (CONTACTS_0, CONTACTS_1, MISSING_0):  # recovered with their partitions of the clocks table
        worker.saved_clocks.data[f"{tp.topic}#{tp.partition}".encode()] = _clock_to_json(saved)
    worker._stashed_clocks[(MISSING_0.topic, 0)] = (stashed, 12, 0)
    given.assigned = {CONTACTS_0, MISSING_0}  # the other worker was killed: its partitions came here

    asyncio.run(worker.app.on_rebalance_complete.send())  # Faust: the new assignment's tables are recovered
    worker._restore_clocks()
    assert worker.processor.clocks == {(CONTACTS.name, 0): saved}
    assert worker._stashed_clocks[(MISSING_EPISODES.name, 0)][0] == stashed, "merged back in its own time"
