"""The contract's bounds on a message, decided once here and applied by every component that reads input.

Producers (`safeguard publish`), the stream worker, the sink (and any gateway) call the same functions and
so give the same reason codes:

- **shape** (`check_shape`, before the models): the message's size in bytes, its nesting depth, the items
  of any list, the keys of any object, the characters of any string. A valid event is far inside every
  bound (the largest, an incident with its children, is a few kilobytes); the bounds exist so that no
  single message can exhaust memory, recursion or an alert fan-out.
- **event time** (`event_time_issues`, after the models): `occurred_at` no older than `max_age_years`
  and `recorded_at` at most `future_tolerance` after the reference time. The reference is when the
  message reached the system: for a Kafka record, its timestamp, but never later than the reader's wall
  clock (`reference_time`), so re-reading a topic years later gives the same answer and a producer
  cannot put itself in the future by forging a record's timestamp; for a file, the wall clock.
  `recorded_at` >= `occurred_at` is a model rule, so both bounds hold for both timestamps.

Reason codes (an `Issue.code`, and the dead letter's `reason_code`): `too_large`, `too_deep`,
`too_many_items`, `too_many_fields`, `too_long`, `too_old`, `in_the_future`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from schemas.errors import DecodeError, Issue

REASON_TOO_LARGE = "too_large"
REASON_TOO_DEEP = "too_deep"
REASON_TOO_MANY_ITEMS = "too_many_items"
REASON_TOO_MANY_FIELDS = "too_many_fields"
REASON_TOO_LONG = "too_long"
REASON_TOO_OLD = "too_old"
REASON_IN_THE_FUTURE = "in_the_future"


@dataclass(frozen=True)
class MessageLimits:
    """The shape bounds of one agency event message (event-contract.md, "Limits")."""

    max_message_bytes: int = 64 * 1024
    max_depth: int = 6
    """Nesting of objects and lists; an event is 3 deep (event → children → child)."""
    max_list_items: int = 50
    """Items of any list: children of an incident, concerns of a contact."""
    max_object_keys: int = 64
    max_string_chars: int = 1_000


LIMITS = MessageLimits()


class EventTimeWindow(BaseModel):
    """How far into the past and the future an event's times may lie (a settings section: `SAFEGUARD_CONTRACT__*`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_age_years: int = Field(
        default=25,
        ge=1,
        le=200,
        description="oldest accepted occurred_at, in years before the message arrived (a child's whole history)",
    )
    future_tolerance: timedelta = Field(
        default=timedelta(minutes=15),
        ge=timedelta(0),
        le=timedelta(days=1),
        description="how far recorded_at may be after the message arrived (clock skew between systems)",
    )

    def earliest(self, reference: datetime) -> datetime:
        try:
            return reference.replace(year=reference.year - self.max_age_years)
        except ValueError:  # 29 February
            return reference.replace(year=reference.year - self.max_age_years, day=28)

    def latest(self, reference: datetime) -> datetime:
        return reference + self.future_tolerance


DEFAULT_WINDOW = EventTimeWindow()


def check_size(data: bytes | str, limits: MessageLimits = LIMITS) -> None:
    """DecodeError (`too_large`) for a message over the byte limit, before anything parses it."""
    size = len(data) if isinstance(data, bytes) else len(data.encode("utf-8", "surrogatepass"))
    if size > limits.max_message_bytes:
        raise DecodeError(
            [
                Issue(
                    "",
                    f"the message has {size:,} bytes; the contract allows at most {limits.max_message_bytes:,} "
                    "(one event per message)",
                    REASON_TOO_LARGE,
                )
            ]
        )


