"""The worker's agents on the RocksDB store (Faust `test_context()`, no broker): states written after the batch's
alerts were acknowledged, outside any current event, land in the database of their key's partition although one
batch spans partitions, with one changelog message per subject per batch; the clocks' timer writes too.

Faust's own RocksDB store asserts a current event on every write and takes its partition: the worker stalled at its
first batch with it. Sends are recorded instead of published, as in test_worker_agents.py.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from safeguard.settings import KafkaSettings, Settings
from schemas.codec import encode
from schemas.topics import MISSING_EPISODES
from streams.app import Worker
from streams.rules import decode_state
from streams.settings import StreamsSettings
from streams.tables import KeyPartitionedRocksStore, murmur2_partition
from tests.unit.test_streams.factories import CHILD, day, missing_found, missing_reported

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

OTHER_CHILD = "c" * 64  # partition 3; CHILD is in partition 5


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[tuple[Worker, list[Any], Counter[tuple[str, bytes]]]]:
    settings = Settings(
        _env_file=None,
        kafka=KafkaSettings(bootstrap_servers="127.0.0.1:9"),
        streams=StreamsSettings(store_url="rocksdb://", data_dir=tmp_path, rocksdb_cache_mb=8),
    )
    worker = Worker(settings, "127.0.0.1:9", clock=lambda: datetime(2026, 11, 23, 12, tzinfo=UTC))
    sent: list[Any] = []
    changelog: Counter[tuple[str, bytes]] = Counter()

    async def send(key: bytes | None = None, value: bytes = b"", **_: Any) -> asyncio.Future[None]:
        sent.append((key, value))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    for topic in (worker.alerts_topic, worker.obligations_topic, worker.dead_letter_topic):
        topic.send = send  # type: ignore[method-assign]
    for table in (worker.children, worker.households, worker.saved_clocks):
        original = table.send_changelog

        def counted(
            partition: int | None, key: Any, value: Any, *args: Any, _t: Any = table, _o: Any = original
        ) -> Any:
            assert partition == murmur2_partition(key, 6), "the changelog partition is Kafka's partition of the key"
            changelog[(_t.name, key)] += 1
            return _o(partition, key, value, *args)

        table.send_changelog = counted
    yield worker, sent, changelog
    for table in (worker.children, worker.households, worker.saved_clocks):
        asyncio.run(table.data.stop())


async def _settle(worker: Worker, records: int) -> None:
    for _ in range(250):
        await asyncio.sleep(0.02)
        done = sum(worker.outcomes.values()) + sum(worker.dead_lettered.values()) >= records
        if done and worker.processor.pending_writes == 0 and not worker._lane.locked():
            return
    raise AssertionError("the worker did not finish its batches")


def test_a_batch_from_one_partition_writes_each_subject_once_into_its_keys_partition(
    worker: tuple[Worker, list[Any], Counter[tuple[str, bytes]]],
) -> None:
    app, _, changelog = worker
    children = {CHILD: murmur2_partition(CHILD.encode(), 6), OTHER_CHILD: murmur2_partition(OTHER_CHILD.encode(), 6)}
    assert len(set(children.values())) == 2, "two children in two partitions"
    events = [
        event
        for child in children
        for event in (
            missing_reported(day(0), child=child, episode=f"{child[:4]}-1"),
            missing_found(day(1), child=child, episode=f"{child[:4]}-1"),
            missing_reported(day(5), child=child, episode=f"{child[:4]}-2"),
        )
    ]

    async def scenario() -> None:
        agent = app.app.agents[f"intake-{MISSING_EPISODES.name}"]
        async with agent.test_context() as test_agent:
            for event in events:  # one batch of records from two partitions: the last one read is not every state's
                key = event.child_id.encode()
                await test_agent.put(encode(event), key=key, partition=murmur2_partition(key, 6), wait=False)
            await _settle(app, len(events))
        app._caught_up = lambda topic, partition: False  # type: ignore[method-assign]  # no consumer in this tier
        await app._tick()  # the clocks are saved by a timer: no current event either

    asyncio.run(scenario())
    assert app.outcomes["applied"] == len(events)
    assert changelog[("child-state", CHILD.encode())] == 1, "one changelog message per subject per batch"
    assert changelog[("child-state", OTHER_CHILD.encode())] == 1
    store = app.children.data
    assert isinstance(store, KeyPartitionedRocksStore)
    for child, partition in children.items():
        stored = store._dbs[partition].get(child.encode())
        assert stored is not None, f"{child[:8]} is not in the database of partition {partition}"
        assert len(decode_state("child", child, stored).missing_reports) == 2
        assert all(db.get(child.encode()) is None for p, db in store._dbs.items() if p != partition)
        assert app.children[child.encode()] == stored
    assert [key for key in changelog if key[0] == "partition-clocks"], "the timer saved the clocks"
    clock_keys = [key for table, key in changelog if table == "partition-clocks"]
    assert all(app.saved_clocks.data._get(key) is not None for key in clock_keys)
