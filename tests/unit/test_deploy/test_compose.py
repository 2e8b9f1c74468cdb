"""docker-compose.yml, checked without Docker: pinned images, healthchecks, files it mounts, restart policies,
volumes, the commands it runs, and every setting reaching the application containers."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import click
import pytest

from safeguard.cli import cli
from safeguard.settings import load_settings
from schemas.errors import ConfigError
from tests.unit.test_deploy.deploy_files import (
    APP_IMAGE_NAME,
    COMPOSE_FILE,
    ENV_PREFIX,
    ROOT,
    app_services,
    bind_mounts,
    compose_variables,
    env_example_lines,
    interpolate,
    load_compose,
    named_volumes,
    one_shot_services,
    service_environment,
    settings_variables,
)

# Exact versions, never a moving tag: one of these per third-party image.
PINNED = re.compile(r"^[a-z0-9][a-z0-9._/-]*:(\d+)(\.\d+){1,3}(-[a-z0-9.]+)?(@sha256:[0-9a-f]{64})?$")
EXPECTED_IMAGES = {
    "kafka": "apache/kafka:3.9.",
    "clickhouse": "clickhouse/clickhouse-server:",
    "grafana": "grafana/grafana:",
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


def _services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = compose["services"]
    return services


def test_every_image_is_pinned_to_an_exact_version(compose: dict[str, Any]) -> None:
    for name, service in _services(compose).items():
        image = str(service.get("image", ""))
        assert "$" not in image, f"{name}: the image must be written out, not taken from a variable: {image}"
        assert PINNED.match(image), f"{name}: image {image!r} is not pinned to an exact version (no latest, no 25.8)"
    for name, prefix in EXPECTED_IMAGES.items():
        assert str(_services(compose)[name]["image"]).startswith(prefix), f"{name} must run {prefix}*"


def test_clickhouse_is_an_lts_line_and_grafana_has_the_pinned_clickhouse_plugin(compose: dict[str, Any]) -> None:
    services = _services(compose)
    major, minor = (int(p) for p in str(services["clickhouse"]["image"]).split(":")[1].split(".")[:2])
    assert minor in (3, 8), f"ClickHouse {major}.{minor} is not an LTS line (LTS releases are YY.3 and YY.8)"
    plugins = service_environment(services["grafana"])["GF_PLUGINS_PREINSTALL_SYNC"] or ""
    assert re.fullmatch(r"grafana-clickhouse-datasource@\d+\.\d+\.\d+", plugins), plugins
    assert "GF_INSTALL_PLUGINS" not in service_environment(services["grafana"]), "deprecated: use PREINSTALL_SYNC"
    grafana_major = int(str(services["grafana"]["image"]).split(":")[1].split(".")[0])
    assert grafana_major >= 12, "GF_PLUGINS_PREINSTALL_SYNC is read by Grafana 12.1 and later"


def test_the_application_image_is_built_here_and_tagged_with_the_project_version(compose: dict[str, Any]) -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    apps = app_services(compose)
    assert {"worker", "sink", "notify"} <= set(apps), f"application services: {sorted(apps)}"
    for name, service in apps.items():
        assert service["image"] == f"{APP_IMAGE_NAME}:{version}", f"{name}: tag the image with the project version"
        build = service.get("build")
        context = build if isinstance(build, str) else (build or {}).get("context")
        assert context == ".", f"{name}: the application image is built from this repository's Dockerfile"


def test_every_service_has_a_healthcheck_and_jobs_are_waited_for(compose: dict[str, Any]) -> None:
    jobs = one_shot_services(compose)
    for name, service in _services(compose).items():
        if name in jobs:
            # A job's health is its exit code: everything that needs it waits for service_completed_successfully.
            assert "healthcheck" not in service, f"{name} is a one-shot job; its exit code is its health"
            assert str(service.get("restart", "no")).startswith(("no", "on-failure")), f"{name} must not restart"
            continue
        check = service.get("healthcheck")
        assert check and not check.get("disable"), f"{name} has no healthcheck"
        test = check["test"]
        assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, f"{name}: {test}"
        for key in ("interval", "timeout", "retries"):
            assert key in check, f"{name}: healthcheck without {key}"


def test_dependencies_wait_for_health_or_completion(compose: dict[str, Any]) -> None:
    services = _services(compose)
    jobs = one_shot_services(compose)
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        assert isinstance(depends, dict), f"{name}: use the long depends_on form with a condition"
        for other, spec in depends.items():
            assert other in services, f"{name} depends on unknown service {other}"
            condition = (spec or {}).get("condition")
            expected = "service_completed_successfully" if other in jobs else "service_healthy"
            assert condition == expected, f"{name} -> {other}: condition {condition!r}, expected {expected}"


def test_long_running_services_restart_and_log_with_rotation(compose: dict[str, Any]) -> None:
    jobs = one_shot_services(compose)
    for name, service in _services(compose).items():
        if name not in jobs:
            assert service.get("restart") in ("unless-stopped", "always"), f"{name}: restart policy"
        options = (service.get("logging") or {}).get("options", {})
        assert options.get("max-size"), f"{name}: container logs must rotate (logging.options.max-size)"


def test_every_mounted_file_exists_in_the_repository(compose: dict[str, Any]) -> None:
    mounted = 0
    for name, service in _services(compose).items():
        for host, container in bind_mounts(service):
            path = (COMPOSE_FILE.parent / interpolate(host)).resolve()
            assert path.exists(), f"{name} mounts {host} at {container}, but {path} does not exist"
            assert path.is_relative_to(ROOT), f"{name} mounts {host}, outside the repository"
            if path.is_dir():
                assert any(path.iterdir()), f"{name} mounts the empty directory {host}"
            mounted += 1
    assert mounted >= 3, "ClickHouse init scripts and Grafana provisioning and dashboards are mounted from here"


def test_state_lives_in_named_volumes_that_are_declared(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    used = {volume for service in _services(compose).values() for volume in named_volumes(service)}
    assert used == declared, f"declared {sorted(declared)}, used {sorted(used)}"
    for name, path in (
        ("kafka", "/var/lib/kafka/data"),
        ("clickhouse", "/var/lib/clickhouse"),
        ("notify", "/var/lib/safeguard/notify"),
        ("grafana", "/var/lib/grafana"),
    ):
        service = _services(compose)[name]
        targets = [v.split(":")[1] for v in service["volumes"] if isinstance(v, str) and not v.startswith((".", "$"))]
        assert path in targets, f"{name} keeps its data in a named volume at {path}"
    notify = service_environment(_services(compose)["notify"])
    assert notify["SAFEGUARD_NOTIFY__DATA_DIR"] == "/var/lib/safeguard/notify", "the notifier's state is on its volume"


def test_the_worker_can_be_scaled(compose: dict[str, Any]) -> None:
    """`docker compose up --scale worker=N` needs no fixed name and no published port on the scaled services."""
    for name in ("worker", "sink"):
        service = _services(compose)[name]
        assert "container_name" not in service, f"{name}: a container_name prevents --scale"
        assert not service.get("ports"), f"{name}: a published host port prevents --scale"
        assert not named_volumes(service), f"{name}: replicas must not share a volume (state is in Kafka)"


def test_services_run_the_commands_that_exist(compose: dict[str, Any]) -> None:
    services = _services(compose)
    worker = services["worker"]
    assert [*worker["entrypoint"], *worker["command"]] == ["python", "-m", "streams", "worker", "-l", "info"]
    for name, service in app_services(compose).items():
        if "entrypoint" in service:
            continue
        path = list(service["command"])
        group: click.Command = cli
        while path and isinstance(group, click.Group) and path[0] in group.commands:
            group = group.commands[path.pop(0)]
        assert not isinstance(group, click.Group), f"{name}: `safeguard {' '.join(service['command'])}` is a group"
        assert group is not cli, f"{name}: `safeguard {service['command'][0]}` is not a command"
        assert all(arg.startswith("-") for arg in path), f"{name}: unknown subcommand in {service['command']}"
    assert services["sink"]["command"] == ["sink", "run"]
    assert services["notify"]["command"] == ["notify", "run"]
    assert services["migrate"]["command"] == ["sink", "migrate"]
    assert services["topics"]["command"] == ["kafka", "topics"]


def test_every_setting_reaches_every_application_container(compose: dict[str, Any]) -> None:
    expected = set(settings_variables())
    for name, service in app_services(compose).items():
        environment = service_environment(service)
        passed = {k for k in environment if k.startswith(ENV_PREFIX)}
        assert passed - expected == set(), f"{name} sets variables that are no setting: {sorted(passed - expected)}"
        assert expected - passed == set(), (
            f"{name} does not pass {sorted(expected - passed)}: add them to x-safeguard-settings in docker-compose.yml"
        )


def test_containers_reach_kafka_and_clickhouse_by_service_name(compose: dict[str, Any]) -> None:
    services = _services(compose)
    sink = service_environment(services["sink"])
    assert interpolate(sink["SAFEGUARD_KAFKA__BOOTSTRAP_SERVERS"] or "") == "kafka:19092"
    assert interpolate(sink["SAFEGUARD_CLICKHOUSE__URL"] or "") == "http://safeguard_sink@clickhouse:8123/safeguard"
    migrate = service_environment(services["migrate"])
    assert interpolate(migrate["SAFEGUARD_CLICKHOUSE__URL"] or "").startswith("http://safeguard_migrator@clickhouse:")
    kafka = service_environment(services["kafka"])
    assert "INTERNAL://kafka:19092" in (kafka["KAFKA_ADVERTISED_LISTENERS"] or "")
    assert kafka["KAFKA_PROCESS_ROLES"] == "broker,controller", "KRaft, no ZooKeeper"
    assert kafka["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false", "topics come from the contract registry only"


def test_secrets_come_from_the_environment_and_only_where_needed(compose: dict[str, Any]) -> None:
    text = COMPOSE_FILE.read_text()
    for variable, default in compose_variables(text).items():
        if re.search(r"PASSWORD|TOKEN|SECRET|KEY$", variable):
            assert default is None, f"{variable} has a default in docker-compose.yml: secrets come from .env only"
    environments = {name: service_environment(s) for name, s in _services(compose).items()}
    holders = {name for name, env in environments.items() if "CLICKHOUSE_PASSWORD" in env}
    assert holders == {"clickhouse"}, "the ClickHouse administrator's password stays in the ClickHouse container"
    apps = app_services(compose)
    # ... and the preflight job, which only checks that they are set to something other than a placeholder.
    for variable, allowed in (
        ("CLICKHOUSE_SINK_PASSWORD", {"sink", "preflight"}),
        ("CLICKHOUSE_MIGRATOR_PASSWORD", {"migrate", "preflight"}),
    ):
        holders = {n for n in apps if any(variable in (v or "") for v in environments[n].values())}
        assert holders == allowed, f"{variable} reaches {sorted(holders)}; only {sorted(allowed)} need it"


def test_published_ports_listen_on_loopback_unless_configured(compose: dict[str, Any]) -> None:
    for name, service in _services(compose).items():
        for port in service.get("ports") or []:
            assert str(port).startswith("${BIND_ADDRESS:-127.0.0.1}:"), f"{name} publishes {port} on every address"


def test_application_containers_are_locked_down(compose: dict[str, Any]) -> None:
    for name, service in app_services(compose).items():
        assert service.get("read_only") is True, f"{name}: read-only root filesystem"
        assert "ALL" in (service.get("cap_drop") or []), f"{name}: drop all capabilities"
        assert "no-new-privileges:true" in (service.get("security_opt") or []), name
        assert "user" not in service, f"{name}: the image's unprivileged user applies"


def _dot_env(*, placeholders: bool) -> dict[str, str]:
    """The variables a .env copied from .env.example sets; without the placeholders, each secret set for real."""
    dot_env = {line.name: line.value for line in env_example_lines() if not line.commented}
    if not placeholders:
        dot_env = {
            name: f"real-{name.lower()}-Zq7" if value.startswith("change-me") else value
            for name, value in dot_env.items()
        }
    return dot_env


def _compose_environment(
    compose: dict[str, Any], service: str, dot_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The environment compose gives `service`, set in this process."""
    for name, value in service_environment(_services(compose)[service]).items():
        if value is None:
            if name in dot_env:
                monkeypatch.setenv(name, dot_env[name])
        else:
            monkeypatch.setenv(name, interpolate(value, dot_env))


