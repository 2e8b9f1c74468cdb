"""Hostile and careless input through a real broker to the worker and the sink, and through `safeguard publish`.

Every case of issue 13, sent as an agency system (or kcat) would send it, on a broker of this module's own (so the
worker reads nothing but these records, and the broker's topic settings can be changed without touching other
tests). For every case:

- the worker goes on raising alerts: a probe, a high-risk missing report sent right after the case, raises its
  alert (for the cases about a child, the probe is about that same child: a year-2030 typo must not make the
  child's true events `too_late`);
- every record is either accepted or dead-lettered with the expected reason; accepted + dead-lettered = sent;
- no identifier of the cases reaches any topic the system writes (dead letters with their decoded originals,
  alerts, the worker's internal topics), the sink's tables (with their decoded originals), or a log;
- the sink gives each case a data-quality finding with the worker's reason code;
- SIGTERM stops the worker and the sink within 10 s.

Further tests: a message the broker refuses for itself (an alerts topic with a tiny `max.message.bytes`) delays
alerting but never stops it; a SIGTERM while the broker does not accept the worker's alerts stops the worker at
once without committing, and the alert is delivered after the restart.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import AlterConfigOp, ConfigResource, ConfigResourceType
from kafka.errors import KafkaError

from safeguard.kafka_local import LocalBroker
from safeguard.settings import ClickHouseSettings, LocalKafkaSettings, Settings
from schemas.codec import decode_alert, decode_dead_letter
from schemas.topics import ALERTS, CONTACTS, CP_PLANS, DEAD_LETTER, DOMESTIC_INCIDENTS, EVENT_TOPICS, MISSING_EPISODES
from sinks.store import connect
from tests.integration.kafka_reader import Record, end_offsets, read_new
from tests.integration.worker_runs import ROOT, WorkerProcess, committed, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NHS = "9434765919"
UPN = "M383123450012"
FULL_WIDTH_NHS = "".join(chr(0xFF10 + int(d)) for d in NHS)
IDENTIFIERS = (NHS, "943.476.5919", FULL_WIDTH_NHS, UPN, "JANE SMITH", "Smith, Jane", "LS1 4AP")
"""Every raw identifier the cases carry, as sent: none may appear in anything the system writes."""

NOW = datetime.now(UTC).replace(microsecond=0)


def _pseudonym() -> str:
    return uuid.uuid4().hex * 2


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def _envelope(event_type: str, at: datetime, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "schema_version": 1,
        "la_code": "383",
        "agency_type": "police",
        "agency_code": "WYP",
        "occurred_at": _iso(at),
        "recorded_at": _iso(at + timedelta(minutes=1)),
        **fields,
    }


def missing(child: str, at: datetime = NOW, event_type: str = "missing.reported", **fields: Any) -> dict[str, Any]:
    body = {"episode_id": f"MP-{uuid.uuid4().hex[:8]}", "child_id": child, "looked_after": False,
            "absence_type": "missing", "risk_level": "high"}  # fmt: skip
    return _envelope(event_type, at, **{**body, **fields})


def contact(child: str, at: datetime = NOW, **fields: Any) -> dict[str, Any]:
    body = {"contact_id": f"C-{uuid.uuid4().hex[:8]}", "child_id": child, "contact_source": "1A",
            "concerns": ["neglect"]}  # fmt: skip
    return _envelope("contact.received", at, **{**body, **fields})


def incident(household: str, children: int, at: datetime = NOW, **fields: Any) -> dict[str, Any]:
    kids = [{"child_id": _pseudonym(), "present": True} for _ in range(children)]
    body = {"incident_id": f"INC-{uuid.uuid4().hex[:8]}", "household_id": household, "dash_risk": "high",
            "is_crime": True, "children": kids}  # fmt: skip
    return _envelope("domestic_incident.recorded", at, **{**body, **fields})


def plan(child: str, at: datetime = NOW, **fields: Any) -> dict[str, Any]:
    body = {"plan_id": f"CP-{uuid.uuid4().hex[:8]}", "child_id": child, "category": "NEG"}
    return _envelope("cp_plan.started", at, **{**body, **fields})


def _json(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True)
class Case:
    name: str
    topic: str
    key: bytes | None
    value: bytes
    reason: str
    child: str | None = None
    """The child the case is about, when there is one: the probe after it is about the same child."""


def _cases() -> list[Case]:
    cases: list[Case] = []

    def add(name: str, topic: str, obj_or_bytes: Any, reason: str, *, key: str | bytes | None = None) -> None:
        value = obj_or_bytes if isinstance(obj_or_bytes, bytes) else _json(obj_or_bytes)
        child = obj_or_bytes.get("child_id") if isinstance(obj_or_bytes, dict) else None
        if key is None and isinstance(obj_or_bytes, dict):
            key = obj_or_bytes.get("household_id") or child
        raw_key = key.encode() if isinstance(key, str) else key
        cases.append(Case(name, topic, raw_key, value, reason, child if isinstance(child, str) else None))

    c = _pseudonym
    # 1. size: a ~900 KB invalid message (its dead letter used to be too large to publish: the lane stalled).
    add("900 KB message", CONTACTS.name, {**contact(c()), "pad": "x" * 900_000}, "too_large")
    # 2. nesting: past the parser's recursion limit, and past the contract's depth within the size limit.
    add("100,000 [", MISSING_EPISODES.name, b"[" * 100_000, "too_large", key=c())
    add("1,000 [", MISSING_EPISODES.name, b"[" * 1_000, "too_deep", key=c())
    add("deep field", CONTACTS.name, {**contact(c()), "route": [[[[[[["x"]]]]]]]}, "too_deep")
    # 3. event time: a year typo, and far futures.
    for year in (2030, 2300, 9999):
        at = NOW.replace(year=year)
        add(f"missing dated {year}", MISSING_EPISODES.name, missing(c(), at), "in_the_future")
    add("contact dated 2300", CONTACTS.name, contact(c(), NOW.replace(year=2300)), "in_the_future")
    add("recorded next year", CONTACTS.name, {**contact(c()), "recorded_at": _iso(NOW.replace(year=NOW.year + 1))},
        "in_the_future")  # fmt: skip
    add("missing dated 1920", MISSING_EPISODES.name, missing(c(), NOW.replace(year=1920)), "too_old")
    # 4. identifiers inside fields.
    add("NHS in episode id", MISSING_EPISODES.name, missing(c(), episode_id=f"NHS{NHS}"), "raw_identifier")
    add("NHS in contact id", CONTACTS.name, contact(c(), contact_id=f"CT-{NHS}"), "raw_identifier")
    add("NHS as agency code", CONTACTS.name, contact(c(), agency_code=NHS), "raw_identifier")
    add("dotted NHS", MISSING_EPISODES.name, missing(c(), episode_id="MP/943.476.5919"), "raw_identifier")
    add("full-width NHS", MISSING_EPISODES.name, missing(c(), episode_id=f"MP-{FULL_WIDTH_NHS}"), "raw_identifier")
    add("UPN in contact id", CONTACTS.name, contact(c(), contact_id=f"UPN:{UPN}"), "raw_identifier")
    add("capitals name", CONTACTS.name, contact(c(), contact_id="JANE SMITH"), "raw_identifier")
    add("surname first", CP_PLANS.name, plan(c(), plan_id="Smith, Jane"), "raw_identifier")
    add("postcode", CONTACTS.name, contact(c(), linked_incident_id="LS1 4AP"), "raw_identifier")
    add("NHS as a field name", CONTACTS.name, {**contact(c()), NHS: True}, "invalid")
    add("NHS as the key", CONTACTS.name, contact(c()), "key_mismatch", key=NHS)
    add("name in a code list", MISSING_EPISODES.name, missing(c(), risk_level="JANE SMITH"), "invalid")
    # 5. fan-out.
    household = c()
    add("51 children", DOMESTIC_INCIDENTS.name, incident(household, 51), "too_many_items")
    add("5,000 children", DOMESTIC_INCIDENTS.name, incident(c(), 5_000), "too_large")
    # 7. coercions the exported JSON Schema refuses.
    add("yes for a boolean", MISSING_EPISODES.name, missing(c(), looked_after="yes"), "invalid")
    add("text for a number", DOMESTIC_INCIDENTS.name, incident(c(), 1, dash_score="5"), "invalid")
    add("epoch timestamp", CONTACTS.name, {**contact(c()), "occurred_at": int(NOW.timestamp())}, "invalid")
    return cases


CASES = _cases()


@dataclass
class Run:
    """What the module's run produced: the broker, the records sent, and where everything went."""

    broker: LocalBroker
    bootstrap: str
    workdir: Path
    sent: dict[str, tuple[Record, str]]
    """(topic:partition:offset) of each hostile record -> (its record, the expected reason)."""
    probes: dict[str, str]
    """probe event id -> its child."""
    alerts: list[Any]
    letters: list[Any]
    worker_log: str
    worker_stop_s: float
    deadline_children: list[str]


