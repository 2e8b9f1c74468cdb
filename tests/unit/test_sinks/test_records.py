"""A Kafka message → its rows: every message gives at least one row; what cannot be stored becomes a finding."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from schemas.codec import encode, validate_event
from schemas.deadletter import dead_letter_from_kafka
from sinks.records import Message, rows_for_message
from tests.unit.test_schemas import examples as ex

AT = datetime(2025, 3, 2, 8, 0, tzinfo=UTC)
TS = 1_740_900_000_000  # 2025-03-02T07:20:00Z


def _msg(topic: str, value: bytes | None, key: bytes | None = None, offset: int = 7) -> Message:
    return Message(topic, 2, offset, key, value, TS)


def _event_msg(event_type: str, **changes: Any) -> Message:
    obj = {**ex.full(event_type), **changes}
    event = validate_event(obj)
    key = (obj.get("household_id") if event_type.startswith("domestic") else obj["child_id"]).encode()
    topic = {"contact": "contacts", "missing": "missing-episodes", "domestic_incident": "domestic-incidents"}.get(
        event_type.split(".")[0], "cp-plans"
    )
    return _msg(f"safeguarding.{topic}.v1", encode(event), key)


@pytest.mark.parametrize(
    ("event_type", "tables"),
    [
        ("contact.received", ["contacts"]),
        ("contact.decided", ["contact_decisions"]),
        ("missing.found", ["missing_episodes"]),
        (
            "domestic_incident.recorded",
            ["domestic_incidents", "domestic_incident_children", "domestic_incident_children"],
        ),
        ("cp_plan.ended", ["cp_plans"]),
    ],
)
def test_valid_event_correctly_placed_gives_its_rows_only(event_type: str, tables: list[str]) -> None:
    msg = _event_msg(event_type)
    rows = rows_for_message(msg, AT)
    assert [t for t, _ in rows] == tables
    assert all((r["kafka_partition"], r["kafka_offset"], r["ingested_at"]) == (2, 7, AT) for _, r in rows)


def test_alert_lifecycle_and_dead_letter_topics() -> None:
    alert = _msg("safeguarding.alerts.v1", json.dumps(ex.alert()).encode(), ex.alert()["alert_id"].encode())
    assert [t for t, _ in rows_for_message(alert, AT)] == ["alerts"]
    change = {
        "event_id": "notified:3fa85f6457174562:1",
        "alert_id": "3fa85f6457174562",
        "state": "notified",
        "occurred_at": "2025-03-02T08:00:00+00:00",
        "rule_id": "repeat_missing",
        "severity": "high",
        "la_code": "383",
    }
    assert [
        t for t, _ in rows_for_message(_msg("safeguarding.alert-lifecycle.v1", json.dumps(change).encode()), AT)
    ] == ["alert_lifecycle"]
    letter = dead_letter_from_kafka(
        topic="t", partition=0, offset=1, key=None, value=b"x", reason_code="undecodable", error="e", at=AT
    )
    assert [t for t, _ in rows_for_message(_msg("safeguarding.dead-letter.v1", encode(letter)), AT)] == ["dead_letters"]


@pytest.mark.parametrize(
    ("topic", "value", "reason"),
    [
        ("safeguarding.contacts.v1", b"\xff\xfe", "undecodable"),
        ("safeguarding.contacts.v1", b"{not json", "undecodable"),
        ("safeguarding.contacts.v1", b"[1, 2]", "undecodable"),
        ("safeguarding.cp-plans.v1", json.dumps({**ex.minimal("cp_plan.started"), "child_id": "9434765919"}).encode(),
         "raw_identifier"),
        ("safeguarding.cp-plans.v1", json.dumps({**ex.minimal("cp_plan.started"), "event_type": "x"}).encode(),
         "unknown_event_type"),
        ("safeguarding.alerts.v1", json.dumps({**ex.alert(), "severity": "urgent"}).encode(), "invalid"),
        ("safeguarding.dead-letter.v1", b'{"hello": 1}', "invalid"),
        ("safeguarding.alert-lifecycle.v1", b"", "undecodable"),
        ("somebody.elses.topic", b"{}", "unknown_topic"),
    ],
)  # fmt: skip
def test_unstorable_message_becomes_one_finding_with_its_bytes(topic: str, value: bytes, reason: str) -> None:
    [(table, row)] = rows_for_message(_msg(topic, value, b"k"), AT)
    assert table == "data_quality_findings"
    assert row["reason_code"] == reason
    assert row["row_stored"] is False
    kept = base64.b64decode(row["original_b64"])
    if reason == "raw_identifier":  # the identifier is masked in what is kept, and the rest is the same JSON
        assert b"9434765919" not in kept and b"[masked: an NHS number]" in kept and row["original_masked"] is True
        assert json.loads(kept) == {**json.loads(value), "child_id": "[masked: an NHS number]"}
    elif topic == "safeguarding.alerts.v1":  # "in 90 days": no identifier; the alert's summary is kept as sent
        assert kept == value and row["original_masked"] is False
    else:
        assert kept == value and row["original_masked"] is False
    assert row["original_size"] == len(value) and row["original_truncated"] is False
    assert (row["kafka_topic"], row["kafka_partition"], row["kafka_offset"]) == (topic, 2, 7)
    assert row["message_timestamp"] == datetime(2025, 3, 2, 7, 20, tzinfo=UTC)
    assert row["error"]


def test_tombstone_is_a_finding() -> None:
    [(table, row)] = rows_for_message(_msg("safeguarding.alerts.v1", None, b"3fa85f6457174562"), AT)
    assert (table, row["reason_code"], row["original_b64"]) == ("data_quality_findings", "tombstone", "")


def test_valid_event_with_wrong_key_is_stored_and_noted() -> None:
    event = validate_event(ex.full("contact.decided"))
    rows = rows_for_message(_msg("safeguarding.contacts.v1", encode(event), b"not-the-child"), AT)
    assert [t for t, _ in rows] == ["contact_decisions", "data_quality_findings"]
    assert rows[1][1]["reason_code"] == "key_mismatch" and rows[1][1]["row_stored"] is True
    assert rows[1][1]["claimed_event_id"] == event.event_id


def test_valid_event_on_the_wrong_topic_is_stored_and_noted() -> None:
    event = validate_event(ex.full("cp_plan.started"))
    rows = rows_for_message(_msg("safeguarding.contacts.v1", encode(event), ex.CHILD.encode()), AT)
    assert [t for t, _ in rows] == ["cp_plans", "data_quality_findings"]
    assert rows[0][1]["kafka_topic"] == "safeguarding.contacts.v1"
    assert rows[1][1]["reason_code"] == "wrong_topic"


def test_values_the_store_cannot_hold_become_a_finding() -> None:
    [(table, row)] = rows_for_message(_event_msg("cp_plan.started", previous_plans=10**30), AT)
    assert (table, row["reason_code"]) == ("data_quality_findings", "out_of_range")


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"occurred_at": "0001-01-01T00:30:00+01:00", "recorded_at": "0001-01-01T00:30:00+01:00"}, "too_old"),
        ({"occurred_at": "2400-01-01T00:00:00+00:00", "recorded_at": "2400-01-01T00:00:00+00:00"}, "in_the_future"),
        ({"occurred_at": "2025-03-02T07:00:00+00:00", "recorded_at": "2030-03-02T07:00:00+00:00"}, "in_the_future"),
        ({"previous_plan_ended_at": "1850-01-01"}, "too_old"),
    ],
)
def test_event_times_outside_the_contract_window_are_findings_with_the_workers_reason(
    changes: dict[str, Any], reason: str
) -> None:
    """The window is measured from the record's timestamp (07:20), as the worker measures it."""
    [(table, row)] = rows_for_message(_event_msg("cp_plan.started", **changes), AT)
    assert (table, row["reason_code"]) == ("data_quality_findings", reason)


