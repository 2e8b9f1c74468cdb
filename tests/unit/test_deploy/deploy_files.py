"""Reading the deployment files the way Docker Compose and the settings object do (shared by the deploy checks and
the container tier): the compose file, `.env.example`, and the variable names the settings object reads."""

from __future__ import annotations

import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from safeguard.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
MIGRATIONS_DIR = ROOT / "sinks" / "migrations"
ACCESS_SCRIPT = ROOT / "deploy" / "clickhouse" / "initdb" / "10-safeguard-access.sh"

APP_IMAGE_NAME = "safeguarding-pipeline"
"""The image the Dockerfile builds; every application service runs it."""

ENV_PREFIX = "SAFEGUARD_"
NESTED_DELIMITER = "__"

_COMPOSE_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])((?:[^{}]|\{[^{}]*\})*))?\}|\$([A-Za-z_]\w*)")
_ENV_LINE = re.compile(r"^(#\s?)?([A-Z][A-Z0-9_]*)=(.*)$")


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The section model a field holds (also through `Section | None`), else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        models = [m for m in (_model_of(a) for a in typing.get_args(annotation)) if m is not None]
        return models[0] if len(models) == 1 else None
    return None


def settings_variables(model: type[BaseModel] = Settings, prefix: str = ENV_PREFIX) -> dict[str, FieldInfo]:
    """Every environment variable the settings object reads, as pydantic-settings names them: the prefix, the field
    name upper-cased, nested sections joined with the nested delimiter (`SAFEGUARD_KAFKA__BOOTSTRAP_SERVERS`)."""
    config = Settings.model_config
    assert config.get("env_prefix") == ENV_PREFIX and config.get("env_nested_delimiter") == NESTED_DELIMITER, (
        "the settings object changed its prefix or delimiter: update this walker and .env.example"
    )
    names: dict[str, FieldInfo] = {}
    for name, field in model.model_fields.items():
        section = _model_of(field.annotation)
        if section is not None:
            names.update(settings_variables(section, f"{prefix}{name.upper()}{NESTED_DELIMITER}"))
        else:
            names[f"{prefix}{name.upper()}"] = field
    return names


@dataclass(frozen=True)
class EnvLine:
    name: str
    value: str
    commented: bool
    line_number: int


def env_example_lines(path: Path = ENV_EXAMPLE) -> list[EnvLine]:
    """The variables `.env.example` declares: `NAME=value`, or `# NAME=value` (documented, commented out)."""
    found = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        match = _ENV_LINE.match(line)
        if match:
            found.append(EnvLine(match[2], match[3], bool(match[1]), number))
    return found


def load_compose(path: Path = COMPOSE_FILE) -> dict[str, Any]:
    """The compose file as data (YAML merge keys `<<:` resolved, as Compose resolves them)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path} is not a YAML mapping"
    return data


def compose_variables(text: str) -> dict[str, str | None]:
    """Variables interpolated in compose text (`${NAME}`, `${NAME:-default}`, `${NAME:?message}`, `$NAME`) with
    their default when one is given; `$$` is a literal dollar and not a variable."""
    text = text.replace("$$", "")
    found: dict[str, str | None] = {}
    for match in _COMPOSE_VARIABLE.finditer(text):
        name = match[1] or match[4]
        default = match[3] if match[2] in (":-", "-") else None
        found.setdefault(name, default)
        if match[3]:
            found.update({k: v for k, v in compose_variables(match[3]).items() if k not in found})
    return found


def interpolate(value: str, environment: dict[str, str] | None = None) -> str:
    """A compose value with its variables replaced: from `environment`, else the default (`${X:-default}`)."""
    environment = environment or {}

    def replace(match: re.Match[str]) -> str:
        name = match[1] or match[4]
        if name in environment and (environment[name] or match[2] not in (":-", ":?")):
            return environment[name]
        if match[2] in (":-", "-"):
            return interpolate(match[3], environment)
        return ""

    return _COMPOSE_VARIABLE.sub(replace, value.replace("$$", "\0")).replace("\0", "$")


def service_environment(service: dict[str, Any]) -> dict[str, str | None]:
    """A service's `environment`, as a mapping (the list form `- NAME=value` / `- NAME` converted)."""
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        pairs = [item.split("=", 1) for item in environment]
        return {pair[0]: (pair[1] if len(pair) == 2 else None) for pair in pairs}
    return {str(k): (None if v is None else str(v)) for k, v in environment.items()}


def app_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run the application image."""
    return {
        name: service
        for name, service in compose["services"].items()
        if str(service.get("image", "")).split(":")[0] == APP_IMAGE_NAME
    }


def one_shot_services(compose: dict[str, Any]) -> set[str]:
    """Services that run to completion (a job, not a server): some other service waits for them with
    `condition: service_completed_successfully`."""
    waited: set[str] = set()
    for service in compose["services"].values():
        depends = service.get("depends_on") or {}
        if isinstance(depends, dict):
            waited |= {n for n, c in depends.items() if (c or {}).get("condition") == "service_completed_successfully"}
    return waited


def bind_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host path, container path) of every bind mount of a service (short and long syntax, variables replaced by
    their defaults); named volumes left out."""
    mounts = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            parts = interpolate(volume).split(":")
            if len(parts) >= 2 and parts[0].startswith((".", "/", "~")):
                mounts.append((parts[0], parts[1]))
        elif isinstance(volume, dict) and volume.get("type") == "bind":
            mounts.append((str(volume["source"]), str(volume["target"])))
    return mounts


def named_volumes(service: dict[str, Any]) -> list[str]:
    """Names of the named volumes a service mounts."""
    names = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            volume = interpolate(volume)
            source = volume.split(":")[0]
            if not source.startswith((".", "/", "~")) and ":" in volume:
                names.append(source)
        elif isinstance(volume, dict) and volume.get("type") == "volume":
            names.append(str(volume["source"]))
    return names


def tables_of_migrations(directory: Path = MIGRATIONS_DIR) -> dict[str, list[str]]:
    """Table name -> column names, from every `CREATE TABLE IF NOT EXISTS {{db}}.<name> (...)` of the migrations."""
    tables: dict[str, list[str]] = {}
    create = re.compile(r"CREATE TABLE IF NOT EXISTS \{\{db\}\}\.([a-z_]+)\s*\((.*?)\)\s*ENGINE", re.S)
    for path in sorted(directory.glob("*.sql")):
        text = "\n".join(
            line for line in path.read_text(encoding="utf-8").splitlines() if not line.strip().startswith("--")
        )
        for name, body in create.findall(text):
            columns = []
            depth = 0
            current = ""
            for char in body:  # split at top-level commas (types like Nullable(Int64) hold parentheses)
                depth += (char == "(") - (char == ")")
                if char == "," and depth == 0:
                    columns.append(current)
                    current = ""
                else:
                    current += char
            columns.append(current)
            tables[name] = [c.split()[0] for c in columns if c.strip()]
    return tables
