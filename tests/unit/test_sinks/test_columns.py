"""The sink's column path gives exactly the rows of the reference path (models, then row dicts), value for value.

`MessageMapper` writes the everyday valid event straight from the checked message into a `TableBatch`; anything
else (a placement finding, an event-time or storage rejection, anything undecodable or invalid) goes through
`rows_for_message`. Either way the batch must hold what `rows_for_message` gives: same tables, same columns,
same values of the same types, same findings with the same reason codes.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from producers.simulate import LEEDS_2019, generate
from schemas.codec import encode
from schemas.deadletter import dead_letter_from_kafka
from schemas.limits import EventTimeWindow
from schemas.topics import message_key, topic_for
from sinks.columns import TableBatch
from sinks.records import Message, MessageMapper, rows_for_message
from tests.unit.test_schemas import examples as ex
from tests.unit.test_streams.test_intake_fuzz import mutated_events, record_times

FUZZ = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
AT = datetime(2025, 3, 2, 8, 0, tzinfo=UTC)
TS = 1_740_900_000_000  # 2025-03-02T07:20:00Z, the record's timestamp


def _typed(batch: TableBatch) -> dict[str, list[list[tuple[str, Any]]]]:
    """Every value with its type name: 1 and True, or a date and a string, must not pass for each other."""
    return {t: [[(type(v).__name__, v) for v in col] for col in cols] for t, cols in batch.columns.items()}


def assert_same_rows(messages: list[Message], at: datetime = AT, window: EventTimeWindow | None = None) -> TableBatch:
    mapper = MessageMapper() if window is None else MessageMapper(window)
    fast, reference = TableBatch(), TableBatch()
    for msg in messages:
        mapper.add(fast, msg, at)
        reference.add_rows(rows_for_message(msg, at, mapper.window))
    assert _typed(fast) == _typed(reference)
    assert (len(fast), fast.findings) == (len(reference), reference.findings)
    return fast


def _event(event: dict[str, Any], *, key: bytes | None = None, topic: str | None = None, ts: int = TS) -> Message:
    value = json.dumps(event).encode()
    field = "household_id" if event["event_type"].startswith("domestic") else "child_id"
    default_key = str(event.get(field)).encode()
    return Message(topic or topic_for(event["event_type"]).name, 3, 41, default_key if key is None else key, value, ts)


@pytest.mark.parametrize(("label", "event"), ex.all_examples())
def test_every_example_gives_the_reference_rows(label: str, event: dict[str, Any]) -> None:
    batch = assert_same_rows([_event(event)])
    assert batch.findings == 0, label


@pytest.mark.parametrize(
    ("changes", "key", "topic", "reason"),
    [
        ({}, b"someone-else", None, "key_mismatch"),
        ({}, None, "safeguarding.contacts.v1", "wrong_topic"),
        ({"occurred_at": "1990-03-02T07:00:00+00:00"}, None, None, "too_old"),
        ({"recorded_at": "2025-03-02T07:35:00.000001+00:00"}, None, None, "in_the_future"),
        ({"previous_plans": 2**63}, None, None, "out_of_range"),
        ({"previous_plan_ended_at": "1990-01-01"}, None, None, "too_old"),
        ({"event_id": "7F1D9C2E-3A4B-4C5D-8E6F-1A2B3C4D5E07"}, None, None, None),  # valid: left to the models
        ({"child_id": "9434765919"}, None, None, "raw_identifier"),
    ],
)
def test_what_the_reference_path_adds_or_refuses_is_the_same(
    changes: dict[str, Any], key: bytes | None, topic: str | None, reason: str | None
) -> None:
    event = {**ex.full("cp_plan.started"), "occurred_at": "2025-03-02T07:00:00+00:00"}
    event["recorded_at"] = "2025-03-02T07:20:00+00:00"
    batch = assert_same_rows([_event({**event, **changes}, key=key, topic=topic)])
    found = [row["reason_code"] for t, row in batch.rows() if t == "data_quality_findings"]
    assert found == ([reason] if reason else [])


def test_window_edges_are_exact_to_the_microsecond() -> None:
    """Latest accepted: the record's timestamp plus 15 minutes; one µs later is in the future."""
    event = {**ex.minimal("missing.found"), "occurred_at": "2025-03-02T07:30:00+00:00"}
    messages = [
        _event({**event, "recorded_at": "2025-03-02T07:35:00+00:00"}),
        _event({**event, "recorded_at": "2025-03-02T07:35:00.000001+00:00"}),
        _event({**event, "recorded_at": "2025-03-02T08:34:59.999999+01:00"}),
    ]
    batch = assert_same_rows(messages)
    assert [t for t, _ in batch.rows()] == ["missing_episodes", "missing_episodes", "data_quality_findings"]


