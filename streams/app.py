"""The Faust worker: intake agents per contract topic, rule state in tables, alerts out. Wiring only.

Every record read is either applied to the rules or dead-lettered with its reason: no exception ever
escapes an agent (Faust acks the offset of a record whose agent raised, so the record would be lost).
Stateful agents run with concurrency 1 (faust #606). Settings are passed explicitly with `env={}` so that
stray environment variables (BROKER_URL, APP_DATADIR, ...) can never override them.

State: two tables, `child-state` and `household-state`, keyed by the topics' keys with the same
partitioner (`use_partitioner`, raw string keys), so table partition p holds the subjects of topic
partition p and every worker owns the state of the partitions it reads. Tables are recovered from
their compacted changelog topics on start. Incidents reach the children present through the internal
topic `<app_id>-da-obligations`, keyed by `child_id` (a repartition, co-partitioned with contacts).
Alerts go to safeguarding.alerts.v1 keyed by `alert_id`; at-least-once delivery means a crash can
publish an alert again, always with the same id and content, which readers dedupe by id.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator, MutableMapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import faust
from faust.types import TP

from safeguard.clock import Clock, system_clock
from safeguard.settings import Settings
from schemas.alerts import AlertRaised
from schemas.codec import encode
from schemas.deadletter import DeadLetter, dead_letter_from_kafka, safe_error
from schemas.events import AgencyEvent
from schemas.topics import ALERTS, DEAD_LETTER, EVENT_TOPICS, TopicSpec
from streams.intake import check_record
from streams.processor import RuleProcessor, Step
from streams.rules import Catalogue, DaObligation, PartitionClock, load_catalogue

log = logging.getLogger(__name__)

AlertListener = Callable[[AlertRaised], None]
T = TypeVar("T")


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
        # A send the broker does not acknowledge fails after this (Faust's default is 20 minutes), so an outage
        # shows in the log and in the lane's own back-off instead of a silent wait.
        "producer_request_timeout": 30.0,
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
    """The Faust app: intake agents, the obligations repartition, rule-state tables, the live-clock timer."""

    def __init__(
        self,
        settings: Settings,
        bootstrap: str,
        *,
        catalogue: Catalogue | None = None,
        clock: Clock = system_clock,
        on_alert: AlertListener | None = None,
    ) -> None:
        streams = settings.streams
        self.app = faust.App(streams.app_id, **faust_options(settings, bootstrap))
        self.clock = clock
        self.catalogue = catalogue or (
            load_catalogue(streams.rules_file) if streams.rules_file else Catalogue.default()
        )
        self.partitions = settings.kafka.topic_partitions
        self.event_time = settings.event_time
        self._exit: Callable[[int], None] = exit_process
        self.batch_size = streams.batch_size
        self.batch_within_s = streams.batch_within_s
        self.accepted: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()
        self.alerts_sent: Counter[str] = Counter()
        self.dead_lettered: Counter[str] = Counter()
        self._on_alert = on_alert
        self._read_offsets: dict[tuple[str, int], int] = {}
        self._clocks_saved: dict[tuple[str, int], PartitionClock] = {}
        self._clocks_restored = False

        # Subject states are stored as `streams.rules.codec` bytes (raw values); the clocks stay JSON.
        self.children = self._table("child-state", TABLES["child-state"], value_type=bytes)
        self.households = self._table("household-state", TABLES["household-state"], value_type=bytes)
        self.saved_clocks = self._table("partition-clocks", TABLES["partition-clocks"])
        self.app.on_partitions_revoked.connect(self._forget_cached_states)
        self.processor = RuleProcessor(
            self.catalogue,
            children=Utf8Keys(self.children),
            households=Utf8Keys(self.households),
            partition_of=lambda key: murmur2_partition(key.encode("utf-8"), self.partitions),
        )

        self.dead_letter_topic = self.app.topic(DEAD_LETTER.name, key_type=bytes, value_type=bytes)
        self.alerts_topic = self.app.topic(ALERTS.name, key_type=bytes, value_type=bytes)
        self.obligations_topic = self.app.topic(
            obligations_topic_name(streams.app_id),
            partitions=self.partitions,
            internal=True,
            key_type=bytes,
            value_type=bytes,
        )
        for spec in EVENT_TOPICS:
            topic = self.app.topic(spec.name, key_type=bytes, value_type=bytes)
            self.app.agent(topic, name=f"intake-{spec.name}", concurrency=1)(self._intake)
        self.app.agent(self.obligations_topic, name="da-obligations", concurrency=1)(self._obligations)
        self.app.timer(interval=1.0)(self._tick)
        self.app.timer(interval=30.0)(self._log_counts)
        self._lane = asyncio.Lock()
        """One lane for state: batches of both agents and the timer never interleave (see `_run_batch`)."""

    def _table(self, name: str, help: str, value_type: type | None = None) -> Any:
        """A table whose changelog partition is Kafka's partition of the key: co-partitioned with the topics."""
        table = KeyPartitionedTable(
            self.app,
            name=name,
            default=None,
            beacon=self.app.tables.beacon,
            partitions=self.partitions,
            help=help,
            key_type=bytes,  # raw UTF-8 keys, hashed exactly as the topics' keys are
            value_type=value_type,
        )
        return self.app.tables.add(table)

    # --- agents -------------------------------------------------------------------------------------

    async def _intake(self, stream: Any) -> None:
        async for batch in stream.take_events(self.batch_size, within=self.batch_within_s):
            await self._run_batch([record.message for record in batch], self._intake_one)

    async def _obligations(self, stream: Any) -> None:
        async for batch in stream.take_events(self.batch_size, within=self.batch_within_s):
            await self._run_batch([record.message for record in batch], self._obligation_one)

    async def _run_batch(self, messages: list[Any], handle: Callable[[Any, Step], None]) -> None:
        """Apply a batch, publish what it raised, wait for the broker's acks, then write the new states.

        The order matters: a state written before its alerts are delivered would, after a crash, make the
        replayed event a duplicate and its alert would be lost. Offsets are committed (by Faust, after a
        producer flush) only once the batch is done, so a crash anywhere replays the batch: alerts may be
        published again, always with the same id. Nothing escapes: a failing record is dead-lettered.
        """
        async with self._lane:
            step = Step()
            for message in messages:
                try:
                    handle(message, step)
                except Exception as exc:  # never let an exception escape: Faust would ack and lose the record
                    step.dead_letters.append(self._processing_error(message, exc))
                finally:
                    self._read_offsets[(message.topic, message.partition)] = message.offset
            await self._deliver(step)

    async def _deliver(self, step: Step) -> None:
        """Publish and then write state; retry while the broker is unavailable, never for a message that cannot go.

        Giving up on a batch is never safe here: Faust acks the batch once this returns (or raises), so a batch
        whose alerts were not delivered would be lost. So while the broker is unreachable the lane waits. A
        message the broker refuses for what it is (too large, corrupt) is not retried: it is replaced by a dead
        letter saying so (`_unpublishable`), and the lane moves on. A stop while the batch is undelivered exits
        the process at once without committing (as a crash would: the batch is read again on restart), because
        a graceful stop would ack and commit the undelivered batch.
        """
        delay = 0.5
        while True:
            try:
                refused = await self._stoppable(self._publish(step), step)
                if refused:
                    replacements = [self._unpublishable(item, exc) for item, exc in refused]
                    step = Step(dead_letters=[letter for letter in replacements if letter is not None])
                    continue
                self.processor.flush()
                return
            except asyncio.CancelledError:
                if self.app.should_stop:
                    self._exit_undelivered(step, "the worker was cancelled while delivering a batch")
                raise
            except Exception:
                log.exception("publishing a batch's alerts or writing its state failed; retrying in %.1f s", delay)
            await self._wait_or_exit(delay, step)
            delay = min(delay * 2, 30.0)

    async def _stoppable(self, work: Coroutine[Any, Any, T], step: Step) -> T:
        """Await `work`, checking for a stop meanwhile: the producer may wait for acks for a long time (a topic whose
        replicas are away), and a stop must not wait for it."""
        task = asyncio.ensure_future(work)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=0.2)
                if done:
                    return task.result()
                if self.app.should_stop:
                    self._exit_undelivered(step, "stopping while the broker has not acknowledged a batch")
        finally:
            if not task.done():
                task.cancel()

    async def _wait_or_exit(self, seconds: float, step: Step) -> None:
        """Back off, in short sleeps, so that a stop (SIGTERM) while the broker is away takes effect at once."""
        loop = asyncio.get_running_loop()
        until = loop.time() + seconds
        while True:
            if self.app.should_stop:
                self._exit_undelivered(step, "stopping while the broker does not accept a batch")
            left = until - loop.time()
            if left <= 0:
                return
            await asyncio.sleep(min(left, 0.2))

    def _exit_undelivered(self, step: Step, why: str) -> None:
        log.warning(
            "%s: exiting without committing its offsets (%d alerts, %d obligations, %d dead letters undelivered); "
            "the batch is read again on restart, without double counting",
            why,
            len(step.alerts),
            len(step.obligations),
            len(step.dead_letters),
        )
        logging.shutdown()
        self._exit(EXIT_UNDELIVERED)

    def _intake_one(self, message: Any, step: Step) -> None:
        outcome = check_record(
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=message.key,
            value=message.value,
            at=self.clock(),
            timestamp=_record_time(message),
            window=self.event_time,
        )
        if isinstance(outcome, DeadLetter):
            step.dead_letters.append(outcome)
            return
        self._apply(outcome, message.topic, message.partition, step)
        self.accepted[message.topic] += 1

    def _obligation_one(self, message: Any, step: Step) -> None:
        obligation = DaObligation.model_validate_json(message.value)
        self._apply(obligation, message.topic, message.partition, step)

    def _apply(self, item: AgencyEvent | DaObligation, topic: str, partition: int, step: Step) -> None:
        self._restore_clocks()
        applied = self.processor.apply(item, topic=topic, partition=partition, raised_at=self.clock())
        if applied.outcome is not None:
            self.outcomes[applied.outcome] += 1
            if applied.outcome == "too_late":
                log.warning("%s on %s is older than its subject's history horizon: not applied", item.event_type, topic)
        step.alerts += applied.alerts
        step.obligations += applied.obligations

    async def _publish(self, step: Step) -> list[tuple[Outgoing, BaseException]]:
        """Send everything the step produced and wait until the broker has acknowledged all of it.

        Returns the messages the broker refused for what they are (never accepted, whatever the retries);
        raises for anything else (the broker unavailable), to be retried.
        """
        outgoing: list[Outgoing] = [*step.obligations, *step.alerts, *step.dead_letters]
        pending = [asyncio.ensure_future(self._send(item)) for item in outgoing]
        results = await asyncio.gather(*pending, return_exceptions=True) if pending else []
        refused: list[tuple[Outgoing, BaseException]] = []
        for item, result in zip(outgoing, results, strict=True):
            if isinstance(result, asyncio.CancelledError):
                raise result
            if isinstance(result, BaseException):
                if not refused_for_itself(result):
                    raise result
                refused.append((item, result))
        for alert in step.alerts:
            if any(item is alert for item, _ in refused):
                continue
            self.alerts_sent[alert.rule_id] += 1
            log.info("alert %s %s %s: %s", alert.alert_id, alert.rule_id, alert.severity, alert.summary)
            if self._on_alert is not None:
                self._on_alert(alert)
        for letter in step.dead_letters:
            if any(item is letter for item, _ in refused):
                continue
            self.dead_lettered[letter.reason_code] += 1
            log.warning(
                "dead-lettered %s[%s]@%s: %s",
                letter.source_topic,
                letter.source_partition,
                letter.source_offset,
                letter.error,
            )
        return refused

    async def _send(self, item: Outgoing) -> Any:
        """Send one message and wait for the broker's acknowledgement."""
        key: bytes | None
        if isinstance(item, DaObligation):
            topic, key, value = self.obligations_topic, item.child_id.encode("utf-8"), item.model_dump_json().encode()
        elif isinstance(item, AlertRaised):
            topic, key, value = self.alerts_topic, item.alert_id.encode("utf-8"), encode(item)
        else:
            topic, value = self.dead_letter_topic, encode(item)
            key = item.source_key.encode("utf-8") if item.source_key else None
        return await (await topic.send(key=key, value=value))

    def _unpublishable(self, item: Outgoing, exc: BaseException) -> DeadLetter | None:
        """The dead letter that stands for a message the broker refused for itself (it can never be published).

        For a dead letter, the same one without the original bytes; for an alert or an obligation, a dead letter
        naming it (the record that raised it stays on its topic, so it can be reprocessed once the broker's
        limits are fixed). Logged as an error: this needs an operator.
        """
        reason = f"{type(exc).__name__}: {exc}"
        log.error("the broker refused a %s for what it is (%s); dead-lettering it instead", type(item).__name__, reason)
        now = self.clock()
        if isinstance(item, DeadLetter):
            if not item.original_b64:  # already the smallest form: nothing smaller can be sent
                log.error(
                    "dead letter %s cannot be published at all; its source record stays on %s[%s]@%s",
                    item.dead_letter_id,
                    item.source_topic,
                    item.source_partition,
                    item.source_offset,
                )
                self.dead_lettered["unpublishable"] += 1
                return None
            return item.model_copy(update={"original_b64": "", "original_truncated": True})
        what = f"alert {item.alert_id} ({item.rule_id})" if isinstance(item, AlertRaised) else "an incident obligation"
        return dead_letter_from_kafka(
            topic=ALERTS.name if isinstance(item, AlertRaised) else self.obligations_topic.get_topic_name(),
            partition=-1,
            offset=-1,
            key=None,
            value=b"",
            reason_code="unpublishable",
            error=f"{what} could not be published: {reason}",
            at=now,
        )

    async def _forget_cached_states(self, *args: Any, **kwargs: Any) -> None:
        self.processor.forget_cached_states()

    # --- timers -------------------------------------------------------------------------------------

    async def _tick(self) -> None:
        """Every second: live partitions' clocks follow the wall clock; persist clocks that moved."""
        try:
            async with self._lane:
                self._restore_clocks()
                alerts = self.processor.tick(self.clock(), caught_up=self._caught_up)
                await self._deliver(Step(alerts=alerts))
                for key, clock in self.processor.clocks.items():
                    if self._clocks_saved.get(key) != clock:
                        self.saved_clocks[_clock_key(key).encode("utf-8")] = _clock_to_json(clock)
                        self._clocks_saved[key] = clock
        except Exception:
            log.exception("the deadline timer failed; it runs again in a second")

    def _caught_up(self, topic: str, partition: int) -> bool:
        read = self._read_offsets.get((topic, partition))
        if read is None:
            return False
        highwater = self.app.consumer.highwater(TP(topic, partition))
        return highwater is not None and read + 1 >= highwater

    def _restore_clocks(self) -> None:
        if self._clocks_restored:
            return
        self._clocks_restored = True
        saved = [
            (_parse_clock_key(key.decode("utf-8")), _clock_from_json(value))
            for key, value in list(self.saved_clocks.items())
        ]
        reset = self.processor.restore_clocks(saved, wall_clock=self.clock())
        self._clocks_saved.update(saved)
        if saved:
            log.info("restored %d partition clocks", len(saved))
        for topic, partition in reset:
            log.warning(
                "the saved clock of %s[%d] was ahead of the wall clock by more than %s; brought back to that bound",
                topic,
                partition,
                self.catalogue.deadlines.max_lead,
            )

    async def _log_counts(self) -> None:
        log.info(
            "accepted %s; outcomes %s; alerts %s; dead-lettered %s",
            dict(self.accepted),
            dict(self.outcomes),
            dict(self.alerts_sent),
            dict(self.dead_lettered),
        )

    # --- dead letters -------------------------------------------------------------------------------

    def _processing_error(self, message: Any, exc: Exception) -> DeadLetter:
        log.error(
            "processing %s[%s]@%s failed: %s",
            message.topic,
            message.partition,
            message.offset,
            safe_error(f"{type(exc).__name__}: {exc}"),
        )
        return dead_letter_from_kafka(
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=message.key,
            value=message.value,
            reason_code="processing_error",
            error=f"{type(exc).__name__}: {exc}",
            at=self.clock(),
        )


