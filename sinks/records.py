"""One Kafka message → the rows it becomes. Pure: the time is passed in, nothing is read or written.

Every message becomes at least one row, so counts reconcile: a message the sink cannot store as it is (not a
contract model, a value the store cannot hold) becomes a `data_quality_findings` row with its bytes and the
reason, never an exception and never nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime

from pydantic import BaseModel

from schemas.codec import decode_alert, decode_alert_lifecycle, decode_dead_letter, decode_event
from schemas.errors import ContractError, InvalidEvent
from schemas.limits import DEFAULT_WINDOW, EventTimeWindow, event_time_issues, reference_time
from schemas.topics import ALERT_LIFECYCLE, ALERTS, DEAD_LETTER, EVENT_TOPICS, placement_issues, topic_named
from sinks.mapping import (
    TABLE_COLUMNS,
    KafkaSource,
    TableRow,
    row_for_alert,
    row_for_dead_letter,
    row_for_finding,
    row_for_lifecycle,
    rows_for_event,
)

_INT64 = (-(2**63), 2**63 - 1)
# DateTime64 and Date32 hold 1900-01-01 .. 2299-12-31; outside that ClickHouse would store a wrong value.
_EARLIEST, _LATEST = datetime(1900, 1, 1, tzinfo=UTC), datetime(2299, 12, 31, 23, 59, 59, tzinfo=UTC)
_EVENT_TOPIC_NAMES = frozenset(t.name for t in EVENT_TOPICS)


@dataclass(frozen=True)
class Message:
    """What the sink needs of a Kafka record."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int

    @property
    def source(self) -> KafkaSource:
        return KafkaSource(self.topic, self.partition, self.offset)

    @property
    def timestamp(self) -> datetime:
        return datetime.fromtimestamp(max(self.timestamp_ms, 0) / 1000, tz=UTC)


def _finding(msg: Message, at: datetime, reason_code: str, error: str, *, row_stored: bool = False) -> TableRow:
    return row_for_finding(
        source=msg.source,
        key=msg.key,
        value=msg.value,
        message_timestamp=msg.timestamp,
        reason_code=reason_code,
        error=error,
        row_stored=row_stored,
        found_at=at,
    )


_RANGE_CHECKED = {
    "previous_plans", "rule_version", "threshold", "count", "escalation_level", "source_partition", "source_offset",
    "source_line", "occurred_at", "recorded_at", "triggered_at", "raised_at", "dead_lettered_at",
    "previous_plan_ended_at",
}  # fmt: skip
_CHECKED_COLUMNS = {table: tuple(c for c in columns if c in _RANGE_CHECKED) for table, columns in TABLE_COLUMNS.items()}


def _unstorable(rows: list[TableRow]) -> str | None:
    """Why a mapped row cannot be stored faithfully (a number or a date out of the column's range), or None.

    Only columns filled from contract fields without a bound are checked (the rest are bounded by the models).
    """
    for table, row in rows:
        for column in _CHECKED_COLUMNS[table]:
            value = row[column]
            if value is None:
                continue
            if isinstance(value, int) and not _INT64[0] <= value <= _INT64[1]:
                return f"{table}.{column}: the number is too large to store"
            if isinstance(value, datetime) and not _EARLIEST <= value <= _LATEST:
                return f"{table}.{column}: {value.isoformat()} is outside 1900-2299"
            if type(value) is date and not 1900 <= value.year <= 2299:
                return f"{table}.{column}: {value.isoformat()} is outside 1900-2299"
    return None


_Decoder = Callable[[bytes], BaseModel]
_SINGLE: dict[str, tuple[_Decoder, Callable[..., TableRow]]] = {
    ALERTS.name: (decode_alert, row_for_alert),
    ALERT_LIFECYCLE.name: (decode_alert_lifecycle, row_for_lifecycle),
    DEAD_LETTER.name: (decode_dead_letter, row_for_dead_letter),
}


def rows_for_message(
    msg: Message, ingested_at: datetime, window: EventTimeWindow | None = DEFAULT_WINDOW
) -> list[TableRow]:
    """The rows of one message: its table rows (plus a finding when a valid event breaks a placement rule),
    or a single finding when it cannot be stored.

    An agency event is checked as the worker checks it (the contract's limits, and its event-time window
    measured from the record's timestamp, never later than `ingested_at`): what the worker dead-letters
    is a finding here, with the same reason code, and never a row of the measures. `window=None` skips the
    event-time check (for `reconcile`, re-mapping a record whose timestamp is unknown).
    """
    if msg.value is None:
        return [_finding(msg, ingested_at, "tombstone", "a message without a value (a Kafka tombstone)")]
    rows: list[TableRow]
    try:
        if msg.topic in _EVENT_TOPIC_NAMES:
            event = decode_event(msg.value)
            reference = reference_time(msg.timestamp, ingested_at)
            out_of_window = [] if window is None else event_time_issues(event, reference=reference, window=window)
            if out_of_window:
                raise InvalidEvent(out_of_window)
            rows = rows_for_event(event, msg.source, ingested_at)
            issues = placement_issues(topic_named(msg.topic), event, msg.key)
            for issue in issues:
                rows.append(_finding(msg, ingested_at, issue.code, str(issue), row_stored=True))
        elif msg.topic in _SINGLE:
            decode, to_row = _SINGLE[msg.topic]
            rows = [to_row(decode(msg.value), msg.source, ingested_at)]
        else:
            return [_finding(msg, ingested_at, "unknown_topic", f"{msg.topic} is not a contract topic")]
    except ContractError as exc:
        return [_finding(msg, ingested_at, exc.reason_code, str(exc))]
    except (OverflowError, ValueError) as exc:  # e.g. a timestamp in year 1 with an offset cannot become UTC
        return [_finding(msg, ingested_at, "out_of_range", f"a value cannot be stored: {exc}")]
    problem = _unstorable(rows)
    if problem is not None:
        return [_finding(msg, ingested_at, "out_of_range", problem)]
    return rows
