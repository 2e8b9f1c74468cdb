"""The Faust worker: one intake agent per contract topic. Faust wiring only; decisions live in pure code.

Every record read is either handed on as a valid event or dead-lettered with its reason: no exception ever
escapes an agent (Faust acks the offset of a record whose agent raised, so the record would be lost).
Stateful agents run with concurrency 1 (faust #606). Settings are passed explicitly with `env={}` so that
stray environment variables (BROKER_URL, APP_DATADIR, ...) can never override them.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import faust

from safeguard.clock import Clock, system_clock
from safeguard.settings import Settings
from schemas.codec import encode
from schemas.deadletter import DeadLetter, dead_letter_from_kafka
from schemas.events import AgencyEvent
from schemas.topics import DEAD_LETTER, EVENT_TOPICS
from streams.intake import check_record

log = logging.getLogger(__name__)

EventHandler = Callable[[AgencyEvent, int], Awaitable[None]]


def faust_options(settings: Settings, bootstrap: str) -> dict[str, Any]:
    """Everything Faust is told, explicitly; `env={}` stops Faust reading its own environment variables."""
    kafka = settings.kafka
    options: dict[str, Any] = {
        "env": {},
        "broker": [f"kafka://{host}" for host in bootstrap.split(",")],
        "store": settings.streams.store_url,
        "datadir": str(settings.streams.data_dir),
        "autodiscover": False,
        "topic_partitions": kafka.topic_partitions,
        "topic_replication_factor": kafka.replication_factor,
        "key_serializer": "raw",
        "value_serializer": "raw",
        "consumer_auto_offset_reset": "earliest",
        "processing_guarantee": "at_least_once",
        "producer_acks": -1,
        "web_enabled": settings.streams.web_port is not None,
        "web_port": settings.streams.web_port or 6066,
        "web_bind": "127.0.0.1",
    }
    if kafka.security_protocol != "PLAINTEXT":
        options["broker_credentials"] = _credentials(settings)
    return options


def _credentials(settings: Settings) -> Any:
    import ssl

    kafka = settings.kafka
    context = ssl.create_default_context(cafile=str(kafka.ssl_cafile) if kafka.ssl_cafile else None)
    if kafka.security_protocol == "SSL":
        return faust.SSLCredentials(context)
    password = kafka.sasl_password.get_secret_value() if kafka.sasl_password else ""
    mechanism = (kafka.sasl_mechanism or "SCRAM-SHA-512").replace("-", "_")
    return faust.SASLCredentials(
        username=kafka.sasl_username or "",
        password=password,
        mechanism=mechanism,
        ssl_context=context if kafka.security_protocol == "SASL_SSL" else None,
    )


class Worker:
    """The Faust app with its topics and intake agents. `handle` receives every valid event with its partition."""

    def __init__(
        self, settings: Settings, bootstrap: str, *, handle: EventHandler | None = None, clock: Clock = system_clock
    ) -> None:
        self.app = faust.App(settings.streams.app_id, **faust_options(settings, bootstrap))
        self.clock = clock
        self.accepted: Counter[str] = Counter()
        self.dead_lettered: Counter[str] = Counter()
        self._handle = handle
        self.dead_letter_topic = self.app.topic(DEAD_LETTER.name, key_type=bytes, value_type=bytes)
        self.app.timer(interval=30.0)(self._log_counts)
        for spec in EVENT_TOPICS:
            topic = self.app.topic(spec.name, key_type=bytes, value_type=bytes)
            self.app.agent(topic, name=f"intake-{spec.name}", concurrency=1)(self._intake)

    async def _intake(self, stream: Any) -> None:
        async for record in stream.events():
            message = record.message
            try:
                outcome = check_record(
                    topic=message.topic,
                    partition=message.partition,
                    offset=message.offset,
                    key=message.key,
                    value=message.value,
                    at=self.clock(),
                )
                if isinstance(outcome, DeadLetter):
                    await self._dead_letter(outcome)
                    continue
                if self._handle is not None:
                    await self._handle(outcome, message.partition)
                self.accepted[message.topic] += 1
            except Exception as exc:  # never let an exception escape: Faust would ack and lose the record
                log.exception("processing %s[%s]@%s failed", message.topic, message.partition, message.offset)
                await self._dead_letter(
                    dead_letter_from_kafka(
                        topic=message.topic,
                        partition=message.partition,
                        offset=message.offset,
                        key=message.key,
                        value=message.value,
                        reason_code="processing_error",
                        error=f"{type(exc).__name__}: {exc}",
                        at=self.clock(),
                    )
                )

    async def _log_counts(self) -> None:
        log.info("accepted %s; dead-lettered %s", dict(self.accepted), dict(self.dead_lettered))

    async def _dead_letter(self, letter: DeadLetter) -> None:
        key = letter.source_key.encode("utf-8") if letter.source_key else None
        await self.dead_letter_topic.send(key=key, value=encode(letter))
        self.dead_lettered[letter.reason_code] += 1
        log.warning(
            "dead-lettered %s[%s]@%s: %s",
            letter.source_topic,
            letter.source_partition,
            letter.source_offset,
            letter.error,
        )
