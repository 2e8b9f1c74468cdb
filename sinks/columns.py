"""A batch of rows as the insert takes them: per table, one list per column, in `TABLE_COLUMNS` order.

Pure, no I/O. Column lists go to clickhouse-connect as they are (`column_oriented=True`): no row objects to
build, group or pivot. Timestamps are stored as milliseconds since the epoch (what DateTime64(3) holds,
truncated as ClickHouse truncates), dates and everything else as the row mapping gives them.

Two ways in: `add_rows` for mapped row dicts (`sinks.mapping`: findings, alerts, dead letters, and events the
quick check leaves to the models), and `add_plain_event` for an event `schemas.fastcheck` accepted, which
writes the same values straight from the parsed message.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.fastcheck import PlainEvent
from schemas.types import REFERRAL_OUTCOMES
from sinks.mapping import TABLE_COLUMNS, Row, TableRow

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_US = timedelta(microseconds=1)
_TIMESTAMP_COLUMNS = {
    "occurred_at", "recorded_at", "ingested_at", "triggered_at", "raised_at", "dead_lettered_at",
    "message_timestamp", "found_at",
}  # fmt: skip
"""The DateTime64(3, 'UTC') columns (none is Nullable)."""
_TIMESTAMP_INDEXES = {
    table: tuple(i for i, c in enumerate(columns) if c in _TIMESTAMP_COLUMNS)
    for table, columns in TABLE_COLUMNS.items()
}
_FINDINGS = "data_quality_findings"


def epoch_ms(moment: datetime) -> int:
    """Milliseconds since the epoch, rounded down (exact: no float in between)."""
    return (moment - _EPOCH) // _MS


def epoch_us(moment: datetime) -> int:
    """Microseconds since the epoch (exact)."""
    return (moment - _EPOCH) // _US


def row_values(table: str, row: Row) -> list[Any]:
    """A mapped row's values in column order, timestamps as epoch milliseconds."""
    values = [row[c] for c in TABLE_COLUMNS[table]]
    for i in _TIMESTAMP_INDEXES[table]:
        values[i] = epoch_ms(values[i])
    return values


class TableBatch:
    """Rows per table as column lists; `len()` counts the rows, `findings` the data-quality findings among them."""

    def __init__(self) -> None:
        self.columns: dict[str, list[list[Any]]] = {}
        self.findings = 0
        self._rows = 0

    def __len__(self) -> int:
        return self._rows

    def append(self, table: str, values: tuple[Any, ...] | list[Any]) -> None:
        """One row: a value for each of `TABLE_COLUMNS[table]`, in that order (not checked: it is per row)."""
        columns = self.columns.get(table)
        if columns is None:
            columns = self.columns[table] = [[] for _ in TABLE_COLUMNS[table]]
        # map runs the appends in C (half the cost of a Python loop); any() drains it, list.append returns None.
        any(map(list.append, columns, values))
        self._rows += 1

    def add_rows(self, rows: Iterable[TableRow]) -> None:
        for table, row in rows:
            self.append(table, row_values(table, row))
            if table == _FINDINGS:
                self.findings += 1

    def rows(self) -> Iterator[TableRow]:
        """The rows back as dicts, table by table (for tests and diagnostics; timestamps stay epoch milliseconds)."""
        for table, columns in self.columns.items():
            names = TABLE_COLUMNS[table]
            for values in zip(*columns, strict=True):
                yield table, dict(zip(names, values, strict=True))


def add_plain_event(batch: TableBatch, event: PlainEvent, tail: tuple[str, int, int, int, str | None]) -> None:
    """The rows `mapping.rows_for_event` gives for this event, written straight from the validated message.

    `tail` is (kafka_topic, kafka_partition, kafka_offset, ingested_at in epoch ms, published_by): the columns every
    event table ends with, the same for each row of the message.
    """
    e = event.obj
    event_type = e["event_type"]
    occurred, recorded = event.occurred_us // 1000, event.recorded_us // 1000  # floor, as `epoch_ms`
    purge = 1 if e.get("purge") else 0
    head = (e["event_id"], event_type, 1, e["la_code"], e["agency_type"], e["agency_code"], occurred, recorded, purge)
    get = e.get
    if event_type == "contact.received":
        batch.append(
            "contacts",
            (*head, e["contact_id"], e["child_id"], get("household_id"), e["contact_source"], e["concerns"],
             get("route"), get("linked_incident_id"), *tail),
        )  # fmt: skip
    elif event_type == "contact.decided":
        outcome = e["outcome"]
        batch.append(
            "contact_decisions",
            (*head, e["contact_id"], e["child_id"], outcome, outcome in REFERRAL_OUTCOMES, get("primary_need"), *tail),
        )
    elif event_type.startswith("missing."):
        batch.append(
            "missing_episodes",
            (*head, e["episode_id"], e["child_id"], e["looked_after"], e["absence_type"], e["risk_level"],
             get("interview"), *tail),
        )  # fmt: skip
    elif event_type == "domestic_incident.recorded":
        _add_incident(batch, e, head, tail)
    else:  # cp_plan.started, cp_plan.ended
        batch.append(
            "cp_plans",
            (*head, e["plan_id"], e["child_id"], e["category"], get("previous_plans"), event.previous_plan_ended_at,
             *tail),
        )  # fmt: skip


def _add_incident(batch: TableBatch, e: dict[str, Any], head: tuple[Any, ...], tail: tuple[Any, ...]) -> None:
    children: list[dict[str, Any]] = e["children"]
    marac = e.get("marac_referral", False)
    present = sum(1 for c in children if c["present"])
    batch.append(
        "domestic_incidents",
        (*head, e["incident_id"], e["household_id"], e.get("victim_id"), e.get("perpetrator_id"), e["dash_risk"],
         e.get("dash_score"), e["is_crime"], marac, len(children), present, *tail),
    )  # fmt: skip
    event_id, _, _, la_code, agency_type, agency_code, occurred, recorded, purge = head
    shared = (event_id, la_code, agency_type, agency_code, occurred, recorded, purge, e["incident_id"],
              e["household_id"], e["dash_risk"], marac)  # fmt: skip
    for child in children:
        batch.append(
            "domestic_incident_children", (*shared, child["child_id"], child["present"], child.get("school_urn"), *tail)
        )
