"""The compose services, started one by one with testcontainers: the same images, environment and repository
files docker-compose.yml gives them, on one Docker network where they reach each other by service name (kafka,
clickhouse) as in compose. Only what differs between a test run and `docker compose up` is overridden: the secrets
(test values), the host port Kafka advertises to the test process, and the per-agency scopes under test."""

from __future__ import annotations

import functools
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from testcontainers.community.clickhouse import ClickHouseContainer
from testcontainers.core.container import DockerContainer
from testcontainers.core.docker_client import DockerClient
from testcontainers.core.network import Network
from testcontainers.core.wait_strategies import HttpWaitStrategy

from safeguard.settings import ClickHouseSettings, KafkaSettings, Settings
from tests.unit.test_deploy.deploy_files import (
    ROOT,
    bind_mounts,
    interpolate,
    load_compose,
    service_environment,
)


@functools.cache
def compose() -> dict[str, Any]:
    """docker-compose.yml, read when first needed (so a module without Docker skips before reading anything)."""
    return load_compose()


SECRETS = {
    "CLICKHOUSE_ADMIN_PASSWORD": "admin-Test-pw-1",
    "CLICKHOUSE_MIGRATOR_PASSWORD": "migrator-Test-pw-1",
    "CLICKHOUSE_SINK_PASSWORD": "sink-Test-pw-'1",  # a quote, as a real password may have
    "CLICKHOUSE_ANALYST_PASSWORD": "analyst-Test-pw-1",
    "GRAFANA_ADMIN_PASSWORD": "grafana-Test-pw-1",
}
"""What an operator puts in .env; test values only."""

ANALYST_SCOPES = "la_code=383 la_code=856 agency_code=WYP"
"""Per-agency scopes configured on the test ClickHouse (Leeds, Leicester, West Yorkshire Police)."""

ADMIN_USER = "safeguard_admin"
"""CLICKHOUSE_ADMIN_USER's default in docker-compose.yml (checked by test_clickhouse)."""
DATABASE = "safeguard"
KAFKA_INTERNAL = "kafka:19092"


def image(service: str) -> str:
    return str(compose()["services"][service]["image"])


def compose_environment(service: str, **overrides: str) -> dict[str, str]:
    """A service's environment as compose would pass it with .env = SECRETS + overrides: unset variables (no value,
    nothing in .env) are left out, so the code defaults apply exactly as in a compose deployment."""
    dot_env = {**SECRETS, "CLICKHOUSE_ANALYST_SCOPES": ANALYST_SCOPES, **overrides}
    environment: dict[str, str] = {}
    for name, value in service_environment(compose()["services"][service]).items():
        if value is None:
            if name in dot_env:
                environment[name] = dot_env[name]
            continue
        environment[name] = interpolate(value, dot_env)
    return environment


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float, logs: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except Exception as exc:  # not up yet
            last = exc
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what} (last error: {last})\n{logs()[-4000:]}")


def container_logs(container: DockerContainer) -> str:
    try:
        out, err = container.get_logs()
    except Exception as exc:
        return f"(no logs: {exc})"
    return (out + err).decode("utf-8", errors="replace")


# --- Kafka -------------------------------------------------------------------------------------------------------


@dataclass
class KafkaNode:
    container: DockerContainer
    bootstrap: str
    """host:port the test process uses."""
    internal: str = KAFKA_INTERNAL
    """host:port containers on the network use (as in compose)."""

    def settings(self, **kafka: Any) -> Settings:
        return Settings(_env_file=None, kafka=KafkaSettings(bootstrap_servers=self.bootstrap, **kafka))


@contextmanager
def kafka_node(network: Network | None) -> Iterator[KafkaNode]:
    """apache/kafka as the compose `kafka` service, plus an advertised listener for this test process; the contract
    topics are created by `safeguard kafka topics`, as the compose `topics` service does."""
    from click.testing import CliRunner
    from kafka.admin import KafkaAdminClient

    from safeguard.kafka_cli import kafka

    host = DockerClient().host()
    port = free_port()
    environment = compose_environment("kafka", KAFKA_HOST_PORT=str(port))
    environment["KAFKA_ADVERTISED_LISTENERS"] = f"INTERNAL://{KAFKA_INTERNAL},EXTERNAL://{host}:{port}"
    container = (
        DockerContainer(image("kafka"))
        .with_envs(**environment)
        .with_bind_ports(9092, port)
        .with_kwargs(hostname="kafka")  # the controller quorum and the internal listener name the service
    )
    if network is not None:
        container.with_network(network).with_network_aliases("kafka")
    container.start()
    try:
        bootstrap = f"{host}:{port}"

        def answers() -> bool:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
            try:
                admin.list_topics()
            finally:
                admin.close()
            return True

        wait_until(answers, f"Kafka at {bootstrap}", 180, lambda: container_logs(container))
        node = KafkaNode(container, bootstrap)
        result = CliRunner().invoke(kafka, ["topics"], obj=node.settings())
        assert result.exit_code == 0, result.output
        yield node
    finally:
        container.stop()


