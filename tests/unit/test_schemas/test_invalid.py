"""Invalid events fail with a ContractError that names the broken field and the rule in plain words.

Every test starts from a valid hand-written event (examples.py), applies one generated mutation, and checks that
decode_event raises a ContractError subclass (never anything else) whose issues name the mutated field.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from schemas import EVENT_MODELS, ContractError, DecodeError, InvalidEvent, decode_event, encode, validate_event
from schemas.codec import decode_alert, decode_dead_letter
from schemas.jsonschema import json_schema
from tests.unit.test_schemas.examples import CONTRACT_EVENT_TYPES, full, minimal
from tests.unit.test_schemas.reference import valid_nhs_numbers, valid_upns

FAST = settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

PSEUDONYM_FIELDS = ("child_id", "household_id", "victim_id", "perpetrator_id", "children[0].child_id")
SOURCE_ID_FIELDS = ("contact_id", "linked_incident_id", "episode_id", "incident_id", "plan_id")
TIMESTAMP_FIELDS = ("occurred_at", "recorded_at")
# Words an integrator should never have to decode: pydantic's own phrasing and internals.
JARGON = (
    "errors.pydantic.dev",
    "Input should be",
    "input should be",
    "Value error",
    "[type=",
    "For further information",
    "validation error",
    "function-after",
    "function-",
    "literal[",
    "model_attributes_type",
    "union_tag",
)

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner))


def _depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    return 0


shallow_json_values = json_values.filter(lambda v: _depth(v) <= 2)
"""Values that keep an event within the contract's nesting limit (deeper ones are refused as `too_deep` first)."""


# --- helpers -------------------------------------------------------------------------------------------------------

_PATH_PART = re.compile(r"([a-z][a-z0-9_]*)(?:\[(\d+)\])?")


def _parts(path: str) -> list[str | int]:
    parts: list[str | int] = []
    for segment in path.split("."):
        m = _PATH_PART.fullmatch(segment)
        assert m, segment
        parts.append(m.group(1))
        if m.group(2) is not None:
            parts.append(int(m.group(2)))
    return parts


