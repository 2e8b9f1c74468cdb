"""The integration suite's worker tests again, unchanged, on an apache/kafka container of their own: the simulated
Leeds year raises the in-process reference's alerts once each, and a SIGKILLed and restarted worker still raises
every alert exactly once (state recovered from the changelog topics on the container broker)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from producers.publisher import EventPublisher
from safeguard.kafka_clients import client_options
from safeguard.settings import KafkaSettings
from schemas.events import AgencyEvent
from tests.containers.engine import require_docker
from tests.containers.stack import kafka_node
from tests.integration.test_worker_alerts import (
    expected,
    test_killed_and_restarted_worker_raises_every_alert_exactly_once,
    test_the_simulated_year_raises_the_reference_alerts_once_each,
    year,
)

require_docker()
pytestmark = [pytest.mark.containers, pytest.mark.slow]

__all__ = [
    "expected",
    "test_killed_and_restarted_worker_raises_every_alert_exactly_once",
    "test_the_simulated_year_raises_the_reference_alerts_once_each",
    "year",
]


@pytest.fixture(scope="module")
def broker_with_year(year: list[AgencyEvent]) -> Iterator[str]:
    """A broker container of this module's own (no network needed), holding the simulated year on the contract
    topics; replaces the integration tier's broker from Maven jars of the same name."""
    with kafka_node(None) as node:
        with EventPublisher.connect(client_options(KafkaSettings(), node.bootstrap)) as publisher:
            for event in year:
                publisher.publish(event)
            report = publisher.flush()
        assert report.failed == 0, report
        yield node.bootstrap
