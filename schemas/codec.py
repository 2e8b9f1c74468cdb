"""One JSON codec for every message: compact UTF-8 JSON out, checked models in, clear errors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from schemas.alerts import AlertRaised
from schemas.deadletter import DeadLetter
from schemas.errors import DecodeError, InvalidEvent, Issue
from schemas.events import AGENCY_EVENT_ADAPTER, EVENT_MODELS, AgencyEvent

T = TypeVar("T")

_KNOWN_TYPES = ", ".join(sorted(EVENT_MODELS))
_ALERT_ADAPTER = TypeAdapter(AlertRaised)
_DEAD_LETTER_ADAPTER = TypeAdapter(DeadLetter)


def encode(model: BaseModel) -> bytes:
    """The wire form of any contract model: compact UTF-8 JSON, optional fields left out when unset."""
    return model.model_dump_json(exclude_none=True).encode("utf-8")


def to_json_obj(model: BaseModel) -> dict[str, Any]:
    """The JSON-compatible dict of a model, exactly as it would be encoded."""
    return model.model_dump(mode="json", exclude_none=True)


def decode_event(data: bytes | str) -> AgencyEvent:
    """Decode and validate one agency event. Raises DecodeError or InvalidEvent naming every broken rule."""
    return _decode(AGENCY_EVENT_ADAPTER, data)


def validate_event(obj: Mapping[str, Any]) -> AgencyEvent:
    """Validate an already-parsed JSON object (a CSV row, a generator record) as an agency event."""
    try:
        return AGENCY_EVENT_ADAPTER.validate_python(obj)
    except ValidationError as exc:
        raise InvalidEvent(_issues(exc)) from None


def decode_alert(data: bytes | str) -> AlertRaised:
    return _decode(_ALERT_ADAPTER, data)


def decode_dead_letter(data: bytes | str) -> DeadLetter:
    return _decode(_DEAD_LETTER_ADAPTER, data)


def _decode(adapter: TypeAdapter[T], data: bytes | str) -> T:
    if isinstance(data, bytes):
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError(
                [Issue("", f"the message is not UTF-8 text ({exc.reason} at byte {exc.start})", "not_utf8")]
            ) from None
    if not data or (isinstance(data, bytes | str) and not data.strip()):
        raise DecodeError([Issue("", "the message is empty; expected one JSON object", "empty")])
    try:
        return adapter.validate_json(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        if errors and errors[0]["type"] == "json_invalid":
            detail = str(errors[0].get("ctx", {}).get("error", "")) or errors[0]["msg"]
            raise DecodeError([Issue("", f"the message is not valid JSON ({detail})", "not_json")]) from None
        if (
            errors
            and errors[0]["type"] in {"model_type", "model_attributes_type", "dict_type"}
            and not errors[0]["loc"]
        ):
            raise DecodeError(
                [Issue("", "the message must be a JSON object, one event per message", "not_object")]
            ) from None
        raise InvalidEvent(_issues(exc)) from None


def _issues(exc: ValidationError) -> list[Issue]:
    return [_issue(e) for e in exc.errors(include_url=False)]


def _field_path(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        elif part in EVENT_MODELS or part.startswith(("function-", "literal[")):
            continue  # the union branch or validator name, not a field
        else:
            parts.append(("." if parts else "") + part)
    return "".join(parts)


def _issue(err: ErrorDetails) -> Issue:
    kind = err["type"]
    field = _field_path(err["loc"])
    ctx = err.get("ctx", {})
    got = err.get("input")
    if kind in {"union_tag_not_found", "union_tag_invalid"}:
        if kind == "union_tag_not_found":
            return Issue("event_type", f"is missing; it must be one of {_KNOWN_TYPES}", "unknown_event_type")
        return Issue(
            "event_type",
            f"{ctx.get('tag')!r} is not an event type of the contract; expected one of {_KNOWN_TYPES}",
            "unknown_event_type",
        )
    if kind == "missing":
        return Issue(field, "is required but missing", "missing")
    if kind == "extra_forbidden":
        return Issue(
            field, "is not a field of this event type (check the spelling against the contract)", "unknown_field"
        )
    if kind == "literal_error":
        return Issue(field, f"must be one of {ctx.get('expected')}; got {got!r}", "not_in_code_list")
    if kind == "timezone_aware":
        return Issue(
            field,
            "must be an RFC 3339 timestamp with an offset, e.g. 2025-03-01T21:15:00+00:00 "
            "(naive timestamps are rejected)",
            "naive_timestamp",
        )
    if kind.startswith(("datetime_", "date_")):
        return Issue(
            field,
            f"must be an RFC 3339 {'date' if kind.startswith('date_') else 'timestamp with an offset'}; got {got!r}",
            "bad_timestamp",
        )
    if kind == "string_pattern_mismatch":
        return Issue(field, f"{got!r} does not match the required format {ctx.get('pattern')}", "bad_format")
    if kind in {"raw_identifier", "pseudonym_format", "uuid_format", "recorded_before_occurred"}:
        return Issue(field, err["msg"], kind)
    return Issue(field, err["msg"][:1].lower() + err["msg"][1:], kind)
