"""Backward compatibility within v1: the current models break nothing the frozen baseline accepted.

The second half checks the checker itself, on synthetic mutations of a baseline schema.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from schemas.compat import breaking_changes
from schemas.jsonschema import SCHEMA_MODELS, render_all

BASELINE_DIR = Path(__file__).resolve().parents[3] / "schemas" / "baseline" / "v1"
BASELINE_FILES = sorted(p.name for p in BASELINE_DIR.glob("*.schema.json"))


def baseline(file_name: str) -> dict[str, Any]:
    return json.loads((BASELINE_DIR / file_name).read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def test_baseline_covers_every_message_type() -> None:
    assert sorted(f"{name}.schema.json" for name in SCHEMA_MODELS) == BASELINE_FILES
    assert (BASELINE_DIR / "README.md").read_text(encoding="utf-8").lower().count("never regenerate") == 1


@pytest.mark.parametrize("file_name", BASELINE_FILES)
def test_current_models_are_backward_compatible_with_the_v1_baseline(file_name: str) -> None:
    current = json.loads(render_all()[file_name])
    problems = breaking_changes(baseline(file_name), current)
    assert problems == [], (
        f"{file_name} breaks the v1 contract: {problems}. Within v1 only optional fields may be added; "
        "anything else needs a v2 topic. Do not regenerate schemas/baseline/v1."
    )


@pytest.mark.parametrize("file_name", BASELINE_FILES)
def test_a_schema_is_compatible_with_itself(file_name: str) -> None:
    assert breaking_changes(baseline(file_name), baseline(file_name)) == []


# --- the checker on synthetic mutations ---------------------------------------------------------------------------

Schema = dict[str, Any]


def mutated(file_name: str, change: Callable[[Schema], None]) -> tuple[Schema, Schema]:
    old = baseline(file_name)
    new = copy.deepcopy(old)
    change(new)
    return old, new


def _remove_field(s: Schema) -> None:
    del s["properties"]["episode_id"]
    s["required"].remove("episode_id")


def _rename_field(s: Schema) -> None:
    s["properties"]["episode_ref"] = s["properties"].pop("episode_id")
    s["required"][s["required"].index("episode_id")] = "episode_ref"


def _rename_optional_field(s: Schema) -> None:
    s["properties"]["route_taken"] = s["properties"].pop("route")


def _make_optional_required(s: Schema) -> None:
    s["required"].append("route")


def _new_required_field(s: Schema) -> None:
    s["properties"]["referrer_role"] = {"type": "string"}
    s["required"].append("referrer_role")


def _remove_code(s: Schema) -> None:
    s["properties"]["risk_level"]["enum"].remove("no_apparent_risk")


def _remove_code_in_list_items(s: Schema) -> None:
    s["properties"]["concerns"]["items"]["enum"].remove("other")


def _change_pattern(s: Schema) -> None:
    s["properties"]["la_code"]["pattern"] = "^[0-9]{3,4}$"


def _add_pattern(s: Schema) -> None:
    s["properties"]["contact_id"]["pattern"] = "^[A-Z]"


def _reduce_max_length(s: Schema) -> None:
    s["properties"]["contact_id"]["maxLength"] = 50


def _raise_minimum(s: Schema) -> None:
    s["properties"]["dash_score"]["anyOf"][0]["minimum"] = 1


def _lower_maximum(s: Schema) -> None:
    s["properties"]["dash_score"]["anyOf"][0]["maximum"] = 20


def _raise_min_items(s: Schema) -> None:
    s["properties"]["concerns"]["minItems"] = 2


def _narrow_nullable(s: Schema) -> None:
    s["properties"]["victim_id"] = s["properties"]["victim_id"]["anyOf"][0]


def _narrow_type(s: Schema) -> None:
    s["properties"]["dash_score"]["anyOf"][0]["type"] = "boolean"


def _narrow_string_to_const(s: Schema) -> None:
    s["properties"]["incident_id"]["const"] = "WYP-1"


def _require_nested(s: Schema) -> None:
    s["$defs"]["IncidentChild"]["required"].append("school_urn")


def _remove_nested(s: Schema) -> None:
    del s["$defs"]["IncidentChild"]["properties"]["present"]


def _multiple_of(s: Schema) -> None:
    s["properties"]["dash_score"]["anyOf"][0]["multipleOf"] = 2


def _unique_items(s: Schema) -> None:
    s["properties"]["concerns"]["uniqueItems"] = True


def _change_const(s: Schema) -> None:
    s["properties"]["schema_version"]["const"] = 2


def _add_format(s: Schema) -> None:
    s["properties"]["contact_id"]["format"] = "uuid"


BREAKING: list[tuple[str, str, Callable[[Schema], None], str]] = [
    ("field removed", "missing.reported.schema.json", _remove_field, "episode_id"),
    ("field renamed", "missing.reported.schema.json", _rename_field, "episode_id"),
    ("optional field renamed", "contact.received.schema.json", _rename_optional_field, "route"),
    ("optional made required", "contact.received.schema.json", _make_optional_required, "route"),
    ("new required field", "contact.received.schema.json", _new_required_field, "referrer_role"),
    ("code removed from enum", "missing.found.schema.json", _remove_code, "risk_level"),
    ("code removed from a list's enum", "contact.received.schema.json", _remove_code_in_list_items, "concerns"),
    ("pattern changed", "contact.decided.schema.json", _change_pattern, "la_code"),
    ("pattern added", "contact.received.schema.json", _add_pattern, "contact_id"),
    ("maxLength reduced", "contact.received.schema.json", _reduce_max_length, "contact_id"),
    ("minimum raised", "domestic_incident.recorded.schema.json", _raise_minimum, "dash_score"),
    ("maximum lowered", "domestic_incident.recorded.schema.json", _lower_maximum, "dash_score"),
    ("minItems raised", "contact.received.schema.json", _raise_min_items, "concerns"),
    ("type narrowed: null no longer allowed", "domestic_incident.recorded.schema.json", _narrow_nullable, "victim_id"),
    ("type narrowed: integer to boolean", "domestic_incident.recorded.schema.json", _narrow_type, "dash_score"),
    ("string narrowed to a constant", "domestic_incident.recorded.schema.json", _narrow_string_to_const, "incident_id"),
    ("nested field made required", "domestic_incident.recorded.schema.json", _require_nested, "school_urn"),
    ("nested field removed", "domestic_incident.recorded.schema.json", _remove_nested, "present"),
    ("multipleOf added", "domestic_incident.recorded.schema.json", _multiple_of, "dash_score"),
    ("uniqueItems added", "contact.received.schema.json", _unique_items, "concerns"),
    ("constant changed", "cp_plan.started.schema.json", _change_const, "schema_version"),
    ("format added", "contact.received.schema.json", _add_format, "contact_id"),
]


@pytest.mark.parametrize(("what", "file_name", "change", "field"), BREAKING, ids=[b[0] for b in BREAKING])
def test_checker_catches(what: str, file_name: str, change: Callable[[Schema], None], field: str) -> None:
    problems = breaking_changes(*mutated(file_name, change))
    assert problems, f"{what} was not flagged"
    assert any(field in p for p in problems), f"{what}: no problem names `{field}`: {problems}"


def _new_optional_field(s: Schema) -> None:
    s["properties"]["referrer_role"] = {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None}


def _add_code(s: Schema) -> None:
    s["properties"]["risk_level"]["enum"].append("very_high")


def _add_code_to_list_items(s: Schema) -> None:
    s["properties"]["concerns"]["items"]["enum"].append("radicalisation")


def _change_description(s: Schema) -> None:
    s["properties"]["child_id"]["description"] = "Pseudonym of the child (reworded)."
    s["description"] = "Reworded."
    s["properties"]["child_id"]["title"] = "Child"


def _relax_max_length(s: Schema) -> None:
    s["properties"]["contact_id"]["maxLength"] = 200


def _relax_required(s: Schema) -> None:
    s["required"].remove("contact_source")


def _make_nullable(s: Schema) -> None:
    s["properties"]["contact_id"] = {"anyOf": [s["properties"]["contact_id"], {"type": "null"}]}


def _drop_pattern(s: Schema) -> None:
    del s["properties"]["la_code"]["pattern"]


def _new_optional_nested_field(s: Schema) -> None:
    s["$defs"]["IncidentChild"]["properties"]["school_phase"] = {"type": "string"}


COMPATIBLE: list[tuple[str, str, Callable[[Schema], None]]] = [
    ("new optional field", "contact.received.schema.json", _new_optional_field),
    ("enum value added", "missing.found.schema.json", _add_code),
    ("enum value added to a list", "contact.received.schema.json", _add_code_to_list_items),
    ("description changed", "contact.received.schema.json", _change_description),
    ("maxLength relaxed", "contact.received.schema.json", _relax_max_length),
    ("required field made optional", "contact.received.schema.json", _relax_required),
    ("field made nullable", "contact.received.schema.json", _make_nullable),
    ("pattern dropped", "contact.decided.schema.json", _drop_pattern),
    ("new optional nested field", "domestic_incident.recorded.schema.json", _new_optional_nested_field),
]


@pytest.mark.parametrize(("what", "file_name", "change"), COMPATIBLE, ids=[c[0] for c in COMPATIBLE])
def test_checker_allows(what: str, file_name: str, change: Callable[[Schema], None]) -> None:
    assert breaking_changes(*mutated(file_name, change)) == []
