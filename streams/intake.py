"""Intake of a Kafka record: a valid, correctly placed event, or the dead letter that says why not. Pure."""

from __future__ import annotations

from datetime import datetime

from schemas.codec import decode_event
from schemas.deadletter import DeadLetter, dead_letter_from_kafka
from schemas.errors import ContractError, InvalidEvent
from schemas.events import AgencyEvent
from schemas.topics import placement_issues, topic_named


def check_record(
    *, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None, at: datetime
) -> AgencyEvent | DeadLetter:
    """Decode and validate one record of a contract topic; anything wrong becomes a dead letter with its reason."""
    try:
        event = decode_event(value or b"")
        issues = placement_issues(topic_named(topic), event, key)
        if issues:
            raise InvalidEvent(issues)
        return event
    except ContractError as exc:
        return dead_letter_from_kafka(
            topic=topic,
            partition=partition,
            offset=offset,
            key=key,
            value=value,
            reason_code=exc.reason_code,
            error=exc.reason,
            at=at,
        )
