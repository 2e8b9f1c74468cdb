"""docker-compose.yml's Kafka security against the code's: the bundled broker configured like the secure local broker
(whose behaviour tests/integration/test_kafka_acls.py proves), every service logging in as its own principal, and
each Kafka password reaching only the containers that need it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from safeguard.kafka_local import BrokerSecurity, render_server_properties
from safeguard.settings import load_settings
from tests.unit.test_deploy.deploy_files import (
    app_services,
    env_example_lines,
    interpolate,
    load_compose,
    service_environment,
)

SERVICE_PRINCIPALS = {"worker": "safeguard-worker", "sink": "safeguard-sink", "notify": "safeguard-notifier"}
PASSWORD_OF = {
    "worker": "KAFKA_WORKER_PASSWORD",
    "sink": "KAFKA_SINK_PASSWORD",
    "notify": "KAFKA_NOTIFIER_PASSWORD",
}
KAFKA_PASSWORDS = {line.name for line in env_example_lines() if re.fullmatch(r"KAFKA_[A-Z]+_PASSWORD", line.name)}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


def _services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = compose["services"]
    return services


def convert_key(variable: str) -> str:
    """apache/kafka's image: KAFKA_ dropped, `___` is `-`, `__` is `_`, a single `_` is `.` (docker/resources/ub)."""
    key = variable.removeprefix("KAFKA_")
    key = re.sub(r"(?<=[^_])_(?=[^_])", ".", key)
    return key.replace("___", "-").replace("__", "_").lower()


def _dot_env() -> dict[str, str]:
    return {
        line.name: (f"real-{line.name.lower()}-Zq7" if line.value.startswith("change-me") else line.value)
        for line in env_example_lines()
        if not line.commented
    }


def test_the_conversion_matches_the_images_own_examples() -> None:
    assert convert_key("KAFKA_LISTENER_SECURITY_PROTOCOL_MAP") == "listener.security.protocol.map"
    assert convert_key("KAFKA_LISTENER_NAME_INTERNAL_SCRAM___SHA___512_SASL_JAAS_CONFIG") == (
        "listener.name.internal.scram-sha-512.sasl.jaas.config"
    )


def test_the_bundled_broker_is_secured_like_the_secure_local_broker(compose: dict[str, Any], tmp_path: Path) -> None:
    dot_env = _dot_env()
    env = service_environment(_services(compose)["kafka"])
    broker = {convert_key(k): interpolate(v or "", dot_env) for k, v in env.items() if k.startswith("KAFKA_")}
    security = BrokerSecurity("safeguard-admin", SecretStr(dot_env["KAFKA_ADMIN_PASSWORD"]))
    text = render_server_properties(
        broker_port=1, controller_port=2, log_dir=tmp_path, num_partitions=6, security=security
    )
    local = dict(line.split("=", 1) for line in text.splitlines())
    for key in (
        "authorizer.class.name",
        "super.users",
        "allow.everyone.if.no.acl.found",
        "sasl.enabled.mechanisms",
        "sasl.mechanism.inter.broker.protocol",
        "sasl.mechanism.controller.protocol",
        "listener.name.controller.sasl.enabled.mechanisms",
        "listener.name.controller.plain.sasl.jaas.config",
    ):
        assert broker.get(key) == local[key], key
    for listener in ("internal", "external"):
        assert (
            broker[f"listener.name.{listener}.plain.sasl.jaas.config"]
            == (local["listener.name.sasl_plaintext.plain.sasl.jaas.config"])
        )
        assert (
            broker[f"listener.name.{listener}.scram-sha-512.sasl.jaas.config"]
            == (local["listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config"])
        )
    protocols = dict(pair.split(":") for pair in broker["listener.security.protocol.map"].split(","))
    assert set(protocols.values()) == {"SASL_PLAINTEXT"}, "no listener without a login"
    assert not any(k.startswith("KAFKA_") and "PASSWORD" in k for k in env), "a KAFKA_ name becomes a broker property"


@pytest.mark.parametrize("service", sorted(SERVICE_PRINCIPALS))
def test_each_service_logs_in_as_its_own_principal(
    compose: dict[str, Any], service: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    dot_env = _dot_env()
    for name, value in service_environment(_services(compose)[service]).items():
        if value is None:
            if name in dot_env:
                monkeypatch.setenv(name, dot_env[name])
        else:
            monkeypatch.setenv(name, interpolate(value, dot_env))
    monkeypatch.chdir(tmp_path)
    kafka = load_settings().kafka
    assert kafka.security_protocol == "SASL_PLAINTEXT"
    assert kafka.sasl_mechanism == "SCRAM-SHA-512"
    assert kafka.sasl_username == SERVICE_PRINCIPALS[service]
    assert kafka.sasl_password is not None
    assert kafka.sasl_password.get_secret_value() == dot_env[PASSWORD_OF[service]]


def test_the_access_job_sets_every_credential_as_the_admin_before_the_services_start(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    services = _services(compose)
    job = services["kafka-access"]
    assert job["command"] == ["kafka", "acls"]
    dot_env = _dot_env()
    for name, value in service_environment(job).items():
        if value is not None:
            monkeypatch.setenv(name, interpolate(value, dot_env))
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert (settings.kafka.sasl_mechanism, settings.kafka.sasl_username) == ("PLAIN", "safeguard-admin")
    for role in ("gateway", "agency", "worker", "sink", "notifier"):
        secret = getattr(settings.kafka_access, f"{role}_password")
        assert secret is not None and secret.get_secret_value() == dot_env[f"KAFKA_{role.upper()}_PASSWORD"]
    for service in SERVICE_PRINCIPALS:
        assert services[service]["depends_on"]["kafka-access"]["condition"] == "service_completed_successfully"


def test_each_kafka_password_reaches_only_the_containers_that_need_it(compose: dict[str, Any]) -> None:
    assert {
        f"KAFKA_{r}_PASSWORD" for r in ("ADMIN", "GATEWAY", "AGENCY", "WORKER", "SINK", "NOTIFIER")
    } == KAFKA_PASSWORDS
    environments = {name: service_environment(s) for name, s in _services(compose).items()}
    needs = {
        "KAFKA_ADMIN_PASSWORD": {"kafka", "topics", "kafka-access", "preflight"},
        "KAFKA_WORKER_PASSWORD": {"worker", "kafka-access", "preflight"},
        "KAFKA_SINK_PASSWORD": {"sink", "kafka-access", "preflight"},
        "KAFKA_NOTIFIER_PASSWORD": {"notify", "kafka-access", "preflight"},
    }
    for variable, allowed in needs.items():
        holders = {n for n, env in environments.items() if any(variable in (v or "") for v in env.values())}
        assert holders == allowed, f"{variable} reaches {sorted(holders)}; only {sorted(allowed)} need it"
    for variable in ("KAFKA_GATEWAY_PASSWORD", "KAFKA_AGENCY_PASSWORD"):
        holders = {n for n, env in environments.items() if any(variable in (v or "") for v in env.values())}
        assert {"kafka-access", "preflight"} <= holders and not holders & {"worker", "sink", "notify", "topics"}
    assert set(app_services(compose)) >= {"kafka-access", "topics"}
