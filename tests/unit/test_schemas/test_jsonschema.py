"""The committed JSON Schemas (schemas/json) are current, well formed, and agree with the models on examples.

The `jsonschema` package is not a project dependency, so it is used only when importable; without it the files
are checked by a structural walk and a small validator for the keywords the export uses.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import pytest

from schemas import EVENT_MODELS
from schemas.jsonschema import SCHEMA_MODELS, json_schema, render_all
from tests.unit.test_schemas.examples import CHILD, alert, all_examples, minimal

JSON_DIR = Path(__file__).resolve().parents[3] / "schemas" / "json"
DRAFT = "https://json-schema.org/draft/2020-12/schema"
HAVE_JSONSCHEMA = importlib.util.find_spec("jsonschema") is not None

JSON_TYPES = {"object", "array", "string", "integer", "number", "boolean", "null"}
# Draft 2020-12 vocabulary (core, applicator, validation, format-annotation, meta-data, unevaluated, content).
KEYWORDS = {
    "$schema", "$id", "$ref", "$defs", "$comment", "$anchor", "$dynamicRef", "$dynamicAnchor", "$vocabulary",
    "allOf", "anyOf", "oneOf", "not", "if", "then", "else", "dependentSchemas", "prefixItems", "items", "contains",
    "properties", "patternProperties", "additionalProperties", "propertyNames", "unevaluatedItems",
    "unevaluatedProperties", "type", "enum", "const", "multipleOf", "maximum", "exclusiveMaximum", "minimum",
    "exclusiveMinimum", "maxLength", "minLength", "pattern", "maxItems", "minItems", "uniqueItems", "maxContains",
    "minContains", "maxProperties", "minProperties", "required", "dependentRequired", "format", "title",
    "description", "default", "deprecated", "readOnly", "writeOnly", "examples", "contentEncoding",
    "contentMediaType", "contentSchema",
}  # fmt: skip
SCHEMA_VALUED = {"items", "not", "if", "then", "else", "contains", "additionalProperties", "propertyNames"}
SCHEMA_MAPS = {"properties", "$defs", "patternProperties", "dependentSchemas"}
SCHEMA_LISTS = {"allOf", "anyOf", "oneOf", "prefixItems"}


def committed() -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(JSON_DIR.glob("*.json"))}


def load(name: str) -> dict[str, Any]:
    return json.loads((JSON_DIR / f"{name}.schema.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


# --- the committed files are what the models say ----------------------------------------------------------------


def test_committed_files_equal_render_all_byte_for_byte() -> None:
    rendered, files = render_all(), committed()
    assert sorted(files) == sorted(rendered), "schemas/json is out of date: run `make schemas` and commit the result"
    stale = [name for name, text in rendered.items() if files[name] != text]
    assert not stale, f"schemas/json is out of date for {stale}: run `make schemas` and commit the result"


def test_one_file_per_event_type_plus_alert_and_dead_letter() -> None:
    expected = {f"{t}.schema.json" for t in EVENT_MODELS} | {
        "alert.raised.schema.json",
        "alert.lifecycle.schema.json",
        "dead_letter.schema.json",
        "quality.finding.schema.json",
    }
    assert set(render_all()) == expected == {f"{name}.schema.json" for name in SCHEMA_MODELS}


def test_render_all_is_deterministic() -> None:
    assert render_all() == render_all()


# --- every file is a well-formed draft 2020-12 schema ------------------------------------------------------------


def _walk(node: Any, root: dict[str, Any], where: str) -> None:
    assert isinstance(node, dict), f"{where}: a schema must be an object"
    unknown = node.keys() - KEYWORDS
    assert not unknown, f"{where}: not draft 2020-12 keywords: {sorted(unknown)}"
    if "type" in node:
        types = node["type"] if isinstance(node["type"], list) else [node["type"]]
        assert types and set(types) <= JSON_TYPES, f"{where}: bad type {node['type']!r}"
    if "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/$defs/") and ref.removeprefix("#/$defs/") in root.get("$defs", {}), f"{where}: {ref}"
    if "required" in node:
        req = node["required"]
        assert isinstance(req, list) and len(set(req)) == len(req), f"{where}: required must list unique names"
        assert set(req) <= node.get("properties", {}).keys(), f"{where}: required names a field with no property"
    if "enum" in node:
        assert isinstance(node["enum"], list) and node["enum"], f"{where}: enum must be a non-empty list"
        assert len({json.dumps(v) for v in node["enum"]}) == len(node["enum"]), f"{where}: duplicate enum values"
    if "pattern" in node:
        pattern = node["pattern"]
        re.compile(pattern)
        # Portable between ECMA 262 (what JSON Schema means) and Python: no Python-only syntax.
        assert not re.search(r"\\[AZz]|\(\?P|\(\?[aiLmsux]", pattern), f"{where}: non-portable pattern {pattern}"
    for key in ("minLength", "maxLength", "minItems", "maxItems"):
        if key in node:
            assert isinstance(node[key], int) and node[key] >= 0, f"{where}: {key}"
    for key in ("minimum", "maximum"):
        if key in node:
            assert isinstance(node[key], int | float) and not isinstance(node[key], bool), f"{where}: {key}"
    for key in SCHEMA_VALUED & node.keys():
        if not isinstance(node[key], bool):
            _walk(node[key], root, f"{where}/{key}")
    for key in SCHEMA_MAPS & node.keys():
        for name, sub in node[key].items():
            _walk(sub, root, f"{where}/{key}/{name}")
    for key in SCHEMA_LISTS & node.keys():
        assert node[key], f"{where}: {key} must not be empty"
        for i, sub in enumerate(node[key]):
            _walk(sub, root, f"{where}/{key}/{i}")


@pytest.mark.parametrize("name", list(SCHEMA_MODELS))
def test_file_is_a_well_formed_schema(name: str) -> None:
    schema = load(name)
    assert schema["$schema"] == DRAFT
    assert schema["$id"] == f"urn:safeguarding:schema:{name}:v1"
    assert schema["type"] == "object" and schema["additionalProperties"] is False  # unknown fields are refused
    _walk(schema, schema, name)


@pytest.mark.skipif(not HAVE_JSONSCHEMA, reason="jsonschema is not installed in the venv")
@pytest.mark.parametrize("name", list(SCHEMA_MODELS))
def test_file_passes_the_draft_2020_12_metaschema(name: str) -> None:
    import jsonschema  # type: ignore[import-untyped,unused-ignore]

    jsonschema.Draft202012Validator.check_schema(load(name))


def test_ids_are_unique() -> None:
    ids = [load(name)["$id"] for name in SCHEMA_MODELS]
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("event_type", list(EVENT_MODELS))
def test_event_schema_pins_event_type_and_version(event_type: str) -> None:
    props = load(event_type)["properties"]
    assert props["event_type"]["const"] == event_type
    assert props["schema_version"]["const"] == 1
    assert props["occurred_at"]["format"] == props["recorded_at"]["format"] == "date-time"
    assert props["child_id" if "child_id" in props else "household_id"]["pattern"] == "^[0-9a-f]{64}$"


# --- the schema and the models agree on examples ----------------------------------------------------------------


def _type_ok(instance: Any, type_name: str) -> bool:
    if type_name == "integer":
        return isinstance(instance, int) and not isinstance(instance, bool)
    if type_name == "number":
        return isinstance(instance, int | float) and not isinstance(instance, bool)
    python = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}[type_name]
    return isinstance(instance, python)


def mini_validate(instance: Any, node: dict[str, Any], root: dict[str, Any], where: str = "") -> list[str]:
    """The subset of draft 2020-12 the export uses; `format` is an annotation, as in the default vocabulary."""
    if "$ref" in node:
        return mini_validate(instance, root["$defs"][node["$ref"].removeprefix("#/$defs/")], root, where)
    errors: list[str] = []
    here = where or "(message)"
    if "anyOf" in node and all(mini_validate(instance, sub, root, where) for sub in node["anyOf"]):
        errors.append(f"{here}: matches no anyOf branch")
    if "type" in node:
        types = node["type"] if isinstance(node["type"], list) else [node["type"]]
        if not any(_type_ok(instance, t) for t in types):
            return [f"{here}: not of type {node['type']}"]
    if "const" in node and (instance != node["const"] or type(instance) is not type(node["const"])):
        errors.append(f"{here}: not {node['const']!r}")
    if "enum" in node and instance not in node["enum"]:
        errors.append(f"{here}: not in enum")
    if isinstance(instance, str):
        if "pattern" in node and not re.search(node["pattern"], instance):
            errors.append(f"{here}: does not match {node['pattern']}")
        if len(instance) < node.get("minLength", 0) or len(instance) > node.get("maxLength", len(instance)):
            errors.append(f"{here}: length")
    number = isinstance(instance, int | float) and not isinstance(instance, bool)
    if number and not node.get("minimum", instance) <= instance <= node.get("maximum", instance):
        errors.append(f"{here}: out of range")
    if isinstance(instance, list):
        if len(instance) < node.get("minItems", 0) or len(instance) > node.get("maxItems", len(instance)):
            errors.append(f"{here}: item count")
        for i, item in enumerate(instance):
            errors += mini_validate(item, node.get("items", {}), root, f"{where}[{i}]")
    if isinstance(instance, dict):
        props = node.get("properties", {})
        errors += [f"{where}.{n}: required" for n in node.get("required", []) if n not in instance]
        if node.get("additionalProperties") is False:
            errors += [f"{where}.{n}: not allowed" for n in instance if n not in props]
        for name, value in instance.items():
            if name in props:
                errors += mini_validate(value, props[name], root, f"{where}.{name}" if where else name)
    return errors


def schema_errors(instance: Any, name: str) -> list[str]:
    schema = load(name)
    errors = mini_validate(instance, schema, schema)
    if HAVE_JSONSCHEMA:
        import jsonschema  # type: ignore[import-untyped,unused-ignore]

        validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
        official = sorted(e.message for e in validator.iter_errors(instance))
        assert bool(official) == bool(errors), f"mini validator disagrees with jsonschema: {errors} vs {official}"
    return errors


@pytest.mark.parametrize(("label", "event"), all_examples(), ids=[label for label, _ in all_examples()])
def test_hand_written_example_validates_against_the_exported_schema(label: str, event: dict[str, Any]) -> None:
    assert schema_errors(event, event["event_type"]) == []


def test_alert_example_validates_against_the_exported_schema() -> None:
    assert schema_errors(alert(), "alert.raised") == []


def test_encoded_events_validate_against_the_exported_schema() -> None:
    """What the codec writes is what the schema describes (e.g. timestamps as strings, unset fields left out)."""
    from schemas import encode, validate_event

    for _, event in all_examples():
        wire = json.loads(encode(validate_event(event)))
        assert schema_errors(wire, event["event_type"]) == []


@pytest.mark.parametrize(
    ("change", "value"),
    [
        ("child_id", CHILD.upper()),
        ("child_id", CHILD[:-1]),
        ("la_code", "38"),
        ("agency_type", "army"),
        ("concerns", []),
        ("concerns", ["hunger"]),
        ("schema_version", 2),
        ("event_type", "contact.decided"),
        ("colour", "red"),
        ("contact_id", ""),
        ("route", 5),
    ],
)
def test_the_schema_refuses_what_the_models_refuse(change: str, value: Any) -> None:
    event = {**minimal("contact.received"), change: value}
    assert schema_errors(event, "contact.received"), f"the schema accepts {change}={value!r}"


def test_the_schema_requires_what_the_models_require() -> None:
    for event_type in EVENT_MODELS:
        required = {n for n, f in EVENT_MODELS[event_type].model_fields.items() if f.is_required()}
        assert set(json_schema(event_type)["required"]) == required
