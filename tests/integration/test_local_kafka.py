"""The local broker for real: it starts, answers, carries the contract topics, and stops by its own pid."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from safeguard.kafka_cli import kafka
from safeguard.kafka_local import (
    LocalBroker,
    create_topics,
    describe_topics,
    is_our_broker,
    resolve_bootstrap,
)
from safeguard.settings import KafkaSettings, LocalKafkaSettings, Settings
from schemas.errors import LocalKafkaError
from schemas.topics import ALERTS, DEAD_LETTER, TOPICS

DAY_MS = 24 * 3600 * 1000

pytestmark = pytest.mark.integration


def _options(bootstrap: str) -> dict[str, object]:
    return {"bootstrap_servers": [bootstrap], "client_id": "test-local-kafka"}


def test_session_broker_answers(kafka_broker: LocalBroker, kafka_bootstrap: str) -> None:
    status = kafka_broker.status()
    assert status.running
    assert status.answering
    assert status.state is not None
    assert status.state.bootstrap == kafka_bootstrap
    assert kafka_bootstrap.startswith("127.0.0.1:")


def test_contract_topics_exist_with_partitions_and_policies(kafka_bootstrap: str) -> None:
    infos = {info.name: info for info in describe_topics(_options(kafka_bootstrap))}
    assert set(infos) == {spec.name for spec in TOPICS}
    assert {info.partitions for info in infos.values()} == {6}
    assert infos[ALERTS.name].cleanup_policy == "compact"
    for spec in TOPICS:
        assert infos[spec.name].cleanup_policy == spec.cleanup_policy
        if spec.name != DEAD_LETTER.name:
            assert infos[spec.name].retention_ms == spec.retention_ms == -1, "event topics are kept forever"
    assert infos[DEAD_LETTER.name].retention_ms == 90 * DAY_MS, "dead letters hold rejected bytes: P90D by default"


def _retention(bootstrap: str, topic: str) -> int | None:
    """retention.ms as the broker has it (describe_configs)."""
    return {info.name: info.retention_ms for info in describe_topics(_options(bootstrap))}[topic]


def test_the_dead_letter_topic_is_created_with_the_setting(kafka_broker: LocalBroker, tmp_path: Path) -> None:
    local = LocalKafkaSettings(cache_dir=kafka_broker.local.cache_dir, state_dir=tmp_path / "dead-letter-retention")
    settings = Settings(_env_file=None, local_kafka=local, kafka=KafkaSettings(dead_letter_retention="P2W"))
    broker = LocalBroker.from_settings(settings)
    state = broker.start()
    try:
        assert _retention(state.bootstrap, DEAD_LETTER.name) == 14 * DAY_MS
        assert _retention(state.bootstrap, ALERTS.name) == -1
    finally:
        broker.stop()


def test_an_existing_dead_letter_topic_is_aligned_with_a_changed_setting(kafka_settings: Settings) -> None:
    """A deployed cluster follows the setting at the next `safeguard kafka topics` (the compose `topics` job)."""
    bootstrap = kafka_settings.kafka.bootstrap_servers
    assert bootstrap is not None
    before = _retention(bootstrap, DEAD_LETTER.name)
    try:
        changed = Settings(_env_file=None, kafka=KafkaSettings(bootstrap_servers=bootstrap, dead_letter_retention="7"))
        result = CliRunner().invoke(kafka, ["topics"], obj=changed)
        assert result.exit_code == 0, result.output
        assert f"{DEAD_LETTER.name}: retention changed from 90 days to 7 days" in result.output
        assert f"{DEAD_LETTER.name}" in result.output and "retention=7 days" in result.output
        assert _retention(bootstrap, DEAD_LETTER.name) == 7 * DAY_MS
        assert _retention(bootstrap, ALERTS.name) == -1, "only the dead-letter topic changes"
        infos = {info.name: info for info in describe_topics(_options(bootstrap))}
        assert infos[DEAD_LETTER.name].cleanup_policy == "delete", "an incremental change leaves other configs alone"

        # Aligned already: nothing to change, nothing said.
        assert create_topics(_options(bootstrap), 6, 1, dead_letter_retention_ms=7 * DAY_MS) == []
        forever: list[str] = []
        create_topics(_options(bootstrap), 6, 1, dead_letter_retention_ms=-1, progress=forever.append)
        assert forever == [f"{DEAD_LETTER.name}: retention changed from 7 days to forever"]
        assert _retention(bootstrap, DEAD_LETTER.name) == -1

        # Without the setting (a caller that does not pass it) an existing topic is left as it is.
        create_topics(_options(bootstrap), 6, 1)
        assert _retention(bootstrap, DEAD_LETTER.name) == -1
    finally:
        create_topics(_options(bootstrap), 6, 1, dead_letter_retention_ms=before)
    assert _retention(bootstrap, DEAD_LETTER.name) == before


def test_create_topics_is_idempotent(kafka_bootstrap: str) -> None:
    assert create_topics(_options(kafka_bootstrap), 6, 1) == []
    assert create_topics(_options(kafka_bootstrap), 6, 1) == []


def test_create_topics_refuses_a_different_partition_count(kafka_bootstrap: str) -> None:
    with pytest.raises(LocalKafkaError, match=r"must have 3 partitions.*co-partitioned"):
        create_topics(_options(kafka_bootstrap), 3, 1)


def test_resolve_bootstrap_prefers_settings_then_local_state(
    kafka_broker: LocalBroker, kafka_settings: Settings
) -> None:
    assert resolve_bootstrap(kafka_settings) == kafka_settings.kafka.bootstrap_servers
    local_only = Settings(_env_file=None, local_kafka=kafka_broker.local)
    assert resolve_bootstrap(local_only) == kafka_settings.kafka.bootstrap_servers


def test_cli_topics_lists_the_contract(kafka_settings: Settings) -> None:
    result = CliRunner().invoke(kafka, ["topics"], obj=kafka_settings)
    assert result.exit_code == 0, result.output
    assert f"{ALERTS.name}" in result.output
    assert "cleanup.policy=compact" in result.output
    assert "(created)" not in result.output


def test_start_reuses_a_running_broker_and_stop_ends_it(kafka_broker: LocalBroker, tmp_path: Path) -> None:
    # Depends on kafka_broker only so that it is skipped the same way (and the jars are already cached).
    local = LocalKafkaSettings(cache_dir=kafka_broker.local.cache_dir, state_dir=tmp_path / "own-broker")
    broker = LocalBroker(local)
    first = broker.start()
    try:
        assert broker.status().answering
        again = LocalBroker(local).start()
        assert again == first
        assert is_our_broker(first.pid, broker.state_dir)
    finally:
        stopped = broker.stop()
    assert stopped == first
    assert not is_our_broker(first.pid, broker.state_dir)
    assert not Path(f"/proc/{first.pid}/cmdline").exists() or not Path(f"/proc/{first.pid}/cmdline").read_bytes()
    assert not broker.state_file.exists()
    assert not broker.status().running
    assert broker.stop() is None


def test_a_restart_keeps_the_bootstrap_address(kafka_broker: LocalBroker, tmp_path: Path) -> None:
    """`safeguard kafka stop` then `start`: running services keep their bootstrap address (the ports are reused)."""
    local = LocalKafkaSettings(cache_dir=kafka_broker.local.cache_dir, state_dir=tmp_path / "restarted")
    broker = LocalBroker(local)
    first = broker.start()
    broker.stop()
    said: list[str] = []
    second = broker.start(progress=said.append)
    try:
        assert second.bootstrap == first.bootstrap
        assert (second.broker_port, second.controller_port) == (first.broker_port, first.controller_port)
        assert second.pid != first.pid
        assert not [line for line in said if "taken" in line]
        assert broker.status().answering
    finally:
        broker.stop()


def test_a_restart_whose_port_is_taken_picks_a_new_one_and_says_so(kafka_broker: LocalBroker, tmp_path: Path) -> None:
    import socket

    local = LocalKafkaSettings(cache_dir=kafka_broker.local.cache_dir, state_dir=tmp_path / "port-taken")
    broker = LocalBroker(local)
    first = broker.start()
    broker.stop()
    said: list[str] = []
    with socket.socket() as squatter:  # another program took the broker's port while it was stopped
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", first.broker_port))
        squatter.listen()
        second = broker.start(progress=said.append)
    try:
        assert second.broker_port != first.broker_port
        assert second.controller_port == first.controller_port
        assert any(
            f"port {first.broker_port} of the previous start is taken" in line
            and f"now listens on {second.bootstrap}" in line
            and f"restart anything still configured with {first.bootstrap}" in line
            for line in said
        ), said
        assert broker.status().answering
    finally:
        broker.stop()
