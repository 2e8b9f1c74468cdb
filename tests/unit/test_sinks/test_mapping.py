"""Row mapping: every contract model maps to rows holding exactly its table's columns, values taken from the event."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from schemas.alerts import AlertLifecycle, AlertRaised
from schemas.codec import validate_event
from schemas.deadletter import dead_letter_from_kafka
from schemas.events import EVENT_MODELS
from schemas.topics import TOPICS
from sinks.columns import TableBatch, epoch_ms
from sinks.mapping import (
    EVENT_TABLES,
    KEY_COLUMNS,
    TABLE_COLUMNS,
    TOPIC_TABLES,
    KafkaSource,
    finding_id,
    row_for_alert,
    row_for_dead_letter,
    row_for_finding,
    row_for_lifecycle,
    rows_for_event,
)
from tests.unit.test_schemas import examples as ex

AT = datetime(2025, 3, 2, 8, 0, tzinfo=UTC)
SRC = KafkaSource("safeguarding.contacts.v1", 3, 41)
MIGRATIONS = Path(__file__).parents[3] / "sinks" / "migrations"
DDL = "".join(path.read_text() for path in sorted(MIGRATIONS.glob("*.sql")))


def _ddl_columns(table: str) -> list[str]:
    """The table's columns as created, then as later migrations add them (`ADD COLUMN IF NOT EXISTS`), in order."""
    block = DDL.split(f"CREATE TABLE IF NOT EXISTS {{{{db}}}}.{table}\n(", 1)[1].split("\n)", 1)[0]
    columns = [line.strip().split()[0] for line in block.strip().splitlines()]
    for path in sorted(MIGRATIONS.glob("*.sql"))[1:]:
        for statement in path.read_text().split(";"):
            if f"ALTER TABLE {{{{db}}}}.{table}\n" in statement:
                columns += re.findall(r"ADD COLUMN IF NOT EXISTS (\w+)", statement)
    return columns


@pytest.mark.parametrize("table", sorted(TABLE_COLUMNS))
def test_table_columns_match_the_ddl_in_order(table: str) -> None:
    assert list(TABLE_COLUMNS[table]) == _ddl_columns(table)


def test_every_event_type_and_topic_has_a_table() -> None:
    assert set(EVENT_TABLES) == set(EVENT_MODELS)
    assert set(TOPIC_TABLES) == {t.name for t in TOPICS}
    assert {t for tables in TOPIC_TABLES.values() for t in tables} == set(KEY_COLUMNS)


@pytest.mark.parametrize(("name", "obj"), ex.all_examples(), ids=lambda v: v if isinstance(v, str) else "")
def test_each_event_maps_to_its_table_with_exact_columns(name: str, obj: dict[str, object]) -> None:
    event_type = name.split("/")[0]
    event = validate_event(obj)
    rows = rows_for_event(event, SRC, AT)
    table, row = rows[0]
    assert table == EVENT_TABLES[event_type]
    for t, r in rows:
        assert set(r) == set(TABLE_COLUMNS[t])
    assert row["event_id"] == obj["event_id"]
    assert row["event_type"] == event_type
    assert row["la_code"] == obj["la_code"]
    assert row["agency_type"] == obj["agency_type"]
    assert row["occurred_at"] == datetime(2025, 3, 1, 21, 15, tzinfo=UTC)
    assert row["recorded_at"] == datetime(2025, 3, 1, 22, 2, 41, tzinfo=UTC)
    assert row["recorded_at"].utcoffset() == timedelta(0)
    assert (row["kafka_topic"], row["kafka_partition"], row["kafka_offset"]) == ("safeguarding.contacts.v1", 3, 41)
    assert row["ingested_at"] == AT
    for name, value in obj.items():
        if name in row and name not in {"occurred_at", "recorded_at", "purge", "previous_plan_ended_at", "children"}:
            assert row[name] == value, name


def test_domestic_incident_gives_one_child_row_per_child() -> None:
    event = validate_event(ex.full("domestic_incident.recorded"))
    rows = rows_for_event(event)
    incident = rows[0][1]
    children = [r for t, r in rows if t == "domestic_incident_children"]
    assert (incident["children_count"], incident["children_present"]) == (2, 1)
    assert [(c["child_id"], c["present"], c["school_urn"]) for c in children] == [
        (ex.CHILD, True, "107985"),
        (ex.OTHER_CHILD, False, None),
    ]
    assert all(c["event_id"] == incident["event_id"] and c["dash_risk"] == "high" for c in children)
    assert all(c["marac_referral"] is True and c["household_id"] == ex.HOUSEHOLD for c in children)


def test_incident_without_children_has_no_child_rows() -> None:
    rows = rows_for_event(validate_event(ex.minimal("domestic_incident.recorded")))
    assert [t for t, _ in rows] == ["domestic_incidents"]


@pytest.mark.parametrize(("outcome", "referral"), [("nfa", False), ("referral", True), ("strategy_discussion", True)])
def test_decision_marks_referrals(outcome: str, referral: bool) -> None:
    obj = {**ex.minimal("contact.decided"), "outcome": outcome}
    assert rows_for_event(validate_event(obj))[0][1]["is_referral"] is referral


def test_without_kafka_the_contract_topic_and_recorded_at_are_used() -> None:
    table, row = rows_for_event(validate_event(ex.minimal("cp_plan.started")))[0]
    assert table == "cp_plans"
    assert (row["kafka_topic"], row["kafka_partition"], row["kafka_offset"]) == ("safeguarding.cp-plans.v1", -1, -1)
    assert row["ingested_at"] == row["recorded_at"]


