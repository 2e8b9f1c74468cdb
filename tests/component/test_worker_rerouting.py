"""Misplaced records through the worker's agents (Faust `test_context()`): a valid event on a partition its key does
not hash to is re-published, unchanged, on its key's partition of the re-route topic, and applied from there.

As in test_worker_agents.py only the sending side is replaced (this tier has no broker): sends are recorded with
their partition, timestamp and headers, and the test hands the re-routed copies to the re-route agent as the broker
would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from faust.types import TP

from safeguard.settings import KafkaSettings, Settings
from schemas.codec import decode_alert, decode_dead_letter, encode
from schemas.events import AgencyEvent
from schemas.topics import ALERTS, DEAD_LETTER, MISSING_EPISODES, message_key
from streams.app import Worker, internal_topics, rerouted_topic_name
from streams.intake import ORIGIN_OFFSET, ORIGIN_PARTITION, ORIGIN_TOPIC, Origin
from streams.rules import PartitionClock, decode_state
from streams.tables import murmur2_partition
from tests.unit.test_streams.factories import CHILD, day, missing_reported

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

PARTITIONS = 6
HOME = murmur2_partition(CHILD.encode(), PARTITIONS)
ELSEWHERE = (HOME + 3) % PARTITIONS
STAMP = datetime(2026, 11, 23, 11, 59, tzinfo=UTC).timestamp()


@dataclass
class Record:
    key: bytes | None
    value: bytes
    partition: int | None
    timestamp: float | None
    headers: Any


@dataclass
class Sent:
    messages: dict[str, list[Record]] = field(default_factory=dict)

    def on(self, topic: str) -> list[Record]:
        return self.messages.get(topic, [])


@pytest.fixture
def worker() -> Iterator[tuple[Worker, Sent]]:
    settings = Settings(_env_file=None, kafka=KafkaSettings(bootstrap_servers="127.0.0.1:9"))
    worker = Worker(settings, "127.0.0.1:9", clock=lambda: datetime(2026, 11, 23, 12, tzinfo=UTC))
    sent = Sent()

    def recorder(topic_name: str) -> Any:
        async def send(
            key: bytes | None = None,
            value: bytes = b"",
            partition: int | None = None,
            timestamp: float | None = None,
            headers: Any = None,
            **_: Any,
        ) -> asyncio.Future[None]:
            sent.messages.setdefault(topic_name, []).append(Record(key, value, partition, timestamp, headers))
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done

        return send

    for topic in (
        worker.alerts_topic,
        worker.obligations_topic,
        worker.dead_letter_topic,
        *worker.reroute_topics.values(),
    ):
        topic.send = recorder(topic.get_topic_name())
    yield worker, sent


def _handled(worker: Worker) -> int:
    """Records the worker is done with: applied, re-routed (the copy acknowledged) or dead-lettered."""
    return sum(worker.accepted.values()) + sum(worker.rerouted.values()) + sum(worker.dead_lettered.values())


async def _until_handled(worker: Worker, count: int) -> None:
    """Wait, with the agent still running (leaving its test context stops it), until `count` records are handled."""
    for _ in range(500):
        if _handled(worker) >= count and worker.processor.pending_writes == 0 and not worker._lane.locked():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"the worker handled {_handled(worker)} records, not {count}")


async def _put(worker: Worker, event: AgencyEvent, partition: int, *, value: bytes | None = None) -> None:
    expected = _handled(worker) + 1
    async with worker.app.agents[f"intake-{MISSING_EPISODES.name}"].test_context() as agent:
        key = message_key(event).encode()
        await agent.put(value if value is not None else encode(event), key=key, partition=partition, timestamp=STAMP)
        await _until_handled(worker, expected)


async def _hand_over(
    worker: Worker, records: list[Record], *, partition: int | None = None, headers: Any = "same"
) -> None:
    """What the broker would do with the copies: deliver them to the re-route agent."""
    expected = _handled(worker) + len(records)
    async with worker.app.agents[f"rerouted-{MISSING_EPISODES.name}"].test_context() as agent:
        for record in records:
            await agent.put(
                record.value,
                key=record.key,
                partition=record.partition if partition is None else partition,
                timestamp=record.timestamp,
                headers=record.headers if headers == "same" else headers,
            )
        await _until_handled(worker, expected)


def test_a_misplaced_record_is_rerouted_to_its_keys_partition_and_then_applied(worker: tuple[Worker, Sent]) -> None:
    app, sent = worker
    placed = [missing_reported(day(0), episode="MP-1"), missing_reported(day(20), episode="MP-2")]
    misplaced = missing_reported(day(40), episode="MP-3")  # the third in 90 days: repeat_missing needs all three
    reroute_topic = rerouted_topic_name(app.app.conf.id, MISSING_EPISODES.name)

    async def scenario() -> list[Record]:
        for event in placed:
            await _put(app, event, HOME)
        await _put(app, misplaced, ELSEWHERE)
        assert not sent.on(ALERTS.name), "the misplaced report must not be applied where it was read"
        copies = sent.on(reroute_topic)
        await _hand_over(app, copies)
        await _hand_over(app, copies)  # delivered twice (a crash before the intake's commit): applied once
        return copies

    [copy] = asyncio.run(scenario())
    # The copy: same key and bytes, on the key's partition, the original timestamp, the origin in its headers.
    assert (copy.key, copy.value, copy.partition) == (CHILD.encode(), encode(misplaced), HOME)
    assert copy.timestamp == pytest.approx(STAMP)
    origin = Origin.from_headers(copy.headers)
    assert origin is not None and (origin.topic, origin.partition) == (MISSING_EPISODES.name, ELSEWHERE)
    # Applied there: the alert that needs all three reports, once.
    [alert] = [decode_alert(record.value) for record in sent.on(ALERTS.name)]
    assert alert.rule_id == "repeat_missing"
    assert sorted(alert.evidence_event_ids) == sorted(e.event_id for e in [*placed, misplaced])
    state = decode_state("child", CHILD, app.children[CHILD.encode()])
    assert len(state.missing_reports) == 3
    # Counts reconcile: 3 read on the contract topic = 2 accepted + 1 re-routed; 2 read on the re-route topic =
    # 1 accepted + 1 duplicate; nothing dead-lettered.
    assert app.accepted == {MISSING_EPISODES.name: 2, reroute_topic: 2}
    assert app.rerouted == {MISSING_EPISODES.name: 1}
    assert app.outcomes == {"applied": 3, "duplicate": 1}
    assert not sent.on(DEAD_LETTER.name) and not app.dead_lettered
    # The clock that moved is the contract topic's clock of the key's partition, to the re-routed event's time.
    assert app.processor.clocks[(MISSING_EPISODES.name, HOME)].newest_event_at == misplaced.occurred_at
    assert (MISSING_EPISODES.name, ELSEWHERE) not in app.processor.clocks


def test_an_invalid_record_on_the_wrong_partition_is_dead_lettered_where_it_was_read(
    worker: tuple[Worker, Sent],
) -> None:
    app, sent = worker
    event = missing_reported(day(0))

    async def scenario() -> None:
        await _put(app, event, ELSEWHERE, value=b"{not json")

    asyncio.run(scenario())
    [letter] = [decode_dead_letter(record.value) for record in sent.on(DEAD_LETTER.name)]
    assert (letter.reason_code, letter.source_topic, letter.source_partition) == (
        "undecodable",
        MISSING_EPISODES.name,
        ELSEWHERE,
    )
    assert not any(sent.on(topic.get_topic_name()) for topic in app.reroute_topics.values())


def test_records_on_the_reroute_topic_that_the_worker_did_not_put_there_are_dead_lettered(
    worker: tuple[Worker, Sent],
) -> None:
    app, sent = worker
    event = missing_reported(day(0), risk_level="high")
    value = encode(event)
    origin = Origin(MISSING_EPISODES.name, ELSEWHERE, 41)

    async def scenario() -> None:
        copy = Record(CHILD.encode(), value, HOME, STAMP, origin.headers())
        await _hand_over(app, [copy], headers=[])  # no origin
        await _hand_over(app, [copy], headers=[(ORIGIN_TOPIC, b"safeguarding.contacts.v1"), *origin.headers()[1:]])
        await _hand_over(app, [copy], partition=ELSEWHERE)  # not on its key's partition: never re-routed again

    asyncio.run(scenario())
    letters = [decode_dead_letter(record.value) for record in sent.on(DEAD_LETTER.name)]
    assert [letter.reason_code for letter in letters] == ["misrouted"] * 3
    reroute_topic = rerouted_topic_name(app.app.conf.id, MISSING_EPISODES.name)
    assert [letter.source_topic for letter in letters] == [reroute_topic, reroute_topic, MISSING_EPISODES.name]
    assert (letters[2].source_partition, letters[2].source_offset) == (ELSEWHERE, 41), "named by its origin"
    assert not sent.on(ALERTS.name) and not app.outcomes
    assert {ORIGIN_TOPIC, ORIGIN_PARTITION, ORIGIN_OFFSET} == {name for name, _ in origin.headers()}


def test_the_reroute_topics_are_created_before_the_worker_starts() -> None:
    settings = Settings(_env_file=None)
    names = {spec.name: spec for spec in internal_topics(settings)}
    reroute = names[rerouted_topic_name(settings.streams.app_id, MISSING_EPISODES.name)]
    assert (reroute.key_field, reroute.event_types) == (MISSING_EPISODES.key_field, MISSING_EPISODES.event_types)


def test_a_rebalance_sets_the_clocks_of_the_revoked_partitions_aside(worker: tuple[Worker, Sent]) -> None:
    """Revoked partitions are read again from their committed offsets (or by another worker): their clocks start
    afresh from those records, never ahead of the states they reflect; the old clock waits on the side."""
    app, _ = worker
    key = (MISSING_EPISODES.name, HOME)

    async def scenario() -> None:
        await _put(app, missing_reported(day(0), episode="MP-1"), HOME)
        await app.app.on_partitions_revoked.send({TP(*key)})

    asyncio.run(scenario())
    assert key not in app.processor.clocks and key not in app._clocks_saved
    clock, read, _ = app._stashed_clocks[key]
    assert clock.newest_event_at == day(0) and read == 0


def test_a_quiet_partitions_clock_is_set_aside_too_and_kept_while_the_partition_stays(
    worker: tuple[Worker, Sent],
) -> None:
    """A clock with nothing read since it was restored (a partition with nothing new) was dropped at the next
    rebalance instead of set aside, so its deadlines never fired again (ten `da_contact_overdue` of the rebalance
    test, 2026-12-07). It waits on the side with nothing to wait for (-1), and only a rebalance that assigns its
    partition elsewhere drops it."""
    app, _ = worker
    quiet, moved = (MISSING_EPISODES.name, HOME), (MISSING_EPISODES.name, ELSEWHERE)
    restored = PartitionClock(newest_event_at=day(3), reading=day(3))

    async def scenario() -> None:
        app.processor.restore_clocks([(quiet, restored), (moved, restored)], wall_clock=day(4))
        await app.app.on_partitions_revoked.send({TP(*quiet), TP(*moved)})
        await app.app.on_partitions_assigned.send({TP(*quiet)})

    asyncio.run(scenario())
    assert quiet not in app.processor.clocks
    clock, read, _ = app._stashed_clocks[quiet]
    assert clock == restored and read == -1
    assert moved not in app._stashed_clocks, "its partition went to another worker"