@pytest.mark.parametrize(
    "ts", [0, -5, TS + 3_600_000, int(AT.timestamp() * 1000)], ids=["none", "negative", "ahead", "now"]
)
def test_records_without_a_usable_timestamp_are_measured_from_the_wall_clock(ts: int) -> None:
    early = {**ex.minimal("contact.decided"), "recorded_at": "2025-03-02T08:10:00+00:00"}
    late = {**early, "recorded_at": "2025-03-02T08:20:00+00:00"}
    assert_same_rows([_event(early, ts=ts), _event(late, ts=ts)])


def test_other_topics_and_unreadable_messages_take_the_reference_path() -> None:
    letter = dead_letter_from_kafka(
        topic="t", partition=0, offset=1, key=None, value=b"x", reason_code="undecodable", error="e", at=AT
    )
    messages = [
        Message("safeguarding.alerts.v1", 0, 1, b"3fa85f6457174562", json.dumps(ex.alert()).encode(), TS),
        Message("safeguarding.dead-letter.v1", 0, 2, None, encode(letter), TS),
        Message("safeguarding.alerts.v1", 0, 3, b"3fa85f6457174562", None, TS),
        Message("safeguarding.contacts.v1", 0, 4, b"k", b"\xff\xfe", TS),
        Message("safeguarding.contacts.v1", 0, 5, b"k", b"[1, 2]", TS),
        Message("safeguarding.contacts.v1", 0, 6, b"k", b"[" * 1000, TS),
        Message("somebody.elses.topic", 0, 7, b"k", b"{}", TS),
    ]
    batch = assert_same_rows(messages)
    assert batch.findings == 5


def test_a_simulated_month_gives_the_reference_rows() -> None:
    events = generate(LEEDS_2019, seed=3, days=30)
    stamp = int(datetime(2019, 6, 1, tzinfo=UTC).timestamp() * 1000)
    messages = [
        Message(topic_for(e.event_type).name, i % 6, i, message_key(e).encode(), encode(e), stamp + i)
        for i, e in enumerate(events)
    ]
    batch = assert_same_rows(messages, at=datetime(2019, 6, 2, tzinfo=UTC))
    assert batch.findings == 0 and len(batch) > len(messages)


@FUZZ
@given(mutated_events(), record_times, st.booleans())
def test_mutated_events_give_the_reference_rows(
    mutated: tuple[str, bytes, bytes | None], timestamp: datetime | None, other_topic: bool
) -> None:
    topic, value, key = mutated
    ms = int(timestamp.timestamp() * 1000) if timestamp is not None else 0
    assert_same_rows([Message("safeguarding.contacts.v1" if other_topic else topic, 1, 9, key, value, ms)])


@FUZZ
@given(st.sampled_from(ex.all_examples()), st.integers(-(10**12), 10**12))
def test_valid_events_around_any_record_time_give_the_reference_rows(example: Any, shift_ms: int) -> None:
    """The window's bounds are remembered per record timestamp: each must still be the window of that timestamp."""
    _, event = example
    window = EventTimeWindow(max_age_years=1, future_tolerance=timedelta(minutes=1))
    occurred = datetime.fromisoformat(event["occurred_at"])
    assert_same_rows([_event(event, ts=int(occurred.timestamp() * 1000) + shift_ms)], window=window)