class KeyPartitionedTable(faust.Table[bytes, Any]):
    """A Faust table that places each changelog write on Kafka's default partition of its key.

    Faust's own options either take the partition of the event being processed (so writes from a timer fail)
    or ask the producer's partitioner, which needs topic metadata the producer may not have fetched yet at
    start-up (aiokafka then fails with `TypeError` in `_partition`). The partition here is computed from the
    key alone, exactly as the contract topics are partitioned, so the table stays co-partitioned with them.
    """

    def partition_for_key(self, key: Any) -> int:
        assert self.partitions is not None, "declared with the contract topics' partition count"
        return murmur2_partition(key if isinstance(key, bytes) else str(key).encode("utf-8"), self.partitions)


class Utf8Keys(MutableMapping[str, Any]):
    """A Faust table with raw (bytes) keys seen as a mapping with str keys."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def __getitem__(self, key: str) -> Any:
        return self.table[key.encode("utf-8")]

    def get(self, key: str, default: Any = None) -> Any:
        return self.table.get(key.encode("utf-8"), default)

    def __setitem__(self, key: str, value: Any) -> None:
        self.table[key.encode("utf-8")] = value

    def __delitem__(self, key: str) -> None:
        del self.table[key.encode("utf-8")]

    def __iter__(self) -> Iterator[str]:
        return (key.decode("utf-8") for key in self.table)

    def __len__(self) -> int:
        return len(self.table)


Outgoing = DaObligation | AlertRaised | DeadLetter
"""What a batch publishes."""

EXIT_UNDELIVERED = 75
"""Exit status of a worker stopped while a batch was undelivered (EX_TEMPFAIL: try again later)."""

_REFUSED_FOR_ITSELF = frozenset(
    {"MessageSizeTooLargeError", "RecordTooLargeError", "RecordListTooLargeError", "CorruptRecordException"}
)


def refused_for_itself(exc: BaseException) -> bool:
    """The broker (or the client, before sending) refuses this message for what it is: retrying cannot help."""
    return type(exc).__name__ in _REFUSED_FOR_ITSELF or isinstance(exc, TypeError | ValueError | UnicodeError)


EXIT_STOP_TIMEOUT = 124
"""Exit status of a worker whose graceful stop did not finish within the watchdog's grace."""


