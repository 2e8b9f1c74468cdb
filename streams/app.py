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
import types
from collections import Counter
from collections.abc import Callable, Coroutine, Generator
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar, cast

import aiokafka.errors as kafka_errors
import faust
from aiokafka import TopicPartition
from aiokafka.client import ConnectionGroup
from aiokafka.protocol.offset import OffsetRequest
from faust.exceptions import ConsumerNotStarted
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers.aiokafka import Consumer as AiokafkaConsumer
from faust.types import TP

from safeguard.clock import Clock, system_clock
from safeguard.settings import Settings
from schemas.alerts import AlertRaised
from schemas.codec import encode
from schemas.deadletter import DeadLetter, dead_letter_from_kafka, safe_error
from schemas.events import AgencyEvent
from schemas.quality import QualityFinding
from schemas.topics import ALERTS, DEAD_LETTER, EVENT_TOPICS, QUALITY_FINDINGS, TopicSpec
from streams.fence import OffsetFence, Verdict
from streams.intake import Misplaced, Origin, check_record, check_rerouted
from streams.lane import Lane
from streams.processor import RuleProcessor, Step
from streams.rules import Catalogue, DaObligation, PartitionClock, load_catalogue
from streams.rules.quality import check_dead_lettered
from streams.tables import KeyPartitionedTable, PartitionClockTable, RocksMemory, Utf8Keys, murmur2_partition

log = logging.getLogger(__name__)

AlertListener = Callable[[AlertRaised], None]
T = TypeVar("T")