def test_purge_is_the_tombstone_flag() -> None:
    obj = {**ex.minimal("missing.found"), "purge": True}
    assert rows_for_event(validate_event(obj))[0][1]["purge"] == 1
    assert rows_for_event(validate_event(ex.minimal("missing.found")))[0][1]["purge"] == 0


def test_return_interview_keeps_the_step_and_other_missing_events_none() -> None:
    assert rows_for_event(validate_event(ex.full("missing.return_interview")))[0][1]["interview"] == "completed"
    assert rows_for_event(validate_event(ex.full("missing.reported")))[0][1]["interview"] is None


def test_alert_row() -> None:
    alert = AlertRaised.model_validate(ex.alert())
    table, row = row_for_alert(alert, KafkaSource("safeguarding.alerts.v1", 0, 5), AT)
    assert table == "alerts" and set(row) == set(TABLE_COLUMNS["alerts"])
    assert row["alert_id"] == alert.alert_id
    assert row["evidence_event_ids"] == alert.evidence_event_ids
    assert row["window"] == alert.window and row["count"] == alert.count
    assert row["triggered_at"].utcoffset() == timedelta(0)


def test_lifecycle_row() -> None:
    change = AlertLifecycle(
        event_id="ack:3fa85f6457174562:1",
        alert_id="3fa85f6457174562",
        state="acknowledged",
        occurred_at=datetime(2025, 3, 2, 9, 0, tzinfo=timezone(timedelta(hours=1))),
        rule_id="repeat_missing",
        severity="high",
        la_code="383",
        actor="duty.manager",
    )
    table, row = row_for_lifecycle(change)
    assert table == "alert_lifecycle" and set(row) == set(TABLE_COLUMNS["alert_lifecycle"])
    assert row["occurred_at"] == datetime(2025, 3, 2, 8, 0, tzinfo=UTC)
    assert (row["state"], row["actor"], row["escalation_level"]) == ("acknowledged", "duty.manager", 0)
    assert row["kafka_topic"] == "safeguarding.alert-lifecycle.v1"


def test_dead_letter_row() -> None:
    letter = dead_letter_from_kafka(
        topic="safeguarding.contacts.v1",
        partition=2,
        offset=9,
        key=b"k",
        value=b'{"event_id": "x", "event_type": "contact.received"}',
        reason_code="invalid",
        error="field `child_id`: is required but missing",
        at=AT,
    )
    table, row = row_for_dead_letter(letter, KafkaSource("safeguarding.dead-letter.v1", 1, 0), AT)
    assert table == "dead_letters" and set(row) == set(TABLE_COLUMNS["dead_letters"])
    assert row["dead_letter_id"] == letter.dead_letter_id
    assert (row["source_topic"], row["source_partition"], row["source_offset"]) == ("safeguarding.contacts.v1", 2, 9)
    assert (row["claimed_event_id"], row["claimed_event_type"]) == ("x", "contact.received")
    assert row["reason_code"] == "invalid"


def test_finding_keeps_the_bytes_and_is_deterministic() -> None:
    src = KafkaSource("safeguarding.cp-plans.v1", 4, 17)
    args = {
        "source": src,
        "key": b"child",
        "value": b"\xff not json",
        "message_timestamp": AT,
        "reason_code": "undecodable",
        "error": "not UTF-8",
        "row_stored": False,
    }
    table, row = row_for_finding(**args, found_at=AT)  # type: ignore[arg-type]
    _, again = row_for_finding(**args, found_at=AT + timedelta(hours=1))  # type: ignore[arg-type]
    assert table == "data_quality_findings" and set(row) == set(TABLE_COLUMNS["data_quality_findings"])
    assert base64.b64decode(row["original_b64"]) == b"\xff not json"
    assert row["finding_id"] == again["finding_id"] == finding_id(src, "undecodable")
    assert finding_id(src, "undecodable") != finding_id(KafkaSource(src.topic, 4, 18), "undecodable")
    assert re.fullmatch(r"[0-9a-f-]{36}", row["finding_id"])
    assert row["message_key"] == "child" and row["claimed_event_id"] is None


def test_a_batch_holds_each_table_as_columns_in_column_order() -> None:
    rows = rows_for_event(validate_event(ex.full("domestic_incident.recorded")))
    batch = TableBatch()
    batch.add_rows(rows)
    assert {t: [len(c) for c in cols] for t, cols in batch.columns.items()} == {
        "domestic_incidents": [1] * len(TABLE_COLUMNS["domestic_incidents"]),
        "domestic_incident_children": [2] * len(TABLE_COLUMNS["domestic_incident_children"]),
    }
    cols = TABLE_COLUMNS["domestic_incident_children"]
    assert batch.columns["domestic_incident_children"][cols.index("child_id")][1] == ex.OTHER_CHILD
    assert len(batch) == 3 and batch.findings == 0


def test_timestamps_are_stored_as_epoch_milliseconds_rounded_down() -> None:
    obj = {**ex.minimal("missing.found"), "occurred_at": "1969-12-31T23:59:59.9995+00:00"}
    obj["recorded_at"] = "2025-03-01T22:02:41.123999+01:00"
    batch = TableBatch()
    batch.add_rows(rows_for_event(validate_event(obj), SRC, AT))
    ((_, row),) = batch.rows()
    assert row["occurred_at"] == -1  # floor, as ClickHouse truncates DateTime64(3)
    assert row["recorded_at"] == 1740862961123
    assert row["ingested_at"] == epoch_ms(AT) == 1740902400000
