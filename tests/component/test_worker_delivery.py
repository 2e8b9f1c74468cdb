"""The worker writes no state before the broker has acknowledged what that state raised (Faust `test_context()`).

A state written before its alert is delivered would, after a crash, make the replayed event a duplicate and the
alert would be lost for good. So while the alerts topic does not acknowledge a batch's alert, the child's row in
`child-state` must stay as it was (absent, or the previous state), and be written only once the retried send is
acknowledged; and the alert must be delivered exactly once. The same holds for an incident's obligations and the
household's row in `household-state`.

As in test_worker_agents.py only the sending side is replaced (this tier has no broker); the acks of one topic
fail first the way aiokafka's do when the broker is away (`KafkaConnectionError`, retriable), then are held until
the test has looked at the tables.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError

from safeguard.settings import KafkaSettings, Settings
from schemas.alerts import AlertRaised
from schemas.codec import decode_alert, encode
from schemas.events import AgencyEvent
from schemas.topics import ALERTS, DOMESTIC_INCIDENTS, MISSING_EPISODES, message_key
from streams.app import Worker
from streams.rules import decode_state
from tests.component.conftest import Changelogs, ChangelogSend, acked
from tests.unit.test_streams.factories import CHILD, HOUSEHOLD, day, incident, missing_reported

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@dataclass
class Attempt:
    """One send to the watched topic, and what the watched table held for the subject when it was made."""

    key: bytes | None
    value: bytes
    stored_at_send: bytes | None
    stored_at_ack: bytes | None = None
    acked: bool = False


@dataclass
class Broker:
    """Sends as the worker sees them: every topic acks at once, except the watched one, whose first `failures`
    acks fail (the broker is away) and whose later acks wait for `release` (set by the test)."""

    watched: str
    stored: Callable[[], bytes | None]
    failures: int = 1
    attempts: list[Attempt] = field(default_factory=list)
    delivered: dict[str, list[tuple[bytes | None, bytes]]] = field(default_factory=dict)
    release: asyncio.Event | None = None
    acks: list[asyncio.Future[None]] = field(default_factory=list)

    def sender(self, topic_name: str) -> Any:
        async def send(key: bytes | None = None, value: bytes = b"", **_: Any) -> asyncio.Future[None]:
            ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            if topic_name != self.watched:
                self.delivered.setdefault(topic_name, []).append((key, value))
                ack.set_result(None)
                return ack
            attempt = Attempt(key, value, stored_at_send=self.stored())
            self.attempts.append(attempt)
            if self.failures:
                self.failures -= 1
                ack.set_exception(KafkaConnectionError("Unable to connect to 127.0.0.1:9 (the broker is away)"))
                return ack
            self.acks.append(asyncio.ensure_future(self._ack_when_released(topic_name, attempt, ack)))
            return ack

        return send

    async def _ack_when_released(self, topic_name: str, attempt: Attempt, ack: asyncio.Future[None]) -> None:
        assert self.release is not None
        await self.release.wait()
        attempt.stored_at_ack = self.stored()
        attempt.acked = True
        self.delivered.setdefault(topic_name, []).append((attempt.key, attempt.value))
        ack.set_result(None)


@dataclass
class Run:
    worker: Worker
    broker: Broker
    raised: list[AlertRaised]


def _worker(watched: Callable[[Worker], Any], table: str, subject: str) -> Run:
    """A worker whose `watched` topic fails its first ack; `stored()` reads `subject`'s row of `table`."""
    settings = Settings(_env_file=None, kafka=KafkaSettings(bootstrap_servers="127.0.0.1:9"))
    raised: list[AlertRaised] = []
    worker = Worker(
        settings, "127.0.0.1:9", clock=lambda: datetime(2026, 11, 23, 12, tzinfo=UTC), on_alert=raised.append
    )
    tables = {"child-state": worker.children, "household-state": worker.households}
    broker = Broker(watched=watched(worker).get_topic_name(), stored=lambda: tables[table].get(subject.encode("utf-8")))
    for topic in (worker.alerts_topic, worker.obligations_topic, worker.dead_letter_topic):
        topic.send = broker.sender(topic.get_topic_name())  # type: ignore[method-assign]
    return Run(worker, broker, raised)