def check_shape(obj: Any, limits: MessageLimits = LIMITS) -> list[Issue]:
    """Every shape bound the parsed message breaks (depth, list items, object keys, string length).

    Iterative, so any depth the parser produced is safe to walk; stops at the first breach of each kind.
    Field paths are given for lists and strings; object keys that are not fields of the contract are not
    echoed (a key can be anything a producer sent).
    """
    if _within(obj, limits):
        return []
    issues: dict[str, Issue] = {}
    stack: list[tuple[Any, str, int]] = [(obj, "", 1)]
    while stack:
        node, path, depth = stack.pop()
        if isinstance(node, dict | list) and depth > limits.max_depth:
            issues.setdefault(
                REASON_TOO_DEEP,
                Issue("", f"the message is nested more than {limits.max_depth} levels deep", REASON_TOO_DEEP),
            )
            continue
        if isinstance(node, dict):
            if len(node) > limits.max_object_keys:
                issues.setdefault(
                    REASON_TOO_MANY_FIELDS,
                    Issue(path, f"has {len(node)} fields; at most {limits.max_object_keys}", REASON_TOO_MANY_FIELDS),
                )
                continue
            for key, value in node.items():
                name = key if _plain_name(key) else "?"
                stack.append((value, f"{path}.{name}" if path else name, depth + 1))
        elif isinstance(node, list):
            if len(node) > limits.max_list_items:
                issues.setdefault(
                    REASON_TOO_MANY_ITEMS,
                    Issue(path, f"lists {len(node)} items; at most {limits.max_list_items}", REASON_TOO_MANY_ITEMS),
                )
                continue
            stack.extend((item, f"{path}[{i}]", depth + 1) for i, item in enumerate(node))
        elif isinstance(node, str) and len(node) > limits.max_string_chars:
            issues.setdefault(
                REASON_TOO_LONG,
                Issue(path, f"has {len(node):,} characters; at most {limits.max_string_chars:,}", REASON_TOO_LONG),
            )
    return list(issues.values())


def _within(obj: Any, limits: MessageLimits) -> bool:
    """The fast pass of `check_shape` (no field paths): every valid event takes only this one."""
    max_depth, max_items, max_keys, max_chars = (
        limits.max_depth,
        limits.max_list_items,
        limits.max_object_keys,
        limits.max_string_chars,
    )
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        node, depth = stack.pop()
        if type(node) is dict:
            if depth > max_depth or len(node) > max_keys:
                return False
            for value in node.values():
                if type(value) is str:
                    if len(value) > max_chars:
                        return False
                elif type(value) is dict or type(value) is list:
                    stack.append((value, depth + 1))
        elif type(node) is list:
            if depth > max_depth or len(node) > max_items:
                return False
            for value in node:
                if type(value) is str:
                    if len(value) > max_chars:
                        return False
                elif type(value) is dict or type(value) is list:
                    stack.append((value, depth + 1))
        elif type(node) is str and len(node) > max_chars:
            return False
    return True


def _plain_name(key: str) -> bool:
    return 0 < len(key) <= 40 and key.replace("_", "").isalnum() and key.isascii() and not key[:1].isdigit()


def reference_time(record_timestamp: datetime | None, wall_clock: datetime) -> datetime:
    """The time a Kafka record reached the system: its timestamp, but never after the reader's wall clock."""
    if record_timestamp is None or record_timestamp.timestamp() <= 0:
        return wall_clock
    return min(record_timestamp, wall_clock)


def event_time_issues(event: Any, *, reference: datetime, window: EventTimeWindow = DEFAULT_WINDOW) -> list[Issue]:
    """The event-time bounds a valid event breaks, relative to when it arrived (`reference`)."""
    earliest, latest = window.earliest(reference), window.latest(reference)
    issues: list[Issue] = []
    occurred, recorded = event.occurred_at, event.recorded_at
    if occurred < earliest:
        issues.append(
            Issue(
                "occurred_at",
                f"{occurred.isoformat()} is more than {window.max_age_years} years before the message arrived "
                f"({_iso(reference)}); check the year",
                REASON_TOO_OLD,
            )
        )
    if recorded > latest:
        field = "occurred_at" if occurred > latest else "recorded_at"
        moment = occurred if field == "occurred_at" else recorded
        issues.append(
            Issue(
                field,
                f"{moment.isoformat()} is after the message arrived ({_iso(reference)}, allowing "
                f"{_duration(window.future_tolerance)} of clock difference); an event cannot be recorded in the "
                "future: check the year",
                REASON_IN_THE_FUTURE,
            )
        )
    ended = event.__dict__.get("previous_plan_ended_at")  # not getattr: pydantic's __getattr__ miss is slow
    if isinstance(ended, date) and not earliest.date() <= ended <= latest.date():
        code = REASON_TOO_OLD if ended < earliest.date() else REASON_IN_THE_FUTURE
        issues.append(
            Issue(
                "previous_plan_ended_at",
                f"{ended.isoformat()} is outside the accepted window ({earliest.date().isoformat()} to "
                f"{latest.date().isoformat()}); check the year",
                code,
            )
        )
    return issues


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _duration(value: timedelta) -> str:
    minutes = int(value.total_seconds() // 60)
    return f"{minutes} minutes" if minutes < 120 else f"{minutes // 60} hours"
