"""The sink never commits an offset whose message is not in the store: not after a failed insert, and not when the
partitions are revoked (or lost) while a failed insert is in flight or being retried.

A commit after a failed insert is a silent loss: the group's next reader starts after messages that were never
stored. These tests drive the real `SinkService` with the in-memory consumer of test_service.py (the listener runs
inside `poll` on the IO thread, where a blocking commit raises), and check at every commit, synchronous or not,
that everything below the committed offset is stored. Rebalances come in both kinds a partition sees: moved to a
new owner (it starts from the committed offset) or kept by this consumer (kafka-python 3.0.12 keeps its position
and pause flag, so only the sink's own rewind brings back what it forgot). One test uses the real store (chDB in a
tmp dir) whose first inserts fail for real.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kafka.errors import KafkaError
from kafka.structs import TopicPartition

from safeguard.settings import ClickHouseSettings
from schemas.errors import StoreError
from sinks.columns import TableBatch
from sinks.service import ClickHouseStore, SinkKafkaError, SinkService
from tests.unit.test_sinks.test_service import TOPIC, FakeClock, MemoryConsumer, Record, _records

INGESTED_AT = datetime(2025, 3, 2, tzinfo=UTC)


class CheckedConsumer(MemoryConsumer):
    """Records every commit (blocking or async) of an offset whose messages are not all stored as a violation.

    `keep_positions`: rebalance as kafka-python 3.0.12 does with the eager protocol when the same partitions come
    back (one sink in its group): the revoke listener runs while they are still assigned, and each keeps its
    position and paused flag (`SubscriptionState._apply_assignment`); lost partitions are dropped and come back
    fresh, from the committed offset. Without it, every partition restarts from its committed offset (the model
    of test_service.py, which is what a partition moved to another member sees).
    """

    def __init__(
        self, records: dict[TopicPartition, list[Record]], clock: FakeClock, *, keep_positions: bool = False
    ) -> None:
        super().__init__(records, clock)
        self.keep_positions = keep_positions
        self.stored: dict[tuple[str, int], set[int]] = {}
        self.violations: list[str] = []

    def _rebalance(self, how: str) -> None:
        if not self.keep_positions:
            super()._rebalance(how)
            return
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
        if how == "lost":  # assign_from_subscribed([]): positions and pause flags are gone
            self.pos = {tp: self._committed(tp) for tp in self.records}
            self.paused.clear()
        self.events.append(how)
        self.listener.on_partitions_assigned(set(self.records))

    def _check(self, how: str, offsets: Any) -> None:
        for tp, meta in offsets.items():
            missing = set(range(meta.offset)) - self.stored.get((tp.topic, tp.partition), set())
            if missing:
                self.violations.append(f"{how} {tp.partition}@{meta.offset} with offsets {sorted(missing)} not stored")

    def commit(self, offsets: Any = None, timeout_ms: Any = None) -> None:
        self._check("commit", offsets)
        super().commit(offsets, timeout_ms)

    def commit_async(self, offsets: Any = None, callback: Any = None) -> None:
        self._check("commit_async", offsets)
        super().commit_async(offsets, callback)

    def committed_offset(self, tp: TopicPartition) -> int:
        return self._committed(tp)

    def metrics(self) -> dict[str, Any]:
        return {}


class ScriptedStore:
    """A store whose attempts fail or succeed as `fails(attempt)` says, and that tells the consumer what it holds."""

    def __init__(self, consumer: CheckedConsumer, fails: Callable[[int], bool]) -> None:
        self.consumer = consumer
        self.fails = fails
        self.attempts = 0
        self.failed = 0
        self.stored_batches: list[list[tuple[int, int]]] = []
        self.closed = False
        self.before_write: Callable[[], None] | None = None

    def write(self, rows: TableBatch, token: str) -> None:
        if self.before_write is not None:
            self.before_write()
        self.attempts += 1
        if self.fails(self.attempts):
            self.failed += 1
            raise StoreError("insert failed: Connection refused")
        offsets = [(row["kafka_partition"], row["kafka_offset"]) for _, row in rows.rows()]
        for partition, offset in offsets:
            self.consumer.stored.setdefault((TOPIC, partition), set()).add(offset)
        self.stored_batches.append(offsets)
        self.consumer.events.append("write")

    def close(self) -> None:
        self.closed = True


def _service(consumer: CheckedConsumer, store: Any, **settings: Any) -> SinkService:
    section = ClickHouseSettings(**{"batch_rows": 4, "batch_seconds": 1.0, "retry_initial_s": 0.5, **settings})
    return SinkService(
        consumer, store, section, clock=lambda: INGESTED_AT, monotonic=consumer.clock, sleep=lambda seconds: None
    )


def _waiting_for(go: threading.Event) -> Callable[[], None]:
    """For the insert thread: wait until the consumer thread sets `go` (at its next poll)."""

    def wait() -> None:
        assert go.wait(timeout=10), "the consumer thread did not poll again"

    return wait


def _stored_once(store: ScriptedStore) -> list[tuple[int, int]]:
    return sorted(offset for batch in store.stored_batches for offset in batch)


@pytest.mark.parametrize("keep_positions", [False, True], ids=["reassigned", "kept"])
@pytest.mark.parametrize("how", ["revoked", "lost"])
def test_partitions_revoked_after_a_failed_insert_commit_nothing_of_it(how: str, keep_positions: bool) -> None:
    """The insert of a full batch fails in the insert thread; before the consumer thread has looked at it, the
    partitions are revoked (inside the next poll). The failed batch must be forgotten, not committed: had its
    offsets been committed, the reassigned partition would start after messages that are in no table."""
    tp = TopicPartition(TOPIC, 0)
    consumer = CheckedConsumer({tp: _records(4)}, FakeClock(), keep_positions=keep_positions)
    store = ScriptedStore(consumer, fails=lambda attempt: attempt == 1)
    service = _service(consumer, store, batch_rows=4)
    go = threading.Event()
    store.before_write = _waiting_for(go)  # the insert runs (and fails) once the consumer thread polls again
    revoked_on: list[BaseException | None] = []

    def revoke_once_the_insert_failed() -> None:
        inflight = service._inflight
        if inflight is not None and not revoked_on:
            go.set()
            inflight[1].exception(timeout=10)  # the failed insert is done, and nobody has taken its result yet
            revoked_on.append(inflight[1].exception())
            consumer.rebalances.append(how)
        if consumer.commits or consumer.clock.now > 60:
            service.stop()

    consumer.before_poll = revoke_once_the_insert_failed
    stats = service.run()

    assert revoked_on and isinstance(revoked_on[0], StoreError), "the rebalance came after the failed insert"
    assert consumer.violations == []
    assert consumer.async_commits == [], "the listener committed the offsets of a failed insert"
    assert consumer.events == [how, "write", "commit"], "read again after the rebalance, stored, then committed"
    assert _stored_once(store) == [(0, 0), (0, 1), (0, 2), (0, 3)]
    assert consumer.commits == [{tp: 4}]
    assert stats.committed == {(TOPIC, 0): 4} and stats.rows == 4 and stats.messages == 4


@pytest.mark.parametrize("keep_positions", [False, True], ids=["reassigned", "kept"])
@pytest.mark.parametrize("how", ["revoked", "lost"])
def test_partitions_revoked_while_a_failed_batch_is_retried_then_a_stop_commit_nothing(
    how: str, keep_positions: bool
) -> None:
    """The store stays down; the partitions are revoked during the back-off, then the sink is stopped."""
    tp = TopicPartition(TOPIC, 0)
    consumer = CheckedConsumer({tp: _records(6)}, FakeClock(), keep_positions=keep_positions)
    store = ScriptedStore(consumer, fails=lambda attempt: True)
    service = _service(consumer, store, batch_rows=4)

    def revoke_during_the_retry_then_stop() -> None:
        if store.failed and how not in consumer.events and not consumer.rebalances:
            consumer.rebalances.append(how)
        elif how in consumer.events and store.failed >= 3:
            service.stop()

    consumer.before_poll = revoke_during_the_retry_then_stop
    stats = service.run()

    assert how in consumer.events and store.failed >= 3
    assert consumer.commits == [] and consumer.async_commits == [], "nothing stored, so nothing may be committed"
    assert stats.committed == {} and stats.rows == 0
    assert consumer.committed_offset(tp) == 0 and consumer.closed


@pytest.mark.parametrize("keep_positions", [False, True], ids=["reassigned", "kept"])
def test_a_batch_retried_across_a_rebalance_is_committed_only_once_stored(keep_positions: bool) -> None:
    """Revoked during the back-off of a failed insert; the store comes back: the retried batch is committed only
    after its successful insert, and what was read again meanwhile is stored (deduplicated by the tables)."""
    tp = TopicPartition(TOPIC, 0)
    consumer = CheckedConsumer({tp: _records(6)}, FakeClock(), keep_positions=keep_positions)
    store = ScriptedStore(consumer, fails=lambda attempt: attempt <= 2)
    service = _service(consumer, store, batch_rows=4)
    commits_while_failing: list[int] = []

    def watch() -> None:
        if store.failed and not store.stored_batches:
            commits_while_failing.append(len(consumer.commits) + len(consumer.async_commits))
            if "revoked" not in consumer.events and not consumer.rebalances:
                consumer.rebalances.append("revoked")
        if consumer.committed_offset(tp) == 6 or consumer.clock.now > 120:
            service.stop()

    consumer.before_poll = watch
    stats = service.run()

    assert "revoked" in consumer.events and store.failed == 2
    assert commits_while_failing and set(commits_while_failing) == {0}, "committed while the insert was failing"
    assert consumer.violations == []
    assert consumer.committed_offset(tp) == 6
    assert set(_stored_once(store)) == {(0, i) for i in range(6)}
    assert stats.committed == {(TOPIC, 0): 6}


@pytest.mark.parametrize("keep_positions", [False, True], ids=["reassigned", "kept"])
@pytest.mark.parametrize("seed", range(12))
def test_no_commit_ever_runs_ahead_of_the_store(seed: int, keep_positions: bool) -> None:
    """Random insert failures and rebalances (revoked or lost, at any poll: while a batch is buffered, in flight,
    failed or being retried) over three partitions: every commit covers only stored messages, and in the end
    every message is stored and committed."""
    rng = random.Random(seed)
    tps = [TopicPartition(TOPIC, p) for p in range(3)]
    records = {tp: _records(rng.randint(3, 11), tp.partition) for tp in tps}
    consumer = CheckedConsumer(records, FakeClock(), keep_positions=keep_positions)
    outcomes = [rng.random() < 0.35 for _ in range(1000)]
    store = ScriptedStore(consumer, fails=lambda attempt: outcomes[attempt % len(outcomes)])
    service = _service(consumer, store, batch_rows=rng.randint(2, 5), batch_seconds=rng.choice([0.2, 1.0, 3.0]))
    polls = [0]

    def churn() -> None:
        polls[0] += 1
        if polls[0] < 200 and rng.random() < 0.15:
            consumer.rebalances.append(rng.choice(["revoked", "lost"]))
        done = all(consumer.committed_offset(tp) == len(records[tp]) for tp in tps)
        if done or consumer.clock.now > 3600:
            service.stop()

    consumer.before_poll = churn
    service.run()

    assert consumer.violations == []
    assert {tp.partition: consumer.committed_offset(tp) for tp in tps} == {
        tp.partition: len(records[tp]) for tp in tps
    }, "everything is committed in the end"
    assert set(_stored_once(store)) == {(tp.partition, i) for tp in tps for i in range(len(records[tp]))}


@pytest.mark.parametrize("failed_insert", [False, True], ids=["buffered", "failed-insert"])
def test_a_listener_that_fails_before_rewinding_stops_the_sink_instead_of_skipping(failed_insert: bool) -> None:
    """The partitions come back with their positions kept (kafka-python 3.0.12), and the listener fails before it
    could rewind them to what it forgot (a batch buffered, or one whose insert failed). Going on would read on
    after those messages and commit over them; the sink must stop without committing, and a restart (from the
    committed offsets) stores and commits everything."""
    tp = TopicPartition(TOPIC, 0)
    every = _records(8)
    consumer = CheckedConsumer({tp: every[:4]}, FakeClock(), keep_positions=True)
    store = ScriptedStore(consumer, fails=lambda attempt: failed_insert and attempt == 1)
    service = _service(consumer, store, batch_rows=4 if failed_insert else 1000, batch_seconds=2.0)
    assignment = consumer.assignment

    def assignment_failing_in_the_listener() -> set[TopicPartition]:
        if consumer.in_listener:
            raise RuntimeError("assignment unavailable")
        return assignment()

    consumer.assignment = assignment_failing_in_the_listener  # type: ignore[method-assign]

    go = threading.Event()
    if failed_insert:  # the insert thread fails only once the consumer thread polls again (see the first test)
        store.before_write = _waiting_for(go)

    def rebalance_once_read_then_more_arrive() -> None:
        if failed_insert and service._inflight is not None and not go.is_set():
            go.set()
            assert isinstance(service._inflight[1].exception(timeout=10), StoreError)
        ready = go.is_set() if failed_insert else bool(service._batch.messages)
        if ready and not consumer.rebalances and "revoked" not in consumer.events:
            consumer.rebalances.append("revoked")
            consumer.records[tp].extend(every[4:])
        if consumer.clock.now > 60:
            service.stop()

    consumer.before_poll = rebalance_once_read_then_more_arrive
    stopped: SinkKafkaError | None = None
    try:
        service.run()
    except SinkKafkaError as exc:
        stopped = exc
    assert "revoked" in consumer.events
    assert consumer.violations == [], "committed over messages that were never stored"
    assert consumer.commits == [] and consumer.async_commits == []
    assert stopped is not None and "rebalance listener failed before rewinding" in str(stopped)

    restarted = CheckedConsumer({tp: every}, FakeClock())
    restarted.stored = consumer.stored
    stats = _service(restarted, ScriptedStore(restarted, fails=lambda attempt: False)).run(until_caught_up=True)
    assert restarted.violations == [] and stats.committed == {(TOPIC, 0): 8}
    assert restarted.stored[(TOPIC, 0)] == set(range(8))


@pytest.mark.integration
def test_with_chdb_an_insert_that_fails_for_real_is_not_committed_until_it_is_stored(tmp_path: Path) -> None:
    """The real store: chDB in tmp_path, whose tables do not exist yet, so inserts fail (UNKNOWN_DATABASE) until
    the test migrates it; the partitions are revoked meanwhile. Nothing is committed until the rows are in chDB."""
    from sinks.migrate import migrate
    from sinks.store import connect

    settings = ClickHouseSettings(url=f"chdb://{tmp_path / 'store'}", batch_rows=4, batch_seconds=1.0)
    tp = TopicPartition(TOPIC, 0)
    consumer = CheckedConsumer({tp: _records(6)}, FakeClock())
    failures: list[str] = []
    migrated: list[bool] = []

    def opener(section: ClickHouseSettings) -> Any:
        client = connect(section)
        if len(failures) >= 2 and not migrated:  # the store "comes back": its tables exist from now on
            migrate(client, section)
            migrated.append(True)
        return client

    real = ClickHouseStore(settings, opener=opener)
    commits_while_failing: list[int] = []

    class Store:
        def write(self, rows: TableBatch, token: str) -> None:
            try:
                real.write(rows, token)
            except StoreError as exc:
                failures.append(str(exc))
                commits_while_failing.append(len(consumer.commits) + len(consumer.async_commits))
                raise
            for _, row in rows.rows():
                consumer.stored.setdefault((TOPIC, row["kafka_partition"]), set()).add(row["kafka_offset"])

        def close(self) -> None:
            real.close()

    service = SinkService(
        consumer,
        Store(),
        settings,
        clock=lambda: INGESTED_AT,
        monotonic=consumer.clock,
        sleep=lambda seconds: None,
    )

    def revoke_once_failing_then_stop_when_done() -> None:
        if failures and "revoked" not in consumer.events and not consumer.rebalances:
            consumer.rebalances.append("revoked")
        if consumer.committed_offset(tp) == 6 or consumer.clock.now > 300:
            service.stop()

    consumer.before_poll = revoke_once_failing_then_stop_when_done
    service.run()

    assert len(failures) >= 2 and all(f.startswith("insert failed") for f in failures), failures
    assert set(commits_while_failing) == {0}, "an offset was committed while its insert was failing"
    assert consumer.violations == []
    assert "revoked" in consumer.events and consumer.committed_offset(tp) == 6
    client = connect(settings)
    try:
        stored = client.query("SELECT kafka_offset FROM safeguard.contact_decisions FINAL ORDER BY kafka_offset")
        assert [row[0] for row in stored.result_rows] == list(range(6))
    finally:
        client.close()
