"""`schemas.fastcheck` against the models: what it accepts, the models accept with the very same values.

It may leave any message to the models (None), never accept one they refuse. Checked on every hand-written
example, on every kind of near-miss the contract's rules are about (generated), and at the JSON text level
(repeated keys, escapes, whitespace, trailing bytes).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.codec import decode_event
from schemas.errors import ContractError
from schemas.events import EVENT_MODELS, Envelope
from schemas.fastcheck import PlainEvent, plain_event
from schemas.identifiers import find_identifiers, surely_no_identifier_in_codes
from tests.unit.test_schemas import examples as ex

FUZZ = settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def _as_plain(value: Any) -> Any:
    """A model value in the form `plain_event` gives it (times as µs since the epoch, dates and children as JSON)."""
    if isinstance(value, datetime):
        return (value - _EPOCH) // _US
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        return [_as_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _as_plain(v) for k, v in value.items()}
    return value


def _model_view(event: Envelope) -> str:
    return json.dumps(_as_plain(event.model_dump()), sort_keys=True)


def _plain_view(plain: PlainEvent) -> str:
    """The accepted event with every field the model has, absent optional ones at the model's default."""
    model = EVENT_MODELS[plain.obj["event_type"]]
    view = {name: plain.obj.get(name, field.default) for name, field in model.model_fields.items()}
    view["occurred_at"], view["recorded_at"] = plain.occurred_us, plain.recorded_us
    if "previous_plan_ended_at" in view:
        ended = plain.previous_plan_ended_at
        view["previous_plan_ended_at"] = None if ended is None else ended.isoformat()
    if "children" in view:
        view["children"] = [{"school_urn": None, **child} for child in view["children"]]
    return json.dumps(view, sort_keys=True)


def assert_agrees(data: bytes) -> PlainEvent | None:
    """The property: None, or the models accept `data` and hold exactly the values the quick check gives."""
    plain = plain_event(data)
    if plain is None:
        return None
    try:
        event = decode_event(data)
    except ContractError as exc:
        raise AssertionError(f"accepted what the models refuse ({exc.reason_code}: {exc}): {data[:300]!r}") from None
    assert _plain_view(plain) == _model_view(event), data[:300]
    return plain


@pytest.mark.parametrize(("label", "event"), ex.all_examples())
def test_every_example_is_accepted_with_the_models_values(label: str, event: dict[str, Any]) -> None:
    assert assert_agrees(json.dumps(event).encode()) is not None, label


def test_the_contracts_own_example_is_accepted_as_published() -> None:
    assert assert_agrees(ex.CONTRACT_EXAMPLE_JSON.encode()) is not None


NHS = "9434765919"  # a valid NHS number (check digit 9)
NEAR_MISSES: dict[str, list[Any]] = {
    "event_id": ["7F1D9C2E-3A4B-4C5D-8E6F-1A2B3C4D5E01", "{7f1d9c2e-3a4b-4c5d-8e6f-1a2b3c4d5e01}",
                 "7f1d9c2e3a4b4c5d8e6f1a2b3c4d5e01", "7f1d9c2e-3a4b-4c5d-8e6f-1a2b3c4d5e0", "", None, 7],
    "schema_version": [1.0, True, "1", 2, 0, None],
    "la_code": ["38", "3833", "\uff13\uff18\uff13", " 383", "383\n", 383, None],
    "agency_code": ["wyp", "WYP-1", "_WYP", "W" * 21, "JANE SMITH", "W YP", f"X{NHS}", "", None],
    "occurred_at": ["2025-03-01T21:15:00Z", "2025-03-01t21:15:00z", "2025-03-01 21:15:00+00:00",
                    "2025-03-01T21:15:00.1234567+00:00", "2025-03-01T21:15:00.5-05:30", "2025-03-01T21:15:00",
                    "2025-03-01T21:15:00+24:00", "2025-02-30T21:15:00+00:00", "0000-03-01T21:15:00+00:00",
                    "0001-01-01T00:30:00+01:00", "2025-03-01T23:59:60+00:00", "2025-03-01T21:15:00-00:00",
                    "2025-03-01T21:15+00:00", 1740863700, None],
    "recorded_at": ["2025-03-01T21:14:59.999999+00:00", "2025-03-01T21:15:00.000001Z", "2025-03-01T21:15:00Z",
                    "2025-03-01T22:15:00+01:00", "2025-03-01T22:14:59+01:00", "9999-12-31T23:59:59-01:00"],
    "purge": [True, None, 0, 1, "false"],
    "contact_id": ["c" * 100, "c" * 101, "", "CT 1", "CT,1", "CT-1\n", f"CT-{NHS}", "CT-943 476 5919", "CT-1AB",
                   "12345", "12-34", "CT-é", "CT\x00", None, 5],
    "child_id": [ex.CHILD.upper(), ex.CHILD[:-1], ex.CHILD + "0", NHS, "Jane Smith", None, ""],
    "household_id": [None, ex.HOUSEHOLD.upper(), NHS],
    "concerns": [[], ["neglect"] * 50, ["neglect"] * 51, ["Neglect"], "neglect", [None], None],
    "route": [None, "MASH", ""],
    "outcome": ["referral", "strategy_discussion", "Referral", None],
    "looked_after": [0, None, "true"],
    "interview": ["completed", None, "done"],
    "dash_score": [0, 27, 28, -1, 5.0, True, None, "5"],
    "is_crime": [1, None],
    "marac_referral": [None, True, 1],
    "children": [[], [{"child_id": ex.CHILD, "present": True}] * 50, [{"child_id": ex.CHILD, "present": True}] * 51,
                 [{"child_id": ex.CHILD}], [{"child_id": ex.CHILD, "present": True, "extra": 1}],
                 [{"child_id": ex.CHILD, "present": True, "school_urn": None}],
                 [{"child_id": ex.CHILD, "present": True, "school_urn": "10798"}], [None], None],
    "previous_plans": [0, -1, 2**63, 10**30, 1.0, None],
    "previous_plan_ended_at": ["2023-02-29", "2024-02-29", "0000-01-01", "2023-06-30T00:00:00Z", "20230630", None],
    "unknown": ["x", None],
}  # fmt: skip
"""Values at and just past each rule's edge (the key `unknown` adds a field no model has)."""


