"""The worker's Faust agents through `test_context()`: the memory store, no broker.

Only the sending side is replaced (this tier has no broker): sends to topics are recorded instead of
published. Everything else is the real app: agents, tables, batching, the rule engine, the obligations
repartition, dead letters.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from safeguard.settings import KafkaSettings, Settings
from schemas.codec import decode_alert, decode_dead_letter, encode
from schemas.events import AgencyEvent
from schemas.topics import ALERTS, CONTACTS, DEAD_LETTER, DOMESTIC_INCIDENTS, MISSING_EPISODES, message_key
from streams.app import Worker
from streams.rules import decode_state
from streams.tables import murmur2_partition
from tests.unit.test_streams.factories import (
    CHILD,
    OTHER_CHILD,
    contact_received,
    day,
    incident,
    missing_found,
    missing_reported,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@dataclass
class Sent:
    """What the worker published, by topic, in order."""

    messages: dict[str, list[tuple[bytes | None, bytes]]] = field(default_factory=dict)

    def on(self, topic: str) -> list[tuple[bytes | None, bytes]]:
        return self.messages.get(topic, [])


@pytest.fixture
def worker() -> Iterator[tuple[Worker, Sent]]:
    settings = Settings(_env_file=None, kafka=KafkaSettings(bootstrap_servers="127.0.0.1:9"))
    worker = Worker(settings, "127.0.0.1:9", clock=lambda: datetime(2026, 11, 23, 12, tzinfo=UTC))
    sent = Sent()

    def recorder(topic_name: str) -> Any:
        async def send(key: bytes | None = None, value: bytes = b"", **_: Any) -> asyncio.Future[None]:
            sent.messages.setdefault(topic_name, []).append((key, value))
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done

        return send

    for topic in (worker.alerts_topic, worker.obligations_topic, worker.dead_letter_topic):
        topic.send = recorder(topic.get_topic_name())  # type: ignore[method-assign]
    yield worker, sent


async def _put(worker: Worker, topic: str, event: AgencyEvent, *, key: str | None = None) -> None:
    agent = worker.app.agents[f"intake-{topic}"]
    async with agent.test_context() as test_agent:
        chosen = key if key is not None else message_key(event)
        # On the key's murmur2 partition, as a contract producer puts it (elsewhere it would be re-routed).
        await test_agent.put(encode(event), key=chosen.encode(), partition=murmur2_partition(chosen.encode(), 6))


async def _settle(worker: Worker) -> None:
    """Batches are applied after `within`; wait until the lane has nothing left to write."""
    for _ in range(100):
        await asyncio.sleep(0.02)
        if worker.processor.pending_writes == 0 and not worker._lane.locked():
            return


def test_high_risk_missing_raises_one_alert_keyed_by_its_id(worker: tuple[Worker, Sent]) -> None:
    app, sent = worker
    report = missing_reported(day(0), risk_level="high")

    async def scenario() -> None:
        await _put(app, MISSING_EPISODES.name, report)
        await _put(app, MISSING_EPISODES.name, report)  # the same event again: a producer retry
        await _settle(app)

    asyncio.run(scenario())
    [(key, value)] = sent.on(ALERTS.name)
    alert = decode_alert(value)
    assert (key, alert.rule_id, alert.severity) == (alert.alert_id.encode(), "high_risk_missing", "critical")
    assert alert.evidence_event_ids == [report.event_id]
    assert app.outcomes == {"applied": 1, "duplicate": 1}
    stored = app.children[report.child_id.encode()]
    assert app.children.value_serializer == "raw" and isinstance(stored, bytes)  # the compact form, as is
    assert [r.event_id for r in decode_state("child", report.child_id, stored).missing_reports] == [report.event_id]


def test_invalid_and_misplaced_records_are_dead_lettered_with_their_reason(worker: tuple[Worker, Sent]) -> None:
    app, sent = worker
    agent = app.app.agents[f"intake-{MISSING_EPISODES.name}"]
    event = missing_reported(day(0))

    async def scenario() -> None:
        async with agent.test_context() as test_agent:
            await test_agent.put(b"{not json", key=b"k", partition=0)
            await test_agent.put(encode(event), key=b"someone-else", partition=0)
        await _settle(app)

    asyncio.run(scenario())
    letters = [decode_dead_letter(value) for _, value in sent.on(DEAD_LETTER.name)]
    assert [letter.reason_code for letter in letters] == ["undecodable", "key_mismatch"]
    assert {letter.source_topic for letter in letters} == {MISSING_EPISODES.name}
    assert not sent.on(ALERTS.name)


def test_an_incident_reaches_each_child_present_and_its_contact_deadline_fires(worker: tuple[Worker, Sent]) -> None:
    app, sent = worker
    present, absent = CHILD, OTHER_CHILD
    recorded = incident(day(0), children=[(present, True), (absent, False)])

    def rules_alerted() -> list[str]:
        return [decode_alert(value).rule_id for _, value in sent.on(ALERTS.name)]

    async def scenario() -> None:
        await _put(app, DOMESTIC_INCIDENTS.name, recorded)
        await _settle(app)
        obligations = sent.on(app.obligations_topic.get_topic_name())
        assert [key for key, _ in obligations] == [present.encode()], "one obligation, re-keyed by the child present"
        assert rules_alerted() == ["domestic_abuse_child_present"]

        async with app.app.agents["da-obligations"].test_context() as test_agent:
            for key, value in obligations:
                await test_agent.put(value, key=key, partition=murmur2_partition(key, 6))
        # Time moving on another topic (missing episodes) must not fire a contacts deadline.
        await _put(app, MISSING_EPISODES.name, missing_found(day(2), episode="MP-1", child=present))
        await _settle(app)
        assert "da_contact_overdue" not in rules_alerted()
        # A contact about another child on the same contacts partition, 25 hours later, moves that clock past it.
        await _put(app, CONTACTS.name, contact_received(day(1, hours=1), child="d" * 64))
        await _settle(app)

    asyncio.run(scenario())
    overdue = [decode_alert(v) for _, v in sent.on(ALERTS.name) if decode_alert(v).rule_id == "da_contact_overdue"]
    assert [(alert.subject_id, alert.severity) for alert in overdue] == [(present, "high")]
