"""Fixtures of the container tier (testcontainers). Nothing starts unless a test asks for it, and every test module
calls `require_docker()` first, so without a Docker engine the whole tier is skipped with the reason.

The names the integration tier uses (`kafka_bootstrap`, `kafka_settings`) are provided here too, backed by the
apache/kafka container: the integration tests imported into this tier run unchanged against the containers.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from testcontainers.core.network import Network

from safeguard.settings import Settings
from tests.containers.stack import ClickHouseNode, KafkaNode, clickhouse_node, kafka_node


@pytest.fixture(scope="session")
def network() -> Iterator[Network]:
    """One Docker network for the session: services reach each other by their compose names."""
    with Network() as net:
        yield net


@pytest.fixture(scope="session")
def kafka(network: Network) -> Iterator[KafkaNode]:
    """The session's apache/kafka broker (the compose `kafka` service), contract topics created."""
    with kafka_node(network) as node:
        yield node


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka: KafkaNode) -> str:
    """host:port of the container broker, for the imported integration tests."""
    return kafka.bootstrap


@pytest.fixture
def kafka_settings(kafka: KafkaNode) -> Settings:
    """Settings pointing at the container broker (function-scoped so the environment is already cleaned)."""
    return kafka.settings()


@pytest.fixture(scope="module")
def clickhouse(network: Network) -> Iterator[ClickHouseNode]:
    """A ClickHouse server per test module (the compose `clickhouse` service with the repository's init scripts),
    reachable as `clickhouse` on the network."""
    with clickhouse_node(network) as node:
        yield node
