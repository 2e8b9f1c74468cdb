"""Integration fixtures: one real local Kafka broker per session, started by the code behind `safeguard kafka start`.

The jars live in the default per-machine cache, so they are fetched once; the broker's state dir is a temp dir.
Without Java 17 or Maven the Kafka tests are skipped with the reason the CLI would print, never silently; when
`CI` is set they fail instead (tests/tiers.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from safeguard.kafka_local import LocalBroker, MissingToolError, ensure_jars
from safeguard.settings import KafkaSettings, LocalKafkaSettings, Settings
from schemas.topics import DEFAULT_PARTITIONS
from tests.tiers import unavailable


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """A running broker on free loopback ports with the contract topics created; stopped by its pid at the end."""
    local = LocalKafkaSettings(state_dir=tmp_path_factory.mktemp("kafka-broker"))
    try:
        ensure_jars(local)
    except MissingToolError as exc:
        unavailable(str(exc))
    broker = LocalBroker(local, partitions=DEFAULT_PARTITIONS)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: LocalBroker) -> str:
    """host:port of the session broker."""
    state = kafka_broker.read_state()
    assert state is not None, "the session Kafka broker is not running"
    return state.bootstrap


@pytest.fixture
def kafka_settings(kafka_bootstrap: str) -> Settings:
    """Settings pointing at the session broker (function-scoped so the environment is already cleaned)."""
    return Settings(_env_file=None, kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap))
