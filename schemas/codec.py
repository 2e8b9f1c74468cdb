"""One JSON codec for every message: compact UTF-8 JSON out, checked models in, clear errors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails, from_json

from schemas.alerts import AlertLifecycle, AlertRaised
from schemas.deadletter import DeadLetter
from schemas.errors import DecodeError, InvalidEvent, Issue
from schemas.events import AGENCY_EVENT_ADAPTER, EVENT_MODELS, AgencyEvent
from schemas.identifiers import mask_identifiers
from schemas.limits import LIMITS, REASON_TOO_DEEP, MessageLimits, check_shape, check_size
from schemas.types import json_kind

T = TypeVar("T")

_KNOWN_TYPES = ", ".join(sorted(EVENT_MODELS))
_ALERT_ADAPTER = TypeAdapter(AlertRaised)
_LIFECYCLE_ADAPTER = TypeAdapter(AlertLifecycle)
_DEAD_LETTER_ADAPTER = TypeAdapter(DeadLetter)


def encode(model: BaseModel) -> bytes:
    """The wire form of any contract model: compact UTF-8 JSON, optional fields left out when unset."""
    return model.model_dump_json(exclude_none=True).encode("utf-8")


def to_json_obj(model: BaseModel) -> dict[str, Any]:
    """The JSON-compatible dict of a model, exactly as it would be encoded."""
    return model.model_dump(mode="json", exclude_none=True)


def decode_event(data: bytes | str, *, limits: MessageLimits = LIMITS) -> AgencyEvent:
    """Decode and validate one agency event within the contract's limits (`schemas.limits`).

    Raises DecodeError (not UTF-8 JSON, not an object, too large, too deep) or InvalidEvent naming every
    broken rule. The size is checked before anything parses the bytes, the shape before the models run.
    """
    return validate_event(parse_json_object(data, limits=limits), limits=limits)


def parse_json_object(data: bytes | str, *, limits: MessageLimits = LIMITS) -> dict[str, Any]:
    """The JSON object of one message, or DecodeError. Bounded: over-size bytes are never parsed, and the
    parser refuses nesting beyond its recursion limit (200) with an error, not a crash."""
    check_size(data, limits)
    _check_text(data)
    try:
        obj = from_json(data)
    except ValueError as exc:
        detail = str(exc)
        if "recursion limit" in detail:
            raise DecodeError(
                [Issue("", f"the message is nested more than {limits.max_depth} levels deep", REASON_TOO_DEEP)]
            ) from None
        raise DecodeError([Issue("", f"the message is not valid JSON ({detail})", "not_json")]) from None
    if not isinstance(obj, dict):
        raise DecodeError([Issue("", "the message must be a JSON object, one event per message", "not_object")])
    return obj


def validate_event(obj: Mapping[str, Any], *, limits: MessageLimits = LIMITS) -> AgencyEvent:
    """Validate a parsed JSON object (a message, a CSV row) as an agency event, shape limits first."""
    issues = check_shape(obj, limits)
    if issues:
        raise InvalidEvent(issues)
    try:
        return AGENCY_EVENT_ADAPTER.validate_python(obj)
    except ValidationError as exc:
        raise InvalidEvent(_issues(exc)) from None


def decode_alert(data: bytes | str) -> AlertRaised:
    return _decode(_ALERT_ADAPTER, data)


def decode_alert_lifecycle(data: bytes | str) -> AlertLifecycle:
    return _decode(_LIFECYCLE_ADAPTER, data)


def decode_dead_letter(data: bytes | str) -> DeadLetter:
    return _decode(_DEAD_LETTER_ADAPTER, data)


def _check_text(data: bytes | str) -> None:
    if not data.isascii():  # ASCII (nearly every message) is UTF-8 and has no BOM: nothing to decode or copy
        try:
            if isinstance(data, bytes):
                data.decode("utf-8")
            else:
                data.encode("utf-8")  # a str with lone surrogates, e.g. from surrogateescape
        except (UnicodeDecodeError, UnicodeEncodeError) as exc:
            raise DecodeError(
                [Issue("", f"the message is not UTF-8 text ({exc.reason} at position {exc.start})", "not_utf8")]
            ) from None
        if data[:3] == b"\xef\xbb\xbf" or data[:1] == "\ufeff":
            bom = "the message starts with a byte-order mark (BOM); send UTF-8 JSON without a BOM"
            raise DecodeError([Issue("", bom, "not_json")])
    if not data or data.isspace():  # what `strip()` would empty, without the copy
        raise DecodeError([Issue("", "the message is empty; expected one JSON object", "empty")])


def _decode(adapter: TypeAdapter[T], data: bytes | str) -> T:
    _check_text(data)
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
            parts.append(("." if parts else "") + mask_identifiers(part[:80])[0])  # a key can be anything sent
    return "".join(parts)


_EXPECTED_TYPE = {
    "string_type": "a string",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "list_type": "a list (JSON array)",
    "dict_type": "a JSON object",
    "model_type": "a JSON object",
    "model_attributes_type": "a JSON object",
}


def _shown(value: Any, limit: int = 60) -> str:
    """A value quoted in an error, shortened, with anything that looks like a personal identifier masked."""
    if isinstance(value, str):
        text = repr(mask_identifiers(value[: 4 * limit], context="code")[0])
    elif isinstance(value, int | float) and not isinstance(value, bool):
        text = mask_identifiers(repr(value)[: 4 * limit], context="opaque")[0]
    else:  # a list or an object: said what it is, never echoed (it can hold anything)
        return json_kind(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _issue(err: ErrorDetails) -> Issue:
    kind = err["type"]
    field = _field_path(err["loc"])
    ctx = err.get("ctx", {})
    got = err.get("input")
    if kind == "union_tag_not_found":
        return Issue("event_type", f"is missing; it must be one of {_KNOWN_TYPES}", "unknown_event_type")
    if kind == "union_tag_invalid":
        tag = got.get("event_type") if isinstance(got, dict) else ctx.get("tag")
        if not isinstance(tag, str):
            rule = f"must be a string naming the event type, one of {_KNOWN_TYPES}; got {json_kind(tag)}"
        else:
            rule = f"{_shown(tag)} is not an event type of the contract; expected one of {_KNOWN_TYPES}"
        return Issue("event_type", rule, "unknown_event_type")
    if kind == "missing":
        return Issue(field, "is required but missing", "missing")
    if kind == "extra_forbidden":
        return Issue(
            field, "is not a field of this event type (check the spelling against the contract)", "unknown_field"
        )
    if kind == "literal_error":
        expected = str(ctx.get("expected", ""))
        if "," in expected or " or " in expected:
            return Issue(field, f"must be one of {expected}; got {_shown(got)}", "not_in_code_list")
        return Issue(field, f"must be {expected}; got {_shown(got)}", "not_in_code_list")
    if kind in _EXPECTED_TYPE:
        return Issue(field, f"must be {_EXPECTED_TYPE[kind]}; got {json_kind(got)}", "wrong_type")
    if kind == "timezone_aware":
        return Issue(
            field,
            "must be an RFC 3339 timestamp with an offset, e.g. 2025-03-01T21:15:00+00:00 "
            "(naive timestamps are rejected)",
            "naive_timestamp",
        )
    if kind.startswith(("datetime_", "date_")):
        what = "date, e.g. 2025-03-01" if kind.startswith("date_") else "timestamp with an offset"
        return Issue(field, f"must be an RFC 3339 {what}; got {_shown(got)}", "bad_timestamp")
    if kind == "string_pattern_mismatch":
        return Issue(field, f"{_shown(got)} does not match the required format {ctx.get('pattern')}", "bad_format")
    if kind == "string_too_short":
        n = ctx.get("min_length")
        return Issue(field, "must not be empty" if n == 1 else f"must have at least {n} characters", "too_short")
    if kind == "string_too_long":
        return Issue(field, f"must have at most {ctx.get('max_length')} characters", "too_long")
    if kind == "too_short":
        n = ctx.get("min_length")
        return Issue(field, f"must list at least {n} item{'' if n == 1 else 's'}", "too_short")
    if kind in {"greater_than_equal", "less_than_equal", "greater_than", "less_than"}:
        bound = {"greater_than_equal": "at least", "less_than_equal": "at most"}.get(kind, kind.replace("_", " "))
        limit = next(iter(ctx.values()), "?")
        return Issue(field, f"must be {bound} {limit}; got {_shown(got)}", "out_of_range")
    if kind == "recorded_before_occurred":
        return Issue(field or "recorded_at", err["msg"], kind)
    if kind in {"raw_identifier", "pseudonym_format", "uuid_format"}:
        return Issue(field, err["msg"], kind)
    msg = err["msg"].removeprefix("Value error, ")
    if msg.startswith("Input should be "):
        msg = "must be " + msg.removeprefix("Input should be ")
    return Issue(field, msg[:1].lower() + msg[1:], kind)
