"""Intake of a Kafka record: a valid, correctly placed event, or the dead letter that says why not. Pure.

Placement has two parts. The key must be the contract's key for the event (`check_record`): a wrong key is a
dead letter. The partition must be Kafka's default (murmur2) partition of that key: a record a foreign client
put elsewhere (kcat's default partitioner is CRC32) is valid, but with several workers it would meet another
worker's state, so the worker re-publishes it unchanged on its key's partition of an internal re-route topic
(`Misplaced`, `Origin`) and applies the copy there (`check_rerouted`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

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


# --- re-routing: events on a partition their key does not hash to --------------------------------------------------

ORIGIN_TOPIC, ORIGIN_PARTITION, ORIGIN_OFFSET = (
    "safeguard-origin-topic",
    "safeguard-origin-partition",
    "safeguard-origin-offset",
)
"""Headers of a re-routed copy: where the record was first published (its dead letter names that place)."""

REASON_MISROUTED = "misrouted"
"""Reason code of a record on a re-route topic that is not a copy the worker made, or not on its key's partition."""


@dataclass(frozen=True)
class Origin:
    """Where a record was read: topic, partition, offset."""

    topic: str
    partition: int
    offset: int

    def headers(self) -> list[tuple[str, bytes]]:
        return [
            (ORIGIN_TOPIC, self.topic.encode("utf-8")),
            (ORIGIN_PARTITION, str(self.partition).encode("ascii")),
            (ORIGIN_OFFSET, str(self.offset).encode("ascii")),
        ]

    @classmethod
    def from_headers(cls, headers: Any) -> Origin | None:
        """The origin a re-routed copy names, or None when its headers do not name one completely."""
        try:
            found = dict(headers.items() if isinstance(headers, Mapping) else headers or ())
            topic = bytes(found[ORIGIN_TOPIC]).decode("utf-8")
            partition, offset = int(bytes(found[ORIGIN_PARTITION])), int(bytes(found[ORIGIN_OFFSET]))
        except (KeyError, TypeError, ValueError):
            return None
        return cls(topic, partition, offset) if partition >= 0 and offset >= 0 else None


@dataclass(frozen=True)
class Misplaced:
    """A valid event read from a partition its key does not hash to: to be re-published, unchanged, on `home`.

    With several workers the subject's state and its partition clocks live with whichever worker owns the key's
    partition, so the event is applied there, not where it was read.
    """

    origin: Origin
    home: int
    key: bytes
    value: bytes
    timestamp: float | None


def check_rerouted(
    *,
    contract_topic: str,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    headers: Any,
    partition_of: Callable[[bytes], int],
    at: datetime,
    timestamp: datetime | None = None,
    window: EventTimeWindow = DEFAULT_WINDOW,
) -> AgencyEvent | DeadLetter:
    """Check a record of the re-route topic of `contract_topic`: the copy the intake made, on its key's partition.

    It is checked as at its origin (same bytes, same Kafka timestamp, so the same answer), and a dead letter names
    the origin, so its id is the one the intake would have given it. A record without a complete origin on
    `contract_topic`, or not on its key's partition, was not put there by the worker: dead-lettered as
    `misrouted`, never re-routed again. Never raises.
    """
    origin = Origin.from_headers(headers)
    if origin is None or origin.topic != contract_topic:
        error = f"a record on {topic} must be a re-routed copy of a record of {contract_topic} with its origin headers"
        return _dead_letter(topic, partition, offset, key, value, REASON_MISROUTED, error, at)
    outcome = check_record(
        topic=origin.topic,
        partition=origin.partition,
        offset=origin.offset,
        key=key,
        value=value,
        at=at,
        timestamp=timestamp,
        window=window,
    )
    if isinstance(outcome, DeadLetter) or key is None:
        return outcome
    home = partition_of(key)
    if home != partition:
        error = f"re-routed to partition {partition} of {topic}, but its key belongs on partition {home}"
        return _dead_letter(origin.topic, origin.partition, origin.offset, key, value, REASON_MISROUTED, error, at)
    return outcome
