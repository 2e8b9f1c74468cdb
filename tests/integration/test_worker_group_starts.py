"""Where the worker's fence starts a partition, asked of a real broker: the group's committed offset, never before the
log start (records removed by retention are not waited for), the log start for a partition never committed.

The log starts are asked with aiokafka's protocol classes on the client's coordination connection
(`streams.app._log_starts`), not with its `beginning_offsets`, which waited behind a long-polling fetch: this test holds
that use of aiokafka's internals to what the broker answers.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from faust.types import TP
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.structs import TopicPartition as KafkaTopicPartition

from streams.app import _group_committed, _log_starts

pytestmark = pytest.mark.integration


def test_the_log_start_and_the_committed_offset_come_from_the_broker_while_a_fetch_waits(kafka_bootstrap: str) -> None:
    topic = f"group-starts-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
        asyncio.run(_publish(kafka_bootstrap, topic, count=30))
        admin.delete_records({KafkaTopicPartition(topic, 0): 10})  # as retention would
    finally:
        admin.close()
    starts, committed = asyncio.run(_ask(kafka_bootstrap, topic))
    assert starts == {TP(topic, 0): 10, TP(topic, 1): 0}
    assert committed == {TP(topic, 0): 5, TP(topic, 1): None}


async def _publish(bootstrap: str, topic: str, count: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for _ in range(count):
            await producer.send_and_wait(topic, b"{}", key=b"k", partition=0)
    finally:
        await producer.stop()


async def _ask(bootstrap: str, topic: str) -> tuple[dict[TP, int], dict[TP, int | None]]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=f"{topic}-group",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=1500,  # as Faust's
    )
    await consumer.start()
    try:
        first, second = TopicPartition(topic, 0), TopicPartition(topic, 1)
        consumer.assign([first, second])
        await consumer.commit({first: 5})  # below the log start: records the group never read were removed
        while (await consumer.position(first)) < 30:
            await consumer.getmany(timeout_ms=1000)
        waiting = asyncio.ensure_future(consumer.getmany(timeout_ms=3000))  # at the end: the broker holds the fetch
        await asyncio.sleep(0.2)
        partitions = [TP(topic, 0), TP(topic, 1)]
        starts = await _log_starts(consumer, partitions)
        committed = await _group_committed(consumer, partitions)
        await waiting
        return starts, committed
    finally:
        await consumer.stop()
