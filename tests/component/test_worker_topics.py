"""The worker's topics hand a started producer over without giving the event loop a turn (`BatchingTopic`).

Faust's own topic asks for the producer through a wrapper that starts with `asyncio.sleep(0)`: aiokafka's sender ran
between any two messages a batch published, and with `linger` 0 nearly every message went in a produce request of
its own. What the worker publishes at once must reach the producer together.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import faust
import pytest

from safeguard.settings import KafkaSettings, Settings
from streams.app import BatchingTopic, Worker

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _worker() -> Worker:
    settings = Settings(_env_file=None, kafka=KafkaSettings(bootstrap_servers="127.0.0.1:9"))
    return Worker(settings, "127.0.0.1:9", clock=lambda: datetime(2026, 11, 23, 12, tzinfo=UTC))


def _started(worker: Worker) -> None:
    """The producer marked started, as after the worker's start (this tier has no broker to start it with)."""
    producer: Any = worker.app.producer
    producer._started.set()


def _turns_taken(topic: faust.Topic) -> tuple[object, list[str]]:
    """What `_get_producer` returned, and whether another callback ran meanwhile (the loop had a turn)."""

    async def ask() -> tuple[object, list[str]]:
        ran: list[str] = []
        asyncio.get_running_loop().call_soon(ran.append, "another callback")
        producer = await topic._get_producer()
        return producer, list(ran)  # a copy: the loop runs the callback anyway while it shuts down

    return asyncio.run(ask())


def test_a_started_producer_is_returned_without_a_turn_of_the_loop() -> None:
    worker = _worker()
    topics = [worker.alerts_topic, worker.dead_letter_topic, worker.obligations_topic, worker.children.changelog_topic]
    assert all(isinstance(topic, BatchingTopic) for topic in topics)
    _started(worker)
    for topic in topics:
        producer, ran = _turns_taken(topic)
        assert producer is worker.app.producer
        assert ran == []


def test_faust_s_own_topic_gives_the_loop_a_turn_that_batching_topic_saves() -> None:
    """The behaviour `BatchingTopic` exists for; if a Faust upgrade drops the turn, this says so."""
    worker = _worker()
    _started(worker)
    plain = faust.Topic(worker.app, topics=["plain"])
    producer, ran = _turns_taken(plain)
    assert producer is worker.app.producer
    assert ran == ["another callback"]