def set_path(event: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    *parents, last = _parts(path)
    node: Any = event
    for part in parents:
        node = node[part]
    node[last] = value
    return event


def drop_path(event: dict[str, Any], path: str) -> dict[str, Any]:
    *parents, last = _parts(path)
    node: Any = event
    for part in parents:
        node = node[part]
    del node[last]
    return event


def has_path(event: dict[str, Any], path: str) -> bool:
    node: Any = event
    for part in _parts(path):
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return False
    return True


def leaf_paths(obj: Any, prefix: str = "") -> list[str]:
    """Every field path of an event: `children[0].present` as well as `la_code`."""
    if isinstance(obj, dict):
        return [p for k, v in obj.items() for p in [f"{prefix}{k}", *leaf_paths(v, f"{prefix}{k}")] if p]
    if isinstance(obj, list) and obj and isinstance(obj[0], dict):
        return [p for i, v in enumerate(obj) for p in [f"{prefix}[{i}]", *leaf_paths(v, f"{prefix}[{i}].")]]
    return []


# An echoed value, e.g. "got 'Input should be'", possibly cut short ("got 'Input sh...").
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*(?:'|$)|\"(?:[^\"\\]|\\.)*(?:\"|$)")


def assert_readable(err: ContractError) -> None:
    assert err.issues, "a ContractError must carry at least one issue"
    for issue in err.issues:
        assert issue.rule and issue.rule == issue.rule.strip(), issue
        words = _QUOTED.sub("''", issue.rule)
        assert not any(word in words for word in JARGON), f"jargon in {issue.rule!r}"
        if issue.code != "unknown_field":  # an unknown field is named as sent, whatever it is
            assert not any(word in issue.field for word in ("function-", "literal[", *EVENT_MODELS)), issue.field
        assert issue.code and " " not in issue.code
        if issue.field:
            assert f"`{issue.field}`" in str(err)
    assert err.reason == str(err)
    assert err.reason_code in {"undecodable", "invalid", "raw_identifier", "unknown_event_type", *LIMIT_REASONS}


LIMIT_REASONS = {"too_large", "too_deep", "too_many_items", "too_many_fields", "too_long"}
"""The reason codes of the contract's message limits (schemas/limits.py)."""


def rejected(data: bytes | dict[str, Any]) -> ContractError:
    """decode_event's error for `data`; anything but a ContractError propagates and fails the test."""
    raw = json.dumps(data).encode("utf-8") if isinstance(data, dict) else data
    with pytest.raises(ContractError) as info:
        decode_event(raw)
    assert_readable(info.value)
    if isinstance(data, dict):  # the same object, already parsed (a CSV row), fails the same way
        with pytest.raises(ContractError) as again:
            validate_event(data)
        assert again.value.issues == info.value.issues
    return info.value


def assert_names(err: ContractError, field: str, *codes: str) -> None:
    named = [i for i in err.issues if i.field == field]
    assert named, f"no issue names `{field}`: {err.issues}"
    if codes:
        assert named[0].code in codes, named[0]


def examples() -> st.SearchStrategy[dict[str, Any]]:
    return st.sampled_from(CONTRACT_EVENT_TYPES).flatmap(lambda t: st.sampled_from([minimal(t), full(t)]))


def _schema_properties(event_type: str) -> dict[str, Any]:
    return json_schema(event_type)["properties"]  # type: ignore[no-any-return]


def _code_list(prop: dict[str, Any]) -> list[Any] | None:
    for node in (prop, *prop.get("anyOf", []), prop.get("items", {})):
        if "enum" in node:
            return list(node["enum"])
    return None


def _nullable(prop: dict[str, Any]) -> bool:
    return any(v.get("type") == "null" for v in prop.get("anyOf", []))


# --- the mutations -------------------------------------------------------------------------------------------------


@FAST
@given(st.data())
def test_dropping_a_required_field(data: st.DataObject) -> None:
    event_type = data.draw(st.sampled_from(CONTRACT_EVENT_TYPES))
    event = full(event_type)
    required = [n for n, f in EVENT_MODELS[event_type].model_fields.items() if f.is_required()]
    if event_type == "domestic_incident.recorded":
        required += ["children[0].child_id", "children[0].present"]
    field = data.draw(st.sampled_from(required))
    err = rejected(drop_path(event, field))
    assert isinstance(err, InvalidEvent)
    if field == "event_type":
        assert_names(err, "event_type", "unknown_event_type")
        assert "is missing" in err.issues[0].rule
    else:
        assert [(i.field, i.code) for i in err.issues] == [(field, "missing")]
        assert err.issues[0].rule == "is required but missing"


def _wrong_types(valid: Any, field: str, nullable: bool) -> list[Any]:
    if isinstance(valid, bool):
        wrong: list[Any] = ["maybe", 2, [True], {"a": 1}]
    elif isinstance(valid, int):
        wrong = ["many", 1.5, [1], {"a": 1}]
    elif isinstance(valid, list):
        wrong = ["x", 5, {"a": 1}, True]
    elif isinstance(valid, dict):
        wrong = ["x", 5, [1], True]
    else:  # strings; a number is a valid Unix time for a timestamp, so not offered there
        wrong = [True, [1], {"a": 1}] + ([] if field.endswith(("_at",)) else [123])
    return wrong if nullable else [*wrong, None]


@FAST
@given(st.data())
def test_wrong_type(data: st.DataObject) -> None:
    event = data.draw(examples())
    props = _schema_properties(event["event_type"])
    paths = [p for p in leaf_paths(event) if p != "event_type"]
    field = data.draw(st.sampled_from(paths))
    top = field.split("[")[0].split(".")[0]
    nullable = _nullable(props[top]) if field == top else field.endswith("school_urn")
    valid: Any = event
    for part in _parts(field):
        valid = valid[part]
    wrong = data.draw(st.sampled_from(_wrong_types(valid, field, nullable)))
    err = rejected(set_path(event, field, wrong))
    assert isinstance(err, InvalidEvent)
    assert_names(err, field, "wrong_type", "not_in_code_list", "out_of_range", "bad_timestamp")


def test_wrong_type_messages_say_what_was_expected() -> None:
    err = rejected(set_path(minimal("missing.found"), "looked_after", "yes please"))
    assert [(i.field, i.rule, i.code) for i in err.issues] == [
        ("looked_after", "must be true or false; got a string", "wrong_type")
    ]
    err = rejected(set_path(minimal("missing.found"), "child_id", 9434765919))
    assert err.issues[0].rule == "must be a string; got a number"
    assert "9434765919" not in str(err)  # a wrongly typed value may be personal data: described, not echoed
    err = rejected(set_path(full("domestic_incident.recorded"), "children[1]", "x"))
    assert [(i.field, i.rule) for i in err.issues] == [("children[1]", "must be a JSON object; got a string")]


@FAST
@given(st.data())
def test_value_outside_the_code_list(data: st.DataObject) -> None:
    event = data.draw(examples())
    props = _schema_properties(event["event_type"])
    coded = {n: codes for n, p in props.items() if (codes := _code_list(p)) and n in event and n != "schema_version"}
    field = data.draw(st.sampled_from(sorted(coded)))
    value = data.draw(st.text(max_size=30).filter(lambda v: v not in coded[field]))
    path = f"{field}[0]" if isinstance(event[field], list) else field
    err = rejected(set_path(event, path, value))
    assert [(i.field, i.code) for i in err.issues] == [(path, "not_in_code_list")]
    assert "must be one of" in err.issues[0].rule
    assert all(repr(code) in err.issues[0].rule for code in coded[field])


def test_schema_version_other_than_one() -> None:
    err = rejected(set_path(minimal("contact.decided"), "schema_version", 2))
    assert [(i.field, i.rule) for i in err.issues] == [("schema_version", "must be 1; got 2")]


naive_datetimes = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1))


