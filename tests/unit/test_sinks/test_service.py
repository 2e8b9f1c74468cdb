"""The service's commit/retry logic with an in-memory consumer and store (the real ones are in tests/integration)."""

from __future__ import annotations

import logging
from collections import namedtuple
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from kafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError, NodeNotReadyError
from kafka.structs import TopicPartition

from safeguard.settings import ClickHouseSettings
from schemas.codec import encode, validate_event
from schemas.errors import StoreError
from sinks.columns import TableBatch
from sinks.mapping import TableRow
from sinks.service import SINK_TOPICS, SinkKafkaError, SinkService
from tests.unit.test_schemas import examples as ex

Record = namedtuple("Record", "topic partition offset key value timestamp headers", defaults=[()])
TOPIC = "safeguarding.contacts.v1"


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class MemoryConsumer:
    """Topic partitions as lists; poll advances the fake clock by its timeout when it has nothing to give."""

    def __init__(self, records: dict[TopicPartition, list[Record]], clock: FakeClock) -> None:
        self.records = records
        self.pos = dict.fromkeys(records, 0)
        self.paused: set[TopicPartition] = set()
        self.commits: list[dict[TopicPartition, int]] = []
        self.clock = clock
        self.events: list[str] = []
        self.closed = False
        self.before_poll: Callable[[], None] | None = None
        self.listener: Any = None
        self.in_listener = False
        self.rebalances: list[str] = []
        """Rebalances the next polls run first, as kafka-python does inside poll: "revoked" or "lost"."""
        self.async_commits: list[dict[TopicPartition, int]] = []
        self.poll_errors: list[Exception] = []

    def subscribe(self, topics: Any = (), pattern: Any = None, listener: Any = None) -> None:
        assert set(topics) == set(SINK_TOPICS)
        self.listener = listener

    def _committed(self, tp: TopicPartition) -> int:
        return next((c[tp] for c in reversed(self.commits + self.async_commits) if tp in c), 0)

    def _rebalance(self, how: str) -> None:
        """Eager rebalancing the way kafka-python does it: the listener runs on the IO thread (where a blocking
        commit raises), an exception out of it comes back out of poll, and the new assignment starts every
        partition from its committed offset."""
        self.in_listener = True
        try:
            if how == "lost":
                self.listener.on_partitions_lost(set(self.records))
            else:
                self.listener.on_partitions_revoked(set(self.records))
        except Exception as exc:
            raise KafkaError("User rebalance callback throws an error") from exc
        finally:
            self.in_listener = False
        self.pos = {tp: self._committed(tp) for tp in self.records}
        self.events.append(how)
        self.listener.on_partitions_assigned(set(self.records))

    def poll(self, timeout_ms: int = 0, max_records: int | None = None, update_offsets: bool = True) -> Any:
        if self.before_poll is not None:
            self.before_poll()
        if self.poll_errors:
            self.clock.now += timeout_ms / 1000
            raise self.poll_errors.pop(0)
        if self.rebalances:
            self._rebalance(self.rebalances.pop(0))
        out: dict[TopicPartition, list[Record]] = {}
        budget = max_records or 500
        for tp, recs in self.records.items():
            if tp in self.paused or budget <= 0:
                continue
            chunk = recs[self.pos[tp] : self.pos[tp] + budget]
            if chunk:
                out[tp] = chunk
                self.pos[tp] += len(chunk)
                budget -= len(chunk)
        if not out:
            self.clock.now += timeout_ms / 1000
        return out

    def commit(self, offsets: Any = None, timeout_ms: Any = None) -> None:
        if self.in_listener:
            raise RuntimeError("Cannot block on net.run() from the IO thread itself.")
        self.commits.append({tp: om.offset for tp, om in offsets.items()})
        self.events.append("commit")

    def commit_async(self, offsets: Any = None, callback: Any = None) -> None:
        self.async_commits.append({tp: om.offset for tp, om in offsets.items()})
        self.events.append("commit_async")
        if callback is not None:
            callback(offsets, None)

    def assignment(self) -> set[TopicPartition]:
        return set(self.records)

    def pause(self, *partitions: TopicPartition) -> None:
        self.paused |= set(partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        self.paused -= set(partitions)

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.pos[partition] = offset

    def position(self, partition: TopicPartition) -> int:
        return self.pos[partition]

    def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: len(self.records[tp]) for tp in partitions}

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return {tp.partition for tp in self.records if tp.topic == topic} or None

    def close(self, autocommit: bool = True) -> None:
        self.closed = True


