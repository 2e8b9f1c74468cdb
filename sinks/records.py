"""One Kafka message → the rows it becomes. Pure: the time is passed in, nothing is read or written.

Every message becomes at least one row, so counts reconcile: a message the sink cannot store as it is (not a
contract model, a value the store cannot hold) becomes a `data_quality_findings` row with its bytes and the
reason, never an exception and never nothing.

`rows_for_message` is the reference: contract models, then row dicts. `MessageMapper` is what the sink runs:
the same rows, written into a `TableBatch`'s columns; the everyday valid event (accepted by `schemas.fastcheck`
in one parse, on its topic, with its key, inside the event-time window, storable) goes straight from the
checked message into the columns, without a model or a row dict, and anything else takes the reference path.

An agency event's rows also say who published it: the principal named by the message's `safeguard-principal`
header (the ingestion gateway sets it), or None without the header. A header that is there but unusable (not one
principal name, or one that looks like a raw identifier) leaves None and adds a finding stored beside the rows
(`bad_principal_header`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import NamedTuple

from pydantic import BaseModel

from schemas.codec import decode_alert, decode_alert_lifecycle, decode_dead_letter, decode_event
from schemas.errors import ContractError, InvalidEvent
from schemas.fastcheck import PlainEvent, plain_event
from schemas.identifiers import identifier_in
from schemas.limits import DEFAULT_WINDOW, EventTimeWindow, event_time_issues, reference_time
from schemas.quality import decode_quality_finding
from schemas.topics import (
    ALERT_LIFECYCLE,
    ALERTS,
    DEAD_LETTER,
    EVENT_TOPICS,
    QUALITY_FINDINGS,
    placement_issues,
    topic_named,
)
from sinks.columns import TableBatch, add_plain_event, epoch_ms, epoch_us
from sinks.mapping import (
    TABLE_COLUMNS,
    KafkaSource,
    TableRow,
    row_for_alert,
    row_for_dead_letter,
    row_for_finding,
    row_for_lifecycle,
    row_for_quality_finding,
    rows_for_event,
)

_INT64 = (-(2**63), 2**63 - 1)
# DateTime64 and Date32 hold 1900-01-01 .. 2299-12-31; outside that ClickHouse would store a wrong value.
_EARLIEST, _LATEST = datetime(1900, 1, 1, tzinfo=UTC), datetime(2299, 12, 31, 23, 59, 59, tzinfo=UTC)
_EVENT_TOPIC_NAMES = frozenset(t.name for t in EVENT_TOPICS)

PRINCIPAL_HEADER = "safeguard-principal"
"""The Kafka header naming the principal that published a message (the gateway's `gateway.kafka.PRINCIPAL_HEADER`)."""
_PRINCIPAL_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")
"""A principal's name as the gateway allows it (gateway/principals.py): bounded, and nothing that could identify."""
BAD_PRINCIPAL_HEADER = "bad_principal_header"

Headers = Sequence[tuple[str, bytes | None]]
"""A record's headers as kafka-python gives them: (name, value) pairs, a name possibly repeated."""


class Message(NamedTuple):
    """What the sink needs of a Kafka record (a tuple: built once per message, three times cheaper than a dataclass)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int
    headers: Headers = ()
    """Read only for agency events, and only `safeguard-principal`."""

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


def publisher(headers: Headers) -> tuple[str | None, str | None]:
    """(the principal the `safeguard-principal` header names, or None; why the header is unusable, or None).

    Without the header: (None, None). The header's value is never quoted back (it is not known to be harmless)."""
    values = [value for name, value in headers if name == PRINCIPAL_HEADER]
    if not values:
        return None, None
    if len(values) > 1:
        return None, f"{len(values)} {PRINCIPAL_HEADER} headers on one message (one at most)"
    try:
        name = (values[0] or b"").decode("utf-8")
    except UnicodeDecodeError:
        return None, f"the {PRINCIPAL_HEADER} header is not UTF-8"
    if not _PRINCIPAL_NAME.fullmatch(name):
        return None, (
            f"the {PRINCIPAL_HEADER} header is not a principal name (1 to 63 of a-z, 0-9, '_', '.', '-', "
            "starting with a letter or digit)"
        )
    kind = identifier_in(name)
    if kind is not None:  # anyone who may write an event topic can set the header: it is checked as data is
        return None, f"the {PRINCIPAL_HEADER} header looks like {kind}, not a principal name"
    return name, None


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
    QUALITY_FINDINGS.name: (decode_quality_finding, row_for_quality_finding),
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
            principal, problem = publisher(msg.headers) if msg.headers else (None, None)
            rows = rows_for_event(event, msg.source, ingested_at, published_by=principal)
            issues = placement_issues(topic_named(msg.topic), event, msg.key)
            for issue in issues:
                rows.append(_finding(msg, ingested_at, issue.code, str(issue), row_stored=True))
            if problem is not None:
                rows.append(_finding(msg, ingested_at, BAD_PRINCIPAL_HEADER, problem, row_stored=True))
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


_INT64_MAX = _INT64[1]
_MAX_REMEMBERED = 4096
_EARLIEST_US, _LATEST_US = epoch_us(_EARLIEST), epoch_us(_LATEST)
_EVENT_KEYS: dict[str, tuple[tuple[str, ...], str]] = {
    spec.name: (spec.event_types, spec.key_field or "") for spec in EVENT_TOPICS
}
"""Per event topic: the event types it carries, and the field whose value is the key."""


class Bounds(NamedTuple):
    """The event-time window for one reference time, as `schemas.limits.event_time_issues` applies it."""

    earliest_us: int
    latest_us: int
    first_day: date
    last_day: date


def window_bounds(window: EventTimeWindow, reference: datetime) -> Bounds:
    earliest, latest = window.earliest(reference), window.latest(reference)
    return Bounds(epoch_us(earliest), epoch_us(latest), earliest.date(), latest.date())


class MessageMapper:
    """Messages into a `TableBatch`: the rows `rows_for_message(msg, ingested_at, window)` gives, in columns.

    Keeps three small memos: the window's bounds per record timestamp (records come in runs sharing one), the
    last `ingested_at` in epoch milliseconds (the sink passes one per poll), and the principal per header value
    (a handful of publishers: each row then holds the same `str`, and nothing is decoded or checked per message).
    """

    def __init__(self, window: EventTimeWindow = DEFAULT_WINDOW) -> None:
        self.window = window
        self._bounds: dict[int, Bounds] = {}
        self._ingested: tuple[datetime, int] | None = None
        self._principals: dict[bytes, str] = {}

    def add(self, batch: TableBatch, msg: Message, ingested_at: datetime) -> None:
        """Every row of `msg` into `batch`."""
        if msg.value is not None and msg.topic in _EVENT_KEYS:
            event = plain_event(msg.value)
            if event is not None and self._add_plain(batch, msg, event, ingested_at):
                return
        batch.add_rows(rows_for_message(msg, ingested_at, self.window))

    def _add_plain(self, batch: TableBatch, msg: Message, event: PlainEvent, ingested_at: datetime) -> bool:
        """The event's rows, if it needs nothing the reference path adds: a placement finding, an event-time or a
        storage rejection. False (and nothing added) otherwise."""
        obj, occurred, recorded, ended = event
        event_types, key_field = _EVENT_KEYS[msg.topic]
        if obj["event_type"] not in event_types or msg.key != obj[key_field].encode("utf-8"):
            return False  # wrong topic or key: stored and noted, by the reference path
        headers = msg.headers
        published_by = self._publisher(headers) if headers else None
        if published_by == "":
            return False  # an unusable principal header: stored and noted, by the reference path
        ingested_ms = self._ingested_ms(ingested_at)
        bounds = self._window(msg, ingested_at, ingested_ms)
        # occurred <= recorded (checked), so these bound both times: the window, then the store's range.
        if occurred < bounds.earliest_us or recorded > bounds.latest_us:
            return False
        if occurred < _EARLIEST_US or recorded > _LATEST_US:
            return False
        if ended is not None and not (bounds.first_day <= ended <= bounds.last_day and 1900 <= ended.year <= 2299):
            return False
        plans = obj.get("previous_plans")
        if plans is not None and plans > _INT64_MAX:
            return False
        add_plain_event(batch, event, (msg.topic, msg.partition, msg.offset, ingested_ms, published_by))
        return True

    def _publisher(self, headers: Headers) -> str | None:
        """The principal the headers name, None without the header, "" when the header is unusable."""
        if len(headers) == 1:  # the gateway's messages: one header, one of a few values
            name, value = headers[0]
            if name == PRINCIPAL_HEADER and value is not None:
                known = self._principals.get(value)
                if known is not None:
                    return known
                principal = publisher(headers)[0]
                if principal is None:
                    return ""
                if len(self._principals) >= _MAX_REMEMBERED:
                    self._principals.clear()
                self._principals[value] = principal
                return principal
        principal, problem = publisher(headers)
        return "" if problem is not None else principal

    def _window(self, msg: Message, ingested_at: datetime, ingested_ms: int) -> Bounds:
        stamp = msg.timestamp_ms
        if not 0 < stamp <= ingested_ms:  # no timestamp, or one after the wall clock: the wall clock is the reference
            return window_bounds(self.window, reference_time(msg.timestamp, ingested_at))
        known = self._bounds.get(stamp)
        if known is None:
            if len(self._bounds) >= _MAX_REMEMBERED:
                self._bounds.clear()
            known = self._bounds[stamp] = window_bounds(self.window, msg.timestamp)
        return known

    def _ingested_ms(self, ingested_at: datetime) -> int:
        last = self._ingested
        if last is None or last[0] is not ingested_at:
            last = self._ingested = (ingested_at, epoch_ms(ingested_at))
        return last[1]
