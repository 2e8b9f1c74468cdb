"""Publishing to Kafka with kafka-python: acks=all, idempotent, keyed as the contract says, failures counted.

`EventPublisher` is the only code in producers/ that touches a Kafka client. It takes the producer in its
constructor (tests and benchmarks pass their own); `EventPublisher.connect` builds the real one.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol

from schemas.alerts import AlertRaised
from schemas.codec import encode
from schemas.deadletter import DeadLetter
from schemas.errors import PublishError
from schemas.events import Envelope
from schemas.topics import ALERTS, DEAD_LETTER, message_key, topic_for

log = logging.getLogger(__name__)


class ProducerLike(Protocol):
    """What EventPublisher needs of kafka.KafkaProducer."""

    def send(self, topic: str, value: bytes | None = ..., key: bytes | None = ...) -> Any: ...
    def flush(self, timeout: float | None = ...) -> None: ...
    def close(self, timeout: float | None = ...) -> None: ...


@dataclass
class DeliveryReport:
    """What happened to every message handed to the publisher."""

    sent: int = 0
    delivered: int = 0
    failed: int = 0
    delivered_by_topic: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    @property
    def pending(self) -> int:
        return self.sent - self.delivered - self.failed


PRODUCER_DEFAULTS: dict[str, Any] = {
    "acks": "all",
    "enable_idempotence": True,
    "max_in_flight_requests_per_connection": 5,
    "linger_ms": 20,
    "batch_size": 256 * 1024,
    "delivery_timeout_ms": 120_000,
}


_REFUSED_FOR_ITSELF = frozenset({"MessageSizeTooLargeError", "RecordTooLargeError", "InvalidRecordError"})


def refused_for_itself(exc: BaseException) -> bool:
    """The client or broker refuses this message for what it is: sending the next one may well succeed."""
    return type(exc).__name__ in _REFUSED_FOR_ITSELF or isinstance(exc, TypeError | ValueError)


def _described(exc: BaseException) -> str:
    """`Type: message`, without the type twice (kafka-python's errors already start with their name)."""
    text = str(exc)
    name = type(exc).__name__
    return text if text.startswith(name) else f"{name}: {text}" if text else name


class EventPublisher:
    """Sends contract messages to their topics with their contract keys; counts deliveries and failures."""

    def __init__(self, producer: ProducerLike, *, max_errors_kept: int = 20) -> None:
        self._producer = producer
        self._lock = threading.Lock()
        self._max_errors_kept = max_errors_kept
        self._closed = False
        self.report = DeliveryReport()

    @classmethod
    def connect(cls, client_options: dict[str, Any], **producer_options: Any) -> EventPublisher:
        """A publisher over a real kafka-python producer (acks=all, idempotent)."""
        from kafka import KafkaProducer

        return cls(KafkaProducer(**{**PRODUCER_DEFAULTS, **client_options, **producer_options}))

    def publish(self, event: Envelope) -> None:
        """Send an agency event to its topic, keyed by its child_id or household_id."""
        self.send(topic_for(event.event_type).name, message_key(event).encode("utf-8"), encode(event))

    def publish_alert(self, alert: AlertRaised) -> None:
        self.send(ALERTS.name, alert.alert_id.encode("utf-8"), encode(alert))

    def publish_dead_letter(self, dead_letter: DeadLetter) -> None:
        key = dead_letter.source_key.encode("utf-8") if dead_letter.source_key else None
        self.send(DEAD_LETTER.name, key, encode(dead_letter))

    def send(self, topic: str, key: bytes | None, value: bytes) -> None:
        """Send raw bytes; the outcome is counted in `report` when Kafka answers.

        A message the client refuses for what it is (too large for the producer) is counted as failed and
        the caller goes on with the next; anything else raised while handing it over (no broker answered
        within `max_block_ms`, the producer closed) is a PublishError: later messages would fare no better.
        """
        if self._closed:
            raise PublishError("the publisher is closed")
        with self._lock:
            self.report.sent += 1
        try:
            future = self._producer.send(topic, value=value, key=key)
        except Exception as exc:
            self._failed(topic, exc)
            if not refused_for_itself(exc):
                raise PublishError(f"Kafka did not take a message for {topic}: {_described(exc)}") from exc
            return
        future.add_callback(self._delivered, topic)
        future.add_errback(self._failed, topic)

    def _delivered(self, topic: str, _metadata: Any) -> None:
        with self._lock:
            self.report.delivered += 1
            self.report.delivered_by_topic[topic] += 1

    def _failed(self, topic: str, exc: BaseException) -> None:
        with self._lock:
            self.report.failed += 1
            if len(self.report.errors) < self._max_errors_kept:
                self.report.errors.append(f"{topic}: {type(exc).__name__}: {exc}")
        log.error("delivery to %s failed: %s", topic, exc)

    def flush(self, timeout: float | None = None) -> DeliveryReport:
        """Wait until Kafka has answered for every message sent so far."""
        self._producer.flush(timeout=timeout)
        return self.report

    def raise_for_failures(self) -> None:
        """PublishError if any message was not delivered (or is still unanswered)."""
        report = self.report
        if report.failed or report.pending:
            detail = "; ".join(report.errors[:3])
            raise PublishError(
                f"{report.failed} of {report.sent} messages were not delivered"
                + (f" and {report.pending} are unanswered" if report.pending else "")
                + (f": {detail}" if detail else "")
            )

    def close(self, timeout: float | None = 30.0) -> DeliveryReport:
        """Flush and close; safe to call twice."""
        if not self._closed:
            try:
                self._producer.flush(timeout=timeout)
            finally:
                self._closed = True
                self._producer.close(timeout=timeout)
        return self.report

    def __enter__(self) -> EventPublisher:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