class FlakyStore:
    def __init__(self, consumer: MemoryConsumer, failures: int = 0) -> None:
        self.failures = failures
        self.batches: list[tuple[str, list[TableRow]]] = []
        self.consumer = consumer
        self.closed = False
        self.paused_while_failing: list[bool] = []

    def write(self, rows: TableBatch, token: str) -> None:
        if self.failures:
            self.failures -= 1
            self.paused_while_failing.append(bool(self.consumer.paused))
            raise StoreError("connection refused")
        self.batches.append((token, list(rows.rows())))
        self.consumer.events.append("write")

    def close(self) -> None:
        self.closed = True


def _records(n: int, partition: int = 0) -> list[Record]:
    out = []
    for i in range(n):
        obj = {**ex.minimal("contact.decided"), "event_id": f"7f1d9c2e-3a4b-4c5d-8e6f-{partition:04d}{i:08d}"}
        out.append(Record(TOPIC, partition, i, ex.CHILD.encode(), encode(validate_event(obj)), 1_740_900_000_000))
    return out


def _service(
    records: dict[TopicPartition, list[Record]],
    failures: int = 0,
    consumer_type: type[MemoryConsumer] = MemoryConsumer,
    **settings: Any,
) -> tuple[SinkService, MemoryConsumer, FlakyStore]:
    clock = FakeClock()
    consumer = consumer_type(records, clock)
    store = FlakyStore(consumer, failures)
    section = ClickHouseSettings(**{"batch_rows": 4, "batch_seconds": 1.0, "retry_initial_s": 0.5, **settings})
    service = SinkService(
        consumer,
        store,
        section,
        clock=lambda: datetime(2025, 3, 2, tzinfo=UTC),
        monotonic=clock,
        sleep=lambda seconds: None,
    )
    return service, consumer, store


def _add(service: SinkService, *records: Record) -> None:
    """Records as a poll would hand them over (one list per partition, in order)."""
    polled: dict[TopicPartition, list[Record]] = {}
    for record in records:
        polled.setdefault(TopicPartition(record.topic, record.partition), []).append(record)
    service._add_polled(polled)


def _stored_offsets(store: FlakyStore) -> list[tuple[int, int]]:
    return sorted((row["kafka_partition"], row["kafka_offset"]) for _, rows in store.batches for _, row in rows)


def test_every_message_is_written_then_committed() -> None:
    tp0, tp1 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)
    service, consumer, store = _service({tp0: _records(6, 0), tp1: _records(3, 1)})
    stats = service.run(until_caught_up=True)
    assert _stored_offsets(store) == [(0, i) for i in range(6)] + [(1, i) for i in range(3)]
    assert stats.messages == stats.rows == 9
    assert stats.committed == {(TOPIC, 0): 6, (TOPIC, 1): 3}
    assert consumer.events == ["write", "commit"] * len(store.batches)
    assert all(len(rows) <= 4 for _, rows in store.batches)
    assert consumer.closed and store.closed


def test_store_outage_is_retried_with_partitions_paused_and_loses_nothing() -> None:
    tp = TopicPartition(TOPIC, 0)
    service, consumer, store = _service({tp: _records(4)}, failures=3)
    stats = service.run(until_caught_up=True)
    assert stats.failed_attempts == 3
    assert store.paused_while_failing == [False, True, True]
    assert not consumer.paused
    assert _stored_offsets(store) == [(0, i) for i in range(4)]
    assert consumer.commits == [{tp: 4}]
    assert len(store.batches) == 1


def test_stop_during_an_outage_commits_nothing() -> None:
    tp = TopicPartition(TOPIC, 0)
    service, consumer, store = _service({tp: _records(4)}, failures=10**6)

    def write(rows: TableBatch, token: str) -> None:
        service.stop()
        raise StoreError("down")

    store.write = write  # type: ignore[method-assign]
    stats = service.run()
    assert consumer.commits == []
    assert stats.committed == {}
    assert consumer.closed