def _produce(bootstrap: str, items: list[tuple[str, bytes | None, bytes]]) -> list[Any]:
    """Send like an outside client (kcat): raw bytes, the broker's limits only."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=2 * 1024 * 1024)
    try:
        futures = [producer.send(topic, key=key, value=value) for topic, key, value in items]
        producer.flush(timeout=60)
        return [f.get(timeout=60) for f in futures]
    finally:
        producer.close()


def _alerts(bootstrap: str) -> list[Any]:
    return [decode_alert(r.value) for r in read_new(bootstrap, {}, [ALERTS.name])]


def _dead_letters(bootstrap: str) -> list[Any]:
    return [decode_dead_letter(r.value) for r in read_new(bootstrap, {}, [DEAD_LETTER.name])]


def _probe(bootstrap: str, child: str) -> str:
    event = missing(child)
    _produce(bootstrap, [(MISSING_EPISODES.name, child.encode(), _json(event))])
    return str(event["event_id"])


def _alerted(bootstrap: str, event_id: str) -> bool:
    return any(event_id in a.evidence_event_ids and a.rule_id == "high_risk_missing" for a in _alerts(bootstrap))


def _alerted_once_serving(bootstrap: str, event_id: str) -> bool:
    """`_alerted`, with Kafka errors taken for "not yet": a KRaft broker resumed after SIGSTOP may find its
    controller session lapsed and be fenced (no leaders, no brokers in metadata) for a few seconds."""
    try:
        return _alerted(bootstrap, event_id)
    except KafkaError:
        return False


@pytest.fixture(scope="module")
def own_broker(kafka_broker: LocalBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """A broker of this module's own (skipped like the session broker when Java or Maven is missing)."""
    state = tmp_path_factory.mktemp("hostile-broker")
    broker = LocalBroker(LocalKafkaSettings(cache_dir=kafka_broker.local.cache_dir, state_dir=state))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def _bootstrap(broker: LocalBroker) -> str:
    state = broker.read_state()
    assert state is not None
    return state.bootstrap


