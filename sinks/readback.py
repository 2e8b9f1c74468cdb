"""The sink's event tables read back as contract events: the history a backtest replays.

The inverse of `sinks.mapping.rows_for_event` over the tables of migration 0001: one query per event table (with
`FINAL`, so each event once and purged events not at all), a domestic incident's children from their own table.
Each row is validated as its contract model again, so a row the contract no longer accepts fails loudly here
instead of feeding the rules something the worker would never see.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from schemas.errors import StoreError
from schemas.events import EVENT_MODELS, AgencyEvent
from sinks.mapping import TABLE_COLUMNS

Client = Any
"""A clickhouse-connect client (the library ships no type hints)."""

NOT_OF_THE_EVENT = frozenset(
    {"purge", "is_referral", "children_count", "children_present", "kafka_topic", "kafka_partition", "kafka_offset",
     "ingested_at", "published_by"}
)  # fmt: skip
"""Columns the sink adds to an event's row: derived from the event (`is_referral`, the children counts), or where,
when and from whom it was stored, and the erasure flag."""
EVENT_COLUMNS: dict[str, tuple[str, ...]] = {
    table: tuple(column for column in TABLE_COLUMNS[table] if column not in NOT_OF_THE_EVENT)
    for table in ("contacts", "contact_decisions", "missing_episodes", "domestic_incidents", "cp_plans")
}
"""The columns of each event table that make up its events (`sinks.mapping.TABLE_COLUMNS` without the sink's own)."""

_TIMES = ("occurred_at", "recorded_at")


def event_tables_present(client: Client, database: str) -> bool:
    """Whether `database` holds the sink's event tables (migrated)."""
    rows = client.query(
        "SELECT count() FROM system.tables WHERE database = {db:String} AND name IN {names:Array(String)}",
        parameters={"db": database, "names": [*EVENT_COLUMNS, "domestic_incident_children"]},
    ).result_rows
    return bool(rows) and int(rows[0][0]) == len(EVENT_COLUMNS) + 1


def read_events(client: Client, database: str) -> Iterator[AgencyEvent]:
    """Every stored agency event, table by table (not in time order: sort them for a replay). `database` is a
    checked identifier (`sinks.store.database_name`).

    Raises StoreError when a query fails or a stored row is not a valid event.
    """
    children = _incident_children(client, database)
    for table, columns in EVENT_COLUMNS.items():
        sql = f"SELECT {', '.join(columns)} FROM `{database}`.{table} FINAL"  # noqa: S608 (a checked identifier)
        for row in _query(client, sql):
            record = dict(zip(columns, row, strict=True))
            if table == "domestic_incidents":
                record["children"] = children.get(record["event_id"], [])
            yield _event(table, record)


def _incident_children(client: Client, database: str) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    sql = f"SELECT event_id, child_id, present, school_urn FROM `{database}`.domestic_incident_children FINAL"  # noqa: S608
    for event_id, child_id, present, school_urn in _query(client, sql):
        child = {"child_id": child_id, "present": bool(present)}
        if school_urn is not None:
            child["school_urn"] = school_urn
        found[event_id].append(child)
    return found


def _query(client: Client, sql: str) -> list[tuple[Any, ...]]:
    try:
        rows: list[tuple[Any, ...]] = client.query(sql).result_rows
    except Exception as exc:
        text = str(exc).strip()
        raise StoreError(f"reading events from the store failed: {text.splitlines()[0] if text else exc!r}") from exc
    return rows


def _event(table: str, record: dict[str, Any]) -> AgencyEvent:
    """The contract event of one row: times back to aware UTC, unset optional fields left out, then validated."""
    fields = {name: value for name, value in record.items() if value is not None}
    for name in _TIMES:
        fields[name] = _utc(fields[name])
    if "concerns" in fields:
        fields["concerns"] = list(fields["concerns"])
    for flag in ("looked_after", "is_crime", "marac_referral"):
        if flag in fields:
            fields[flag] = bool(fields[flag])
    model = EVENT_MODELS.get(str(fields.get("event_type")))
    if model is None:
        raise StoreError(f"{table}: event {fields.get('event_id')} has an unknown type {fields.get('event_type')!r}")
    try:
        event: AgencyEvent = model.model_validate(fields)  # type: ignore[assignment]
    except ValidationError as exc:
        raise StoreError(
            f"{table}: event {fields.get('event_id')} is not a valid {model.__name__} any more "
            f"({exc.error_count()} problems, first: {exc.errors()[0]['msg']})"
        ) from None
    return event


def _utc(value: datetime) -> datetime:
    """clickhouse-connect returns naive UTC datetimes for DateTime64(3, 'UTC')."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