def test_same_offsets_give_the_same_token() -> None:
    tp = TopicPartition(TOPIC, 0)
    first, _, store1 = _service({tp: _records(8)})
    first.run(until_caught_up=True)
    again, _, store2 = _service({tp: _records(8)})
    again.run(until_caught_up=True)
    tokens = [t for t, _ in store1.batches]
    assert tokens == [t for t, _ in store2.batches]
    assert len(set(tokens)) == 2


def test_undecodable_message_is_stored_as_a_finding_and_committed() -> None:
    tp = TopicPartition(TOPIC, 0)
    bad = Record(TOPIC, 0, 0, b"k", b"\x00garbage", 1_740_900_000_000)
    good = _records(2)
    records = [bad, *(r._replace(offset=i + 1) for i, r in enumerate(good))]
    service, consumer, store = _service({tp: records})
    stats = service.run(until_caught_up=True)
    tables = [t for _, rows in store.batches for t, _ in rows]
    assert tables == ["data_quality_findings", "contact_decisions", "contact_decisions"]
    assert stats.findings == 1
    assert consumer.commits[-1] == {tp: 3}


def test_time_closes_a_small_batch() -> None:
    tp = TopicPartition(TOPIC, 0)
    service, consumer, store = _service({tp: _records(2)}, batch_rows=1000, batch_seconds=2.0)
    service.run(until_caught_up=True)
    assert [len(rows) for _, rows in store.batches] == [2]
    assert consumer.commits == [{tp: 2}]


def _merged(commits: list[dict[TopicPartition, int]]) -> dict[TopicPartition, int]:
    out: dict[TopicPartition, int] = {}
    for commit in commits:
        out.update(commit)
    return out


def test_messages_arriving_while_an_insert_is_in_flight_are_committed_while_the_sink_runs() -> None:
    """The last, small batch of a burst (alerts raised after the events' batch went to the insert thread, then
    silence) is inserted by time and committed while the sink keeps running, not only when it is stopped."""
    tp = TopicPartition(TOPIC, 0)
    every = _records(7)
    service, consumer, store = _service({tp: every[:4]}, batch_rows=1000, batch_seconds=2.0)
    write = store.write

    def write_while_more_arrive(rows: TableBatch, token: str) -> None:
        if not store.batches:
            consumer.records[tp].extend(every[4:])  # published while the first insert is in flight
        write(rows, token)

    store.write = write_while_more_arrive  # type: ignore[method-assign]
    while_running: list[dict[TopicPartition, int]] = []

    def stop_after_a_quiet_minute() -> None:
        if consumer.clock.now >= 60 and not while_running:
            while_running.append(_merged(consumer.commits))
            service.stop()

    consumer.before_poll = stop_after_a_quiet_minute
    stats = service.run()
    assert while_running == [{tp: 7}], "the late messages stayed uncommitted until the stop"
    assert [len(rows) for _, rows in store.batches] == [4, 3]
    assert stats.batches == 2 and stats.committed == {(TOPIC, 0): 7}


def test_a_finished_insert_is_committed_before_the_next_batch_is_due() -> None:
    tp = TopicPartition(TOPIC, 0)
    service, consumer, store = _service({tp: _records(3)}, batch_rows=1000, batch_seconds=2.0)
    seen: list[tuple[float, dict[TopicPartition, int]]] = []

    def watch() -> None:
        if store.batches and not seen and _merged(consumer.commits):
            seen.append((consumer.clock.now, _merged(consumer.commits)))
        if consumer.clock.now >= 30:
            service.stop()

    consumer.before_poll = watch
    service.run()
    assert seen, "the finished insert was committed only when the sink stopped"
    [(at, committed)] = seen
    assert committed == {tp: 3}
    assert at <= 2.0 + 1.0, "committed only a poll or two after the batch closed"


