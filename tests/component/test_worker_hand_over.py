"""The worker's consumer hands fetched records to the agents without a task each (`FencedConsumer._drain_messages`).

Faust raced every hand-over against a flow stop with `wait_first` (four tasks per record). The worker's loop runs a
hand-over at once and races only one that has to wait; what such a race drops is what Faust's would drop (the fence
reads it again). Offsets are kept as in Faust's loop: a record below the read offset is not handed over again.
Driven here with the worker's own consumer object, its fetches replaced by a list (this tier has no broker).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from faust.types import TP

from safeguard.settings import KafkaSettings, Settings
from streams.app import FencedConsumer, Worker

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

CONTACTS_0 = TP("safeguarding.contacts.v1", 0)


@dataclass(frozen=True)
class Fetched:
    """What the consumer's `getmany` yields for a record: only what the loop reads of it."""

    topic: str
    partition: int
    offset: int


class Fetcher:
    """Faust's fetcher service, as far as the loop asks it: stopped once the fetched records are handed over."""

    def __init__(self) -> None:
        self._stopped = asyncio.Event()


@dataclass
class Drained:
    handed_over: list[int]
    races: int
    """How many hand-overs were raced against a flow stop (`wait_first`)."""
    read_offset: int | None


def _consumer() -> FencedConsumer:
    settings = Settings(_env_file=None, kafka=KafkaSettings(bootstrap_servers="127.0.0.1:9"))
    worker = Worker(settings, "127.0.0.1:9", clock=lambda: datetime(2026, 11, 23, 12, tzinfo=UTC))
    consumer = worker.app.consumer
    assert isinstance(consumer, FencedConsumer)
    return consumer


def _drain(
    offsets: list[int],
    hand_over: Callable[[Fetched, list[int]], Awaitable[None]],
    *,
    during: Callable[[Any], None] | None = None,
) -> Drained:
    handed_over: list[int] = []
    races: list[int] = []

    read_offset: list[int | None] = []

    async def run() -> None:
        consumer: Any = _consumer()  # made in the loop that runs it, as the worker's is (mode binds its loop)
        fetcher = Fetcher()

        async def getmany(timeout: float) -> AsyncIterator[tuple[TP, Fetched]]:
            for offset in offsets:
                yield CONTACTS_0, Fetched(CONTACTS_0.topic, CONTACTS_0.partition, offset)
            fetcher._stopped.set()

        async def callback(record: Fetched) -> None:
            await hand_over(record, handed_over)

        faust_wait_first = consumer.wait_first

        async def counted_wait_first(*coros: Any, **kwargs: Any) -> Any:
            races.append(len(coros))
            return await faust_wait_first(*coros, **kwargs)

        consumer.getmany, consumer.callback, consumer.wait_first = getmany, callback, counted_wait_first
        if during is not None:
            during(consumer)
        await asyncio.wait_for(consumer._drain_messages(fetcher), timeout=10)
        read_offset.append(consumer._read_offset.get(CONTACTS_0))

    asyncio.run(run())
    return Drained(handed_over, len(races), read_offset[0])


async def _at_once(record: Fetched, handed_over: list[int]) -> None:
    handed_over.append(record.offset)


def test_records_are_handed_over_in_order_without_a_race() -> None:
    drained = _drain([0, 1, 2], _at_once)
    assert drained == Drained(handed_over=[0, 1, 2], races=0, read_offset=2)


def test_a_record_below_the_read_offset_is_not_handed_over_again() -> None:
    def read_to_5(consumer: Any) -> None:
        consumer._read_offset[CONTACTS_0] = 5

    drained = _drain([3, 6], _at_once, during=read_to_5)
    assert drained == Drained(handed_over=[6], races=0, read_offset=6)


def test_a_hand_over_that_waits_is_raced_and_finishes_when_it_can() -> None:
    room: list[asyncio.Future[None]] = []

    async def waits_for_room_at_1(record: Fetched, handed_over: list[int]) -> None:
        if record.offset == 1:
            room.append(asyncio.get_running_loop().create_future())
            asyncio.get_running_loop().call_later(0.05, room[0].set_result, None)
            await room[0]  # a full buffer, until the agent takes a record
        handed_over.append(record.offset)

    drained = _drain([0, 1, 2], waits_for_room_at_1)
    assert drained == Drained(handed_over=[0, 1, 2], races=1, read_offset=2)


def test_a_flow_stop_drops_a_waiting_hand_over_as_faust_does_and_the_loop_goes_on() -> None:
    cleaned: list[int] = []

    async def never_room_at_1(record: Fetched, handed_over: list[int]) -> None:
        try:
            if record.offset == 1:
                await asyncio.get_running_loop().create_future()  # a buffer that stays full
            handed_over.append(record.offset)
        finally:
            cleaned.append(record.offset)

    def stop_flow_soon(consumer: Any) -> None:
        asyncio.get_running_loop().call_later(0.05, consumer.suspend_flow.set)

    drained = _drain([0, 1, 2], never_room_at_1, during=stop_flow_soon)
    # Record 1 was dropped (the fence reads it again: `streams.fence`); its hand-over was cancelled, not left hanging.
    assert drained == Drained(handed_over=[0, 2], races=1, read_offset=2)
    assert sorted(cleaned) == [0, 1, 2]  # cancelled, as Faust cancels it: it ends in a later turn of the loop
