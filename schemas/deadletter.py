"""Dead letters on safeguarding.dead-letter.v1: rejected input, kept with its reason, never dropped."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime
from typing import Literal

from schemas.events import ContractModel
from schemas.types import Timestamp

_NAMESPACE = uuid.UUID("5b0c2f0e-8a4e-4d1c-9a3c-2d3b7f6a9e10")


class DeadLetter(ContractModel):
    """A message that could not be decoded or validated, with where it came from and why."""

    dead_letter_id: str
    event_type: Literal["dead_letter"] = "dead_letter"
    schema_version: Literal[1] = 1
    source: Literal["kafka", "file"]
    source_topic: str | None = None
    source_partition: int | None = None
    source_offset: int | None = None
    source_file: str | None = None
    source_line: int | None = None
    source_key: str | None = None
    original_b64: str
    reason_code: str
    error: str
    dead_lettered_at: Timestamp
    claimed_event_id: str | None = None
    claimed_event_type: str | None = None

    def original(self) -> bytes:
        return base64.b64decode(self.original_b64)


def _claims(original: bytes) -> tuple[str | None, str | None]:
    """Best-effort event_id and event_type of a rejected message, to help whoever fixes it."""
    try:
        obj = json.loads(original)
    except (ValueError, UnicodeDecodeError):
        return None, None
    if not isinstance(obj, dict):
        return None, None
    eid, etype = obj.get("event_id"), obj.get("event_type")
    return (eid if isinstance(eid, str) else None, etype if isinstance(etype, str) else None)


def dead_letter_from_kafka(
    *,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    reason_code: str,
    error: str,
    at: datetime,
) -> DeadLetter:
    """A dead letter for a Kafka record; its id is fixed by (topic, partition, offset), so replays dedupe."""
    original = value or b""
    claimed_id, claimed_type = _claims(original)
    return DeadLetter(
        dead_letter_id=str(uuid.uuid5(_NAMESPACE, f"kafka:{topic}:{partition}:{offset}")),
        source="kafka",
        source_topic=topic,
        source_partition=partition,
        source_offset=offset,
        source_key=key.decode("utf-8", "replace") if key is not None else None,
        original_b64=base64.b64encode(original).decode("ascii"),
        reason_code=reason_code,
        error=error,
        dead_lettered_at=at,
        claimed_event_id=claimed_id,
        claimed_event_type=claimed_type,
    )


def dead_letter_from_file(
    *, file: str, line: int, original: bytes, reason_code: str, error: str, at: datetime
) -> DeadLetter:
    """A dead letter for a line of an ingested file; its id is fixed by (file, line, content)."""
    claimed_id, claimed_type = _claims(original)
    digest = uuid.uuid5(_NAMESPACE, original.decode("utf-8", "replace"))
    return DeadLetter(
        dead_letter_id=str(uuid.uuid5(_NAMESPACE, f"file:{file}:{line}:{digest}")),
        source="file",
        source_file=file,
        source_line=line,
        original_b64=base64.b64encode(original).decode("ascii"),
        reason_code=reason_code,
        error=error,
        dead_lettered_at=at,
        claimed_event_id=claimed_id,
        claimed_event_type=claimed_type,
    )