def test_progress_says_what_is_buffered_and_in_flight(caplog: Any) -> None:
    """Read, buffered (not yet handed to the insert thread) and in flight (handed over, not yet committed)."""
    tp = TopicPartition(TOPIC, 0)
    records = _records(3)
    service, consumer, _ = _service({tp: records}, batch_rows=1000)
    caplog.set_level(logging.INFO, logger="sinks.service")
    _add(service, records[0])
    _add(service, records[1])
    service._flush(wait=False)
    _add(service, records[2])
    service._log_progress()
    assert "3 messages read (1 buffered, 2 in flight)" in caplog.text, caplog.text
    assert "0 rows stored" in caplog.text
    caplog.clear()
    service._flush()
    service._log_progress()
    assert "3 messages read (0 buffered, 0 in flight), 3 rows stored" in caplog.text, caplog.text
    assert consumer.commits == [{tp: 2}, {tp: 3}]


# -- Kafka going away: the rebalance listener, failed commits, failed polls ---------------------------------------


@pytest.mark.parametrize("how", ["revoked", "lost"])
def test_a_rebalance_while_a_batch_is_buffered_is_a_re_read_not_a_crash(how: str) -> None:
    """kafka-python runs the listener on its IO thread inside poll: a blocking commit there raises, and the error
    comes back out of poll. The listener stores and commits nothing; the batch is read again and stored once."""
    tp = TopicPartition(TOPIC, 0)
    service, consumer, store = _service({tp: _records(3)}, batch_rows=1000, batch_seconds=2.0)

    def rebalance_once_buffered_then_stop() -> None:
        if service._batch.messages and "rebalanced" not in consumer.events:
            consumer.rebalances.append(how)
            consumer.events.append("rebalanced")
        if consumer.clock.now >= 30:
            service.stop()

    consumer.before_poll = rebalance_once_buffered_then_stop
    stats = service.run()
    assert consumer.events == ["rebalanced", how, "write", "commit"]
    assert _stored_offsets(store) == [(0, 0), (0, 1), (0, 2)]
    assert consumer.commits == [{tp: 3}] and consumer.async_commits == []
    assert stats.messages == stats.rows == 3 and stats.committed == {(TOPIC, 0): 3}


def _stored_in_flight(service: SinkService, records: list[Record]) -> None:
    for record in records:
        _add(service, record)
    service._flush(wait=False)
    assert service._inflight is not None
    service._inflight[1].result()  # the insert finished; its offsets are not committed yet


def test_revoked_after_a_finished_insert_commits_it_without_blocking() -> None:
    tp = TopicPartition(TOPIC, 0)
    records = _records(4)
    service, consumer, _store = _service({tp: records}, batch_rows=1000)
    _stored_in_flight(service, records[:3])
    _add(service, records[3])  # buffered, not stored: read again
    consumer.in_listener = True
    service._on_revoked(lost=False)
    assert consumer.commits == [] and consumer.async_commits == [{tp: 3}]
    assert service.stats.committed == {(TOPIC, 0): 3} and service.stats.rows == 3
    assert service._inflight is None and not service._batch.messages
    assert consumer.pos[tp] == 3 and service.stats.messages == 3


def test_lost_partitions_commit_nothing_and_are_read_again() -> None:
    tp = TopicPartition(TOPIC, 0)
    records = _records(3)
    service, consumer, _store = _service({tp: records}, batch_rows=1000)
    consumer.pos[tp] = 3
    _stored_in_flight(service, records)
    consumer.in_listener = True
    service._on_revoked(lost=True)
    assert consumer.commits == [] and consumer.async_commits == []
    assert consumer.pos[tp] == 0, "rewound: the group gave the partitions away, their next owner reads them"
    assert service.stats.messages == 0 and service.stats.committed == {}


def test_nothing_raises_out_of_the_listener(caplog: Any) -> None:
    tp = TopicPartition(TOPIC, 0)
    records = _records(2)
    service, consumer, _ = _service({tp: records}, batch_rows=1000)
    for record in records:
        _add(service, record)

    def broken() -> set[TopicPartition]:
        raise RuntimeError("no assignment")

    consumer.assignment = broken  # type: ignore[method-assign]
    service._on_revoked(lost=False)
    assert "handling the revoked partitions failed" in caplog.text
    assert not service._batch.messages and service._inflight is None


