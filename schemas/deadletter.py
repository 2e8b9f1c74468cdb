"""Dead letters on safeguarding.dead-letter.v1: rejected input, kept with its reason, never dropped.

A dead letter always fits on the topic and never carries a personal identifier further:

- the rejected bytes are kept with anything that looks like an identifier masked (NHS numbers, UPNs,
  postcodes anywhere; names where a code should be), re-serialised when something was masked;
- at most `ORIGINAL_CAP` bytes of them are kept, with the size of the whole and its SHA-256 (of the
  masked bytes: a hash of the unmasked message would let anyone holding the rest of it recover a
  masked NHS number by trying the billion candidates);
- the error text, the message key and the claimed event id are masked and shortened too.

`stored_original` is the one implementation, also used by the sink for the messages it cannot store.
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic_core import from_json, to_json

from schemas.events import ContractModel
from schemas.identifiers import find_identifiers, is_pseudonym, mask_identifiers, mask_text
from schemas.types import Timestamp

_NAMESPACE = uuid.UUID("5b0c2f0e-8a4e-4d1c-9a3c-2d3b7f6a9e10")

ORIGINAL_CAP = 16 * 1024
"""Bytes of a rejected message kept in its dead letter; the rest is counted, hashed and dropped."""
ERROR_CAP = 2_000
KEY_CAP = 200


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
    original_size: int | None = None
    """Bytes of the whole rejected message (`original_b64` may hold fewer: see `original_truncated`)."""
    original_sha256: str | None = None
    """SHA-256 (hex) of the whole message as stored, that is after masking, before truncation."""
    original_truncated: bool = False
    original_masked: bool = False
    """Something that looked like a personal identifier was masked in the stored bytes."""

    def original(self) -> bytes:
        return base64.b64decode(self.original_b64)


@dataclass(frozen=True)
class StoredOriginal:
    """What is kept of a rejected message: masked, capped, with the size and hash of the whole."""

    data: bytes
    size: int
    sha256: str
    truncated: bool
    masked: bool
    claimed_event_id: str | None
    claimed_event_type: str | None

    @property
    def b64(self) -> str:
        return base64.b64encode(self.data).decode("ascii")


def stored_original(original: bytes, *, cap: int = ORIGINAL_CAP) -> StoredOriginal:
    """The masked, capped form of a rejected message (see the module docstring)."""
    parsed = _parse(original)
    if parsed is not None:
        cleaned, masked = _mask_json(parsed)
        data = to_json(cleaned) if masked else original
    else:  # not JSON (or broken JSON): its string literals are read as JSON values would be, the rest as opaque
        text = original.decode("utf-8", "replace")
        literals, masked = _STRING_LITERAL.subn(lambda m: _mask_literal(m.group()), text)
        masked = literals != text
        masked_text, opaque = mask_identifiers(literals, context="opaque")
        masked = masked or bool(opaque)
        data = masked_text.encode("utf-8") if masked else original
    claimed_id, claimed_type = _claims(parsed)
    return StoredOriginal(
        data=data[:cap],
        size=len(original),
        sha256=hashlib.sha256(data).hexdigest(),
        truncated=len(data) > cap,
        masked=bool(masked),
        claimed_event_id=claimed_id,
        claimed_event_type=claimed_type,
    )


_STRING_LITERAL = re.compile(r'"(?:[^"\\\n]|\\.){0,2000}"')


def _mask_literal(literal: str) -> str:
    inner = literal[1:-1]
    if is_pseudonym(inner):
        return literal
    found = find_identifiers(inner, context=_context_of(inner))
    return '"' + mask_text(inner, found) + '"' if found else literal


def _context_of(text: str) -> Literal["code", "text"]:
    """A short value is read as a code (any two words there may be a name); a sentence as free text."""
    return "code" if len(text.split()) <= 4 else "text"


def _parse(original: bytes) -> Any:
    """The JSON value of the bytes, or None. Safe on any input: the parser has a recursion limit."""
    try:
        return from_json(original)
    except ValueError:
        return None


def _mask_json(value: Any) -> tuple[Any, int]:
    """Every string (and object key) of a JSON value with identifiers masked; pseudonyms are left alone.

    Iterative over containers up to the parser's own depth limit (200), so recursion here is bounded too.
    """
    count = 0

    def clean(text: str) -> str:
        nonlocal count
        if is_pseudonym(text):
            return text
        found = find_identifiers(text, context=_context_of(text))
        if not found:
            return text
        count += len(found)
        return mask_text(text, found)

    def walk(node: Any) -> Any:
        if isinstance(node, str):
            return clean(node)
        if isinstance(node, list):
            return [walk(item) for item in node]
        if isinstance(node, dict):
            return {clean(key): walk(item) for key, item in node.items()}
        return node

    return walk(value), count


def _claims(parsed: Any) -> tuple[str | None, str | None]:
    """Best-effort event_id and event_type of a rejected message, to help whoever fixes it (masked, short)."""
    if not isinstance(parsed, dict):
        return None, None
    eid, etype = parsed.get("event_id"), parsed.get("event_type")
    return (_safe_text(eid, 100), _safe_text(etype, 64))


def _safe_text(value: Any, cap: int) -> str | None:
    if not isinstance(value, str):
        return None
    return mask_identifiers(value[:cap], context="code")[0]


def safe_error(error: str) -> str:
    """An error text as stored and logged: number-shaped identifiers masked, at most `ERROR_CAP` characters."""
    text = mask_identifiers(error, context="opaque")[0]
    return text if len(text) <= ERROR_CAP else text[: ERROR_CAP - 3] + "..."


def safe_key(key: bytes | None) -> str | None:
    """A message key as stored: a pseudonym as it is, anything else masked and shortened."""
    if key is None:
        return None
    text = key.decode("utf-8", "replace")
    if is_pseudonym(text):
        return text
    return mask_identifiers(text[:KEY_CAP], context="code")[0]


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
    kept = stored_original(value or b"")
    return DeadLetter(
        dead_letter_id=str(uuid.uuid5(_NAMESPACE, f"kafka:{topic}:{partition}:{offset}")),
        source="kafka",
        source_topic=topic,
        source_partition=partition,
        source_offset=offset,
        source_key=safe_key(key),
        original_b64=kept.b64,
        reason_code=reason_code,
        error=safe_error(error),
        dead_lettered_at=at,
        claimed_event_id=kept.claimed_event_id,
        claimed_event_type=kept.claimed_event_type,
        original_size=kept.size,
        original_sha256=kept.sha256,
        original_truncated=kept.truncated,
        original_masked=kept.masked,
    )


def dead_letter_from_file(
    *, file: str, line: int, original: bytes, reason_code: str, error: str, at: datetime
) -> DeadLetter:
    """A dead letter for a line of an ingested file; its id is fixed by (file, line, content as stored)."""
    kept = stored_original(original)
    name = mask_identifiers(file[:KEY_CAP], context="opaque")[0]
    return DeadLetter(
        dead_letter_id=str(uuid.uuid5(_NAMESPACE, f"file:{name}:{line}:{kept.sha256}")),
        source="file",
        source_file=name,
        source_line=line,
        original_b64=kept.b64,
        reason_code=reason_code,
        error=safe_error(error),
        dead_lettered_at=at,
        claimed_event_id=kept.claimed_event_id,
        claimed_event_type=kept.claimed_event_type,
        original_size=kept.size,
        original_sha256=kept.sha256,
        original_truncated=kept.truncated,
        original_masked=kept.masked,
    )
