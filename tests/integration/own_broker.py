"""A local broker of a test's own, for tests that stop and start it (the session broker is shared by every test).

Import the fixture into the test module: `from tests.integration.own_broker import own_broker`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from safeguard.kafka_local import LocalBroker
from safeguard.settings import LocalKafkaSettings


@pytest.fixture
def own_broker(kafka_broker: LocalBroker, tmp_path: Path) -> Iterator[LocalBroker]:
    """A broker only this test stops and starts (skipped like the session broker when Java or Maven is missing);
    stopped by its own pid at the end."""
    local = LocalKafkaSettings(cache_dir=kafka_broker.local.cache_dir, state_dir=tmp_path / "broker")
    broker = LocalBroker(local)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