@FAST
@given(examples(), st.sampled_from(TIMESTAMP_FIELDS), naive_datetimes, st.sampled_from(["T", " "]))
def test_naive_timestamp(event: dict[str, Any], field: str, when: datetime, sep: str) -> None:
    err = rejected(set_path(event, field, when.isoformat(sep=sep)))
    assert [(i.field, i.code) for i in err.issues] == [(field, "naive_timestamp")]
    assert "offset" in err.issues[0].rule and "2025-03-01T21:15:00+00:00" in err.issues[0].rule


offsets = st.integers(-12 * 60, 14 * 60).map(lambda minutes: timezone(timedelta(minutes=minutes)))


@FAST
@given(
    examples(),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2030, 1, 1), timezones=offsets),
    st.timedeltas(min_value=timedelta(microseconds=1), max_value=timedelta(days=400)),
    offsets,
)
def test_recorded_before_occurred(event: dict[str, Any], occurred: datetime, gap: timedelta, tz: timezone) -> None:
    recorded = (occurred - gap).astimezone(tz)
    event["occurred_at"], event["recorded_at"] = occurred.isoformat(), recorded.isoformat()
    err = rejected(event)
    assert [(i.field, i.code) for i in err.issues] == [("recorded_at", "recorded_before_occurred")]
    assert "before `occurred_at`" in err.issues[0].rule


def _pseudonym_fields(event: dict[str, Any]) -> list[str]:
    return [f for f in PSEUDONYM_FIELDS if has_path(event, f)]


not_pseudonyms = st.one_of(
    st.text(max_size=80),
    st.from_regex(r"[0-9a-f]{1,63}", fullmatch=True),
    st.from_regex(r"[0-9a-f]{65,70}", fullmatch=True),
    st.from_regex(r"[0-9a-fA-F]{64}", fullmatch=True),
    st.from_regex(r"[0-9a-f]{64}", fullmatch=True).flatmap(lambda h: st.sampled_from([h + "\n", " " + h, h + " "])),
    st.from_regex(r"[0-9a-f]{63}[g-z]", fullmatch=True),
).filter(lambda v: not re.fullmatch(r"[0-9a-f]{64}", v))


@FAST
@given(st.data(), not_pseudonyms)
def test_pseudonym_not_64_lowercase_hex(data: st.DataObject, value: str) -> None:
    event = data.draw(examples())
    field = data.draw(st.sampled_from(_pseudonym_fields(event)))
    err = rejected(set_path(event, field, value))
    assert [i.field for i in err.issues] == [field]
    assert err.issues[0].code in {"pseudonym_format", "raw_identifier"}
    if err.issues[0].code == "pseudonym_format":
        assert "64 lowercase hex" in err.issues[0].rule or "lowercase hex (64" in err.issues[0].rule