def start_stop_watchdog(
    app: Any, grace_s: float = 7.0, *, exit: Callable[[int], None] | None = None, poll_s: float = 0.2
) -> threading.Thread:
    """A daemon thread that ends the process `grace_s` after the app began to stop, if it is still running.

    Faust's graceful stop talks to the broker (waits for streams, commits, flushes the producer); with the broker
    away that can take for ever, and SIGTERM must stop the worker within seconds in every state. Leaving without
    the rest of the shutdown is as safe as a crash: what was not committed is read again, deduped by event_id.
    """
    leave = exit or exit_process

    def watch() -> None:
        while not app.should_stop:
            time.sleep(poll_s)
        time.sleep(grace_s)
        log.warning("the worker did not stop within %.0f s of being asked (is the broker away?); leaving now", grace_s)
        logging.shutdown()
        leave(EXIT_STOP_TIMEOUT)

    thread = threading.Thread(target=watch, name="stop-watchdog", daemon=True)
    thread.start()
    return thread


def exit_process(code: int) -> None:
    """Leave at once, running no shutdown code: Faust's graceful stop would commit the undelivered batch."""
    os._exit(code)


def _record_time(message: Any) -> datetime | None:
    """The Kafka timestamp of a Faust message, or None when the record has none."""
    timestamp = getattr(message, "timestamp", None)
    if not isinstance(timestamp, int | float) or timestamp <= 0:
        return None
    return datetime.fromtimestamp(timestamp, tz=UTC)