# --- ClickHouse --------------------------------------------------------------------------------------------------


@dataclass
class ClickHouseNode:
    container: ClickHouseContainer
    host: str
    port: int
    """The mapped HTTP port."""

    def url(self, user: str, database: str = DATABASE) -> str:
        return f"http://{user}@{self.host}:{self.port}/{database}"

    def settings(self, user: str, password: str, **extra: Any) -> Settings:
        section = ClickHouseSettings(url=self.url(user), password=password, **extra)
        return Settings(_env_file=None, clickhouse=section)

    def client(self, user: str, password: str) -> Any:
        import clickhouse_connect

        return clickhouse_connect.get_client(
            host=self.host, port=self.port, username=user, password=password, database=DATABASE
        )

    def admin(self) -> Any:
        return self.client(ADMIN_USER, SECRETS["CLICKHOUSE_ADMIN_PASSWORD"])

    def migrator(self) -> Any:
        return self.client("safeguard_migrator", SECRETS["CLICKHOUSE_MIGRATOR_PASSWORD"])

    def sink(self) -> Any:
        return self.client("safeguard_sink", SECRETS["CLICKHOUSE_SINK_PASSWORD"])

    def analyst(self) -> Any:
        return self.client("safeguard_analyst", SECRETS["CLICKHOUSE_ANALYST_PASSWORD"])


@contextmanager
def clickhouse_node(network: Network | None) -> Iterator[ClickHouseNode]:
    """clickhouse/clickhouse-server as the compose `clickhouse` service: its environment, the repository's init
    scripts (deploy/clickhouse/initdb) mounted where compose mounts them, reachable as `clickhouse`."""
    from docker.types import Ulimit

    environment = compose_environment("clickhouse")
    container = ClickHouseContainer(
        image("clickhouse"),
        username=environment["CLICKHOUSE_USER"],
        password=environment["CLICKHOUSE_PASSWORD"],
        dbname=environment["CLICKHOUSE_DB"],
    )
    container.with_envs(**environment).with_kwargs(ulimits=[Ulimit(name="nofile", soft=262144, hard=262144)])
    for host_path, target in bind_mounts(compose()["services"]["clickhouse"]):
        container.with_volume_mapping(str((ROOT / host_path).resolve()), target, "ro")
    if network is not None:
        container.with_network(network).with_network_aliases("clickhouse")
    container.start()  # waits until the real server (after the init scripts) answers on 8123
    try:
        yield ClickHouseNode(container, container.get_container_host_ip(), int(container.get_exposed_port(8123)))
    finally:
        container.stop()


# --- Grafana -----------------------------------------------------------------------------------------------------


@dataclass
class GrafanaNode:
    container: DockerContainer
    url: str
    user: str
    password: str

    def api(self) -> Any:
        from grafana_client import GrafanaApi

        return GrafanaApi.from_url(self.url, credential=(self.user, self.password), timeout=30)


@contextmanager
def grafana_node(network: Network, *, provisioned: bool) -> Iterator[GrafanaNode]:
    """grafana/grafana as the compose `grafana` service (plugin preinstalled by GF_PLUGINS_PREINSTALL_SYNC). With
    `provisioned`, the repository's provisioning and dashboards are mounted as compose mounts them; without, it is a
    bare Grafana for `safeguard dashboards push`."""
    environment = compose_environment("grafana")
    container = (
        DockerContainer(image("grafana"))
        .with_envs(**environment)
        .with_exposed_ports(3000)
        .with_network(network)
        .with_network_aliases(f"grafana-{uuid.uuid4().hex[:6]}")
        .waiting_for(HttpWaitStrategy(3000, "/api/health").for_status_code(200).with_startup_timeout(300))
    )
    if provisioned:
        for host_path, target in bind_mounts(compose()["services"]["grafana"]):
            container.with_volume_mapping(str((ROOT / host_path).resolve()), target, "ro")
    container.start()
    try:
        url = f"http://{container.get_container_host_ip()}:{container.get_exposed_port(3000)}"
        yield GrafanaNode(container, url, environment["GF_SECURITY_ADMIN_USER"], SECRETS["GRAFANA_ADMIN_PASSWORD"])
    finally:
        container.stop()
