"""Data-quality findings (schemas/quality.py) through the sink: one `quality_findings` row per message, keyed by the
finding id (the importer's and the worker's finding of one event are one row), and a message that is not a finding
stored as a `data_quality_findings` row, never dropped."""

from __future__ import annotations

from datetime import UTC, datetime

from schemas.codec import encode
from schemas.quality import QualityFinding, finding_id
from schemas.topics import QUALITY_FINDINGS
from sinks.columns import TableBatch, epoch_ms
from sinks.mapping import TABLE_COLUMNS, row_for_quality_finding
from sinks.records import Message, MessageMapper, rows_for_message

AT = datetime(2025, 3, 2, 8, 0, tzinfo=UTC)
EVENT_ID = "0a5c6e7f-1b2c-4d3e-8f90-a1b2c3d4e5f6"
CHILD = "ab" * 32


def made(found_by: str = "importer", occurred_at: datetime | None = AT) -> QualityFinding:
    return QualityFinding.model_validate(
        {
            "finding_id": finding_id("8925", EVENT_ID),
            "rule_id": "8925",
            "check_name": "plan_ends_before_start",
            "message": "the plan ends (2025-03-01) before it starts (2025-03-02)",
            "event_id": EVENT_ID,
            "checked_event_type": "cp_plan.ended",
            "la_code": "383",
            "child_id": CHILD,
            "occurred_at": occurred_at,
            "fed": False,
            "found_by": found_by,
            "found_at": AT,
        }
    )


def test_a_finding_is_one_row_with_every_column() -> None:
    table, row = row_for_quality_finding(made())
    assert table == "quality_findings" and set(row) == set(TABLE_COLUMNS[table])
    assert (row["rule_id"], row["event_id"], row["fed"], row["kafka_topic"]) == (
        "8925",
        EVENT_ID,
        False,
        QUALITY_FINDINGS.name,
    )
    _, unknown_time = row_for_quality_finding(made(occurred_at=None))
    assert unknown_time["occurred_at"] == AT, "a finding without the event's time is placed at the time it was made"


def test_the_sink_maps_a_finding_message_and_the_importer_and_worker_share_its_key() -> None:
    importer = Message(QUALITY_FINDINGS.name, 0, 5, EVENT_ID.encode(), encode(made("importer")), epoch_ms(AT))
    worker = Message(QUALITY_FINDINGS.name, 0, 6, EVENT_ID.encode(), encode(made("worker")), epoch_ms(AT))
    [(t1, r1)] = rows_for_message(importer, AT)
    [(t2, r2)] = rows_for_message(worker, AT)
    assert t1 == t2 == "quality_findings" and r1["finding_id"] == r2["finding_id"]
    assert (r1["found_by"], r2["found_by"]) == ("importer", "worker")
    batch = TableBatch()
    MessageMapper().add(batch, importer, AT)
    assert [t for t, _ in batch.rows()] == ["quality_findings"]


def test_a_message_on_the_findings_topic_that_is_not_a_finding_is_kept_with_its_reason() -> None:
    for value, reason in ((b"not json", "undecodable"), (b'{"rule_id": "8925"}', "invalid")):
        [(table, row)] = rows_for_message(Message(QUALITY_FINDINGS.name, 1, 9, None, value, epoch_ms(AT)), AT)
        assert (table, row["reason_code"]) == ("data_quality_findings", reason)