def _spaced(number: str, layout: str) -> str:
    return layout.format(*number)


nhs_numbers = st.builds(
    _spaced, valid_nhs_numbers(), st.sampled_from(["{}" * 10, "{}{}{} {}{}{} {}{}{}{}", "{}{}{}-{}{}{}-{}{}{}{}"])
)


def _assert_raw_identifier(err: ContractError, field: str, raw: str, kind: str) -> None:
    assert isinstance(err, InvalidEvent)
    assert [(i.field, i.code) for i in err.issues] == [(field, "raw_identifier")]
    assert err.reason_code == "raw_identifier"
    assert kind in err.issues[0].rule
    assert raw not in str(err), "the error must not repeat the raw identifier"


@FAST
@given(st.data(), nhs_numbers)
def test_raw_nhs_number_in_a_pseudonym_field(data: st.DataObject, number: str) -> None:
    event = data.draw(examples())
    field = data.draw(st.sampled_from(_pseudonym_fields(event)))
    err = rejected(set_path(event, field, number))
    _assert_raw_identifier(err, field, number, "NHS number")
    assert "pseudonymise" in err.issues[0].rule


@FAST
@given(st.data(), nhs_numbers)
def test_raw_nhs_number_in_a_source_id_field(data: st.DataObject, number: str) -> None:
    event = data.draw(examples())
    field = data.draw(st.sampled_from([f for f in SOURCE_ID_FIELDS if f in event]))
    _assert_raw_identifier(rejected(set_path(event, field, number)), field, number, "NHS number")


@FAST
@given(st.data(), valid_upns(), st.booleans())
def test_raw_upn(data: st.DataObject, upn: str, in_pseudonym_field: bool) -> None:
    event = data.draw(examples())
    fields = _pseudonym_fields(event) if in_pseudonym_field else [f for f in SOURCE_ID_FIELDS if f in event]
    field = data.draw(st.sampled_from(fields))
    _assert_raw_identifier(rejected(set_path(event, field, upn)), field, upn, "UPN")


@pytest.mark.parametrize("field", ["child_id", "contact_id", "household_id", "linked_incident_id"])
def test_raw_name(field: str) -> None:
    err = rejected(set_path(full("contact.received"), field, "Mary-Ann O'Neil"))
    _assert_raw_identifier(err, field, "Mary-Ann O'Neil", "name")


field_names = st.from_regex(r"[a-z][a-z0-9_]{0,24}", fullmatch=True)


@FAST
@given(st.data(), field_names, shallow_json_values)
def test_unknown_field(data: st.DataObject, name: str, value: Any) -> None:
    event = data.draw(examples())
    nested = event["event_type"] == "domestic_incident.recorded" and event["children"] and data.draw(st.booleans())
    known = {"child_id", "present", "school_urn"} if nested else set(EVENT_MODELS[event["event_type"]].model_fields)
    assume(name not in known)
    path = f"children[0].{name}" if nested else name
    err = rejected(set_path(event, path, value))
    assert [(i.field, i.code) for i in err.issues] == [(path, "unknown_field")]
    assert "spelling" in err.issues[0].rule


@FAST
@given(examples(), shallow_json_values.filter(lambda v: not (isinstance(v, str) and v in EVENT_MODELS)))
def test_unknown_event_type(event: dict[str, Any], event_type: Any) -> None:
    err = rejected(set_path(event, "event_type", event_type))
    assert isinstance(err, InvalidEvent)
    assert [(i.field, i.code) for i in err.issues] == [("event_type", "unknown_event_type")]
    assert err.reason_code == "unknown_event_type"
    assert all(t in err.issues[0].rule for t in EVENT_MODELS)


@FAST
@given(json_values.filter(lambda v: not isinstance(v, dict)))
def test_non_object_json(value: Any) -> None:
    err = rejected(json.dumps(value).encode("utf-8"))
    assert isinstance(err, DecodeError)
    assert [(i.field, i.code) for i in err.issues] == [("", "not_object")]
    assert err.reason_code == "undecodable"