@pytest.fixture(scope="module")
def run(own_broker: LocalBroker, tmp_path_factory: pytest.TempPathFactory) -> Run:
    bootstrap = _bootstrap(own_broker)
    workdir = tmp_path_factory.mktemp("hostile-worker")
    worker = WorkerProcess(bootstrap, "hostile-worker", workdir)
    worker.start()
    try:
        probes: dict[str, str] = {}
        first = _pseudonym()
        probes[_probe(bootstrap, first)] = first
        wait_for(worker, "the first probe's alert", lambda: _alerted(bootstrap, next(iter(probes))), 180)
        # Open return-interview deadlines a day from now: a clock thrown into 2030 would fire every one of them.
        deadline_children = [_pseudonym() for _ in range(3)]
        _produce(
            bootstrap,
            [
                (MISSING_EPISODES.name, child.encode(), _json(missing(child, NOW - timedelta(days=2), event_type=kind)))
                for child in deadline_children
                for kind in ("missing.reported", "missing.found")
            ],
        )
        sent: dict[str, tuple[Record, str]] = {}
        for case in CASES:
            [meta] = _produce(bootstrap, [(case.topic, case.key, case.value)])
            sent[f"{meta.topic}:{meta.partition}:{meta.offset}"] = (
                Record(meta.topic, meta.partition, meta.offset, case.key, case.value),
                case.reason,
            )
            child = case.child or _pseudonym()
            event_id = _probe(bootstrap, child)
            probes[event_id] = child
            wait_for(worker, f"the probe after {case.name!r}", lambda e=event_id: _alerted(bootstrap, e), 60)

        topics = [spec.name for spec in EVENT_TOPICS]
        ends = end_offsets(bootstrap, topics)

        def all_committed() -> bool:
            done = committed(bootstrap, "hostile-worker", topics)
            return all(done.get(tp, 0) >= end for tp, end in ends.items())

        wait_for(worker, "every record committed", all_committed, 60)
        assert worker.process is not None
        started = time.monotonic()
        worker.process.send_signal(signal.SIGTERM)
        worker.process.wait(timeout=30)
        stop_s = time.monotonic() - started
        return Run(
            broker=own_broker,
            bootstrap=bootstrap,
            workdir=workdir,
            sent=sent,
            probes=probes,
            alerts=_alerts(bootstrap),
            letters=_dead_letters(bootstrap),
            worker_log=(workdir / "worker-hostile-worker.log").read_text(encoding="utf-8", errors="replace"),
            worker_stop_s=stop_s,
            deadline_children=deadline_children,
        )
    finally:
        worker.stop()


