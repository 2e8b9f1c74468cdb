"""The sink service: a kafka-python consumer that batches, inserts, and commits only after the insert succeeded.

A thin adapter around pure code (`sinks.records`, `sinks.mapping`). The guarantees:

- **Nothing lost.** Offsets are committed only after every row of the batch is in the store. While the store is
  unavailable the batch is retried with exponential back-off (the partitions are paused and the consumer keeps
  polling, so it stays in its group); a stop during an outage leaves the batch uncommitted, to be read again.
  A message that cannot be stored as a row becomes a data-quality finding, never an exception.
- **Nothing doubled.** A batch is inserted with a deduplication token derived from its offset ranges, so a
  retry of the same batch is dropped by the store; and every table is a ReplacingMergeTree keyed by the
  message's id, so a re-read after a crash (other batch boundaries) replaces rows: read with FINAL.
- **Kafka going away is not fatal.** While the broker is down the consumer keeps polling and a commit that
  fails is only logged (those messages are read again); the rebalance listener, which kafka-python runs on its
  IO thread, neither blocks on the broker nor raises (either would stall or end the sink): a rebalance costs a
  re-read of the messages not yet committed, never a crash or a loss.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from safeguard.clock import Clock, system_clock
from safeguard.settings import ClickHouseSettings
from schemas.errors import SafeguardError, StoreError
from schemas.limits import DEFAULT_WINDOW, EventTimeWindow
from schemas.topics import TOPICS
from sinks.columns import TableBatch
from sinks.records import Message, MessageMapper
from sinks.store import Client, connect, database_name, insert_batch, insert_types

log = logging.getLogger(__name__)

SINK_TOPICS: tuple[str, ...] = tuple(spec.name for spec in TOPICS)
"""Every contract topic: the four event topics, alerts, alert lifecycle, dead letters."""


class SinkKafkaError(SafeguardError):
    """Kafka refused the sink's consumer for good (not a broker that is away for a while): the sink stops."""


class RowStore(Protocol):
    """Where batches go. `write` either stores every row or raises."""

    def write(self, rows: TableBatch, token: str) -> None: ...

    def close(self) -> None: ...