def faust_options(settings: Settings, bootstrap: str) -> dict[str, Any]:
    """Everything Faust is told, explicitly; `env={}` stops Faust reading its own environment variables."""
    kafka = settings.kafka
    options: dict[str, Any] = {
        "env": {},
        "Topic": BatchingTopic,
        "broker": [f"kafka://{host}" for host in bootstrap.split(",")],
        "store": settings.streams.store_url,
        "datadir": str(settings.streams.table_dir),  # this worker's own: <data_dir>/<app_id>[/<group_instance_id>]
        "autodiscover": False,
        "topic_partitions": kafka.topic_partitions,
        "topic_replication_factor": kafka.replication_factor,
        "key_serializer": "raw",
        "value_serializer": "raw",
        "consumer_auto_offset_reset": "earliest",
        # Static membership when set: a restarted worker with the same id gets its partitions back without waiting
        # for its old session to lapse. Either way a dead worker's partitions move after `session_timeout_s`.
        "consumer_group_instance_id": settings.streams.group_instance_id,
        "broker_session_timeout": settings.streams.session_timeout_s,
        "broker_heartbeat_interval": min(3.0, settings.streams.session_timeout_s / 3),
        "processing_guarantee": "at_least_once",
        "table_standby_replicas": 0,
        "producer_acks": -1,
        "producer_linger": settings.streams.producer_linger_s,
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
    mechanism = kafka.sasl_mechanism or "SCRAM-SHA-512"  # Faust's SASLMechanism values are Kafka's own names
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
        self.app.transport.Consumer = FencedConsumer  # type: ignore[misc]  # the consumer is created after this
        self.fence: OffsetFence[TP] = OffsetFence()
        """Records are applied in offset order from the committed offset, none skipped (see `streams.fence`)."""
        self._stalled_looks: dict[TP, tuple[int, int | None, int]] = {}
        """Per partition with records left to apply, what the last look saw: its next offset, the consumer's position
        (None: not asked) and how many looks in a row saw both the same (`_rewind_stalled`)."""
        self._starts: dict[TP, int] = {}
        """Where each partition's fence starts after a rebalance, as the broker has it (`_learn_start`)."""
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
        self.quality_findings: Counter[str] = Counter()
        """Data-quality findings published, by national rule id (`streams.rules.quality`)."""
        self._on_alert = on_alert
        self._read_offsets: dict[tuple[str, int], int] = {}
        self._clocks_saved: dict[tuple[str, int], PartitionClock] = {}
        self._clocks_restored = False

        # Subject states are stored as `streams.rules.codec` bytes (raw values); the clocks stay JSON. With the
        # RocksDB store all tables' databases share one memory budget (`streams.tables.RocksMemory`).
        self.rocks = RocksMemory(cache_bytes=streams.rocksdb_cache_mb * 1024 * 1024)
        self.children = self._table("child-state", TABLES["child-state"], value_type=bytes)
        self.households = self._table("household-state", TABLES["household-state"], value_type=bytes)
        self.saved_clocks = self._table("partition-clocks", TABLES["partition-clocks"], kind=PartitionClockTable)
        self._tables: list[KeyPartitionedTable] = [self.children, self.households, self.saved_clocks]
        self.app.on_partitions_revoked.connect(self._forget_cached_states)
        self.app.on_partitions_revoked.connect(self._forget_offsets)
        # And again once the new assignment's tables are recovered: the deadline index is rebuilt by iterating the
        # tables, and one rebuilt meanwhile (by the timer) saw the old assignment's partitions (RocksDB iterates the
        # active partitions' databases only) or a partly recovered table.
        self.app.on_rebalance_complete.connect(self._forget_cached_states)
        # The saved clocks of the partitions a rebalance brought are merged in once their tables are recovered.
        self.app.on_rebalance_complete.connect(self._restore_clocks_again)
        self.processor = RuleProcessor(
            self.catalogue,
            children=Utf8Keys(self.children),
            households=Utf8Keys(self.households),
            partition_of=lambda key: murmur2_partition(key.encode("utf-8"), self.partitions),
        )

        self.dead_letter_topic = self.app.topic(DEAD_LETTER.name, key_type=bytes, value_type=bytes)
        self.alerts_topic = self.app.topic(ALERTS.name, key_type=bytes, value_type=bytes)
        self.findings_topic = self.app.topic(QUALITY_FINDINGS.name, key_type=bytes, value_type=bytes)
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
        # Records on a partition their key does not hash to are re-published on the key's partition (`_reroute`).
        self.rerouted: Counter[str] = Counter()
        self.set_aside_in_rebalance = 0
        """Records delivered before a rebalance had finished, not applied (read again; `_set_aside_in_rebalance`)."""
        self.reroute_topics: dict[str, Any] = {}
        """Per contract topic, the internal topic its misplaced records are re-published to."""
        self._rerouted_from: dict[str, str] = {}
        for spec in EVENT_TOPICS:
            reroute_topic = self.app.topic(
                rerouted_topic_name(streams.app_id, spec.name),
                partitions=self.partitions,
                internal=True,
                key_type=bytes,
                value_type=bytes,
            )
            self.reroute_topics[spec.name] = reroute_topic
            self._rerouted_from[reroute_topic.get_topic_name()] = spec.name
            self.app.agent(reroute_topic, name=f"rerouted-{spec.name}", concurrency=1)(self._rerouted)
        # Partition clocks across rebalances: see `_stash_revoked_clocks`.
        self._stashed_clocks: dict[tuple[str, int], tuple[PartitionClock, int, int]] = {}
        self.app.on_partitions_revoked.connect(self._stash_revoked_clocks)
        self.app.on_partitions_assigned.connect(self._drop_moved_clocks)
        self.app.timer(interval=1.0)(self._unstash_clocks)
        self.app.timer(interval=1.0)(self._seek_again)
        self.app.timer(interval=1.0)(self._tick)
        self.app.timer(interval=30.0)(self._log_counts)
        self.app.timer(interval=15.0)(self._watch_lane)
        self._lane = Lane()
        """One lane for state: batches of both agents and the timer never interleave (see `_run_batch`)."""

    def _table(
        self,
        name: str,
        help: str,
        value_type: type | None = None,
        kind: type[KeyPartitionedTable] = KeyPartitionedTable,
    ) -> Any:
        """A table whose changelog partition is Kafka's partition of the key: co-partitioned with the topics."""
        table = kind(
            self.app,
            name=name,
            default=None,
            beacon=self.app.tables.beacon,
            partitions=self.partitions,
            help=help,
            key_type=bytes,  # raw UTF-8 keys, hashed exactly as the topics' keys are
            value_type=value_type,
            rocks=self.rocks,
        )
        return self.app.tables.add(table)

    # --- agents -------------------------------------------------------------------------------------

    async def _intake(self, stream: Any) -> None:
        async for batch in stream.take_events(self.batch_size, within=self.batch_within_s):
            misplaced: list[Misplaced] = []
            await self._run_batch([record.message for record in batch], partial(self._intake_one, misplaced=misplaced))
            await self._reroute(misplaced)  # returns once the broker has every copy: only then is the batch acked

    async def _rerouted(self, stream: Any) -> None:
        async for batch in stream.take_events(self.batch_size, within=self.batch_within_s):
            await self._run_batch([record.message for record in batch], self._rerouted_one)

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
            if self.app.rebalancing:
                self._set_aside_in_rebalance(messages)
                return
            step = Step()
            new = {TP(m.topic, m.partition) for m in messages} - self._starts.keys()
            new = {tp for tp in new if not self.fence.seen(tp)}
            if new:  # the batch's partitions new since the rebalance: asked of the broker in one question
                await self._learn_start(new)
            now = asyncio.get_running_loop().time()
            for message in messages:
                tp = TP(message.topic, message.partition)
                start = self._starts.get(tp)
                if self.fence.admit(tp, message.offset, committed=start, now=now) is Verdict.HOLD:
                    # Not applied: marked acked so that Faust never counts it done (its commit cannot pass it); the
                    # partition is sought back and the record comes again, after the ones before it.
                    message.acked = True
                    continue
                try:
                    handle(message, step)
                except Exception as exc:  # never let an exception escape: Faust would ack and lose the record
                    step.dead_letters.append(self._processing_error(message, exc))
                finally:
                    self._read_offsets[(message.topic, message.partition)] = message.offset
            await self._deliver(step)
            try:
                await self._rewind()
            except Exception:  # the batch is done; a seek not made is made again by `_seek_again`
                log.exception("seeking back a partition failed; tried again in a few seconds")

    def _set_aside_in_rebalance(self, messages: list[Any]) -> None:
        """Records delivered before a rebalance has finished are not applied: Faust reads them again.

        At the end of a rebalance Faust seeks every partition back to its committed offset and only then sets its own
        map of committed offsets. A batch applied and committed before that (records flow while the tables recover and
        during the seek) had its commit undone in that map, and Faust's commit of the partition then stopped for good,
        behind acks it counted as a gap: seen 2026-12-08 after a SIGKILL restart, two partitions committed 21 records
        past the start and no further, every record applied. Marked acked so that Faust never counts them done; the
        fence is not asked, so the partitions start afresh from the committed offsets when the records come again.
        """
        for message in messages:
            message.acked = True
        self.set_aside_in_rebalance += len(messages)
        log.info(
            "%d records delivered before the rebalance finished: not applied, read again from the committed offsets",
            len(messages),
        )

    async def _learn_start(self, partitions: set[TP]) -> None:
        """Ask the broker where the group reads `partitions` from, at their first records since a rebalance.

        Faust's own map of committed offsets is not enough: it can lack a partition the group has committed (seen
        after a SIGKILL restart: the fence then waited at 0 while the consumer read from the committed offset), and a
        partition the group never committed has no entry at all, so the fence used to start it at the first record
        delivered; records Faust fetched and dropped around a rebalance (two workers starting together, the kcat
        scale-out test) were skipped. The broker's committed offset, else the log start, is where reading must start.
        If the broker cannot say, the fence falls back to Faust's map (the behaviour before 2026-12-07) and says so.
        """
        try:
            consumer = cast(FencedConsumer, self.app.consumer)
            starts = await asyncio.wait_for(consumer.group_starts(partitions), timeout=START_LOOKUP_TIMEOUT_S)
        except Exception as exc:
            for tp in sorted(partitions):
                fallback = self._committed(tp)
                log.warning(
                    "%s[%d]: %s (%s); starting from %s",
                    tp.topic,
                    tp.partition,
                    START_UNKNOWN,
                    safe_error(f"{type(exc).__name__}: {exc}"),
                    "the first record delivered" if fallback is None else f"offset {fallback} (Faust's view)",
                )
                if fallback is not None:
                    self._starts[tp] = fallback
            return
        self._starts.update(starts)
        for known, offset in starts.items():
            log.info("%s[%d]: %s %d", known.topic, known.partition, STARTS_AT, offset)

    async def _group_start(self, tp: TP) -> int | None:
        """Where the group reads `tp` from: Faust's committed offset, else the broker's answer (`_learn_start`).

        Faust's map has no entry for a partition the group never committed. Such a partition, kept across a
        rebalance with Faust's position past records it had fetched and then dropped, was never sought back, and
        nothing of it was applied again (a survivor of the scale-out test, its other member killed before any commit,
        2026-12-07: 1,506 records of two topics never applied). Also for a partition new to this worker: limited to
        the partitions it held before, a survivor still stalled (the partitions moved to it, 2026-12-07). The cost: a
        busy lane can make records on their way look like nothing coming, and they are read twice (applied once).
        """
        known = self._known_start(tp)
        if known is None and tp not in self._starts:
            await self._learn_start({tp})
            known = self._starts.get(tp)
        return known

    def _known_start(self, tp: TP) -> int | None:
        """`_group_start` without asking the broker: Faust's committed offset, else an answer already had."""
        committed = self._committed(tp)
        return committed if committed is not None else self._starts.get(tp)

    def _committed(self, tp: TP) -> int | None:
        """The group's committed offset of `tp` as Faust's consumer knows it (set from the broker at assignment)."""
        committed = getattr(self.app.consumer, "_committed_offset", {}).get(tp)
        return committed if isinstance(committed, int) else None

    async def _rewind(self, explained: set[TP] | frozenset[TP] = frozenset()) -> None:
        """Carry out the fence's seeks (see `streams.fence`); say so when a partition stays stalled (`explained`:
        partitions whose seek was already said in the log)."""
        seeks = self.fence.take_seeks()
        if not seeks:
            return
        consumer = cast(AiokafkaConsumer, self.app.consumer)
        assigned = consumer.assignment()
        seeks = {tp: offset for tp, offset in seeks.items() if tp in assigned}
        stalled = self.fence.stalled(STALLED_AFTER_SEEKS)
        for tp, offset in seeks.items():
            if tp in stalled:
                log.error(
                    "%s[%d]: waiting for offset %d, sought back %d+ times without it coming; nothing of this "
                    "partition is applied meanwhile. If the log has no record there (a transactional producer's "
                    "markers: the contract topics must be written without transactions), move the group past it "
                    "(docs/operations.md, 'What a rebalance must not lose')",
                    tp.topic,
                    tp.partition,
                    offset,
                    STALLED_AFTER_SEEKS,
                )
            elif tp not in explained:
                log.warning(
                    "%s[%d]: a record past offset %d was delivered before it (Faust's fetcher, after a rebalance); "
                    "held back, reading again from %d",
                    tp.topic,
                    tp.partition,
                    offset,
                    offset,
                )
        if seeks:
            await consumer.seek_wait(seeks)  # in the consumer's own thread, as Faust's own seeks are

    async def _seek_again(self) -> None:
        """Every second: seek again where the fence's seek brought nothing (no record arrives to ask it), and seek
        back a partition whose records stopped coming short of the consumer's position (`_rewind_stalled`)."""
        try:
            async with self._lane:
                now = asyncio.get_running_loop().time()
                if self.fence.rewinding:
                    self.fence.overdue(now)
                stalled = await self._rewind_stalled(now)
                await self._rewind(explained=stalled)
        except Exception:
            log.exception("seeking back a partition failed; tried again in a second")

    async def _rewind_stalled(self, now: float) -> set[TP]:
        """Seek back a partition whose next record to apply lies behind the consumer's position while nothing of it
        comes: the records in between were fetched and never delivered, and no later record arrives to show the gap
        to the fence.

        Two ways it happens. Faust keeps its position from before a rebalance instead of reading again from the
        committed offset (nothing comes at all since the rebalance). And Faust drops the rest of a fetch when the
        generation changes or flow stops mid-way, after the consumer has moved past it: seen 2026-12-07 (the
        scale-out test, one of two workers killed), the survivor applied offsets 0-10 of six partitions it took over
        and nothing more, 1,536 records never applied, because the dropped fetch had reached their end.

        Looked at once a second, in the lane, so every agent has had its turn in between. A partition whose next
        offset moved since the last look is making progress: the consumer is not even asked where it is (that costs
        a call into its thread). One with the same next offset and the same position at two looks in a row is sought
        back: three looks, three seconds, for a partition records came from (its first look only notes its next
        offset); two for one nothing came from since the rebalance. Records that were merely slow are then read
        twice and applied once (deduped by event id). Returns the partitions sought back (each said in the log here).
        """
        rewound: set[TP] = set()
        if self.app.rebalancing:
            return rewound
        consumer = self.app.consumer
        for tp in consumer.assignment():
            if tp.topic.endswith("-changelog"):
                continue
            highwater = consumer.highwater(tp)
            if not highwater:
                continue  # unknown, or nothing in the log
            seen = self.fence.seen(tp)
            expected = self.fence.waiting_for(tp) if seen else await self._group_start(tp)
            if expected is None or expected >= highwater:
                self._stalled_looks.pop(tp, None)
                continue
            last = self._stalled_looks.get(tp)
            if seen and (last is None or last[0] != expected):
                self._stalled_looks[tp] = (expected, None, 0)  # moving, or its first look
                continue
            position = await asyncio.wait_for(consumer.position(tp), timeout=2.0)
            if position is None or position <= expected:
                self._stalled_looks.pop(tp, None)
                continue
            same = last[2] + 1 if last is not None and last[:2] == (expected, position) else 1
            if same < 2:
                self._stalled_looks[tp] = (expected, position, same)
                continue
            del self._stalled_looks[tp]
            self.fence.rewind(tp, expected, now=now)
            rewound.add(tp)
            log.warning(
                "%s[%d]: nothing delivered from offset %d on although the consumer has read to %d (Faust did not read "
                "it again after a rebalance, or dropped what it fetched); reading again from %d",
                tp.topic,
                tp.partition,
                expected,
                position,
                expected,
            )
        return rewound

    async def _forget_offsets(self, *args: Any, **kwargs: Any) -> None:
        revoked = {TP(*tp) for tp in args[-1]} if args else None  # (sender, revoked)
        self.fence.forget(revoked)
        for tp in list(self._starts) if revoked is None else revoked:
            self._starts.pop(tp, None)
        self._stalled_looks.clear()

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
                await self._changes_acked(step)
                return
            except asyncio.CancelledError:
                if self.app.should_stop:
                    self._exit_undelivered(step, "the worker was cancelled while delivering a batch")
                raise
            except Exception:
                log.exception("publishing a batch's alerts or writing its state failed; retrying in %.1f s", delay)
            await self._wait_or_exit(delay, step)
            delay = min(delay * 2, 30.0)

    async def _changes_acked(self, step: Step) -> None:
        """Wait until the broker has acknowledged every table change sent so far; send again those it did not take.

        The batch is acknowledged only after this, so Faust commits its offsets only once its states are in the
        changelogs: a crash, or a partition moving to another worker, then finds them there. (Faust's own flush
        before a commit gives up after 0.1 s without progress and commits anyway.) A change the broker refuses for
        what it is cannot be sent at all: it stays in the local store only, and is logged as an error.
        """
        writes = [write for table in self._tables for write in table.take_unacked()]
        delay = 0.5
        while writes:
            results = await self._stoppable(_settled([write.sent for write in writes]), step)
            failed = [(write, result) for write, result in zip(writes, results, strict=True) if result is not None]
            for write, exc in failed:
                if refused_for_itself(exc):
                    log.error(
                        "the broker refused a change of %s for what it is (%s: %s); it is in this worker's store only",
                        write.table.name,
                        type(exc).__name__,
                        exc,
                    )
            failed = [(write, exc) for write, exc in failed if not refused_for_itself(exc)]
            if not failed:
                return
            exc = failed[0][1]
            log.warning(
                "%d table changes not acknowledged (%s: %s); sending them again in %.1f s",
                len(failed),
                type(exc).__name__,
                exc,
                delay,
            )
            await self._wait_or_exit(delay, step)
            delay = min(delay * 2, 30.0)
            writes = [write.resend() for write, _ in failed]

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

    def _intake_one(self, message: Any, step: Step, *, misplaced: list[Misplaced]) -> None:
        """Apply a valid record of a contract topic, dead-letter an invalid one, set aside a misplaced one.

        Misplaced: valid, but not on its key's murmur2 partition (a foreign client's partitioner). It is not applied
        here, where another worker may hold its subject's state, but re-published (`_reroute`) and applied from
        there, on its key's partition.
        """
        timestamp = _record_time(message)
        outcome = check_record(
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=message.key,
            value=message.value,
            at=self.clock(),
            timestamp=timestamp,
            window=self.event_time,
        )
        if isinstance(outcome, DeadLetter):
            step.dead_letters.append(outcome)
            step.findings += check_dead_lettered(message.value, outcome.dead_lettered_at)
            return
        home = murmur2_partition(message.key, self.partitions)  # a valid event has its contract key
        if home != message.partition:
            origin = Origin(message.topic, message.partition, message.offset)
            stamp = None if timestamp is None else timestamp.timestamp()
            misplaced.append(Misplaced(origin, home, message.key, message.value, stamp))
            return
        self._apply(outcome, message.topic, message.partition, step)
        self.accepted[message.topic] += 1

    def _rerouted_one(self, message: Any, step: Step) -> None:
        """Apply a re-routed copy as its contract topic's intake would on the key's partition (this one).

        The partition clock it moves is the contract topic's clock of that partition: the clock of the partition
        the event belongs on, which the worker holding the subject's state also holds. The clock of the partition
        it was misplaced on does not move.
        """
        contract_topic = self._rerouted_from[message.topic]
        outcome = check_rerouted(
            contract_topic=contract_topic,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=message.key,
            value=message.value,
            headers=message.headers,
            partition_of=lambda key: murmur2_partition(key, self.partitions),
            at=self.clock(),
            timestamp=_record_time(message),
            window=self.event_time,
        )
        if isinstance(outcome, DeadLetter):
            step.dead_letters.append(outcome)
            return
        self._apply(outcome, contract_topic, message.partition, step)
        self.accepted[message.topic] += 1

    async def _stash_revoked_clocks(self, *args: Any, **kwargs: Any) -> None:
        """In a rebalance, set aside the partition clocks of the revoked partitions (Kafka's eager protocol: all).

        A partition this worker keeps is read again from its committed offset, and the memory store rebuilds its
        table partitions from the changelog, which may not yet hold the newest states (their writes still on their
        way): the old clock would fire deadlines against states the records read again have not yet brought up to
        date (an answered duty taken for unanswered). So the clock starts afresh from the records read again, and
        the old one is merged back (`_unstash_clocks`) once they reach where this worker had read (or nothing is
        read again). A partition another worker now reads is no longer ticked or saved here: its stash is dropped.
        """
        revoked = {TP(*tp) for tp in args[-1]} if args else set()  # (sender, revoked)
        for key in [key for key in self.processor.clocks if TP(*key) in revoked]:
            clock = self.processor.clocks.pop(key)
            self._clocks_saved.pop(key, None)
            # A clock with nothing read since it was restored (a quiet partition) has nothing to wait for: -1.
            read = self._read_offsets.pop(key, -1)
            stashed = self._stashed_clocks.get(key)
            if stashed is not None:  # a second rebalance before the first was caught up with
                clock = _later_clock(clock, stashed[0])
                read = max(read, stashed[1])
            self._stashed_clocks[key] = (clock, read, 0)

    async def _drop_moved_clocks(self, *args: Any, **kwargs: Any) -> None:
        """Once a rebalance has assigned this worker its partitions: the stashed clocks of the others are not ours."""
        assigned = {TP(*tp) for tp in args[-1]} if args else set()  # (sender, assigned)
        for key in [key for key in self._stashed_clocks if TP(*key) not in assigned]:
            del self._stashed_clocks[key]

    async def _unstash_clocks(self) -> None:
        """Every second: merge a stashed clock back once its partition has been read again up to where it was."""
        if not self._stashed_clocks:
            return
        try:
            async with self._lane:
                assignment = self.app.consumer.assignment()
                for key, (clock, read, idle) in list(self._stashed_clocks.items()):
                    tp = TP(*key)
                    if tp not in assignment:
                        continue  # mid-rebalance; dropped by `_drop_moved_clocks` if it went to another worker
                    done = self._read_offsets.get(key, -1) >= read
                    if not done and key not in self._read_offsets:
                        # Nothing read since the rebalance: when everything is fetched and still nothing comes for
                        # a few seconds, nothing was to be read again (all of it had been committed).
                        highwater = self.app.consumer.highwater(tp)
                        position = await asyncio.wait_for(self.app.consumer.position(tp), timeout=2.0)
                        fetched_all = highwater is not None and position is not None and position >= highwater
                        idle = idle + 1 if fetched_all else 0
                        done = idle >= 3
                    if done:
                        del self._stashed_clocks[key]
                        self.processor.restore_clocks([(key, clock)], wall_clock=self.clock())
                    else:
                        self._stashed_clocks[key] = (clock, read, idle)
        except Exception:
            log.exception("merging back the clocks of partitions read again failed; tried again in a second")

    async def _reroute(self, misplaced: list[Misplaced]) -> None:
        """Re-publish misplaced records, unchanged, on their key's partition of the re-route topic; wait for the acks.

        Called before the intake batch they came in is acknowledged, so a crash before every copy is acknowledged
        reads the batch again (a copy sent twice is one event id, applied once). In the lane, with a batch's
        delivery guarantees: while the broker does not answer it waits (a stop then exits without committing), and
        a copy the broker refuses for what it is becomes an `unpublishable` dead letter of the original.
        """
        if not misplaced:
            return
        async with self._lane:
            pending, delay = misplaced, 0.5
            while pending:
                try:
                    results = await self._stoppable(self._send_copies(pending), Step())
                except asyncio.CancelledError:
                    if self.app.should_stop:
                        self._exit_undelivered(Step(), "the worker was cancelled while re-routing misplaced records")
                    raise
                failed = [(copy, result) for copy, result in results if result is not None]
                for copy, result in results:
                    if result is None:
                        self.rerouted[copy.origin.topic] += 1
                refused = [(copy, exc) for copy, exc in failed if refused_for_itself(exc)]
                if refused:
                    await self._deliver(Step(dead_letters=[self._unroutable(copy, exc) for copy, exc in refused]))
                pending = [copy for copy, exc in failed if not refused_for_itself(exc)]
                if pending:
                    log.warning("re-routing %d misplaced records failed; retrying in %.1f s", len(pending), delay)
                    await self._wait_or_exit(delay, Step())
                    delay = min(delay * 2, 30.0)
        topics = Counter(copy.origin.topic for copy in misplaced)
        log.warning(
            "re-routed %s to their key's partitions: published with a partitioner other than Kafka's default (murmur2)",
            ", ".join(f"{count} records of {topic}" for topic, count in sorted(topics.items())),
        )

    async def _send_copies(self, misplaced: list[Misplaced]) -> list[tuple[Misplaced, BaseException | None]]:
        """Send each copy; the error of each that the broker did not acknowledge (None for those it did)."""

        async def send(copy: Misplaced) -> None:
            topic = self.reroute_topics[copy.origin.topic]
            sent = await topic.send(
                key=copy.key,
                value=copy.value,
                partition=copy.home,
                timestamp=copy.timestamp,
                headers=copy.origin.headers(),
            )
            await sent

        results = await asyncio.gather(*(send(copy) for copy in misplaced), return_exceptions=True)
        for result in results:
            if isinstance(result, asyncio.CancelledError):
                raise result
        return [
            (copy, result if isinstance(result, BaseException) else None)
            for copy, result in zip(misplaced, results, strict=True)
        ]

    def _unroutable(self, copy: Misplaced, exc: BaseException) -> DeadLetter:
        origin = copy.origin
        log.error("the broker refused the copy of %s[%d]@%d: %s", origin.topic, origin.partition, origin.offset, exc)
        return dead_letter_from_kafka(
            topic=copy.origin.topic,
            partition=copy.origin.partition,
            offset=copy.origin.offset,
            key=copy.key,
            value=copy.value,
            reason_code="unpublishable",
            error=f"its copy for partition {copy.home} could not be published: {type(exc).__name__}: {exc}",
            at=self.clock(),
        )

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
        step.findings += applied.findings
        if applied.held:
            self.outcomes["held_by_quality_check"] += 1

    async def _publish(self, step: Step) -> list[tuple[Outgoing, BaseException]]:
        """Send everything the step produced and wait until the broker has acknowledged all of it.

        Returns the messages the broker refused for what they are (never accepted, whatever the retries);
        raises for anything else (the broker unavailable), to be retried.
        """
        outgoing: list[Outgoing] = [*step.obligations, *step.alerts, *step.dead_letters, *step.findings]
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
        # One line per batch at INFO (issue 14: no per-event logging on the hot path); each message at DEBUG.
        published_alerts: Counter[str] = Counter()
        for alert in step.alerts:
            if any(item is alert for item, _ in refused):
                continue
            self.alerts_sent[alert.rule_id] += 1
            published_alerts[alert.rule_id] += 1
            log.debug("alert %s %s %s: %s", alert.alert_id, alert.rule_id, alert.severity, alert.summary)
            if self._on_alert is not None:
                self._on_alert(alert)
        published_findings: Counter[str] = Counter()
        for found in step.findings:
            if any(item is found for item, _ in refused):
                continue
            self.quality_findings[found.rule_id] += 1
            published_findings[f"{found.check_name} (rule {found.rule_id})"] += 1
            log.debug("quality finding %s (rule %s) on event %s", found.check_name, found.rule_id, found.event_id)
        if published_alerts:
            log.info("alerts published: %d (%s)", published_alerts.total(), _tally(published_alerts))
        if published_findings:
            log.info("quality findings published: %d (%s)", published_findings.total(), _tally(published_findings))
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
        elif isinstance(item, QualityFinding):
            topic, key, value = self.findings_topic, item.event_id.encode("utf-8"), encode(item)
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
        if isinstance(item, QualityFinding):
            what, topic = f"quality finding {item.finding_id} (rule {item.rule_id})", QUALITY_FINDINGS.name
        elif isinstance(item, AlertRaised):
            what, topic = f"alert {item.alert_id} ({item.rule_id})", ALERTS.name
        else:
            what, topic = "an incident obligation", self.obligations_topic.get_topic_name()
        return dead_letter_from_kafka(
            topic=topic,
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
                await self._changes_acked(Step())
        except Exception:
            log.exception("the deadline timer failed; it runs again in a second")

    def _caught_up(self, topic: str, partition: int) -> bool:
        """This worker has applied every record of the partition the broker has (its clock may follow the wall clock).

        Nothing read since a rebalance counts as caught up when the group's committed offset is the partition's end:
        a quiet partition after a rebalance would otherwise never be caught up, and its deadlines would never fire
        until its next record came.
        """
        tp = TP(topic, partition)
        if tp not in self.app.consumer.assignment():
            # Moved to another worker by a rebalance: not ours to follow (and aiokafka asserts on its highwater,
            # which would fail every tick of this worker, so none of its deadlines would fire).
            return False
        highwater = self.app.consumer.highwater(tp)
        if highwater is None:
            return False
        read = self._read_offsets.get((topic, partition))
        if read is not None:
            return read + 1 >= highwater
        committed = self._known_start(tp)  # never committed: where the broker says the group reads it from
        return committed is not None and committed >= highwater and not self.fence.rewinding

    async def _restore_clocks_again(self, *args: Any, **kwargs: Any) -> None:
        self._clocks_restored = False

    def _restore_clocks(self) -> None:
        """Merge in the saved clocks of the partitions this worker reads, once per assignment (after its recovery).

        Not only at start: a partition another worker held (moved by a rebalance) brings its clocks in the clocks
        table, and a quiet one (its records all committed) brings nothing else to move them, so its deadlines would
        never fire (fifteen `da_contact_overdue` of the scale-out test, 2026-12-07). A saved clock is written only
        once the states of the records that moved it are acknowledged, so it is never ahead of the states recovered
        with it. Skipped: a clock set aside across a rebalance (`_stash_revoked_clocks` merges it back in its time)
        and a partition not assigned here (the table may still hold it).
        """
        if self._clocks_restored:
            return
        self._clocks_restored = True
        try:
            assigned: set[TP] | None = self.app.consumer.assignment()
        except ConsumerNotStarted:  # Faust's test context: no consumer, no rebalance; the table holds only its own
            assigned = None
        saved = []
        for key, value in list(self.saved_clocks.items()):
            topic, partition = _parse_clock_key(key.decode("utf-8"))
            mine = assigned is None or TP(topic, partition) in assigned
            if mine and (topic, partition) not in self._stashed_clocks:
                saved.append(((topic, partition), _clock_from_json(value)))
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

    async def _watch_lane(self) -> None:
        """Every 15 s: say so when one holder has kept the lane for over a minute, and what it is waiting for."""
        stall = self._lane.stall(LANE_STALL_S)
        if stall is not None:
            held, chain = stall
            log.warning("%s %.0f s, waiting in: %s", LANE_HELD, held, chain)

    async def _log_counts(self) -> None:
        log.info(
            "accepted %s; outcomes %s; alerts %s; dead-lettered %s; quality findings %s",
            dict(self.accepted),
            dict(self.outcomes),
            dict(self.alerts_sent),
            dict(self.dead_lettered),
            dict(self.quality_findings),
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


class BatchingTopic(faust.Topic):
    """Faust's topic, except that a send does not give the event loop a turn before it reaches the producer.

    Faust asks for the producer through a `stampede` wrapper that starts with `asyncio.sleep(0)`, so every message
    published gave aiokafka's sender a turn before the next one was queued: with `linger` 0 each changelog write
    and alert went to the broker in a request of its own (about 46,000 produce requests for 62,000 messages in a
    40 s profile). Once the producer is started it is returned as is, and the messages a batch publishes at once
    reach the producer's queue together and share requests. Nothing waits longer: `linger` is still 0.
    """

    async def _get_producer(self) -> Any:
        producer = self.app.producer
        if producer.started and not self.app.in_transaction:
            return producer
        return await super()._get_producer()


class FencedConsumer(AiokafkaConsumer):
    """Faust's consumer, except that it never takes a jump in the offsets delivered for a gap in the log itself.

    Faust counts the offsets it jumps over as done, so its commit passes them; around a rebalance it jumps over
    records it has not delivered (see `streams.fence`). The worker's fence holds such a record back and has the
    partition read again; commits only ever cover records the worker applied.
    """

    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        return None

    async def _drain_messages(self, fetcher: Any) -> None:
        """Faust's loop from fetched records to the agents, except that a record is handed over without a task.

        Faust races each record's hand-over (`callback`: into the stream buffers of the agents) against a flow stop,
        the consumer's stop and a crash with `wait_first`: four tasks and an `asyncio.wait` per record, about an
        eighth of the worker's time in a profile, although the hand-over nearly always completes without waiting.
        Here the hand-over runs at once (`_handed_over`), and only one that has to wait (a full buffer, a flow
        stop) is raced as Faust races it. Offsets, gaps and commits are kept as in Faust's loop.
        """
        callback = self.callback
        getmany = self.getmany
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        acks_enabled_for = self.app.topics.acks_enabled_for
        commit_every = self._commit_every
        since_yield = 0
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                self.diag.set_flag(CONSUMER_FETCHING)
                records = getmany(timeout=1.0)
                await self.sleep(0)  # getmany may answer at once, again and again: let the loop breathe
                if not self.should_stop:
                    async for tp, message in records:
                        since_yield += 1
                        if since_yield > 100:
                            await asyncio.sleep(0)
                            since_yield = 0
                        offset = message.offset
                        read = get_read_offset(tp)
                        if read is not None and offset < read:
                            continue  # read already (Faust logs these at its `dev` level and drops them too)
                        if read and offset - read > 1 and acks_enabled_for(message.topic):
                            await self._add_gap(tp, read + 1, offset)
                        if commit_every is not None and self._n_acked >= commit_every:
                            self._n_acked = 0
                            await self.commit()
                        handing = callback(message)
                        if not isinstance(handing, types.CoroutineType):
                            await self.wait_first(handing, self.suspend_flow.wait())  # not ours to drive
                        else:
                            waiting_on = _handed_over(handing)
                            if waiting_on is not _DONE:
                                carrying_on = asyncio.ensure_future(_carry_on(handing, waiting_on))
                                await self.wait_first(carrying_on, self.suspend_flow.wait())
                        set_read_offset(tp, offset)
                    self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)

    async def group_starts(self, partitions: set[TP]) -> dict[TP, int]:
        """Where the group reads each of `partitions` from, asked of the broker: the group's committed offset, or the
        log start for a partition it never committed (the worker reads from the earliest), and never before the log
        start (records removed by retention are not waited for)."""
        thread = self._thread
        consumer = thread._ensure_consumer()
        committed = await thread.call_thread(_group_committed, consumer, sorted(partitions))
        earliest = await thread.call_thread(_log_starts, consumer, sorted(partitions))
        return {tp: max(committed.get(tp) or 0, earliest.get(tp) or 0) for tp in partitions}


def _tally(counts: Counter[str]) -> str:
    """`a 2, b 1`: each name with its count, in name order."""
    return ", ".join(f"{name} {count}" for name, count in sorted(counts.items()))


_DONE = object()
"""`_handed_over`'s answer for a coroutine that ran to its end."""


def _handed_over(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run `coroutine` until it first waits: `_DONE` if it ran to its end, else what it waits on (a future, or None
    for a bare turn of the loop). A coroutine that waits is to be finished with `_carry_on`."""
    try:
        return coroutine.send(None)
    except StopIteration:
        return _DONE


@types.coroutine
def _carry_on(coroutine: Coroutine[Any, Any, Any], waiting_on: Any) -> Generator[Any, Any, Any]:
    """Finish, in a task, a coroutine `_handed_over` started: first wait on what it waits on, then delegate to it.

    What the task sends or throws (a cancellation included) goes to the coroutine where it waits, exactly as if the
    task had run it from its start.
    """
    pending = waiting_on
    while True:
        try:
            sent = yield pending
        except BaseException as exc:  # thrown into the task (a cancellation): the coroutine gets it where it waits
            try:
                pending = coroutine.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                pending = coroutine.send(sent)
            except StopIteration as stop:
                return stop.value


async def _group_committed(consumer: Any, partitions: list[TP]) -> dict[TP, int | None]:
    """In the consumer's thread: the group's committed offset of each partition (None: never committed)."""
    offsets = await asyncio.gather(*(consumer.committed(TopicPartition(tp.topic, tp.partition)) for tp in partitions))
    return dict(zip(partitions, offsets, strict=True))


async def _log_starts(consumer: Any, partitions: list[TP]) -> dict[TP, int]:
    """In the consumer's thread: each partition's log start, asked of its leader on the client's coordination
    connection, as the group's committed offsets are.

    aiokafka's own `beginning_offsets` asks on the connection its fetches use, and a broker answers one connection's
    requests in turn: there the question waited behind a fetch long-polling for new records (Faust's fetch wait is
    1.5 s). Seen 2026-12-07: 1.5 s per partition looked up, with the state lane held, 16 s of a 67 s throughput run.
    """
    client = consumer._client
    by_leader: dict[int, dict[str, list[tuple[int, int]]]] = {}
    for tp in partitions:
        leader = client.cluster.leader_for_partition(TopicPartition(tp.topic, tp.partition))
        if leader is None or leader < 0:
            client.add_topic(tp.topic)  # has the client refresh its metadata; the caller falls back meanwhile
            raise LookupError(f"no leader known for {tp.topic}[{tp.partition}]")
        by_leader.setdefault(leader, {}).setdefault(tp.topic, []).append((tp.partition, EARLIEST_TIMESTAMP))
    starts: dict[TP, int] = {}
    for leader, topics in by_leader.items():
        request = OffsetRequest(-1, READ_UNCOMMITTED, list(topics.items()))
        response = await client.send(leader, request, group=ConnectionGroup.COORDINATION)
        for topic, answers in response.topics:
            for partition, error_code, *answer in answers:
                error = kafka_errors.for_code(error_code)
                if error is not kafka_errors.NoError:
                    raise error(f"{topic}[{partition}]: the log start could not be listed")
                offsets = answer[0] if response.API_VERSION == 0 else [answer[1]]
                if offsets:
                    starts[TP(topic, partition)] = offsets[0]
    return starts


EARLIEST_TIMESTAMP = -2
"""ListOffsets' timestamp for the earliest offset (the log start)."""
READ_UNCOMMITTED = 0


LANE_STALL_S = 60.0
LANE_HELD = "the state lane (batches, deadline timer, seeks) has been held by one holder for"
STARTS_AT = "applied in offset order from the group's committed offset (else the log start):"
START_UNKNOWN = "could not ask the broker where the group reads it from"
START_LOOKUP_TIMEOUT_S = 10.0
"""How long a worker waits for the broker to say where a partition starts (`Worker._learn_start`)."""


STALLED_AFTER_SEEKS = 12
"""A partition sought back this many times (a minute, 5 s apart) without its next record is reported as an error."""


Outgoing = DaObligation | AlertRaised | DeadLetter | QualityFinding
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


async def _settled(sends: list[Any]) -> list[BaseException | None]:
    """Wait for every send; the error of each that failed (None for those acknowledged). Logs a long wait."""
    waited = 0.0
    pending = {asyncio.ensure_future(sent) for sent in sends}
    while pending:
        _, pending = await asyncio.wait(pending, timeout=60.0)
        if pending:
            waited += 60.0
            log.warning("%d table changes not acknowledged after %.0f s; still waiting", len(pending), waited)
    results: list[BaseException | None] = []
    for sent in sends:
        if sent.cancelled():
            raise asyncio.CancelledError()
        results.append(sent.exception())
    return results


def _record_time(message: Any) -> datetime | None:
    """The Kafka timestamp of a Faust message, or None when the record has none."""
    timestamp = getattr(message, "timestamp", None)
    if not isinstance(timestamp, int | float) or timestamp <= 0:
        return None
    return datetime.fromtimestamp(timestamp, tz=UTC)


def obligations_topic_name(app_id: str) -> str:
    """The internal repartition topic that carries incident obligations to the children present."""
    return f"{app_id}-da-obligations"


def rerouted_topic_name(app_id: str, topic: str) -> str:
    """The internal topic a contract topic's misplaced records are re-published to, each on its key's partition."""
    return f"{app_id}-rerouted-{topic}"


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
    for spec in EVENT_TOPICS:
        purpose = f"records of {spec.name} re-published on their key's partition"
        specs.append(
            TopicSpec(rerouted_topic_name(app_id, spec.name), spec.event_types, spec.key_field, description=purpose)
        )
    for table, purpose in TABLES.items():
        specs.append(TopicSpec(f"{app_id}-{table}-changelog", (), None, cleanup_policy="compact", description=purpose))
    return specs


def _later_clock(a: PartitionClock, b: PartitionClock) -> PartitionClock:
    """Each field the later of the two (a clock never goes back)."""

    def later(x: datetime | None, y: datetime | None) -> datetime | None:
        return y if x is None else x if y is None else max(x, y)

    return PartitionClock(
        newest_event_at=later(a.newest_event_at, b.newest_event_at), reading=later(a.reading, b.reading)
    )


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