def test_a_partition_that_cannot_be_rewound_does_not_stop_the_others(caplog: Any) -> None:
    tp0, tp1 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)
    service, consumer, _ = _service({tp0: _records(2, 0), tp1: _records(2, 1)}, batch_rows=1000)
    for record in _records(2, 0) + _records(2, 1):
        _add(service, record)
    consumer.pos = {tp0: 2, tp1: 2}
    seek = consumer.seek

    def seek_or_fail(partition: TopicPartition, offset: int) -> None:
        if partition == tp0:
            raise ValueError("Unassigned partition")
        seek(partition, offset)

    consumer.seek = seek_or_fail  # type: ignore[method-assign]
    service._on_revoked(lost=False)
    assert consumer.pos[tp1] == 0
    assert "could not rewind" in caplog.text and "handling the revoked" not in caplog.text


def test_a_failed_commit_is_logged_and_the_sink_goes_on(caplog: Any) -> None:
    tp = TopicPartition(TOPIC, 0)
    service, consumer, store = _service({tp: _records(8)})
    commit = consumer.commit
    failed: list[bool] = []

    def commit_once_failing(offsets: Any = None, timeout_ms: Any = None) -> None:
        if not failed:
            failed.append(True)
            raise KafkaTimeoutError("no coordinator")
        commit(offsets, timeout_ms)

    consumer.commit = commit_once_failing  # type: ignore[method-assign]
    stats = service.run(until_caught_up=True)
    assert "committing offsets failed" in caplog.text
    assert consumer.commits == [{tp: 8}], "the next batch's commit covers the one that failed"
    assert _stored_offsets(store) == [(0, i) for i in range(8)]
    assert stats.committed == {(TOPIC, 0): 8}


def test_kafka_not_answering_for_a_while_is_waited_out(caplog: Any) -> None:
    tp = TopicPartition(TOPIC, 0)
    service, consumer, _store = _service({tp: _records(4)})
    consumer.poll_errors = [KafkaConnectionError("111 ECONNREFUSED"), NodeNotReadyError("1"), KafkaTimeoutError()]
    stats = service.run(until_caught_up=True)
    assert "Kafka is not answering, still trying" in caplog.text
    assert consumer.commits == [{tp: 4}] and stats.rows == 4


def test_a_kafka_error_that_will_not_pass_stops_the_sink_with_a_clear_error() -> None:
    tp = TopicPartition(TOPIC, 0)
    service, consumer, store = _service({tp: _records(6)}, batch_rows=1000)

    def fail_after_reading() -> None:
        if service._batch.messages and not consumer.poll_errors and "failed" not in consumer.events:
            consumer.events.append("failed")
            consumer.poll_errors.append(KafkaError("group authorization failed"))

    consumer.before_poll = fail_after_reading
    with pytest.raises(SinkKafkaError, match="group authorization failed"):
        service.run()
    assert consumer.commits == [] and store.batches == []
    assert consumer.closed and store.closed


class StalledConsumer(MemoryConsumer):
    """Joins, hands out its records once, then stalls out of its group for good (no heartbeat, nothing polled), as
    kafka-python can after a broker restart."""

    def subscribe(self, topics: Any = (), pattern: Any = None, listener: Any = None) -> None:
        super().subscribe(topics, pattern, listener)
        listener.on_partitions_assigned(set(self.records))
        self.stalled_at: float | None = None

    def poll(self, timeout_ms: int = 0, max_records: int | None = None, update_offsets: bool = True) -> Any:
        if self.stalled_at is None:
            out = super().poll(timeout_ms, max_records, update_offsets)
            if not out:
                self.stalled_at = self.clock.now
            return out
        self.clock.now += timeout_ms / 1000
        return {}

    def metrics(self) -> dict[str, Any]:
        since = 0.0 if self.stalled_at is None else self.clock.now - self.stalled_at
        return {"consumer-coordinator-metrics": {"last-heartbeat-seconds-ago": since}}