@pytest.fixture
def alerts_fail_once() -> Run:
    """The alerts topic does not acknowledge the first send; the child's state is watched."""
    return _worker(lambda worker: worker.alerts_topic, "child-state", CHILD)


@pytest.fixture
def obligations_fail_once() -> Run:
    """The obligations topic does not acknowledge the first send; the household's state is watched."""
    return _worker(lambda worker: worker.obligations_topic, "household-state", HOUSEHOLD)


async def _put(worker: Worker, agent: Any, event: AgencyEvent) -> None:
    """On the key's partition (Kafka's default partitioner), as a contract producer puts it."""
    key = message_key(event)
    await agent.put(encode(event), key=key.encode(), partition=worker.processor.partition_of(key))


async def _until(condition: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    until = loop.time() + timeout_s
    while not condition():
        assert loop.time() < until, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def _settled(worker: Worker) -> None:
    await _until(lambda: worker.processor.pending_writes == 0 and not worker._lane.locked(), "the lane to settle")


@dataclass
class Observed:
    while_undelivered: bytes | None
    """What the watched table held after the first ack failed, while the retry waited for its ack."""
    held_back: int
    """`pending_writes` meanwhile: the new states, held back (not dropped) until the batch is delivered."""
    after: bytes | None
    """What it holds once the retry is acknowledged and the lane is idle."""


async def _deliver_with_one_failed_ack(run: Run, topic: str, event: AgencyEvent) -> Observed:
    """Put `event`, let the first ack fail and the retry wait for the test, then release it."""
    worker, broker = run.worker, run.broker
    broker.release = asyncio.Event()
    async with worker.app.agents[f"intake-{topic}"].test_context() as agent:
        await _put(worker, agent, event)
        await _until(
            lambda: len(broker.attempts) == 2, "the retry of the send whose ack failed (are acks awaited at all?)"
        )
        assert worker._lane.locked(), "the batch must still be in delivery"
        while_undelivered, held_back = broker.stored(), worker.processor.pending_writes
        broker.release.set()
        await _settled(worker)
        return Observed(while_undelivered, held_back, broker.stored())


def test_a_childs_state_is_written_only_once_its_alert_is_acknowledged(alerts_fail_once: Run) -> None:
    run = alerts_fail_once
    report = missing_reported(day(0), risk_level="high")

    observed = asyncio.run(_deliver_with_one_failed_ack(run, MISSING_EPISODES.name, report))

    first, retry = run.broker.attempts
    assert first.stored_at_send is None, "state was written before the alert was even sent"
    assert retry.stored_at_send is None, "state was written after the failed send, before the retry"
    assert observed.while_undelivered is None, "state was written while the alert was not acknowledged"
    assert retry.acked and retry.stored_at_ack is None, "state was written before the retry was acknowledged"
    assert observed.held_back == 1, "the new state is held back, not dropped"
    assert observed.after is not None, "once the alert is acknowledged the state is written"
    assert [r.event_id for r in decode_state("child", CHILD, observed.after).missing_reports] == [report.event_id]
    # The same alert (same id, same bytes) was sent twice and delivered exactly once.
    assert first.value == retry.value and first.key == retry.key
    [(key, value)] = run.broker.delivered[ALERTS.name]
    alert = decode_alert(value)
    assert (key, alert.rule_id) == (alert.alert_id.encode(), "high_risk_missing")
    assert [a.alert_id for a in run.raised] == [alert.alert_id]
    assert run.worker.alerts_sent == {"high_risk_missing": 1}


def test_a_childs_previous_state_stays_until_the_new_alert_is_acknowledged(alerts_fail_once: Run) -> None:
    run = alerts_fail_once
    earlier = missing_reported(day(0), episode="MP-1", risk_level="medium")  # no alert: acked at once
    report = missing_reported(day(1), episode="MP-2", risk_level="high")

    async def scenario() -> tuple[bytes | None, Observed]:
        async with run.worker.app.agents[f"intake-{MISSING_EPISODES.name}"].test_context() as agent:
            await _put(run.worker, agent, earlier)
        await _settled(run.worker)
        previous = run.broker.stored()
        return previous, await _deliver_with_one_failed_ack(run, MISSING_EPISODES.name, report)

    previous, observed = asyncio.run(scenario())

    assert previous is not None
    assert [r.event_id for r in decode_state("child", CHILD, previous).missing_reports] == [earlier.event_id]
    assert [(a.stored_at_send, a.stored_at_ack) for a in run.broker.attempts] == [
        (previous, None),
        (previous, previous),
    ], "the previous state must stay in the table until the retried alert is acknowledged"
    assert observed.while_undelivered == previous and observed.held_back == 1
    assert observed.after is not None and observed.after != previous
    reports = decode_state("child", CHILD, observed.after).missing_reports
    assert [r.event_id for r in reports] == [earlier.event_id, report.event_id]
    [(_, value)] = run.broker.delivered[ALERTS.name]
    assert decode_alert(value).evidence_event_ids == [report.event_id]
    assert run.worker.alerts_sent == {"high_risk_missing": 1}


def test_a_households_state_is_written_only_once_its_obligations_are_acknowledged(
    obligations_fail_once: Run,
) -> None:
    run = obligations_fail_once
    recorded = incident(day(0), children=[(CHILD, True)])

    observed = asyncio.run(_deliver_with_one_failed_ack(run, DOMESTIC_INCIDENTS.name, recorded))

    assert [(a.stored_at_send, a.stored_at_ack) for a in run.broker.attempts] == [(None, None), (None, None)]
    assert observed.while_undelivered is None and observed.held_back == 1
    assert observed.after is not None
    assert [i.event_id for i in decode_state("household", HOUSEHOLD, observed.after).incidents] == [recorded.event_id]
    [(key, _)] = run.broker.delivered[run.worker.obligations_topic.get_topic_name()]
    assert key == CHILD.encode()
    # The incident's own alert went out with each attempt of the batch: the same id both times (readers dedupe).
    alerts = [decode_alert(value) for _, value in run.broker.delivered[ALERTS.name]]
    assert {a.rule_id for a in alerts} == {"domestic_abuse_child_present"}
    assert len({a.alert_id for a in alerts}) == 1
    assert run.worker.alerts_sent == {"domestic_abuse_child_present": 1}


def test_a_batch_is_done_only_once_the_broker_has_its_state_changes(changelogs: Changelogs) -> None:
    """Faust commits a batch's offsets once the batch is done; its states must be in the changelog by then, or a crash
    (or the partition moving to another worker) loses them. A change whose ack fails is sent again, unchanged."""
    run = _worker(lambda worker: worker.alerts_topic, "child-state", CHILD)
    run.broker.failures = 0
    run.broker.release = asyncio.Event()
    run.broker.release.set()

    def answer(send: ChangelogSend) -> BaseException | str | None:
        if send.table != "child-state":
            return None
        first = not any(earlier.table == "child-state" for earlier in changelogs.sends[:-1])
        return KafkaConnectionError("Unable to connect to 127.0.0.1:9 (the broker is away)") if first else "hold"

    changelogs.answer = answer
    report = missing_reported(day(0), risk_level="high")

    async def scenario() -> None:
        worker = run.worker
        async with worker.app.agents[f"intake-{MISSING_EPISODES.name}"].test_context() as agent:
            await _put(worker, agent, report)
            await _until(
                lambda: len([s for s in changelogs.sends if s.table == "child-state"]) == 2,
                "the state change sent again after its ack failed (are changelog acks awaited at all?)",
            )
            await asyncio.sleep(0.2)
            assert worker._lane.locked(), "the batch was done before the broker had its state change"
            assert [decode_alert(v).rule_id for _, v in run.broker.delivered[ALERTS.name]] == ["high_risk_missing"]
            failed, held = [s for s in changelogs.sends if s.table == "child-state"]
            assert (held.key, held.value, held.partition) == (failed.key, failed.value, failed.partition)
            acked(held)
            await _until(lambda: not worker._lane.locked(), "the batch to be done once its state change is acked")

    asyncio.run(scenario())
    [send, resend] = [s for s in changelogs.sends if s.table == "child-state"]
    assert send.key == CHILD.encode()
    assert [r.event_id for r in decode_state("child", CHILD, resend.value).missing_reports] == [report.event_id]
    assert run.worker.alerts_sent == {"high_risk_missing": 1}, "a state change sent again raises nothing again"
