"""Backward-compatibility check between two JSON Schemas of the same message type.

Within v1 a field may be added if it is optional; nothing may be removed, renamed or made stricter.
This compares a frozen baseline (schemas/baseline/v1) with the current models' schemas.
"""

from __future__ import annotations

from typing import Any

_TIGHTER_IF_GREATER = ("minLength", "minItems", "minimum", "exclusiveMinimum")
_TIGHTER_IF_SMALLER = ("maxLength", "maxItems", "maximum", "exclusiveMaximum")
_ANNOTATIONS = frozenset(
    {"title", "description", "default", "examples", "$comment", "deprecated", "readOnly", "writeOnly", "$schema", "$id"}
)
_UNDERSTOOD = frozenset(
    {"type", "const", "enum", "pattern", "format", "properties", "required", "additionalProperties", "items"}
    | {"anyOf", "oneOf", "$ref", "$defs", *_TIGHTER_IF_GREATER, *_TIGHTER_IF_SMALLER}
)


def breaking_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Every change from `old` to `new` that could reject a message `old` accepted."""
    problems: list[str] = []
    _compare(old, new, old.get("$defs", {}), new.get("$defs", {}), "", problems)
    return problems


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return _resolve(defs[ref.removeprefix("#/$defs/")], defs)
    return node


def _variants(node: dict[str, Any], defs: dict[str, Any]) -> list[dict[str, Any]]:
    node = _resolve(node, defs)
    for key in ("anyOf", "oneOf"):
        if key in node:
            return [v for sub in node[key] for v in _variants(sub, defs)]
    return [node]


def _types(node: dict[str, Any]) -> set[str]:
    if "const" in node:
        return {"const"}
    t = node.get("type")
    return set(t) if isinstance(t, list) else ({t} if isinstance(t, str) else {"any"})


def _compare(
    old: dict[str, Any],
    new: dict[str, Any],
    old_defs: dict[str, Any],
    new_defs: dict[str, Any],
    path: str,
    out: list[str],
) -> None:
    old_vs, new_vs = _variants(old, old_defs), _variants(new, new_defs)
    if len(old_vs) > 1 or len(new_vs) > 1:
        old_types = set().union(*(_types(v) for v in old_vs))
        new_types = set().union(*(_types(v) for v in new_vs))
        if "any" not in new_types and not old_types <= new_types:
            out.append(f"{path or 'message'}: type narrowed from {sorted(old_types)} to {sorted(new_types)}")
        for ov in old_vs:
            match = next((nv for nv in new_vs if _types(nv) == _types(ov)), None)
            if match is not None:
                _compare_node(ov, match, old_defs, new_defs, path, out)
        return
    _compare_node(old_vs[0], new_vs[0], old_defs, new_defs, path, out)


def _compare_node(
    old: dict[str, Any],
    new: dict[str, Any],
    old_defs: dict[str, Any],
    new_defs: dict[str, Any],
    path: str,
    out: list[str],
) -> None:
    where = path or "message"
    old_t, new_t = _types(old), _types(new)
    if "any" not in new_t and not old_t <= new_t:
        out.append(f"{where}: type changed from {sorted(old_t)} to {sorted(new_t)}")
        return
    if "const" in new and new.get("const") != old.get("const"):
        out.append(f"{where}: constant changed from {old.get('const')!r} to {new['const']!r}")
    if "enum" in new:
        removed = set(map(str, old.get("enum", []))) - set(map(str, new["enum"]))
        if "enum" not in old:
            out.append(f"{where}: now restricted to a code list")
        elif removed:
            out.append(f"{where}: codes removed from the list: {sorted(removed)}")
    for key in ("pattern", "format"):
        if key in new and new.get(key) != old.get(key):
            out.append(f"{where}: {key} changed from {old.get(key)!r} to {new[key]!r}")
    for key in _TIGHTER_IF_GREATER:
        if key in new and (key not in old or new[key] > old[key]):
            out.append(f"{where}: {key} tightened from {old.get(key)!r} to {new[key]!r}")
    for key in _TIGHTER_IF_SMALLER:
        if key in new and (key not in old or new[key] < old[key]):
            out.append(f"{where}: {key} tightened from {old.get(key)!r} to {new[key]!r}")
    for key in sorted(new.keys() - _ANNOTATIONS - _UNDERSTOOD):  # multipleOf, uniqueItems, allOf, not, ...
        if new[key] != old.get(key):
            out.append(f"{where}: {key} added or changed (not a change this check can prove compatible)")
    old_props, new_props = old.get("properties", {}), new.get("properties", {})
    for name, old_prop in old_props.items():
        sub = f"{path}.{name}" if path else name
        if name not in new_props:
            out.append(f"{sub}: field removed or renamed")
            continue
        _compare(old_prop, new_props[name], old_defs, new_defs, sub, out)
    newly_required = set(new.get("required", [])) - set(old.get("required", []))
    for name in sorted(newly_required):
        sub = f"{path}.{name}" if path else name
        what = "field made required" if name in old_props else "new field is required (new fields must be optional)"
        out.append(f"{sub}: {what}")
    if old.get("additionalProperties", True) is not False and new.get("additionalProperties") is False:
        out.append(f"{where}: unknown fields now refused")
    if "items" in old and "items" in new:
        _compare(old["items"], new["items"], old_defs, new_defs, f"{path}[]", out)
