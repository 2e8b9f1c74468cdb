"""An independent reader for integration tests: a plain consumer, no group, reading exact offset ranges."""

from __future__ import annotations

import time
from dataclasses import dataclass

from kafka import KafkaConsumer
from kafka.structs import TopicPartition


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


def _consumer(bootstrap: str) -> KafkaConsumer:
    return KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)


def end_offsets(bootstrap: str, topics: list[str]) -> dict[TopicPartition, int]:
    """The current end offset of every partition of `topics`."""
    consumer = _consumer(bootstrap)
    try:
        parts = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or [])]
        return dict(consumer.end_offsets(parts))
    finally:
        consumer.close()


def read_new(
    bootstrap: str, start: dict[TopicPartition, int], topics: list[str], timeout_s: float = 60
) -> list[Record]:
    """Every record written to `topics` after the `start` offsets, up to the current end, in partition order."""
    end = end_offsets(bootstrap, topics)
    wanted = [tp for tp in end if end[tp] > start.get(tp, 0)]
    records: list[Record] = []
    if not wanted:
        return records
    consumer = _consumer(bootstrap)
    try:
        consumer.assign(wanted)
        for tp in wanted:
            consumer.seek(tp, start.get(tp, 0))
        remaining = {tp: end[tp] for tp in wanted}
        deadline = time.monotonic() + timeout_s
        while remaining and time.monotonic() < deadline:
            for tp, messages in consumer.poll(timeout_ms=500, max_records=5000).items():
                for msg in messages:
                    if msg.offset < remaining.get(tp, -1):
                        records.append(Record(tp.topic, tp.partition, msg.offset, msg.key, msg.value or b""))
                if tp in remaining and messages and messages[-1].offset + 1 >= remaining[tp]:
                    del remaining[tp]
        assert not remaining, f"timed out before reading up to {remaining}"
        return sorted(records, key=lambda r: (r.topic, r.partition, r.offset))
    finally:
        consumer.close()
