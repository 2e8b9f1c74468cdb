"""A quick, exact acceptance test for the everyday form of an agency event, for readers that skip the models.

The models (`codec.validate_event`) cost 10-15 µs per event, most of it their Python validators and the model
object; a sink that copies fields into columns needs neither. `plain_event(data)` answers for a message's bytes:

- a `PlainEvent` only when the models would accept the message as it is, with the very same values (the
  validated dict's values are the model's fields, the times the instants the models read), and the contract's
  shape limits hold (no string over 100 characters, no list over `LIMITS.max_list_items`, depth 3);
- None whenever it is not sure. The caller then runs the models, which accept it or say why not.

So it may say None to a valid event (an event id that is not a lowercase canonical UUID, a timestamp in another
RFC 3339 spelling, a code field the identifier guard would have to scan, non-ASCII bytes), never yes to an
invalid one. Most of the test runs in pydantic-core without a Python callback: a strict schema per event type,
its field names, optionality and code lists read from the models so they cannot drift. Each field's rule is
restated in `_RULES`: a rule changed in `schemas.types` or `schemas.events` needs the same change here
(tests/unit/test_schemas/test_fastcheck.py compares the two on every example and on fuzzed input).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from types import UnionType
from typing import Any, Literal, NamedTuple, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import CoreConfig, SchemaValidator, ValidationError
from pydantic_core import core_schema as cs

from schemas.events import EVENT_MODELS, IncidentChild
from schemas.identifiers import surely_no_identifier_in_codes
from schemas.limits import LIMITS

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
# The common spelling only, in ASCII: what `datetime.fromisoformat` reads exactly as pydantic does.
_TIMESTAMP = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)


def _text(pattern: str, min_length: int | None = None, max_length: int | None = None) -> cs.CoreSchema:
    # strict on every schema: a `CoreConfig(strict=True)` does not reach them (0 would pass for false)
    return cs.str_schema(pattern=pattern, min_length=min_length, max_length=max_length, strict=True)


_SOURCE_ID = _text(r"^[\x20-\x7e]+$", 1, 100)  # `SourceId`, in printable ASCII
_PSEUDONYM = _text(r"^[0-9a-f]{64}$")
_FLAG = cs.bool_schema(strict=True)  # true or false: never 0 or "true"

_RULES: dict[str, cs.CoreSchema] = {
    "event_id": _text(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"),
    "la_code": _text(r"^[0-9]{3}$"),
    "agency_code": _text(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,19}$"),
    "occurred_at": _text(_TIMESTAMP),
    "recorded_at": _text(_TIMESTAMP),
    "purge": _FLAG,
    "contact_id": _SOURCE_ID,
    "episode_id": _SOURCE_ID,
    "incident_id": _SOURCE_ID,
    "plan_id": _SOURCE_ID,
    "linked_incident_id": _SOURCE_ID,
    "child_id": _PSEUDONYM,
    "household_id": _PSEUDONYM,
    "victim_id": _PSEUDONYM,
    "perpetrator_id": _PSEUDONYM,
    "looked_after": _FLAG,
    "is_crime": _FLAG,
    "marac_referral": _FLAG,
    "present": _FLAG,
    "dash_score": cs.int_schema(ge=0, le=27, strict=True),
    "previous_plans": cs.int_schema(ge=0, strict=True),
    "previous_plan_ended_at": _text(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"),
    "school_urn": _text(r"^[0-9]{6}$"),
}
"""The rule of every field that is not a code list (those are read from the models' `Literal`s)."""

_CODE_FIELDS = ("agency_code", "contact_id", "episode_id", "incident_id", "plan_id", "linked_incident_id")
"""Fields the identifier guard reads (`_no_identifier_inside`): checked here by its cheap first search only."""


class PlainEvent(NamedTuple):
    """An event the models would accept: its validated JSON object, its times as exact microseconds since the
    epoch (the instants the models read), and its `previous_plan_ended_at` as a date."""

    obj: dict[str, Any]
    occurred_us: int
    recorded_us: int
    previous_plan_ended_at: date | None


def _without_none(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


def _code_list(annotation: Any) -> cs.CoreSchema | None:
    """The schema of a `Literal[...]` of strings (or of the int 1), or a non-empty list of them; None otherwise."""
    annotation = _without_none(annotation)
    if get_origin(annotation) is list:
        item = _code_list(get_args(annotation)[0])
        if item is None:
            return None
        return cs.list_schema(item, min_length=1, max_length=LIMITS.max_list_items, strict=True)
    if get_origin(annotation) is not Literal:
        return None
    choices = list(get_args(annotation))
    if all(type(c) is str for c in choices):
        return cs.literal_schema(choices)  # only the very strings (no number, no other case)
    if choices == [1]:
        return cs.int_schema(ge=1, le=1, strict=True)  # a literal 1 would also take true and 1.0
    raise TypeError(f"schemas.fastcheck: no rule for the code list {annotation}")


def _fields(model: type[BaseModel]) -> dict[str, cs.TypedDictField]:
    fields: dict[str, cs.TypedDictField] = {}
    for name, info in model.model_fields.items():
        schema: cs.CoreSchema | None
        if name == "children":  # a list of `IncidentChild`, the one nested model
            schema = cs.list_schema(_typed_dict(IncidentChild), max_length=LIMITS.max_list_items, strict=True)
        else:
            schema = _code_list(info.annotation) or _RULES.get(name)
        if schema is None:
            raise TypeError(f"schemas.fastcheck has no rule for {model.__name__}.{name}")
        if not info.is_required() and info.default is None:
            schema = cs.nullable_schema(schema)
        fields[name] = cs.typed_dict_field(schema, required=info.is_required())
    return fields


def _typed_dict(model: type[BaseModel]) -> cs.CoreSchema:
    return cs.typed_dict_schema(_fields(model), extra_behavior="forbid", strict=True)


_EVENTS = SchemaValidator(
    cs.tagged_union_schema(
        {event_type: _typed_dict(model) for event_type, model in EVENT_MODELS.items()},
        discriminator="event_type",
        strict=True,
    ),
    CoreConfig(cache_strings="keys"),  # values are nearly all unique (ids, pseudonyms, times): no use caching them
)
_CODES = {event_type: tuple(f for f in _CODE_FIELDS if f in m.model_fields) for event_type, m in EVENT_MODELS.items()}


def plain_event(data: bytes) -> PlainEvent | None:
    """The message as an event the models would accept unchanged, or None when they must decide (module doc).

    Parses and checks in one pass, in pydantic-core. Only ASCII within the size limit is tried: such bytes are
    UTF-8 without a BOM, so the JSON parser sees what `codec.parse_json_object` would hand to the models (it
    is the same parser; repeated keys keep the last value in both).
    """
    if len(data) > LIMITS.max_message_bytes or not data.isascii():
        return None
    try:
        valid: dict[str, Any] = _EVENTS.validate_json(data)
        occurred = (datetime.fromisoformat(valid["occurred_at"]) - _EPOCH) // _US
        recorded = (datetime.fromisoformat(valid["recorded_at"]) - _EPOCH) // _US
        ended_text = valid.get("previous_plan_ended_at")
        ended = None if ended_text is None else date.fromisoformat(ended_text)
    except (ValidationError, ValueError):  # ValueError: a day that does not exist, year 0 (the models say why)
        return None
    if recorded < occurred:  # exact; the model compares `timestamp()` floats, which is never stricter than this
        return None
    if not surely_no_identifier_in_codes([v for n in _CODES[valid["event_type"]] if (v := valid.get(n)) is not None]):
        return None
    return PlainEvent(valid, occurred, recorded, ended)