def test_the_window_is_measured_from_the_record_not_the_time_of_reading() -> None:
    """Read years later (a replay), an event recorded when its record was written is still stored."""
    msg = _event_msg(
        "cp_plan.started", occurred_at="2025-03-02T07:10:00+00:00", recorded_at="2025-03-02T07:20:00+00:00"
    )
    years_later = datetime(2031, 1, 1, tzinfo=UTC)
    assert [t for t, _ in rows_for_message(msg, years_later)] == ["cp_plans"]


@pytest.mark.parametrize(
    ("value", "reason"), [(b"[" * 100_000, "too_large"), (b'{"a":' * 100_000, "too_large"), (b"[" * 1000, "too_deep")]
)
def test_json_nested_too_deep_is_a_finding_not_a_crash(value: bytes, reason: str) -> None:
    """Past the contract's size or the parser's depth: one finding (a crash would stop the sink at this offset)."""
    [(table, row)] = rows_for_message(_msg("safeguarding.missing-episodes.v1", value, b"k"), AT)
    assert (table, row["reason_code"], row["claimed_event_id"]) == ("data_quality_findings", reason, None)
    kept = base64.b64decode(row["original_b64"])
    assert kept == value[: len(kept)] and len(kept) == min(len(value), 16 * 1024)
    assert row["original_size"] == len(value) and row["original_truncated"] is (len(value) > 16 * 1024)
