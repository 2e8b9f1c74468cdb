"""The integration suite's Kafka tests again, unchanged, against the apache/kafka container of docker-compose.yml
(instead of the broker from Maven jars): topics and their policies, `safeguard publish` with bad lines mixed in,
the kcat contract test through the real worker, and the sink's Kafka path (rows equal messages, SIGKILL restart).

The tests are imported from tests/integration; the `kafka_bootstrap` and `kafka_settings` they ask for come from
tests/containers/conftest.py, backed by the container.
"""

from __future__ import annotations

import pytest
from kafka.admin import KafkaAdminClient

from tests.containers.engine import require_docker
from tests.containers.stack import KafkaNode, compose_environment
from tests.integration.test_kcat_contract import (
    test_hand_written_event_from_kcat_is_accepted_and_malformed_ones_dead_lettered,
)
from tests.integration.test_local_kafka import (
    test_cli_topics_lists_the_contract,
    test_contract_topics_exist_with_partitions_and_policies,
    test_create_topics_is_idempotent,
    test_create_topics_refuses_a_different_partition_count,
)
from tests.integration.test_publish_file import test_publish_generated_file_reconciles
from tests.integration.test_sink_kafka import (
    store_client,
    test_rows_equal_messages_and_reconcile,
    test_sigkill_mid_run_then_restart_loses_and_doubles_nothing,
)

require_docker()
pytestmark = pytest.mark.containers

__all__ = [
    "store_client",
    "test_cli_topics_lists_the_contract",
    "test_contract_topics_exist_with_partitions_and_policies",
    "test_create_topics_is_idempotent",
    "test_create_topics_refuses_a_different_partition_count",
    "test_hand_written_event_from_kcat_is_accepted_and_malformed_ones_dead_lettered",
    "test_publish_generated_file_reconciles",
    "test_rows_equal_messages_and_reconcile",
    "test_sigkill_mid_run_then_restart_loses_and_doubles_nothing",
]


def test_the_broker_is_the_compose_kraft_broker(kafka: KafkaNode) -> None:
    """The container runs what compose runs: apache/kafka 3.9 in KRaft mode, no auto-created topics."""
    environment = compose_environment("kafka")
    assert environment["KAFKA_PROCESS_ROLES"] == "broker,controller"
    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    try:
        cluster = admin.describe_cluster()
    finally:
        admin.close()
    assert cluster["controller_id"] == int(environment["KAFKA_NODE_ID"])
    assert [b["broker_id"] for b in cluster["brokers"]] == [1]
    exit_code, output = kafka.container.exec(
        ["/opt/kafka/bin/kafka-features.sh", "--bootstrap-server", "localhost:19092", "describe"]
    )
    assert exit_code == 0, output
    assert b"metadata.version" in output, "a KRaft cluster reports its metadata.version feature"
