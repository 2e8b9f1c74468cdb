"""Reconciliation: what the topics hold against what the tables hold, per topic and partition.

Cheap first: messages on a partition (end offset minus beginning offset) against the distinct message keys
stored from it (`uniqExact` of the table's key over the one-row-per-message tables plus the findings that
stand in for a message). Where those differ, the partition is read and each message's key is looked up, which
tells real gaps (offsets whose row is missing) from messages that are legitimately one row (the same event
published twice: one `event_id`, one row) and from offsets a compacted topic no longer holds.

The same event published twice may land on two partitions (or two topics): a copy under another key, as a
producer with the wrong key sends it, hashes elsewhere. Both copies map to one row (same table, same id) and
the ReplacingMergeTree keeps the one ingested last, with *its* topic, partition and offset; the other copy's
partition then holds no row for it. A message whose id is not stored from its own partition is therefore
looked up in its whole table: stored from another position, it counts as `stored_elsewhere`, not missing.

Counting distinct keys rather than `FINAL` rows makes purged events count as stored (FINAL hides them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from schemas.limits import DEFAULT_WINDOW, EventTimeWindow
from schemas.topics import TOPICS
from sinks.mapping import KEY_COLUMNS, TOPIC_TABLES
from sinks.migrate import expired
from sinks.records import Message, rows_for_message
from sinks.store import Client

_MESSAGE_TABLES = (*KEY_COLUMNS, "data_quality_findings")
_SAMPLE = 20
_LOOKUP_CHUNK = 10_000
SINK_TOPIC_NAMES: tuple[str, ...] = tuple(spec.name for spec in TOPICS)


@dataclass
class PartitionCheck:
    """One topic partition. `missing` are messages with no row; `missing_offsets` lists the first few.

    `duplicates` repeat an id already seen in this partition; `stored_elsewhere` carry an id whose one row was
    stored from another partition or topic (the same event published twice, under different keys)."""

    topic: str
    partition: int
    messages: int
    stored: int
    not_yet_read: int = 0
    duplicates: int = 0
    stored_elsewhere: int = 0
    missing: int = 0
    expired: int = 0
    missing_offsets: list[int] = field(default_factory=list)
    checked_each_message: bool = False


@dataclass
class Reconciliation:
    partitions: list[PartitionCheck]

    @property
    def missing(self) -> int:
        return sum(p.missing for p in self.partitions)

    def by_topic(self) -> dict[str, tuple[int, int, int]]:
        """topic → (messages, stored keys, missing)."""
        out: dict[str, tuple[int, int, int]] = {}
        for p in self.partitions:
            m, s, x = out.get(p.topic, (0, 0, 0))
            out[p.topic] = (m + p.messages, s + p.stored, x + p.missing)
        return out


def stored_keys(client: Client, database: str) -> dict[tuple[str, int], int]:
    """Distinct stored message keys per (topic, partition), over every one-row-per-message table."""
    counts: dict[tuple[str, int], int] = {}
    for table in _MESSAGE_TABLES:
        key = KEY_COLUMNS.get(table, "finding_id")
        where = "WHERE NOT row_stored" if table == "data_quality_findings" else ""
        query = (
            f"SELECT kafka_topic, kafka_partition, uniqExact({key}) FROM `{database}`.{table} "  # noqa: S608
            f"{where} GROUP BY kafka_topic, kafka_partition"
        )
        for topic, partition, n in client.query(query).result_rows:
            counts[(topic, partition)] = counts.get((topic, partition), 0) + int(n)
    return counts


def keys_present(client: Client, database: str, topic: str, partition: int) -> set[tuple[str, str]]:
    """Every (table, key) stored from one topic partition."""
    present: set[tuple[str, str]] = set()
    tables = (*TOPIC_TABLES.get(topic, ()), *(t for t in KEY_COLUMNS if t not in TOPIC_TABLES.get(topic, ())))
    for table in (*tables, "data_quality_findings"):
        key = KEY_COLUMNS.get(table, "finding_id")
        rows = client.query(
            f"SELECT DISTINCT {key} FROM `{database}`.{table} "  # noqa: S608
            "WHERE kafka_topic = {t:String} AND kafka_partition = {p:Int32}",
            parameters={"t": topic, "p": partition},
        ).result_rows
        present.update((table, str(r[0])) for r in rows)
    return present


def message_row(msg: Message, window: EventTimeWindow = DEFAULT_WINDOW) -> tuple[str, str, dict[str, Any]]:
    """The table, key and row standing for a message (its first row, as the sink maps it).

    The sink measured the event-time window from the record's timestamp (it reads after the record was
    written), so that is the time given here; for a record without a timestamp the sink used its wall clock
    of the time, which is not known here, so the window is not checked.
    """
    if msg.timestamp_ms > 0:
        table, row = rows_for_message(msg, msg.timestamp, window)[0]
    else:
        table, row = rows_for_message(msg, datetime(2000, 1, 1, tzinfo=UTC), None)[0]
    return table, str(row[KEY_COLUMNS.get(table, "finding_id")]), row


def reconcile(
    client: Client,
    database: str,
    offsets: dict[tuple[str, int], tuple[int, int]],
    committed: dict[tuple[str, int], int | None],
    read_partition: Callable[[str, int, int, int], Iterable[Message]],
    *,
    retention: dict[str, tuple[str, tuple[int, int, int]]] | None = None,
    now: datetime | None = None,
) -> Reconciliation:
    """Compare. `offsets` maps (topic, partition) to (beginning, end); `committed` is the sink group's position;
    `read_partition(topic, partition, start, end)` yields the messages in that range (for the exact check).
    With `retention` (`sinks.migrate.table_retention`) and `now`, a message whose row is past its table's
    retention counts as expired, not missing: the store drops such rows, even on insert."""
    stored = stored_keys(client, database)
    checks: list[PartitionCheck] = []
    for (topic, partition), (begin, end) in sorted(offsets.items()):
        check = PartitionCheck(topic, partition, messages=end - begin, stored=stored.get((topic, partition), 0))
        position = committed.get((topic, partition))
        check.not_yet_read = end - max(position if position is not None else begin, begin)
        if check.stored < check.messages:
            _exact(client, database, check, read_partition(topic, partition, begin, end), retention or {}, now)
        checks.append(check)
    return Reconciliation(checks)


def stored_anywhere(client: Client, database: str, table: str, ids: Iterable[str]) -> set[str]:
    """Which of `ids` are stored in `table` from any topic, partition or offset (one-row-per-message tables)."""
    key = KEY_COLUMNS[table]
    wanted = sorted(set(ids))
    found: set[str] = set()
    for i in range(0, len(wanted), _LOOKUP_CHUNK):
        rows = client.query(
            f"SELECT DISTINCT {key} FROM `{database}`.{table} WHERE {key} IN {{ids:Array(String)}}",  # noqa: S608
            parameters={"ids": wanted[i : i + _LOOKUP_CHUNK]},
        ).result_rows
        found.update(str(r[0]) for r in rows)
    return found


def _exact(
    client: Client,
    database: str,
    check: PartitionCheck,
    messages: Iterable[Message],
    retention: dict[str, tuple[str, tuple[int, int, int]]],
    now: datetime | None,
) -> None:
    present = keys_present(client, database, check.topic, check.partition)
    seen: set[tuple[str, str]] = set()
    absent: list[tuple[int, str, str, dict[str, Any]]] = []  # (offset, table, id, row) with no row from here
    count = 0
    for msg in messages:
        count += 1
        table, id_, row = message_row(msg)
        key = (table, id_)
        if key in seen:
            check.duplicates += 1
            continue
        seen.add(key)
        if key not in present:
            absent.append((msg.offset, table, id_, row))
    # A finding's id is its own position, so only a table row can have been stored from another message.
    elsewhere: set[tuple[str, str]] = set()
    for table in {t for _, t, _, _ in absent if t in KEY_COLUMNS}:
        ids = stored_anywhere(client, database, table, (i for _, t, i, _ in absent if t == table))
        elsewhere.update((table, i) for i in ids)
    for offset, table, id_, row in absent:
        if (table, id_) in elsewhere:
            check.stored_elsewhere += 1
            continue
        if now is not None and table in retention:
            column, parts = retention[table]
            if expired(row[column], parts, now):
                check.expired += 1
                continue
        check.missing += 1
        if len(check.missing_offsets) < _SAMPLE:
            check.missing_offsets.append(offset)
    check.messages = count
    check.checked_each_message = True


def topic_offsets(consumer: Any, topics: Iterable[str] = SINK_TOPIC_NAMES) -> dict[tuple[str, int], tuple[int, int]]:
    """(beginning, end) offsets of every partition of the existing `topics`."""
    from kafka.structs import TopicPartition

    parts = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
    if not parts:
        return {}
    begin = consumer.beginning_offsets(parts)
    end = consumer.end_offsets(parts)
    return {(tp.topic, tp.partition): (int(begin[tp]), int(end[tp])) for tp in parts}


def read_range(consumer: Any, topic: str, partition: int, start: int, end: int, timeout_s: float = 60) -> list[Message]:
    """The messages of one partition from `start` up to `end` (an assigned consumer without a group)."""
    import time

    from kafka.structs import TopicPartition

    tp = TopicPartition(topic, partition)
    consumer.assign([tp])
    consumer.seek(tp, start)
    out: list[Message] = []
    deadline = time.monotonic() + timeout_s
    while consumer.position(tp) < end and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500, max_records=5000).values():
            for r in records:
                if r.offset < end:
                    out.append(Message(r.topic, r.partition, r.offset, r.key, r.value, r.timestamp, r.headers))
    return out
