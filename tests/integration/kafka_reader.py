"""An independent reader for integration tests: aiokafka (not the kafka-python the producers use)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


def murmur2_partition(key: bytes, partitions: int) -> int:
    """Kafka's default partitioner (Java Utils.murmur2), written out here to check placement independently."""
    seed, m, r = 0x9747B28C, 0x5BD1E995, 24
    mask = 0xFFFFFFFF
    length = len(key)
    h = (seed ^ length) & mask
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(key[i : i + 4], "little")
        k = (k * m) & mask
        k ^= k >> r
        k = (k * m) & mask
        h = (h * m) & mask
        h ^= k
    tail = length & ~3
    rest = length % 4
    if rest == 3:
        h ^= key[tail + 2] << 16
    if rest >= 2:
        h ^= key[tail + 1] << 8
    if rest >= 1:
        h ^= key[tail]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return (h & 0x7FFFFFFF) % partitions


async def _end_offsets(bootstrap: str, topics: list[str]) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or [])]
        return dict(await consumer.end_offsets(parts))
    finally:
        await consumer.stop()


def end_offsets(bootstrap: str, topics: list[str]) -> dict[TopicPartition, int]:
    return asyncio.run(_end_offsets(bootstrap, topics))


async def _read_between(
    bootstrap: str, start: dict[TopicPartition, int], end: dict[TopicPartition, int], timeout_s: float
) -> list[Record]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    records: list[Record] = []
    try:
        wanted = [tp for tp in end if end[tp] > start.get(tp, 0)]
        if not wanted:
            return records
        consumer.assign(wanted)
        for tp in wanted:
            consumer.seek(tp, start.get(tp, 0))
        remaining = {tp: end[tp] for tp in wanted}
        deadline = asyncio.get_running_loop().time() + timeout_s
        while remaining and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=500, max_records=5000)
            for tp, messages in batch.items():
                for msg in messages:
                    if msg.offset < remaining.get(tp, -1):
                        records.append(Record(tp.topic, tp.partition, msg.offset, msg.key, msg.value or b""))
                if tp in remaining and messages and messages[-1].offset + 1 >= remaining[tp]:
                    del remaining[tp]
        assert not remaining, f"timed out before reading up to {remaining}"
        return records
    finally:
        await consumer.stop()


def read_new(
    bootstrap: str, start: dict[TopicPartition, int], topics: list[str], timeout_s: float = 60
) -> list[Record]:
    """Every record written to `topics` after the `start` offsets, up to the current end."""
    end = end_offsets(bootstrap, topics)
    return asyncio.run(_read_between(bootstrap, start, end, timeout_s))
