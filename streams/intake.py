"""Intake of a Kafka record: a valid, correctly placed event, or the dead letter that says why not. Pure."""

from __future__ import annotations

from datetime import datetime

from schemas.codec import decode_event
from schemas.deadletter import DeadLetter, dead_letter_from_kafka
from schemas.errors import ContractError, InvalidEvent
from schemas.events import AgencyEvent
from schemas.limits import DEFAULT_WINDOW, EventTimeWindow, event_time_issues, reference_time
from schemas.topics import placement_issues, topic_named


def check_record(
    *,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    at: datetime,
    timestamp: datetime | None = None,
    window: EventTimeWindow = DEFAULT_WINDOW,
) -> AgencyEvent | DeadLetter:
    """Decode and validate one record of a contract topic; anything wrong becomes a dead letter with its reason.

    `at` is the worker's wall clock, `timestamp` the record's Kafka timestamp: the event-time window is
    measured from the earlier of the two (`schemas.limits.reference_time`), so a replay decides the same.
    Never raises: whatever the bytes, the answer is an event or a dead letter.
    """
    try:
        event = decode_event(value or b"")
        issues = placement_issues(topic_named(topic), event, key)
        issues += event_time_issues(event, reference=reference_time(timestamp, at), window=window)
        if issues:
            raise InvalidEvent(issues)
        return event
    except ContractError as exc:
        return _dead_letter(topic, partition, offset, key, value, exc.reason_code, exc.reason, at)
    except (RecursionError, MemoryError, ValueError, TypeError, OverflowError) as exc:
        # Not expected from a bounded codec; a last line so that no input can ever escape as an exception.
        return _dead_letter(topic, partition, offset, key, value, "undecodable", f"{type(exc).__name__}", at)


def _dead_letter(
    topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None, code: str, error: str, at: datetime
) -> DeadLetter:
    return dead_letter_from_kafka(
        topic=topic, partition=partition, offset=offset, key=key, value=value, reason_code=code, error=error, at=at
    )
