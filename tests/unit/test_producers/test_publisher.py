"""EventPublisher with an in-memory producer: keys, topics, counting. The real broker is in tests/integration."""

from __future__ import annotations

from typing import Any

import pytest

from producers.publisher import EventPublisher
from schemas import PublishError, validate_event
from tests.unit.test_producers.helpers import CHILD, HOUSEHOLD, domestic_incident, missing_reported


class _Future:
    def __init__(self, error: Exception | None) -> None:
        self.error = error
        self.callbacks: list[tuple[Any, tuple[Any, ...]]] = []
        self.errbacks: list[tuple[Any, tuple[Any, ...]]] = []

    def add_callback(self, fn: Any, *args: Any) -> None:
        self.callbacks.append((fn, args))

    def add_errback(self, fn: Any, *args: Any) -> None:
        self.errbacks.append((fn, args))

    def resolve(self) -> None:
        if self.error is None:
            for fn, args in self.callbacks:
                fn(*args, "metadata")
        else:
            for fn, args in self.errbacks:
                fn(*args, self.error)


class RecordingProducer:
    """Answers sends on flush, failing the topics it is told to fail."""

    def __init__(self, fail_topics: frozenset[str] = frozenset()) -> None:
        self.sent: list[tuple[str, bytes | None, bytes]] = []
        self.pending: list[_Future] = []
        self.fail_topics = fail_topics
        self.closed = False

    def send(self, topic: str, value: bytes | None = None, key: bytes | None = None) -> _Future:
        assert value is not None
        self.sent.append((topic, key, value))
        future = _Future(RuntimeError("broker said no") if topic in self.fail_topics else None)
        self.pending.append(future)
        return future

    def flush(self, timeout: float | None = None) -> None:
        for future in self.pending:
            future.resolve()
        self.pending.clear()

    def close(self, timeout: float | None = None) -> None:
        self.closed = True


def test_events_go_to_their_topic_with_the_contract_key() -> None:
    producer = RecordingProducer()
    with EventPublisher(producer) as publisher:
        publisher.publish(validate_event(missing_reported()))
        publisher.publish(validate_event(domestic_incident()))
    assert [(t, k) for t, k, _ in producer.sent] == [
        ("safeguarding.missing-episodes.v1", CHILD.encode()),
        ("safeguarding.domestic-incidents.v1", HOUSEHOLD.encode()),
    ]
    assert producer.closed
    assert publisher.report.delivered == 2 and publisher.report.failed == 0
    publisher.raise_for_failures()


def test_delivery_failures_are_counted_and_raised() -> None:
    producer = RecordingProducer(fail_topics=frozenset({"safeguarding.domestic-incidents.v1"}))
    publisher = EventPublisher(producer)
    publisher.publish(validate_event(missing_reported()))
    publisher.publish(validate_event(domestic_incident()))
    report = publisher.close()
    assert report.sent == 2 and report.delivered == 1 and report.failed == 1
    assert "broker said no" in report.errors[0]
    with pytest.raises(PublishError, match="1 of 2 messages were not delivered"):
        publisher.raise_for_failures()


def test_unanswered_messages_count_as_failures() -> None:
    class SilentProducer(RecordingProducer):
        def flush(self, timeout: float | None = None) -> None:
            pass

    publisher = EventPublisher(SilentProducer())
    publisher.publish(validate_event(missing_reported()))
    publisher.close()
    with pytest.raises(PublishError, match="unanswered"):
        publisher.raise_for_failures()


def test_closed_publisher_refuses_to_send() -> None:
    publisher = EventPublisher(RecordingProducer())
    publisher.close()
    publisher.close()  # twice is fine
    with pytest.raises(PublishError, match="closed"):
        publisher.publish(validate_event(missing_reported()))


class RefusingProducer(RecordingProducer):
    """Raises from `send` itself, as kafka-python does for a message too large or no broker within max_block_ms."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    def send(self, topic: str, value: bytes | None = None, key: bytes | None = None) -> _Future:
        raise self.error


class MessageSizeTooLargeError(Exception):
    """Named as kafka-python's: the client refuses this one message, the next may go."""


class KafkaTimeoutError(Exception):
    """Named as kafka-python's: no broker answered in time, so the next message would fare no better."""


def test_a_message_refused_for_itself_is_counted_and_the_next_can_go() -> None:
    publisher = EventPublisher(RefusingProducer(MessageSizeTooLargeError("1,200,000 bytes")))
    publisher.send("t", None, b"x")
    assert (publisher.report.sent, publisher.report.failed) == (1, 1)
    assert "MessageSizeTooLargeError" in publisher.report.errors[0]
    with pytest.raises(PublishError, match="1 of 1 messages were not delivered"):
        publisher.raise_for_failures()


def test_kafka_not_answering_raises_a_publish_error_not_a_traceback() -> None:
    publisher = EventPublisher(RefusingProducer(KafkaTimeoutError("Failed to update metadata after 60.0 secs.")))
    with pytest.raises(PublishError, match="Kafka did not take a message for t: KafkaTimeoutError"):
        publisher.send("t", None, b"x")
    assert (publisher.report.sent, publisher.report.failed) == (1, 1)
