"""The gateway's Kafka side: kafka-python with the project's producer defaults (acks=all, idempotent), each
event keyed and routed as the contract says (`schemas.topics`) and partitioned by kafka-python's default
partitioner, murmur2 of the key like the Java client, whatever the client of the gateway sent.

Each message carries the publishing principal in the `safeguard-principal` header. `publish` resolves when
Kafka has acknowledged every message or `timeout_s` has passed: what is not acknowledged by then is reported
as such, never as published.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from producers.publisher import PRODUCER_DEFAULTS

PRINCIPAL_HEADER = "safeguard-principal"
_INLINE_MAX = 16
log = logging.getLogger(__name__)


class GatewayProducer(Protocol):
    """What the gateway needs of kafka.KafkaProducer."""

    def send(self, topic: str, value: bytes | None = ..., key: bytes | None = ..., headers: Any = ...) -> Any: ...
    def flush(self, timeout: float | None = ...) -> None: ...
    def close(self, timeout: float | None = ...) -> None: ...


@dataclass(frozen=True)
class Outgoing:
    topic: str
    key: bytes
    value: bytes
    principal: str


@dataclass(frozen=True)
class Ack:
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class NotAcknowledged:
    reason: str
    pending: bool = False
    """Kafka has not answered yet (the producer keeps trying): `on_late` will tell its fate."""


Outcome = Ack | NotAcknowledged


class GatewayPublisher:
    """Sends messages and awaits Kafka's acknowledgements from asyncio (kafka-python answers on its own thread)."""

    def __init__(self, producer: GatewayProducer) -> None:
        self._producer = producer
        self._warm: set[str] = set()

    @classmethod
    def connect(cls, client_options: dict[str, Any], *, max_block_s: float) -> GatewayPublisher:
        from kafka import KafkaProducer

        options = {**PRODUCER_DEFAULTS, "linger_ms": 1, **client_options, "max_block_ms": int(max_block_s * 1000)}
        return cls(KafkaProducer(**options))

    async def publish(
        self,
        messages: Sequence[Outgoing],
        *,
        timeout_s: float,
        on_late: Callable[[int, Ack | None], None] | None = None,
    ) -> list[Outcome]:
        """One outcome per message, in order. For a message Kafka answers only after the timeout, `on_late(i, ack)`
        runs on the event loop when it does (`ack` None: it failed), so the caller can still learn its fate."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Ack]] = [loop.create_future() for _ in messages]
        given_up = False

        def settle(i: int, result: Ack | BaseException) -> None:
            future = futures[i]
            if future.done():
                return
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
            if given_up and on_late is not None:
                on_late(i, None if isinstance(result, BaseException) else result)

        def from_kafka(i: int, result: Ack | BaseException) -> None:
            """On kafka-python's thread: hand the outcome to the event loop (gone when the gateway stopped)."""
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle, i, result)

        def hand_over() -> None:
            for i, message in enumerate(messages):
                try:
                    sent = self._producer.send(
                        message.topic,
                        value=message.value,
                        key=message.key,
                        headers=[(PRINCIPAL_HEADER, message.principal.encode("utf-8"))],
                    )
                except Exception as exc:  # no metadata within max_block_ms, producer closed, message refused
                    from_kafka(i, exc)
                    continue
                sent.add_callback(lambda md, i=i: from_kafka(i, Ack(md.topic, md.partition, md.offset)))
                sent.add_errback(lambda exc, i=i: from_kafka(i, exc))

        # send() blocks while the client has no metadata for a topic, so the first messages to a topic are handed
        # over on a thread; once Kafka has acknowledged one, a few messages go straight from the event loop (a
        # thread hop costs more than the sends, and under load it waits for the GIL).
        waited: list[asyncio.Future[Any]] = list(futures)
        if len(messages) <= _INLINE_MAX and all(m.topic in self._warm for m in messages):
            hand_over()
        else:
            waited.append(loop.run_in_executor(None, hand_over))
        done, _ = await asyncio.wait(waited, timeout=timeout_s)
        given_up = True
        outcomes: list[Outcome] = []
        for future in futures:
            if future in done and future.exception() is None:
                ack = future.result()
                self._warm.add(ack.topic)
                outcomes.append(ack)
            elif future in done:
                exc = future.exception()
                outcomes.append(NotAcknowledged(f"{type(exc).__name__}: {exc}"[:300]))
            else:
                outcomes.append(NotAcknowledged(f"Kafka did not acknowledge within {timeout_s:g} s", pending=True))
        if late := [f for f in futures if f not in done]:
            for f in late:  # still pending: their exceptions are expected, do not let asyncio warn
                f.add_done_callback(lambda f: f.exception() if not f.cancelled() else None)
        return outcomes

    def close(self, timeout: float | None = 10.0) -> None:
        """Flush what is pending (answered 503 already, so a timeout is no loss of anything claimed) and close."""
        try:
            self._producer.flush(timeout=timeout)
            self._producer.close(timeout=timeout)
        except Exception as exc:  # e.g. KafkaTimeoutError with the broker gone (kafka-python's close flushes too)
            log.warning("closing the gateway's producer with messages unacknowledged: %s", exc)
            sender = getattr(self._producer, "_sender", None)  # kafka-python has no public forced close
            if sender is not None:
                sender.force_close()