@pytest.mark.parametrize("service", ["sink", "migrate"])
def test_a_service_left_with_a_placeholder_secret_refuses_to_start(
    compose: dict[str, Any], service: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Past the preflight job (the application's own check): a `change-me` secret is a ConfigError naming it."""
    _compose_environment(compose, service, _dot_env(placeholders=True), monkeypatch)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="SAFEGUARD_CLICKHOUSE__PASSWORD: still the change-me"):
        load_settings()


@pytest.mark.parametrize("service", ["topics", "migrate", "worker", "sink", "notify"])
def test_each_application_service_gets_valid_settings(
    compose: dict[str, Any], service: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The settings each container would load from its compose environment, with .env made from .env.example and
    its placeholders replaced by real secrets (as the operator must: the placeholders are refused, see below)."""
    _compose_environment(compose, service, _dot_env(placeholders=False), monkeypatch)
    monkeypatch.chdir(tmp_path)
    settings = load_settings()  # raises ConfigError naming any bad variable
    assert settings.kafka.bootstrap_servers == "kafka:19092"
    if service == "worker":
        assert settings.streams.web_port is not None, "the worker's healthcheck asks its web server"
    if service in ("sink", "migrate"):
        assert settings.clickhouse.url.startswith("http://") and settings.clickhouse.password is not None
    if service == "notify":
        assert settings.notify.bind_host == "0.0.0.0" and settings.notify.channels == ["console"]
        assert str(settings.notify.rota_file) == "/etc/safeguard/rota.toml"