def test_a_consumer_stalled_out_of_its_group_is_replaced_and_what_it_held_is_read_again() -> None:
    tp = TopicPartition(TOPIC, 0)
    records = {tp: _records(3)}
    clock = FakeClock()
    stalled = StalledConsumer(records, clock)
    fresh = MemoryConsumer(records, clock)
    store = FlakyStore(fresh)
    section = ClickHouseSettings(batch_rows=100, batch_seconds=600.0)
    service = SinkService(
        stalled,
        store,
        section,
        clock=lambda: datetime(2025, 3, 2, tzinfo=UTC),
        monotonic=clock,
        sleep=lambda seconds: None,
        reconnect=lambda: fresh,
        rejoin_timeout_s=60.0,
    )
    fresh.before_poll = lambda: service.stop() if fresh.commits else None
    stats = service.run()
    assert stalled.closed and fresh.listener is not None, "the stalled consumer was closed, a new one subscribed"
    assert _stored_offsets(store) == [(0, 0), (0, 1), (0, 2)], "the 3 held messages were read again and stored"
    assert stats.messages == 3 and stats.committed == {(TOPIC, 0): 3}
    assert not stalled.commits, "nothing was committed through the stalled consumer"


class _RejoiningCoordinator:
    """kafka-python's coordinator as seen after a broker restart: it knows the coordinator, but the join never
    completes (each attempt resets the heartbeat clock, so `last-heartbeat-seconds-ago` stays small)."""

    def __init__(self, consumer: StalledConsumer) -> None:
        self.consumer = consumer

    def coordinator_unknown(self) -> bool:
        return False

    def stable(self) -> bool:
        return self.consumer.stalled_at is None


class RejoiningForeverConsumer(StalledConsumer):
    def __init__(self, records: Any, clock: FakeClock) -> None:
        super().__init__(records, clock)
        self._coordinator = _RejoiningCoordinator(self)

    def metrics(self) -> dict[str, Any]:
        return {"consumer-coordinator-metrics": {"last-heartbeat-seconds-ago": 1.0}}


def test_a_consumer_whose_join_never_completes_is_replaced_too() -> None:
    tp = TopicPartition(TOPIC, 0)
    records = {tp: _records(3)}
    clock = FakeClock()
    stuck = RejoiningForeverConsumer(records, clock)
    fresh = MemoryConsumer(records, clock)
    store = FlakyStore(fresh)
    service = SinkService(
        stuck,
        store,
        ClickHouseSettings(batch_rows=100, batch_seconds=600.0),
        clock=lambda: datetime(2025, 3, 2, tzinfo=UTC),
        monotonic=clock,
        sleep=lambda seconds: None,
        reconnect=lambda: fresh,
        rejoin_timeout_s=60.0,
    )
    fresh.before_poll = lambda: service.stop() if fresh.commits else None
    stats = service.run()
    assert stuck.closed and fresh.listener is not None, "the consumer that never rejoined was replaced"
    assert _stored_offsets(store) == [(0, 0), (0, 1), (0, 2)] and stats.committed == {(TOPIC, 0): 3}
    assert not stuck.commits


class MetadataTrackingConsumer(MemoryConsumer):
    """Records whether each topic's partitions were asked for before the group join (the subscribe)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.asked: list[str] = []
        self.asked_before_join: set[str] | None = None

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        self.asked.append(topic)
        return super().partitions_for_topic(topic)

    def subscribe(self, topics: Any = (), pattern: Any = None, listener: Any = None) -> None:
        self.asked_before_join = set(self.asked)
        super().subscribe(topics, pattern, listener)


def test_every_sink_topics_partitions_are_known_before_the_group_join(caplog: Any) -> None:
    """kafka-python joins with the metadata it holds (KAFKA-3949): a join before a topic's partitions are known
    assigns nothing from it. The sink asks for them first, and says which topics have none yet."""
    tp = TopicPartition(TOPIC, 0)
    service, tracked, store = _service({tp: _records(2)}, consumer_type=MetadataTrackingConsumer)
    consumer = cast(MetadataTrackingConsumer, tracked)
    with caplog.at_level("WARNING"):
        service.run(until_caught_up=True)
    assert consumer.asked_before_join == set(SINK_TOPICS)
    assert _stored_offsets(store) == [(0, 0), (0, 1)]
    others = sorted(set(SINK_TOPICS) - {TOPIC})
    assert any("no partitions known yet" in r.getMessage() and others[0] in r.getMessage() for r in caplog.records)
