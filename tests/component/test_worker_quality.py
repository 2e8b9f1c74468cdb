"""The worker's data-quality path through `test_context()` (memory store, no broker, sends recorded): findings of the
checks routed to safeguarding.quality-findings.v1 keyed by event id, an impossible end held back from the rules, an
overlap flagged and still fed, a code not in the list named on its dead letter's finding."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from safeguard.settings import KafkaSettings, Settings
from schemas.codec import decode_alert, decode_dead_letter, encode
from schemas.events import AgencyEvent
from schemas.quality import decode_quality_finding, finding_id
from schemas.topics import ALERTS, CP_PLANS, DEAD_LETTER, QUALITY_FINDINGS, message_key
from streams.app import Worker
from streams.rules import decode_state
from streams.tables import murmur2_partition
from tests.component.test_worker_agents import Sent
from tests.unit.test_streams.factories import CHILD, day, plan_ended, plan_started

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


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

    for topic in (worker.alerts_topic, worker.obligations_topic, worker.dead_letter_topic, worker.findings_topic):
        topic.send = recorder(topic.get_topic_name())  # type: ignore[method-assign]
    yield worker, sent


async def _put_raw(worker: Worker, value: bytes, key: bytes) -> None:
    agent = worker.app.agents[f"intake-{CP_PLANS.name}"]
    async with agent.test_context() as test_agent:
        await test_agent.put(value, key=key, partition=murmur2_partition(key, 6))


async def _put(worker: Worker, event: AgencyEvent) -> None:
    await _put_raw(worker, encode(event), message_key(event).encode())


async def _settle(worker: Worker) -> None:
    for _ in range(100):
        await asyncio.sleep(0.02)
        if worker.processor.pending_writes == 0 and not worker._lane.locked():
            return


def test_an_impossible_end_is_flagged_and_held_an_overlap_flagged_and_fed(worker: tuple[Worker, Sent]) -> None:
    app, sent = worker
    first = plan_started(day(0), plan_id="P1")
    impossible = plan_ended(day(-2), plan_id="P1")
    second = plan_started(day(30), plan_id="P2")

    async def scenario() -> None:
        for event in (first, impossible, impossible, second, second):
            await _put(app, event)
        await _settle(app)

    asyncio.run(scenario())
    findings = [(key, decode_quality_finding(value)) for key, value in sent.on(QUALITY_FINDINGS.name)]
    assert [(f.rule_id, f.fed, f.found_by) for _, f in findings] == [
        ("8925", False, "worker"),
        ("8925", False, "worker"),  # read again: flagged again, under the same id (one row in the store)
        ("8935", True, "worker"),
    ]
    assert all(key == f.event_id.encode() for key, f in findings)
    assert findings[0][1].finding_id == findings[1][1].finding_id == finding_id("8925", impossible.event_id)
    assert findings[2][1].event_id == second.event_id and findings[2][1].child_id == CHILD
    assert app.outcomes == {"applied": 2, "held_by_quality_check": 2, "duplicate": 1}
    assert app.quality_findings == {"8925": 2, "8935": 1}
    plans = decode_state("child", CHILD, app.children[CHILD.encode()]).plans
    assert {p.plan_id: p.ended_at for p in plans} == {"P1": None, "P2": None}, "the held end never reached the state"
    [alert] = [decode_alert(value) for _, value in sent.on(ALERTS.name)]
    assert (alert.rule_id, alert.evidence_event_ids[0]) == ("repeat_cp_plan", second.event_id), "the overlap was fed"


def test_a_code_not_in_the_list_is_dead_lettered_and_named_by_its_national_rule(worker: tuple[Worker, Sent]) -> None:
    app, sent = worker
    raw = json.loads(encode(plan_started(day(0), plan_id="P1")))
    raw["category"] = "NGE"

    async def scenario() -> None:
        await _put_raw(app, json.dumps(raw).encode(), CHILD.encode())
        await _settle(app)

    asyncio.run(scenario())
    [letter] = [decode_dead_letter(value) for _, value in sent.on(DEAD_LETTER.name)]
    [(key, value)] = sent.on(QUALITY_FINDINGS.name)
    found = decode_quality_finding(value)
    assert (letter.reason_code, letter.claimed_event_id) == ("invalid", raw["event_id"])
    assert (found.rule_id, found.fed, found.event_id, key) == ("8905", False, raw["event_id"], raw["event_id"].encode())
    assert not sent.on(ALERTS.name) and app.quality_findings == {"8905": 1}
