"""Reconciliation against a store that behaves like the sink's ReplacingMergeTree tables (one row per key, the
last ingested wins), answering the three queries reconcile makes."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from sinks.mapping import KEY_COLUMNS, Row, TableRow
from sinks.reconcile import message_row, reconcile
from sinks.records import Message, rows_for_message

TOPIC = "safeguarding.missing-episodes.v1"
CHILD = "5f2c9a0b" * 8
# The event tests/integration/test_kcat_contract.py publishes by hand, once under the child's key and once,
# byte for byte the same, under another key (its `key_mismatch` variant): two partitions, one event_id.
HAND_WRITTEN = {
    "event_id": "0b9c1e52-4f7e-4a59-9a55-2f0f7c3d9e11",
    "event_type": "missing.reported",
    "schema_version": 1,
    "la_code": "856",
    "agency_type": "police",
    "agency_code": "LEICS",
    "occurred_at": "2025-03-01T21:15:00+00:00",
    "recorded_at": "2025-03-01T22:02:41+00:00",
    "episode_id": "MP-2025-00417",
    "child_id": CHILD,
    "looked_after": True,
    "absence_type": "missing",
    "risk_level": "medium",
}
VALID = Message(TOPIC, 4, 0, CHILD.encode(), json.dumps(HAND_WRITTEN).encode(), 0)
WRONG_KEY = Message(TOPIC, 2, 8, b"someone-else", json.dumps(HAND_WRITTEN).encode(), 0)
NOT_JSON = Message(TOPIC, 4, 1, CHILD.encode(), b"not json", 0)


@dataclass
class _Result:
    result_rows: list[tuple[Any, ...]]


class FakeStore:
    """Rows as the store keeps them after merging: per table, one row per key (findings: per finding_id)."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[str, Row]] = {}

    def sink(self, messages: Iterable[Message]) -> None:
        for i, msg in enumerate(messages):  # in order: a later message's row replaces an earlier one's
            for table, row in rows_for_message(msg, datetime(2025, 3, 2, 0, 0, i, tzinfo=UTC)):
                self.put((table, row))

    def put(self, table_row: TableRow) -> None:
        table, row = table_row
        if table in KEY_COLUMNS or table == "data_quality_findings":
            self.tables.setdefault(table, {})[str(row[KEY_COLUMNS.get(table, "finding_id")])] = row

    def delete(self, table: str, key: str) -> None:
        del self.tables[table][key]

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> _Result:
        params = parameters or {}
        grouped = re.match(r"SELECT kafka_topic, kafka_partition, uniqExact\((\w+)\) FROM `\w+`\.(\w+) ", sql)
        if grouped:
            key, table = grouped.groups()
            counts: dict[tuple[str, int], set[str]] = {}
            for row in self.tables.get(table, {}).values():
                if "WHERE NOT row_stored" in sql and row["row_stored"]:
                    continue
                counts.setdefault((row["kafka_topic"], row["kafka_partition"]), set()).add(str(row[key]))
            return _Result([(t, p, len(keys)) for (t, p), keys in counts.items()])
        distinct = re.match(r"SELECT DISTINCT (\w+) FROM `\w+`\.(\w+) WHERE (.*)", sql)
        assert distinct, sql
        key, table, where = distinct.groups()
        rows = self.tables.get(table, {}).values()
        if where.startswith("kafka_topic ="):
            rows = [r for r in rows if (r["kafka_topic"], r["kafka_partition"]) == (params["t"], params["p"])]
        else:
            assert where == f"{key} IN {{ids:Array(String)}}", sql
            rows = [r for r in rows if str(r[key]) in params["ids"]]
        return _Result(sorted({(str(r[key]),) for r in rows}))


def _reconcile(store: FakeStore, messages: list[Message]) -> dict[tuple[str, int], Any]:
    parts: dict[tuple[str, int], list[Message]] = {}
    for msg in messages:
        parts.setdefault((msg.topic, msg.partition), []).append(msg)
    offsets = {tp: (0, max(m.offset for m in msgs) + 1) for tp, msgs in parts.items()}

    def read(topic: str, partition: int, start: int, end: int) -> list[Message]:
        return [m for m in parts[(topic, partition)] if start <= m.offset < end]

    # Offsets not in `messages` are counted by the cheap check but absent when read: fill them with findings.
    for (topic, partition), (_, end) in offsets.items():
        have = {m.offset for m in parts[(topic, partition)]}
        for offset in sorted(set(range(end)) - have):
            filler = Message(topic, partition, offset, None, None, 0)
            parts[(topic, partition)].append(filler)
            store.sink([filler])
    result = reconcile(store, "safeguard", offsets, {tp: end for tp, (_, end) in offsets.items()}, read)
    return {(p.topic, p.partition): p for p in result.partitions}


def test_the_two_copies_of_one_event_on_two_partitions_are_one_row() -> None:
    assert message_row(VALID)[:2] == message_row(WRONG_KEY)[:2] == ("missing_episodes", HAND_WRITTEN["event_id"])
    rows = rows_for_message(WRONG_KEY, datetime(2025, 3, 2, tzinfo=UTC))
    assert [(t, r.get("reason_code"), r.get("row_stored")) for t, r in rows] == [
        ("missing_episodes", None, None),
        ("data_quality_findings", "key_mismatch", True),
    ]


@pytest.mark.parametrize("order", ["wrong_key_last", "valid_last"])
def test_an_event_stored_from_another_partition_is_not_missing(order: str) -> None:
    messages = [VALID, NOT_JSON, WRONG_KEY] if order == "wrong_key_last" else [WRONG_KEY, NOT_JSON, VALID]
    store = FakeStore()
    store.sink(messages)
    [row] = store.tables["missing_episodes"].values()
    survivor = messages[-1]
    assert row["kafka_partition"] == survivor.partition  # the other copy's partition holds no row for it

    checks = _reconcile(store, messages)
    assert sum(p.missing for p in checks.values()) == 0
    displaced = VALID if survivor is WRONG_KEY else WRONG_KEY
    assert checks[(TOPIC, displaced.partition)].stored_elsewhere == 1
    assert checks[(TOPIC, survivor.partition)].stored_elsewhere == 0


def test_the_event_gone_from_every_partition_is_missing_at_each_copy() -> None:
    store = FakeStore()
    store.sink([VALID, NOT_JSON, WRONG_KEY])
    store.delete("missing_episodes", HAND_WRITTEN["event_id"])
    checks = _reconcile(store, [VALID, NOT_JSON, WRONG_KEY])
    assert (checks[(TOPIC, 4)].missing, checks[(TOPIC, 4)].missing_offsets) == (1, [0])
    assert (checks[(TOPIC, 2)].missing, checks[(TOPIC, 2)].missing_offsets) == (1, [8])
    assert checks[(TOPIC, 4)].stored_elsewhere == checks[(TOPIC, 2)].stored_elsewhere == 0