@st.composite
def near_misses(draw: st.DrawFn) -> bytes:
    """A valid example with a few fields set to edge values, dropped or repeated, as JSON text."""
    event_type = draw(st.sampled_from(sorted(EVENT_MODELS)))
    event = draw(st.sampled_from([ex.minimal, ex.full]))(event_type)
    for _ in range(draw(st.integers(1, 3))):
        field = draw(st.sampled_from(sorted(NEAR_MISSES)))
        if draw(st.integers(0, 5)) == 0:
            event.pop(field, None)
        else:
            event[field] = draw(st.sampled_from(NEAR_MISSES[field]))
    if draw(st.booleans()):
        event["event_type"] = draw(st.sampled_from([*sorted(EVENT_MODELS), "alert.raised", None]))
    text = json.dumps(event, ensure_ascii=draw(st.booleans()))
    if draw(st.integers(0, 3)) == 0:  # a key repeated at the end: the last one counts, for both
        field = draw(st.sampled_from(sorted(event)))
        text = text[:-1] + f", {json.dumps(field)}: {json.dumps(draw(st.sampled_from(NEAR_MISSES.get(field, [1]))))}}}"
    wrap = draw(st.sampled_from(["{}", " {} ", "\n{}\n", "{} x", "{}{{}}", "\ufeff{}"]))
    return wrap.format(text).encode("utf-8")


@FUZZ
@given(near_misses())
def test_near_misses_are_accepted_only_as_the_models_accept_them(data: bytes) -> None:
    assert_agrees(data)


@FUZZ
@given(st.binary(max_size=600) | st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_arbitrary_bytes_are_never_accepted_against_the_models(data: bytes) -> None:
    assert_agrees(data)


def test_what_it_leaves_to_the_models_includes_valid_events() -> None:
    """None is not a rejection: an uppercase UUID is a valid event id, and a space-separated timestamp valid too."""
    event = {**ex.minimal("missing.found"), "event_id": "7F1D9C2E-3A4B-4C5D-8E6F-1A2B3C4D5E04"}
    event["occurred_at"] = "2025-03-01 21:15:00+00:00"
    data = json.dumps(event).encode()
    assert plain_event(data) is None and decode_event(data).event_type == "missing.found"


def test_over_the_size_limit_is_left_to_the_models() -> None:
    data = json.dumps(ex.minimal("contact.decided")).encode()
    assert plain_event(data[:-1] + b" " * 70_000 + b"}") is None


code_texts = st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcxyz -_./,\t\n\x00\u00b7\u0663\uff11", max_size=24)


@FUZZ
@given(st.lists(code_texts | st.sampled_from(["CT-383-19-000001", "9434765919", "LS1 4AP", "M383123450012"]),
                max_size=4))  # fmt: skip
def test_surely_no_identifier_means_the_guard_finds_none(texts: list[str]) -> None:
    sure = surely_no_identifier_in_codes(texts)
    if sure:
        assert all(find_identifiers(t, context="code") == [] for t in texts), texts
    assert sure == all(surely_no_identifier_in_codes([t]) for t in texts)
