"""A partnership's rules file over rules.md's defaults: TOML or YAML, validated at start-up.

```toml
[repeat_missing]
threshold = 3
window = "P12M"
[repeat_missing.looked_after]
threshold = 4
[high_risk_missing]
enabled = false
[deadlines]
allowed_lateness = "PT10M"
```

Every problem in the file is reported at once, each naming the file, the rule and the key
(`rules.toml: repeat_missing.window: 'P90' is not an ISO 8601 duration such as P90D`). Unknown
rule ids and unknown keys are errors listing the valid ones. Types are strict: `threshold = "3"`
is refused rather than guessed.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from schemas.errors import ConfigError
from streams.rules.catalogue import Catalogue, DeadlineSettings
from streams.rules.definition import RuleParams
from streams.rules.definitions import RULES, RULES_BY_ID

DEADLINES_SECTION = "deadlines"
"""The one section of a rules file that is not a rule: the partition clock's live settings."""

DEFAULT_SOURCE = "default"


class RulesFileError(ConfigError):
    """The rules file cannot be used; `problems` lists every issue, one line each, file name first."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class CatalogueRow:
    """One effective setting for `safeguard rules show`: where its value came from is `source`."""

    rule_id: str
    setting: str
    value: str
    source: str


def load_catalogue(path: str | Path) -> Catalogue:
    """Read a `.toml`, `.yaml` or `.yml` rules file and apply it over the defaults. Raises RulesFileError."""
    source = str(path)
    return catalogue_from_mapping(_read(Path(path), source), source=source)


def catalogue_from_mapping(data: Mapping[Any, Any], *, source: str) -> Catalogue:
    """Apply already-parsed overrides (rule id -> settings) over the defaults; `source` names them in errors."""
    problems: list[str] = []
    params: dict[str, RuleParams] = {rule.rule_id: rule.default_params() for rule in RULES}
    deadlines = DeadlineSettings()
    overridden: set[str] = set()
    for section, settings in data.items():
        model = _section_model(section)
        if model is None:
            valid = ", ".join(RULES_BY_ID)
            problems.append(f"{source}: unknown rule {section!r}; valid rules: {valid} (and [{DEADLINES_SECTION}])")
            continue
        if not isinstance(settings, Mapping):
            problems.append(f"{source}: {section}: expected a table of settings, got {settings!r}")
            continue
        try:
            validated = model.model_validate(dict(settings), strict=True)
        except ValidationError as exc:
            problems += [_describe_error(source, section, model, error) for error in exc.errors()]
            continue
        overridden |= {f"{section}.{key}" for key in _dotted_keys(settings)}
        if isinstance(validated, DeadlineSettings):
            deadlines = validated
        elif isinstance(validated, RuleParams):
            params[section] = validated
    if problems:
        raise RulesFileError(source, problems)
    return Catalogue(params, deadlines, source=source, overridden=frozenset(overridden))


def describe_catalogue(catalogue: Catalogue) -> list[CatalogueRow]:
    """Every rule's effective settings (cooldowns and looked-after thresholds resolved), then the deadlines."""
    rows: list[CatalogueRow] = []
    for rule in RULES:
        params = catalogue.params_for(rule)
        for setting, value in _effective_settings(params).items():
            if setting == "cooldown":
                cooldown = rule.cooldown(params)
                value = "none" if cooldown is None else str(cooldown)
            rows.append(CatalogueRow(rule.rule_id, setting, value, _source(catalogue, rule.rule_id, setting)))
    for setting, value in _effective_settings(catalogue.deadlines).items():
        rows.append(CatalogueRow(DEADLINES_SECTION, setting, value, _source(catalogue, DEADLINES_SECTION, setting)))
    return rows


def _read(path: Path, source: str) -> Mapping[Any, Any]:
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml"):
        raise RulesFileError(source, [f"{source}: a rules file must end in .toml, .yaml or .yml"])
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesFileError(source, [f"{source}: cannot read the rules file: {exc}"]) from None
    if suffix == ".toml":
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise RulesFileError(source, [f"{source}: not valid TOML: {exc}"]) from None
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RulesFileError(source, [f"{source}: not valid YAML: {exc}"]) from None
    if loaded is None:
        return {}
    if not isinstance(loaded, Mapping):
        raise RulesFileError(source, [f"{source}: expected rule ids mapped to their settings, got {loaded!r}"])
    return loaded


def _section_model(section: object) -> type[BaseModel] | None:
    if section == DEADLINES_SECTION:
        return DeadlineSettings
    if isinstance(section, str) and section in RULES_BY_ID:
        return RULES_BY_ID[section].params_model
    return None


def _dotted_keys(settings: Mapping[Any, Any], prefix: str = "") -> list[str]:
    keys = []
    for key, value in settings.items():
        if isinstance(value, Mapping) and value:
            keys += _dotted_keys(value, f"{prefix}{key}.")
        else:
            keys.append(f"{prefix}{key}")
    return keys


def _describe_error(source: str, section: str, model: type[BaseModel], error: ErrorDetails) -> str:
    where = ".".join([section, *(str(part) for part in error["loc"])])
    kind, got = error["type"], error["input"]
    if kind == "extra_forbidden":
        parent = _model_at(model, error["loc"][:-1])
        valid = ", ".join(sorted(parent.model_fields)) if parent else "none"
        return f"{source}: {where}: unknown key; valid keys: {valid}"
    if kind == "iso_duration":
        return f"{source}: {where}: {error['msg']}"
    messages = {
        "int_type": "expected a whole number",
        "bool_type": "expected true or false",
        "model_type": "expected a table of settings",
        "greater_than_equal": f"must be at least {error.get('ctx', {}).get('ge')}",
    }
    message = messages.get(kind) or error["msg"].removeprefix("Value error, ")
    return f"{source}: {where}: {message} (got {got!r})"


def _model_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The (nested) settings model a location points into, to list its valid keys."""
    current: type[BaseModel] | None = model
    for part in loc:
        field = current.model_fields.get(str(part)) if current else None
        current = _nested_model(field.annotation) if field else None
    return current


def _nested_model(annotation: object) -> type[BaseModel] | None:
    """The settings model inside a field's annotation (`LookedAfterThresholds | None`), if any."""
    for candidate in getattr(annotation, "__args__", (annotation,)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _effective_settings(params: BaseModel, prefix: str = "", parent: BaseModel | None = None) -> dict[str, str]:
    """Field values as text; an unset nested value shows what applies instead (the parent's same-named value)."""
    settings: dict[str, str] = {}
    for name, field in type(params).model_fields.items():
        value = getattr(params, name)
        nested = _nested_model(field.annotation)
        if nested is not None:
            settings |= _effective_settings(value or nested(), f"{prefix}{name}.", params)
            continue
        if value is None and parent is not None and name in type(parent).model_fields:
            value = getattr(parent, name)
        settings[f"{prefix}{name}"] = _as_text(value)
    return settings


def _as_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    return str(value)


def _source(catalogue: Catalogue, section: str, setting: str) -> str:
    key = f"{section}.{setting}"
    parts = key.split(".")
    # A whole nested table given as `looked_after = {}` counts for every key under it.
    prefixes = {".".join(parts[:n]) for n in range(2, len(parts) + 1)}
    if catalogue.source is not None and prefixes & catalogue.overridden:
        return catalogue.source
    return DEFAULT_SOURCE