def obligations_topic_name(app_id: str) -> str:
    """The internal repartition topic that carries incident obligations to the children present."""
    return f"{app_id}-da-obligations"


TABLES: dict[str, str] = {
    "child-state": "rule state per child",
    "household-state": "rule state per household",
    "partition-clocks": "deadline clocks per topic partition",
}
"""The worker's tables; each has a compacted changelog topic `<app_id>-<table>-changelog`."""


def internal_topics(settings: Settings) -> list[TopicSpec]:
    """Topics the worker uses that are not in the contract, created before it starts (see `__main__`).

    Faust would create them itself, but possibly after its consumer subscribed or its producer fetched
    metadata: a repartition topic is then never read, and writes to a changelog the producer has no metadata
    for stall its flush (and with it every offset commit). Creating them first avoids both races.
    """
    app_id = settings.streams.app_id
    name = obligations_topic_name(app_id)
    specs = [TopicSpec(name, ("da_obligation",), "child_id", description="incident obligations, keyed by child")]
    for table, purpose in TABLES.items():
        specs.append(TopicSpec(f"{app_id}-{table}-changelog", (), None, cleanup_policy="compact", description=purpose))
    return specs


def murmur2_partition(key: bytes, partitions: int) -> int:
    """Kafka's default partitioner (Java `Utils.murmur2`, positive, modulo the partition count)."""
    seed, m, r = 0x9747B28C, 0x5BD1E995, 24
    mask = 0xFFFFFFFF
    length = len(key)
    h = (seed ^ length) & mask
    whole = length - length % 4
    for i in range(0, whole, 4):
        k = int.from_bytes(key[i : i + 4], "little")
        k = (k * m) & mask
        k ^= k >> r
        k = (k * m) & mask
        h = (h * m) & mask
        h ^= k
    rest = length % 4
    if rest == 3:
        h ^= key[whole + 2] << 16
    if rest >= 2:
        h ^= key[whole + 1] << 8
    if rest >= 1:
        h ^= key[whole]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return (h & 0x7FFFFFFF) % partitions


def _clock_key(key: tuple[str, int]) -> str:
    return f"{key[0]}#{key[1]}"


def _parse_clock_key(text: str) -> tuple[str, int]:
    topic, _, partition = text.rpartition("#")
    return topic, int(partition)


def _clock_to_json(clock: PartitionClock) -> dict[str, str | None]:
    def iso(moment: datetime | None) -> str | None:
        return None if moment is None else moment.isoformat()

    return {"newest_event_at": iso(clock.newest_event_at), "reading": iso(clock.reading)}


def _clock_from_json(obj: dict[str, str | None]) -> PartitionClock:
    def parse(text: str | None) -> datetime | None:
        return None if text is None else datetime.fromisoformat(text)

    return PartitionClock(newest_event_at=parse(obj.get("newest_event_at")), reading=parse(obj.get("reading")))


__all__ = ["Worker", "faust_options", "murmur2_partition"]