BAD_UTF8 = [b"\xff", b"\xfe", b"\x80", b"\xc3\x28", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82"]


@FAST
@given(st.data(), st.sampled_from(BAD_UTF8))
def test_non_utf8_bytes(data: st.DataObject, bad: bytes) -> None:
    wire = encode(validate_event(data.draw(examples())))
    at = data.draw(st.integers(0, len(wire)))
    err = rejected(wire[:at] + bad + wire[at:])
    assert isinstance(err, DecodeError)
    assert [(i.field, i.code) for i in err.issues] == [("", "not_utf8")]
    assert "UTF-8" in err.issues[0].rule


@FAST
@given(st.data())
def test_truncated_json(data: st.DataObject) -> None:
    wire = encode(validate_event(data.draw(examples())))
    cut = data.draw(st.integers(1, len(wire) - 1))
    err = rejected(wire[:cut])
    assert isinstance(err, DecodeError)
    assert [(i.field, i.code) for i in err.issues] == [("", "not_json")]
    assert "not valid JSON" in err.issues[0].rule


@pytest.mark.parametrize(
    ("data", "code", "words"),
    [
        (b"", "empty", "empty"),
        (b" \n", "empty", "empty"),
        (b"not json at all", "not_json", "not valid JSON"),
        (b"\xef\xbb\xbf{}", "not_json", "byte-order mark"),
        ("\ud800{}", "not_utf8", "UTF-8"),
        (b"[" * 5000, "too_deep", "nested more than"),
    ],
)
def test_undecodable_messages(data: bytes | str, code: str, words: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode_event(data)
    assert_readable(info.value)
    assert [(i.field, i.code) for i in info.value.issues] == [("", code)]
    assert words in info.value.issues[0].rule


def test_every_issue_is_reported_not_only_the_first() -> None:
    event = minimal("contact.received")
    event.update(la_code="38", agency_type="police force", concerns=["neglect", "hunger"], colour="red")
    del event["contact_source"]
    err = rejected(event)
    assert sorted(i.field for i in err.issues) == ["agency_type", "colour", "concerns[1]", "contact_source", "la_code"]


# --- nothing but ContractError, whatever comes in --------------------------------------------------------------


@settings(max_examples=150, deadline=None, database=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_contract_errors(data: bytes) -> None:
    for decode in (decode_event, decode_alert, decode_dead_letter):
        try:
            decode(data)
        except ContractError as err:
            assert_readable(err)


@FAST
@given(st.text(max_size=200))
def test_arbitrary_text_raises_only_contract_errors(data: str) -> None:
    try:
        decode_event(data)
    except ContractError as err:
        assert_readable(err)


known_field_names = sorted({n for m in EVENT_MODELS.values() for n in m.model_fields})


@FAST
@given(examples(), st.dictionaries(st.sampled_from(known_field_names) | st.text(max_size=10), json_values, max_size=5))
def test_fuzzed_fields_raise_only_contract_errors(event: dict[str, Any], changes: dict[str, Any]) -> None:
    event.update(changes)
    try:
        decode_event(json.dumps(event))
    except ContractError as err:
        assert_readable(err)
    try:
        validate_event(event)
    except ContractError as err:
        assert_readable(err)


@FAST
@given(json_values)
def test_validate_event_on_any_json_value_raises_only_contract_errors(value: Any) -> None:
    try:
        validate_event(value)
    except ContractError as err:
        assert_readable(err)


@pytest.mark.parametrize(
    ("occurred", "recorded"),
    [
        ("9999-12-31T23:59:59-23:59", "9999-12-31T23:59:59-23:59"),
        ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-23:59"),
        ("9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+14:00"),
        ("2025-02-30T00:00:00Z", "2025-03-01T00:00:00Z"),
        ("2025-03-01T25:00Z", "2025-03-01T00:00:00Z"),
        ("2025-03-01T21:15:00+99:00", "2025-03-01T00:00:00Z"),
    ],
)
def test_extreme_timestamps_are_contract_errors_not_crashes(occurred: str, recorded: str) -> None:
    event = {**minimal("cp_plan.started"), "occurred_at": occurred, "recorded_at": recorded}
    try:
        decode_event(json.dumps(event))
    except ContractError as err:
        assert_readable(err)