def test_every_probe_raised_its_alert_and_the_worker_stopped_within_ten_seconds(run: Run) -> None:
    alerted = {e for a in run.alerts if a.rule_id == "high_risk_missing" for e in a.evidence_event_ids}
    assert set(run.probes) <= alerted
    assert run.worker_stop_s < 10, f"SIGTERM took {run.worker_stop_s:.1f} s"


def test_every_hostile_record_is_dead_lettered_once_with_its_reason(run: Run) -> None:
    by_source = {f"{d.source_topic}:{d.source_partition}:{d.source_offset}": d for d in run.letters}
    assert len(by_source) == len(run.letters), "a record was dead-lettered twice"
    for where, (record, reason) in run.sent.items():
        letter = by_source.get(where)
        assert letter is not None, f"{where} ({reason}) was not dead-lettered"
        assert letter.reason_code == reason, (where, letter.error)
        assert letter.original_size == len(record.value)
        assert len(letter.original()) <= 16 * 1024
    probes_dead = [d for d in run.letters if d.claimed_event_id in run.probes]
    assert not probes_dead, "a probe was dead-lettered"
    # Accepted + dead-lettered = sent: the probes and deadline events were accepted, every case dead-lettered.
    assert set(by_source) == set(run.sent)


def test_a_clock_is_never_thrown_forward_by_a_mistyped_year(run: Run) -> None:
    """The deadlines open a day ahead did not fire (they would have with the clock in 2030)."""
    fired = [a for a in run.alerts if a.rule_id in {"return_interview_overdue", "da_contact_overdue"}]
    assert not fired, [(a.rule_id, a.subject_id) for a in fired]


def _no_identifier(text: str, where: str) -> None:
    for identifier in IDENTIFIERS:
        assert identifier not in text, f"{identifier!r} reached {where}"


