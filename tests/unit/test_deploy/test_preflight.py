"""The preflight job of docker-compose.yml, without Docker: deploy/preflight.py run as compose would run it (its
command, its environment interpolated from a .env copied from .env.example), with and without the placeholders;
and every other service waiting for it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_deploy.deploy_files import (
    COMPOSE_FILE,
    ROOT,
    bind_mounts,
    compose_variables,
    env_example_lines,
    interpolate,
    load_compose,
    service_environment,
)

SCRIPT = ROOT / "deploy" / "preflight.py"
REQUIRED_SECRETS = {
    name
    for name, default in compose_variables(COMPOSE_FILE.read_text()).items()
    if default is None and re.search(r"PASSWORD|SECRET|TOKEN|KEY", name)
}
"""The secrets docker-compose.yml requires (`${X:?...}`)."""


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


def _dot_env(*, placeholders: bool) -> dict[str, str]:
    dot_env = {line.name: line.value for line in env_example_lines() if not line.commented}
    if not placeholders:
        dot_env = {k: f"real-{k.lower()}-Zq7" if v.startswith("change-me") else v for k, v in dot_env.items()}
    return dot_env


def _run(args: list[str], environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The script alone, in isolated mode (-I: no project on the path, no PYTHON* variables): standard library only."""
    env = {"PATH": "/usr/bin:/bin", **environment}
    return subprocess.run([sys.executable, "-I", str(SCRIPT), *args], env=env, capture_output=True, text=True)


def _as_compose_runs_it(compose: dict[str, Any], dot_env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Its command, and its environment: a variable without a value comes from .env when set there (as compose
    passes it), the others interpolated."""
    service = compose["services"]["preflight"]
    environment: dict[str, str] = {}
    for name, value in service_environment(service).items():
        if value is None:
            if name in dot_env:
                environment[name] = dot_env[name]
        else:
            environment[name] = interpolate(value, dot_env)
    return _run(list(service["command"]), environment)


def test_the_placeholders_of_env_example_stop_the_deployment_naming_each_variable(compose: dict[str, Any]) -> None:
    result = _as_compose_runs_it(compose, _dot_env(placeholders=True))
    assert result.returncode == 1, result.stderr
    named = set(re.findall(r"^preflight: ([A-Z_]+) is still the placeholder", result.stderr, re.M))
    assert named == REQUIRED_SECRETS, result.stderr
    assert "change-me-" not in result.stderr, "the values are never printed"


def test_real_secrets_pass(compose: dict[str, Any]) -> None:
    result = _as_compose_runs_it(compose, _dot_env(placeholders=False))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_an_application_secret_left_at_a_placeholder_stops_it_too(compose: dict[str, Any]) -> None:
    dot_env = {**_dot_env(placeholders=False), "SAFEGUARD_NOTIFY__SMTP_PASSWORD": "change-me-smtp"}
    result = _as_compose_runs_it(compose, dot_env)
    assert result.returncode == 1
    assert result.stderr.startswith("preflight: SAFEGUARD_NOTIFY__SMTP_PASSWORD is still the placeholder"), (
        result.stderr
    )


def test_a_required_secret_left_empty_is_named_and_optional_empty_secrets_are_fine() -> None:
    environment = {name: "s3cret-value" for name in REQUIRED_SECRETS} | {"SAFEGUARD_KAFKA__SASL_PASSWORD": ""}
    assert _run(sorted(REQUIRED_SECRETS), environment).returncode == 0
    environment["GRAFANA_ADMIN_PASSWORD"] = "  "
    result = _run(sorted(REQUIRED_SECRETS), environment)
    assert result.returncode == 1
    assert "preflight: GRAFANA_ADMIN_PASSWORD is not set" in result.stderr


@pytest.mark.parametrize("value", ["change-me", "Change-Me-grafana", " change-me-x"])
def test_every_spelling_of_the_placeholder_is_refused(value: str) -> None:
    result = _run(["GRAFANA_ADMIN_PASSWORD"], {"GRAFANA_ADMIN_PASSWORD": value})
    assert result.returncode == 1 and "GRAFANA_ADMIN_PASSWORD" in result.stderr


def test_settings_that_are_no_secret_are_left_alone() -> None:
    result = _run([], {"SAFEGUARD_NOTIFY__SMTP_USER": "change-me", "SAFEGUARD_GRAFANA__FOLDER": "change-me"})
    assert result.returncode == 0, result.stderr


def test_the_preflight_job_checks_every_required_secret_and_everything_waits_for_it(compose: dict[str, Any]) -> None:
    services = compose["services"]
    preflight = services["preflight"]
    assert set(preflight["command"]) == REQUIRED_SECRETS
    assert set(service_environment(preflight)) >= REQUIRED_SECRETS, "it is given every secret it checks"
    assert str(preflight.get("restart")) == "no", "a refusal is final until .env is fixed"
    script = preflight["entrypoint"][-1]
    assert ("./deploy/preflight.py", script) in bind_mounts(preflight)
    for name, service in services.items():
        if name != "preflight":
            depends = service.get("depends_on") or {}
            assert depends.get("preflight") == {"condition": "service_completed_successfully"}, (
                f"{name} must wait for the preflight job"
            )


def test_the_script_file_is_readable_by_the_containers_unprivileged_user() -> None:
    assert SCRIPT.stat().st_mode & 0o004, f"{Path(SCRIPT).name} is bind-mounted: it must be world-readable"