class ClickHouseStore:
    """The ClickHouse store behind `settings.clickhouse.url`, (re)connected on demand: after a failure the
    client is dropped and the next attempt opens a new one (for a server that came back, or chDB re-opened)."""

    def __init__(
        self,
        settings: ClickHouseSettings,
        *,
        client: Client | None = None,
        opener: Callable[[ClickHouseSettings], Client] = connect,
    ) -> None:
        self._settings = settings
        self._opener = opener
        self._database = database_name(settings)
        self._client: Client | None = client
        self._types: dict[str, list[str]] = {}
        """Each table's insert types, asked once per client (a reconnect asks again)."""

    def write(self, rows: TableBatch, token: str) -> None:
        if self._client is None:
            self._client = self._opener(self._settings)
        try:
            unknown = [table for table in rows.columns if table not in self._types]
            if unknown:
                self._types.update(insert_types(self._client, self._database, unknown))
            insert_batch(self._client, self._database, rows, token=token, types=self._types)
        except Exception as exc:
            self.close()
            raise StoreError(f"insert failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc

    def close(self) -> None:
        client, self._client, self._types = self._client, None, {}
        if client is not None:
            try:
                client.close()
            except Exception:  # closing a broken connection must not hide the error that broke it
                log.debug("closing the ClickHouse client failed", exc_info=True)


@dataclass
class SinkStats:
    """Counts since the service started."""

    messages: int = 0
    """Messages read (stored, buffered for the next batch, or in the insert in flight)."""
    rows: int = 0
    """Rows stored and committed."""
    findings: int = 0
    batches: int = 0
    failed_attempts: int = 0
    committed: dict[tuple[str, int], int] = field(default_factory=dict)
    first_record_at: float | None = None
    """Monotonic time the first message arrived (throughput is counted from here, after the group join)."""
    last_commit_at: float | None = None
    """Monotonic time of the last successful commit."""

    def rows_per_second(self) -> float | None:
        if self.first_record_at is None or self.last_commit_at is None or self.last_commit_at <= self.first_record_at:
            return None
        return self.rows / (self.last_commit_at - self.first_record_at)


@dataclass
class _Batch:
    messages: int = 0
    rows: TableBatch = field(default_factory=TableBatch)
    first: dict[tuple[str, int], int] = field(default_factory=dict)
    last: dict[tuple[str, int], int] = field(default_factory=dict)
    started: float = 0.0

    def add(self, records: list[Any], now: float) -> None:
        """Count a poll's records of one partition (in offset order), whose rows are in `rows`."""
        if not self.messages:
            self.started = now
        self.messages += len(records)
        tp = (records[0].topic, records[0].partition)
        self.first.setdefault(tp, records[0].offset)
        self.last[tp] = records[-1].offset

    def token(self) -> str:
        """Fixed by the offset ranges the batch holds: the same messages give the same token."""
        ranges = ",".join(f"{t}:{p}:{self.first[(t, p)]}-{self.last[(t, p)]}" for t, p in sorted(self.first))
        return "sink:" + hashlib.sha256(ranges.encode("utf-8")).hexdigest()[:32]


class ConsumerLike(Protocol):
    """The part of kafka-python's KafkaConsumer the service uses."""

    def subscribe(self, topics: Iterable[str] = ..., pattern: Any = ..., listener: Any = ...) -> None: ...
    def poll(self, timeout_ms: int = ..., max_records: int | None = ..., update_offsets: bool = ...) -> Any: ...
    def commit(self, offsets: Any = ..., timeout_ms: Any = ...) -> None: ...
    def commit_async(self, offsets: Any = ..., callback: Any = ...) -> Any: ...
    def assignment(self) -> set[Any]: ...
    def pause(self, *partitions: Any) -> None: ...
    def resume(self, *partitions: Any) -> None: ...
    def seek(self, partition: Any, offset: int) -> None: ...
    def position(self, partition: Any) -> int: ...
    def end_offsets(self, partitions: list[Any]) -> dict[Any, int]: ...
    def partitions_for_topic(self, topic: str) -> set[int] | None: ...
    def close(self, autocommit: bool = ...) -> None: ...
    def metrics(self) -> dict[str, Any]: ...


class SinkService:
    """Consume every contract topic into the store. `run()` until `stop()` (or until caught up)."""

    def __init__(
        self,
        consumer: ConsumerLike,
        store: RowStore,
        settings: ClickHouseSettings,
        *,
        clock: Clock = system_clock,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        progress_every_s: float = 10.0,
        event_time: EventTimeWindow = DEFAULT_WINDOW,
        reconnect: Callable[[], ConsumerLike] | None = None,
        rejoin_timeout_s: float = 60.0,
    ) -> None:
        self._consumer = consumer
        self._mapper = MessageMapper(event_time)
        self._reconnect = reconnect
        self._rejoin_timeout_s = rejoin_timeout_s
        self._ever_assigned = False
        self._coordinator_lost_at: float | None = None
        self._listener: Any = None
        self._store = store
        self._settings = settings
        self._clock = clock
        self._monotonic = monotonic
        self._sleep = sleep
        self._progress_every_s = progress_every_s
        self._batch = _Batch()
        self._inflight: tuple[_Batch, Future[None]] | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sink-insert")
        self._abandoned = False
        self._unrewound: str | None = None
        """Set when the rebalance listener failed before rewinding what it forgot (see `_on_revoked`)."""
        self._stopping = False
        self.stats = SinkStats()

    def stop(self) -> None:
        """Ask the loop to flush, commit and return (safe to call from a signal handler)."""
        self._stopping = True

    def run(self, *, until_caught_up: bool = False) -> SinkStats:
        from kafka import ConsumerRebalanceListener

        service = self

        class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
            # kafka-python calls these on its IO thread, inside poll() or close(): see _on_revoked.
            def on_partitions_revoked(self, revoked: Any) -> None:
                service._on_revoked(lost=False)

            def on_partitions_lost(self, lost: Any) -> None:
                service._on_revoked(lost=True)

            def on_partitions_assigned(self, assigned: Any) -> None:
                service._ever_assigned = True
                log.info("assigned %d partitions", len(assigned))

        self._listener = _Listener()
        self._join()
        last_progress = self._monotonic()
        failure: SinkKafkaError | None = None
        try:
            try:
                while not self._stopping:
                    room = max(self._settings.batch_rows - self._batch.messages, 1)
                    polled = self._poll(self._poll_timeout_ms(short=until_caught_up), max_records=room)
                    self._add_polled(polled)
                    # Read to the end (not merely a poll that came back empty while a fetch was on its way, which
                    # would flush a part of a batch): nothing more to read, so no reason to wait.
                    at_end = until_caught_up and not polled and self._caught_up()
                    if self._due() or at_end:
                        self._flush(wait=False)
                    if at_end and not self._batch.messages:
                        self._complete()
                        if self._caught_up() and not self._batch.messages:
                            log.info("caught up with every partition")
                            break
                    if self._inflight is not None and (self._inflight[1].done() or not polled):
                        # Commit a finished insert now (or wait for it when there is nothing to read), never only
                        # when the next batch is flushed: after the last batch of a burst there may be no next batch
                        # for hours, and its offsets would stay uncommitted until a stop.
                        self._complete()
                    if self._abandoned:
                        break
                    if self._monotonic() - last_progress >= self._progress_every_s:
                        last_progress = self._monotonic()
                        self._log_progress()
                        if self._out_of_group():
                            self._replace_consumer()
                self._flush()
            except SinkKafkaError as exc:
                failure = exc
                unsettled = self._batch.messages + (self._inflight[0].messages if self._inflight is not None else 0)
                log.error(
                    "stopping: %s; the messages read since the last commit (%d or more) are not committed and will "
                    "be read again",
                    exc,
                    unsettled,
                )
        finally:
            self._pool.shutdown(wait=True)
            self._log_progress()
            try:
                self._consumer.close(autocommit=False)
            except Exception as exc:  # a broker that is away cannot be told we leave; the group times us out
                log.warning("closing the Kafka consumer failed (the group will notice by itself): %s", exc)
            finally:
                self._store.close()
        if failure is not None:
            raise failure
        return self.stats

    def _out_of_group(self) -> bool:
        """The consumer was a member of its group but, for `rejoin_timeout_s`, has sent no heartbeat, or has not
        known its group coordinator or not been a stable member (checked at each progress line).

        kafka-python does not always find its way back into the group after the broker restarts (its reconnection
        can stall for good: dpkp/kafka-python #1477 and kin); a sink in that state reads nothing and says nothing.
        """
        if self._reconnect is None or not self._ever_assigned:
            return False
        now = self._monotonic()
        try:
            metrics = self._consumer.metrics()
            silent_s = float(metrics["consumer-coordinator-metrics"]["last-heartbeat-seconds-ago"])
        except Exception:  # a consumer without these metrics
            silent_s = 0.0
        coordinator = getattr(self._consumer, "_coordinator", None)  # kafka-python's; absent from other consumers
        try:
            # Not knowing the coordinator, or knowing it but never getting back to a stable membership (a join
            # that never completes: seen after a broker restart, with heartbeats' clock reset by each attempt).
            unknown = bool(
                coordinator is not None
                and (coordinator.coordinator_unknown() or (hasattr(coordinator, "stable") and not coordinator.stable()))
            )
        except Exception:
            unknown = False
        if not unknown:
            self._coordinator_lost_at = None
        elif self._coordinator_lost_at is None:
            self._coordinator_lost_at = now
        lost_s = 0.0 if self._coordinator_lost_at is None else now - self._coordinator_lost_at
        return max(silent_s, lost_s) > self._rejoin_timeout_s

    def _replace_consumer(self) -> None:
        """A new consumer for the stalled one: what was read and not committed is read again (the tables dedupe)."""
        assert self._reconnect is not None
        log.warning(
            "the Kafka consumer has not been in its group for %.0f s (no heartbeat since); replacing it",
            self._rejoin_timeout_s,
        )
        if self._inflight is not None:
            try:
                self._inflight[1].result()  # let a running insert finish; its offsets are read again, not committed
            except Exception:  # stored or not, the messages are read again
                log.debug("the insert in flight failed while replacing the consumer", exc_info=True)
        forgotten = self._forget_uncommitted()
        old, self._consumer = self._consumer, self._reconnect()
        try:
            old.close(autocommit=False)
        except Exception as exc:
            log.warning("closing the stalled Kafka consumer failed: %s", exc)
        self._ever_assigned = False
        self._coordinator_lost_at = None
        self._join()
        log.info("a new Kafka consumer joins the group; %d messages not committed will be read again", forgotten)

    def _join(self) -> None:
        """Subscribe, knowing every sink topic's partitions first.

        kafka-python joins the group with whatever metadata it holds and, for a topic list (not a pattern), does not
        refresh it first: a join made before the topics' partitions are known assigns nothing, and an update arriving
        during the join is lost (KAFKA-3949). The notifier was seen waiting so under CI load; the sink's stall detector
        would replace such a consumer, but only after minutes.
        """
        unknown = [topic for topic in SINK_TOPICS if not self._consumer.partitions_for_topic(topic)]
        if unknown:
            log.warning("no partitions known yet for %s (not created?); the sink reads them once they are", unknown)
        self._consumer.subscribe(list(SINK_TOPICS), listener=self._listener)

    def _poll(self, timeout_ms: int, max_records: int | None = None) -> dict[Any, list[Any]]:
        """Poll. A Kafka error that may pass (a broker restarting, a coordinator moving) is logged and gives
        nothing: polling goes on. Any other error raises SinkKafkaError, and the sink stops without committing
        more (whatever it read since its last commit is read again by the next sink)."""
        from kafka.errors import KafkaError

        try:
            polled: dict[Any, list[Any]] = self._consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
        except KafkaError as exc:
            if not getattr(exc, "retriable", False):
                raise SinkKafkaError(f"the sink's Kafka consumer failed: {type(exc).__name__}: {exc}") from exc
            log.warning("Kafka is not answering, still trying: %s: %s", type(exc).__name__, exc)
            self._sleep(0.5)
            return {}
        except Exception as exc:
            log.debug("the sink's Kafka consumer failed", exc_info=True)
            raise SinkKafkaError(f"the sink's Kafka consumer failed: {type(exc).__name__}: {exc}") from exc
        if self._unrewound is not None:  # what this poll returned may lie past messages that were never stored
            raise SinkKafkaError(self._unrewound)
        return polled

    # -- batching -------------------------------------------------------------------------------------------

    def _add_polled(self, polled: dict[Any, list[Any]]) -> None:
        """Map every record of a poll into the batch; one reading of the wall clock (`ingested_at`) per poll."""
        if not polled:
            return
        ingested_at, now = self._clock(), self._monotonic()
        if self.stats.first_record_at is None:
            self.stats.first_record_at = now
        batch, add = self._batch, self._mapper.add
        for records in polled.values():
            if not records:
                continue
            for r in records:
                message = Message(r.topic, r.partition, r.offset, r.key, r.value, r.timestamp, r.headers)
                add(batch.rows, message, ingested_at)
            batch.add(records, now)
            self.stats.messages += len(records)

    def _due(self) -> bool:
        batch = self._batch
        if not batch.messages:
            return False
        return (
            batch.messages >= self._settings.batch_rows
            or self._monotonic() - batch.started >= self._settings.batch_seconds
        )

    def _poll_timeout_ms(self, *, short: bool = False) -> int:
        """Up to 500 ms, less when the batch is due sooner; 50 ms while an insert runs (so that its commit is not
        held up by a poll waiting for records that are not coming) or when `short` (catching up: the end of the
        topics is found by the first poll that comes back empty, then checked against the end offsets)."""
        longest = 50 if short or (self._inflight is not None and not self._inflight[1].done()) else 500
        if not self._batch.messages:
            return longest
        left = self._settings.batch_seconds - (self._monotonic() - self._batch.started)
        return max(1, min(longest, int(left * 1000)))  # not 0: a batch due in less than 1 ms would spin

    def _flush(self, *, wait: bool = True) -> None:
        """Hand the batch to the insert thread (after the previous insert finished and was committed).

        Inserting overlaps with reading and mapping the next batch; offsets are committed here, in the consumer's
        thread, in batch order, each only after its insert succeeded. `wait` also waits for this insert."""
        if self._batch.messages and not self._abandoned:
            self._complete()
            if not self._abandoned:
                batch, self._batch = self._batch, _Batch()
                self._inflight = (batch, self._pool.submit(self._store.write, batch.rows, batch.token()))
        if wait:
            self._complete()

    def _complete(self) -> None:
        """Wait for the insert in flight; retry it while the store is unavailable; commit it when stored."""
        if self._inflight is None:
            return
        batch, future = self._inflight
        self._inflight = None
        try:
            future.result()
        except StoreError as exc:
            self.stats.failed_attempts += 1
            if not self._retry(batch, exc):
                self._abandoned = True
                self._batch = _Batch()
                return
        self._commit(batch)
        self.stats.batches += 1
        self.stats.rows += len(batch.rows)
        self.stats.findings += batch.rows.findings
        log.debug("stored %d messages as %d rows", batch.messages, len(batch.rows))

    def _retry(self, batch: _Batch, error: StoreError) -> bool:
        """Retry a failed insert with exponential back-off, partitions paused. False if asked to stop first:
        then nothing more is committed and the unstored messages are read again next time."""
        token = batch.token()
        delay = self._settings.retry_initial_s
        paused: list[Any] = []
        try:
            while True:
                if self._stopping:
                    log.warning(
                        "stopping while the store is unavailable: %d messages are not stored and stay "
                        "uncommitted; they will be read again (%s)",
                        batch.messages + self._batch.messages,
                        error,
                    )
                    return False
                log.warning("store unavailable, retrying in %.1fs: %s", delay, error)
                if not paused:
                    paused = list(self._consumer.assignment())
                    self._consumer.pause(*paused)
                self._wait(delay)
                delay = min(delay * 2, self._settings.retry_max_s)
                try:
                    self._store.write(batch.rows, token)
                    return True
                except StoreError as exc:
                    self.stats.failed_attempts += 1
                    error = exc
        finally:
            if paused:
                still = self._consumer.assignment()  # a rebalance meanwhile may have taken some away
                self._consumer.resume(*[tp for tp in paused if tp in still])

    def _wait(self, seconds: float) -> None:
        """Back off while staying in the group: the partitions are paused, so polling returns nothing."""
        deadline = self._monotonic() + seconds
        while not self._stopping:
            left = deadline - self._monotonic()
            if left <= 0:
                return
            polled = self._poll(max(1, int(min(left, 0.5) * 1000)))  # never 0: a poll that waits no time spins
            self._add_polled(polled)  # a rebalance may hand us new, unpaused partitions

    def _commit(self, batch: _Batch) -> None:
        from kafka.errors import CommitFailedError, KafkaError
        from kafka.structs import OffsetAndMetadata, TopicPartition

        offsets = {TopicPartition(t, p): OffsetAndMetadata(last + 1, "", -1) for (t, p), last in batch.last.items()}
        try:
            self._consumer.commit(offsets=offsets)
        except (CommitFailedError, KafkaError) as exc:
            # The rows are stored; whoever reads these offsets again replaces them (ReplacingMergeTree), so the
            # cost of a failed commit is a re-read, not a loss or a double count.
            log.warning("committing offsets failed (they will be read again, without double counting): %s", exc)
            return
        for (t, p), last in batch.last.items():
            self.stats.committed[(t, p)] = last + 1
        self.stats.last_commit_at = self._monotonic()

    def _commit_async(self, batch: _Batch) -> None:
        """Commit without waiting (for the rebalance listener, which must not block); a failure is only logged:
        the rows are stored, so whoever reads these offsets again replaces them."""
        from kafka.structs import OffsetAndMetadata, TopicPartition

        offsets = {TopicPartition(t, p): OffsetAndMetadata(last + 1, "", -1) for (t, p), last in batch.last.items()}

        def done(_offsets: Any, response: Any) -> None:
            if isinstance(response, BaseException):
                log.warning("committing offsets failed (they will be read again, without double counting): %s",
                            response)  # fmt: skip
                return
            for (t, p), last in batch.last.items():
                self.stats.committed[(t, p)] = last + 1
            self.stats.last_commit_at = self._monotonic()

        self._consumer.commit_async(offsets=offsets, callback=done)

    def _on_revoked(self, *, lost: bool) -> None:
        """Partitions are leaving (a rebalance; `lost` when the group already gave them away, e.g. after Kafka was
        unreachable for longer than the session timeout).

        kafka-python runs this on its IO thread, inside `poll` or `close`. So it must not block on the broker
        (kafka-python refuses a blocking commit there, and with a dead broker it would stall the rebalance) and it
        must not raise (kafka-python re-raises from `poll`, which would end the sink). Nothing is stored or
        committed synchronously: an insert that already succeeded has its offsets committed asynchronously
        (unless the partitions are lost: the group has moved on); everything else read is forgotten and read
        again by whoever owns the partitions next: a partition that moves starts from its committed offset, and one
        that comes back to this consumer keeps its position (kafka-python 3.0, eager protocol), so the partitions
        are rewound here, while still assigned, to the first message forgotten. The tables dedupe by id, so the
        cost is a re-read, never a loss or a double count. Should this fail before the rewind, the sink stops at
        its next poll without committing more (`_unrewound`) rather than skip what it forgot."""
        rewound = False
        try:
            stored: _Batch | None = None
            if self._inflight is not None and not lost:
                batch, future = self._inflight
                if future.done() and future.exception() is None:
                    self._inflight = None
                    stored = batch
            forgotten = self._forget_uncommitted()
            rewound = True
            if forgotten:
                log.warning(
                    "partitions %s: %d messages read but not yet committed will be read again (the tables dedupe "
                    "them by id)",
                    "lost" if lost else "revoked",
                    forgotten,
                )
            if stored is not None:
                self.stats.batches += 1
                self.stats.rows += len(stored.rows)
                self.stats.findings += stored.rows.findings
                self._commit_async(stored)
        except Exception:  # never out of the listener: kafka-python would re-raise it from poll and end the sink
            log.exception("handling the revoked partitions failed; uncommitted messages will be read again")
            self._inflight = None
            self._batch = _Batch()
            if not rewound:
                # kafka-python keeps the position of a partition that is assigned again (eager protocol): without
                # the rewind, the next poll would go on after messages never stored, and the next commit would skip
                # them. Stopping without committing more is the safe way out: the next sink reads them again.
                self._unrewound = (
                    "the rebalance listener failed before rewinding the partitions to the messages it forgot; "
                    "stopping without committing more, so that none of them is skipped"
                )

    def _forget_uncommitted(self) -> int:
        """Drop the buffered batch and the insert in flight (not waited for: it may still land, and a re-read
        replaces its rows), rewinding the partitions still assigned. Returns how many messages are forgotten."""
        batches = [self._batch] if self._batch.messages else []
        if self._inflight is not None:
            batches.insert(0, self._inflight[0])
            self._inflight = None
        self._batch = _Batch()
        if batches:
            self._rewind(batches)
        return sum(b.messages for b in batches)

    def _rewind(self, batches: list[_Batch]) -> None:
        """Forget unstored batches; partitions still assigned go back to their first offsets (nothing skipped)."""
        from kafka.structs import TopicPartition

        assigned = self._consumer.assignment()
        first: dict[tuple[str, int], int] = {}
        for batch in batches:
            for tp, offset in batch.first.items():
                first[tp] = min(offset, first.get(tp, offset))
            self.stats.messages -= batch.messages
        for (t, p), offset in first.items():
            tp = TopicPartition(t, p)
            if tp in assigned:
                try:
                    self._consumer.seek(tp, offset)
                except Exception as exc:  # e.g. taken away meanwhile: its next owner starts from the commit
                    log.warning("could not rewind %s to offset %d: %s", tp, offset, exc)

    # -- progress -------------------------------------------------------------------------------------------

    def _caught_up(self) -> bool:
        """Every partition of every existing sink topic is assigned and read to its end (not while Kafka is away)."""
        from kafka.errors import KafkaError
        from kafka.structs import TopicPartition

        try:
            assigned = self._consumer.assignment()
            expected = {
                TopicPartition(topic, p)
                for topic in SINK_TOPICS
                for p in (self._consumer.partitions_for_topic(topic) or ())
            }
            if not expected or not expected <= assigned:
                return False
            ends = self._consumer.end_offsets(sorted(expected))
            return all(self._consumer.position(tp) >= end for tp, end in ends.items())
        except KafkaError as exc:
            log.warning("cannot tell whether the sink is caught up (Kafka is not answering, still trying): %s", exc)
            return False

    def _log_progress(self) -> None:
        """Buffered or in-flight counts that stay above 0 while the topics are quiet mean a batch is not committed."""
        s = self.stats
        log.info(
            "sink: %d messages read (%d buffered, %d in flight), %d rows stored (%d data-quality findings) "
            "in %d batches; %d failed insert attempts",
            s.messages,
            self._batch.messages,
            self._inflight[0].messages if self._inflight is not None else 0,
            s.rows,
            s.findings,
            s.batches,
            s.failed_attempts,
        )


def tune_gc() -> None:
    """Collect the young generation less often: a poll allocates tens of thousands of records and parsed messages,
    and the default thresholds spend a tenth of the sink's time re-scanning them. Process-wide: the entry calls it."""
    gc.set_threshold(50_000, 50, 100)


def kafka_consumer(client_options: dict[str, Any], settings: ClickHouseSettings) -> Any:
    """The sink's consumer: its own group, manual commits, from the earliest offset when the group is new.

    A fetch the broker has nothing for is answered after 100 ms rather than kafka-python's 500: requests on a
    connection are answered in order, so the end offsets asked when the sink is caught up (and any request after
    a poll that found nothing) wait behind that fetch. Only an idle consumer asks more often (ten small fetches a
    second); a fetch with records to give is answered at once either way.
    """
    from kafka import KafkaConsumer

    return KafkaConsumer(
        **client_options,
        group_id=settings.consumer_group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
        max_poll_records=settings.batch_rows,
        session_timeout_ms=settings.session_timeout_ms,
        heartbeat_interval_ms=max(1000, settings.session_timeout_ms // 4),
        group_instance_id=settings.instance_id,
        # a group formed before a topic's partitions were known assigns them at the next metadata refresh: 30 s, not
        # kafka-python's 5 min
        metadata_max_age_ms=30_000,
    )