def test_no_identifier_reaches_a_topic_the_system_writes_or_the_log(run: Run) -> None:
    for letter in run.letters:
        _no_identifier(letter.model_dump_json(), f"dead letter {letter.dead_letter_id}")
        _no_identifier(letter.original().decode("utf-8", "replace"), f"the original of {letter.dead_letter_id}")
    admin = KafkaAdminClient(bootstrap_servers=run.bootstrap)
    try:
        internal = [t for t in admin.list_topics() if t.startswith("hostile-worker")]
    finally:
        admin.close()
    assert internal, "the worker's changelog and repartition topics exist"
    for record in read_new(run.bootstrap, {}, [ALERTS.name, *internal]):
        _no_identifier(record.value.decode("utf-8", "replace"), record.topic)
        _no_identifier((record.key or b"").decode("utf-8", "replace"), f"a key on {record.topic}")
    _no_identifier(run.worker_log, "the worker's log")


def _sink_env(run: Run, store: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFEGUARD_")}
    env.update(
        {
            "SAFEGUARD_KAFKA__BOOTSTRAP_SERVERS": run.bootstrap,
            "SAFEGUARD_CLICKHOUSE__URL": f"chdb://{store}",
            "SAFEGUARD_CLICKHOUSE__CONSUMER_GROUP": f"hostile-sink-{uuid.uuid4().hex[:6]}",
            "SAFEGUARD_CLICKHOUSE__BATCH_SECONDS": "0.5",
        }
    )
    return env


SINK = [sys.executable, "-c", "from safeguard.cli import main; main()", "sink"]


def test_the_sink_stores_each_case_as_a_finding_with_the_workers_reason_and_no_identifier(
    run: Run, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    env = _sink_env(run, store)
    done = subprocess.run([*SINK, "run", "--until-caught-up"], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    _no_identifier(done.stdout + done.stderr, "the sink's log")
    client = connect(Settings(_env_file=None, clickhouse=ClickHouseSettings(url=f"chdb://{store}")))
    try:
        findings = {
            f"{t}:{p}:{o}": reason
            for t, p, o, reason in client.query(
                "SELECT kafka_topic, kafka_partition, kafka_offset, reason_code "
                "FROM safeguard.data_quality_findings FINAL"
            ).result_rows
        }
        for where, (_, reason) in run.sent.items():
            assert findings.get(where) == reason, where
        tables = [r[0] for r in client.query("SHOW TABLES FROM safeguard").result_rows]
        for table in tables:
            for row in client.query(f"SELECT * FROM safeguard.{table}").named_results():
                for column, value in row.items():
                    text = str(value)
                    if column == "original_b64" and value:
                        text = base64.b64decode(value).decode("utf-8", "replace")
                    _no_identifier(text, f"{table}.{column}")
    finally:
        client.close()


def test_sigterm_stops_a_running_sink_within_ten_seconds(run: Run, tmp_path: Path) -> None:
    log = (tmp_path / "sink.log").open("w")
    sink = subprocess.Popen([*SINK, "run"], env=_sink_env(run, tmp_path / "store"), cwd=tmp_path, stdout=log,
                            stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while "assigned" not in (tmp_path / "sink.log").read_text() and time.monotonic() < deadline:
            assert sink.poll() is None, (tmp_path / "sink.log").read_text()[-3000:]
            time.sleep(0.5)
        started = time.monotonic()
        sink.send_signal(signal.SIGTERM)
        sink.wait(timeout=30)
        assert time.monotonic() - started < 10
    finally:
        if sink.poll() is None:
            sink.kill()
            sink.wait()
        log.close()


def test_publish_finishes_every_hostile_file_with_a_summary_and_leaks_nothing(run: Run, tmp_path: Path) -> None:
    lines = [c.value.decode("utf-8") for c in CASES if len(c.value) < 1_000_000 and c.reason != "key_mismatch"]
    lines += ["x" * 800_000, json.dumps(missing(_pseudonym()))]  # a line over ~750 KB, then a good one
    path = tmp_path / "hostile.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFEGUARD_")}
    env["SAFEGUARD_KAFKA__BOOTSTRAP_SERVERS"] = run.bootstrap
    start = end_offsets(run.bootstrap, [DEAD_LETTER.name])
    done = subprocess.run([sys.executable, "-m", "safeguard", "publish", str(path)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert f"{len(lines)} records read" in done.stdout
    letters = [decode_dead_letter(r.value) for r in read_new(run.bootstrap, start, [DEAD_LETTER.name])]
    assert len(letters) == len(lines) - 1, "every line but the good one is a dead letter"
    assert sorted(d.source_line for d in letters) == list(range(1, len(lines)))
    for letter in letters:
        _no_identifier(letter.model_dump_json(), f"dead letter of line {letter.source_line}")
        _no_identifier(letter.original().decode("utf-8", "replace"), f"the original of line {letter.source_line}")
    _no_identifier(done.stdout + done.stderr, "publish's output")


def _set_topic_config(bootstrap: str, topic: str, configs: dict[str, str | None]) -> None:
    """Set (a value) or reset to the broker default (None) topic configs, leaving the others as they are."""
    ops = {k: (AlterConfigOp.SET, v) if v is not None else (AlterConfigOp.DELETE, None) for k, v in configs.items()}
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        result = admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, ops)], incremental=True)
        assert result.get("topic", {}).get(topic) == "OK", result
    finally:
        admin.close()


def test_an_alert_the_broker_refuses_for_itself_delays_alerting_but_never_stops_it(run: Run, tmp_path: Path) -> None:
    """With an alerts topic too small for any alert, the alert is dead-lettered as unpublishable and the lane moves
    on; once the topic is fixed, the next probe raises its alert as usual."""
    bootstrap = run.bootstrap
    worker = WorkerProcess(bootstrap, "hostile-refused", tmp_path)
    _set_topic_config(bootstrap, ALERTS.name, {"max.message.bytes": "200"})
    try:
        worker.start()
        refused = _probe(bootstrap, _pseudonym())
        wait_for(
            worker,
            "the refused alert's dead letter",
            lambda: any(
                d.reason_code == "unpublishable" and "high_risk_missing" in d.error for d in _dead_letters(bootstrap)
            ),
            180,
        )
        assert not _alerted(bootstrap, refused)
    finally:
        _set_topic_config(bootstrap, ALERTS.name, {"max.message.bytes": None})
    try:
        after = _probe(bootstrap, _pseudonym())
        wait_for(worker, "the alert after the topic was fixed", lambda: _alerted(bootstrap, after), 120)
    finally:
        worker.stop()


def test_sigterm_while_the_broker_does_not_answer_stops_within_ten_seconds_and_loses_nothing(
    run: Run, tmp_path: Path
) -> None:
    """The module's own broker frozen (SIGSTOP: connections open, nothing answered) right after a probe: SIGTERM must
    stop the worker within 10 s whatever it was waiting for; with the broker back, a restarted worker has the
    probe's alert on the topic (delivered before the freeze, or after the restart: never lost)."""
    bootstrap = run.bootstrap
    state = run.broker.read_state()
    assert state is not None
    worker = WorkerProcess(bootstrap, "hostile-outage", tmp_path)
    worker.start()
    frozen = False
    try:
        warm = _probe(bootstrap, _pseudonym())
        wait_for(worker, "the worker to run", lambda: _alerted(bootstrap, warm), 180)
        held = _probe(bootstrap, _pseudonym())
        os.kill(state.pid, signal.SIGSTOP)
        frozen = True
        time.sleep(3)
        assert worker.process is not None and worker.alive()
        started = time.monotonic()
        worker.process.send_signal(signal.SIGTERM)
        code = worker.process.wait(timeout=60)
        took = time.monotonic() - started
        log = (tmp_path / "worker-hostile-outage.log").read_text()
        assert took < 10, f"SIGTERM took {took:.1f} s (exit {code}):\n{log[-3000:]}"
        os.kill(state.pid, signal.SIGCONT)
        frozen = False
        worker.stop()
        worker = WorkerProcess(bootstrap, "hostile-outage", tmp_path)
        worker.start()
        wait_for(worker, "the held probe's alert", lambda: _alerted_once_serving(bootstrap, held), 180)
    finally:
        if frozen:
            os.kill(state.pid, signal.SIGCONT)
        worker.stop()
