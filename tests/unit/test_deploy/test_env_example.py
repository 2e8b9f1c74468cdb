""".env.example against the settings object and docker-compose.yml: every setting listed, nothing that is not a
setting, every compose variable explained, placeholders only. Derived from `Settings` itself, so it stays right as
sections are added."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from pydantic import SecretStr

from safeguard.settings import Settings
from tests.unit.test_deploy.deploy_files import (
    COMPOSE_FILE,
    ENV_EXAMPLE,
    ENV_PREFIX,
    ROOT,
    compose_variables,
    env_example_lines,
    settings_variables,
)


def _suggestion(names: set[str]) -> str:
    fields = settings_variables()
    lines = []
    for name in sorted(names):
        default = fields[name].get_default(call_default_factory=True)
        shown = (
            ""
            if default is None or isinstance(default, SecretStr)
            else str(default).lower()
            if isinstance(default, bool)
            else str(default)
        )
        if fields[name].description:
            lines.append(f"# {fields[name].description}")
        lines.append(f"# {name}={shown}")
    return "\n".join(lines)


def test_the_walker_sees_nested_sections() -> None:
    names = settings_variables()
    assert "SAFEGUARD_KAFKA__BOOTSTRAP_SERVERS" in names
    assert "SAFEGUARD_PSEUDONYM_KEY" in names
    assert all(name.startswith(ENV_PREFIX) for name in names)
    for name in Settings.model_fields:  # every top-level field is either a variable or a section of variables
        assert any(v == f"{ENV_PREFIX}{name.upper()}" or v.startswith(f"{ENV_PREFIX}{name.upper()}__") for v in names)


def test_every_setting_is_listed_and_every_listed_variable_is_a_setting() -> None:
    expected = set(settings_variables())
    listed = {line.name for line in env_example_lines() if line.name.startswith(ENV_PREFIX)}
    unknown = listed - expected
    assert not unknown, f".env.example lists variables the settings object does not read: {sorted(unknown)}"
    missing = expected - listed
    assert not missing, f".env.example is missing settings; add (commented, with the default):\n{_suggestion(missing)}"


def test_no_variable_is_listed_twice() -> None:
    twice = [name for name, n in Counter(line.name for line in env_example_lines()).items() if n > 1]
    assert not twice, f"listed more than once in .env.example: {twice}"


def test_every_compose_variable_is_explained_and_every_other_variable_is_used() -> None:
    used = set(compose_variables(COMPOSE_FILE.read_text()))
    declared = {line.name for line in env_example_lines()}
    assert used - declared == set(), (
        f"docker-compose.yml reads variables .env.example does not explain: {used - declared}"
    )
    others = {name for name in declared if not name.startswith(ENV_PREFIX)}
    assert others - used == set(), f".env.example lists variables docker-compose.yml never reads: {others - used}"


def test_required_compose_secrets_are_set_as_placeholders() -> None:
    """The `${X:?...}` variables must be set for compose to start: .env.example sets each, to a placeholder."""
    required = {name for name, default in compose_variables(COMPOSE_FILE.read_text()).items() if default is None}
    active = {line.name: line.value for line in env_example_lines() if not line.commented}
    assert required <= set(active), (
        f"required by docker-compose.yml but not set in .env.example: {required - set(active)}"
    )
    for name, value in active.items():
        if any(word in name for word in ("PASSWORD", "TOKEN", "SECRET", "KEY")):
            assert value.startswith("change-me"), f"{name} in .env.example must be a change-me placeholder"


def test_env_files_are_kept_out_of_git_and_out_of_the_image() -> None:
    gitignore = (ROOT / ".gitignore").read_text().splitlines()
    assert ".env" in gitignore, ".env holds the deployment's secrets: it must be git-ignored"
    dockerignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert ".env" in dockerignore and ".env.*" in dockerignore, ".env must never reach the build context"
    assert ENV_EXAMPLE.exists()


SHOWN_AS_AN_EXAMPLE = {"SAFEGUARD_NOTIFY__USERS"}
"""Commented settings whose line shows an example value rather than the default (said so in the comment above it)."""


def test_commented_settings_show_the_code_defaults() -> None:
    """A `# SAFEGUARD_X=value` line documents the default: it must change when the code's default does."""
    fields = settings_variables()
    wrong = []
    for line in env_example_lines():
        if not line.commented or line.name not in fields or line.name in SHOWN_AS_AN_EXAMPLE:
            continue
        default = fields[line.name].get_default(call_default_factory=True)
        if default is None or isinstance(default, SecretStr):
            matches = line.value == ""
        elif isinstance(default, bool):
            matches = line.value == str(default).lower()
        elif isinstance(default, list | dict):
            matches = json.loads(line.value) == default
        elif isinstance(default, Path):
            matches = Path(line.value).expanduser() == default
        else:
            matches = line.value == str(default)
        if not matches:
            wrong.append(f"line {line.line_number}: {line.name}={line.value} but the default is {default!r}")
    assert not wrong, "\n".join(wrong)
