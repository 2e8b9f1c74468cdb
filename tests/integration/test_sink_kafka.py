"""The sink through the session's real Kafka broker into a real chDB store in tmp_path, run as `safeguard sink`
subprocesses (the sink owns the store while it runs; the test opens it only after the sink has stopped).

- rows equal messages: every message published by the test is in its table with the values it carried, and
  `safeguard sink reconcile` agrees (and names the offset when a row is taken away);
- SIGKILL of the sink's own pid mid-run, then a restart: nothing lost, nothing doubled (counts with FINAL);
- the store refusing writes while the sink runs (its table directories made immutable, as a full or read-only
  disk would): the sink retries, commits nothing meanwhile, and loses nothing once the store is back;
- who published: events sent by the gateway's own publisher land with its `safeguard-principal` header in
  `published_by`, events from a plain producer with NULL, an unusable header with NULL and a finding; a re-read
  replaces the rows and keeps the principal.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.structs import OffsetAndMetadata, TopicPartition

from gateway.kafka import Ack, GatewayPublisher, Outgoing
from producers.simulate.generator import generate
from producers.simulate.scenarios import LEEDS_2019
from safeguard.settings import ClickHouseSettings, Settings
from schemas.alerts import AlertLifecycle, AlertRaised
from schemas.codec import encode, validate_event
from schemas.deadletter import dead_letter_from_kafka
from schemas.topics import TOPICS, message_key, topic_for
from sinks.mapping import KEY_COLUMNS, TABLE_COLUMNS
from sinks.records import PRINCIPAL_HEADER, Message, rows_for_message
from sinks.store import connect
from tests.integration.kafka_reader import end_offsets, read_new
from tests.unit.test_schemas import examples as ex

pytestmark = pytest.mark.integration

ALL_TOPICS = [t.name for t in TOPICS]
DECISIONS = "safeguarding.contacts.v1"
_VOLATILE = {"ingested_at", "found_at"}


# -- helpers ----------------------------------------------------------------------------------------------------


def _env(bootstrap: str, store: Path, group: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFEGUARD_")}
    env.update(
        {
            "SAFEGUARD_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
            "SAFEGUARD_CLICKHOUSE__URL": f"chdb://{store}",
            "SAFEGUARD_CLICKHOUSE__CONSUMER_GROUP": group,
            "SAFEGUARD_CLICKHOUSE__BATCH_SECONDS": "0.5",
            "SAFEGUARD_CLICKHOUSE__RETRY_INITIAL_S": "0.2",
            "SAFEGUARD_CLICKHOUSE__RETRY_MAX_S": "1",
            **extra,
        }
    )
    return env


def _sink_cmd(*args: str) -> list[str]:
    return [sys.executable, "-c", "from safeguard.cli import main; main()", "sink", *args]


def _run(env: dict[str, str], *args: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_sink_cmd(*args), env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


Headers = list[tuple[str, bytes]]


def _publish(
    bootstrap: str, items: list[tuple[str, bytes | None, bytes]], headers: dict[bytes, Headers] | None = None
) -> None:
    """Publish with a plain producer; `headers` gives some values (by their bytes) Kafka headers."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, batch_size=256 * 1024)
    headers = headers or {}
    try:
        futures = [
            producer.send(topic, key=key, value=value, headers=headers.get(value)) for topic, key, value in items
        ]
        producer.flush(timeout=120)
        for f in futures:
            f.get(timeout=60)
    finally:
        producer.close()


def _start_group_at_end(bootstrap: str, group: str) -> dict[TopicPartition, int]:
    """Commit the group's offsets at the current ends, so its sink reads only what the test publishes next."""
    ends = end_offsets(bootstrap, ALL_TOPICS)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        consumer.commit({tp: OffsetAndMetadata(end, "", -1) for tp, end in ends.items()})
    finally:
        consumer.close()
    return ends


def _committed(bootstrap: str, group: str, parts: list[TopicPartition]) -> dict[TopicPartition, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return {tp: consumer.committed(tp) or 0 for tp in parts}
    finally:
        consumer.close()


def _wait_for(condition: Any, what: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture
def store_client(tmp_path: Path) -> Iterator[Any]:
    """Opens the test's store after its sink stopped (yield a function so the test decides when)."""
    clients: list[Any] = []

    def open_store() -> Any:
        client = connect(Settings(_env_file=None, clickhouse=ClickHouseSettings(url=f"chdb://{tmp_path / 'store'}")))
        clients.append(client)
        return client

    yield open_store
    for client in clients:
        client.close()


def _decisions(n: int, tag: str) -> list[tuple[str, bytes | None, bytes]]:
    """n valid contact.decided events, fast to make (json, not the generator), unique event ids."""
    base = ex.minimal("contact.decided")
    out = []
    for i in range(n):
        obj = {**base, "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tag}:{i}")), "contact_id": f"CON-{i}"}
        out.append((DECISIONS, ex.CHILD.encode(), json.dumps(obj).encode()))
    return out


def _key_column(table: str) -> str:
    return "event_id" if table == "domestic_incident_children" else KEY_COLUMNS.get(table, "finding_id")


def _plain(value: Any) -> Any:
    """A value as the store gives it back: timestamps naive UTC, to the millisecond (DateTime64(3) truncates)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None, microsecond=value.microsecond // 1000 * 1000)
    return value


# -- tests --------------------------------------------------------------------------------------------------------


def test_rows_equal_messages_and_reconcile(kafka_bootstrap: str, tmp_path: Path, store_client: Any) -> None:
    start = end_offsets(kafka_bootstrap, ALL_TOPICS)
    events = generate(LEEDS_2019, 23, days=6)
    items: list[tuple[str, bytes | None, bytes]] = [
        (topic_for(e.event_type).name, message_key(e).encode(), encode(e)) for e in events
    ]
    # Ids of their own, so no other test's copy of an example can replace these rows.
    tag = uuid.uuid4()
    alert = AlertRaised.model_validate({**ex.alert(), "alert_id": tag.hex})
    lifecycle = AlertLifecycle(
        event_id=f"ack:{alert.alert_id}:1",
        alert_id=alert.alert_id,
        state="acknowledged",
        occurred_at=datetime(2025, 3, 2, 9, 0, tzinfo=UTC),
        rule_id=alert.rule_id,
        severity=alert.severity,
        la_code=alert.la_code,
        actor="duty.manager",
    )
    letter = dead_letter_from_kafka(
        topic=DECISIONS, partition=0, offset=tag.int % 10**9, key=None, value=b"{}", reason_code="invalid",
        error="e", at=datetime.now(UTC),  # dead letters have a retention (P90D): dated now
    )  # fmt: skip
    bad_plan = json.dumps({**ex.minimal("cp_plan.started"), "la_code": "1"}).encode()
    misplaced = encode(validate_event({**ex.full("contact.received"), "event_id": str(uuid.uuid4())}))
    items += [
        ("safeguarding.alerts.v1", alert.alert_id.encode(), encode(alert)),
        ("safeguarding.alert-lifecycle.v1", alert.alert_id.encode(), encode(lifecycle)),
        ("safeguarding.dead-letter.v1", None, encode(letter)),
        (DECISIONS, b"junk", b"\xff\xfe not an event"),  # undecodable: a finding, not lost
        ("safeguarding.cp-plans.v1", ex.CHILD.encode(), bad_plan),  # invalid: a finding
        (DECISIONS, b"wrong-key", misplaced),  # stored, and noted as a finding
    ]
    # Who published: the gateway's header on two events; an unusable one (stored with NULL, and noted) on a third.
    signed = [encode(validate_event({**ex.full(t), "event_id": str(uuid.uuid4())})) for t in
              ("domestic_incident.recorded", "missing.reported", "cp_plan.started")]  # fmt: skip
    headers: dict[bytes, Headers] = {
        signed[0]: [(PRINCIPAL_HEADER, b"police-wyp")],
        signed[1]: [(PRINCIPAL_HEADER, b"police-wyp")],
        signed[2]: [(PRINCIPAL_HEADER, b"Not A Principal")],
    }
    for value in signed:
        event = validate_event(json.loads(value))
        items.append((topic_for(event.event_type).name, message_key(event).encode(), value))
    _publish(kafka_bootstrap, items, headers)

    env = _env(kafka_bootstrap, tmp_path / "store", f"sink-{uuid.uuid4().hex[:8]}")
    result = _run(env, "run", "--until-caught-up", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "sink stopped" in result.stderr

    published = [
        Message(r.topic, r.partition, r.offset, r.key, r.value, 0, headers.get(r.value, []))
        for r in read_new(kafka_bootstrap, start, ALL_TOPICS)
    ]
    assert len(published) == len(items)
    client = store_client()
    by_table: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {}
    for msg in published:
        # The sink measured the event-time window from the records' timestamps (just now), as here.
        for table, row in rows_for_message(msg, datetime.now(UTC)):
            key = (row.get(_key_column(table)), row.get("child_id") if "children" in table else None)
            by_table.setdefault(table, {})[key] = row
    assert {"contacts", "contact_decisions", "missing_episodes", "domestic_incidents", "cp_plans", "alerts",
            "alert_lifecycle", "dead_letters", "data_quality_findings"} <= set(by_table)  # fmt: skip
    for table, expected in by_table.items():
        columns = [c for c in TABLE_COLUMNS[table] if c not in _VOLATILE and c != "message_timestamp"]
        positions = sorted({(r["kafka_topic"], r["kafka_partition"], r["kafka_offset"]) for r in expected.values()})
        rows = client.query(
            f"SELECT {', '.join(columns)} FROM safeguard.{table} FINAL "
            "WHERE (kafka_topic, kafka_partition, kafka_offset) IN {positions:Array(Tuple(String, Int32, Int64))}",
            parameters={"positions": positions},
        ).result_rows  # fmt: skip
        got = {
            (row[columns.index(_key_column(table))],
             row[columns.index("child_id")] if "children" in table else None): dict(zip(columns, row, strict=True))
            for row in rows
        }  # fmt: skip
        assert set(got) == set(expected), table
        for key, row in expected.items():
            assert got[key] == {c: _plain(row[c]) for c in columns}, (table, key)
    [finding] = [r for r in by_table["data_quality_findings"].values() if r["message_key"] == "junk"]
    assert finding["reason_code"] == "undecodable"
    principals = [r["published_by"] for t, rows in by_table.items() if t != "data_quality_findings"
                  for r in rows.values() if "published_by" in r]  # fmt: skip
    assert [p for p in principals if p is not None] == ["police-wyp"] * 4  # the incident, its 2 children, the report
    [bad_header] = [r for r in by_table["data_quality_findings"].values() if r["reason_code"] == "bad_principal_header"]
    assert bad_header["row_stored"] is True

    client.close()  # chDB: one process per store; reconcile runs in its own process
    reconciled = _run(env, "reconcile", cwd=tmp_path)
    assert reconciled.returncode == 0, reconciled.stdout + reconciled.stderr[-2000:]
    assert "every message on the topics has its row" in reconciled.stdout

    # Take one row away: reconcile names the topic, partition and offset, and exits 1.
    victim = next(iter(by_table["cp_plans"].values()))
    client = store_client()
    client.command(f"DELETE FROM safeguard.cp_plans WHERE event_id = '{victim['event_id']}'")
    client.close()
    reconciled = _run(env, "reconcile", cwd=tmp_path)
    assert reconciled.returncode == 1, reconciled.stdout
    assert f"MISSING safeguarding.cp-plans.v1[{victim['kafka_partition']}]: 1 messages" in reconciled.stdout
    assert f"offsets {victim['kafka_offset']}" in reconciled.stdout


def test_sigkill_mid_run_then_restart_loses_and_doubles_nothing(
    kafka_bootstrap: str, tmp_path: Path, store_client: Any
) -> None:
    group = f"sink-kill-{uuid.uuid4().hex[:8]}"
    start = _start_group_at_end(kafka_bootstrap, group)
    n = 6000
    _publish(kafka_bootstrap, _decisions(n, group))
    ends = end_offsets(kafka_bootstrap, [DECISIONS])
    parts = [tp for tp in ends if ends[tp] > start[tp]]
    total_new = sum(ends[tp] - start[tp] for tp in parts)
    assert total_new == n

    # Static membership: the restarted sink takes the killed one's place without waiting out its session.
    env = _env(
        kafka_bootstrap,
        tmp_path / "store",
        group,
        SAFEGUARD_CLICKHOUSE__BATCH_ROWS="200",
        SAFEGUARD_CLICKHOUSE__INSTANCE_ID="sink-under-test",
    )
    log_path = tmp_path / "sink1.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(_sink_cmd("run"), env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:

        def some_committed() -> bool:
            done = sum(c - start[tp] for tp, c in _committed(kafka_bootstrap, group, parts).items())
            return done > 0

        _wait_for(some_committed, "the sink's first commits")
        os.kill(proc.pid, signal.SIGKILL)  # its own pid: the subprocess this test started
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    committed_at_kill = sum(c - start[tp] for tp, c in _committed(kafka_bootstrap, group, parts).items())
    assert 0 < committed_at_kill < n, "the kill must land mid-run (some batches committed, not all)"

    result = _run(env, "run", "--until-caught-up", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sum(c - start[tp] for tp, c in _committed(kafka_bootstrap, group, parts).items()) == n

    client = store_client()
    ids = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"{group}:{i}")) for i in range(n)]
    mine = "event_id IN {ids:Array(String)}"
    final = client.command(
        f"SELECT count() FROM safeguard.contact_decisions FINAL WHERE {mine}", parameters={"ids": ids}
    )
    distinct = client.command(
        f"SELECT uniqExact(event_id) FROM safeguard.contact_decisions WHERE {mine}", parameters={"ids": ids}
    )
    raw = client.command(f"SELECT count() FROM safeguard.contact_decisions WHERE {mine}", parameters={"ids": ids})
    assert (final, distinct) == (n, n)
    assert raw >= n
    print(f"after SIGKILL at {committed_at_kill}/{n} committed: {raw - n} rows stored twice before FINAL")


def test_store_outage_while_the_sink_runs_loses_nothing(
    kafka_bootstrap: str, tmp_path: Path, store_client: Any
) -> None:
    chattr = shutil.which("chattr")
    probe = tmp_path / "probe"
    probe.mkdir()
    if chattr is None or subprocess.run([chattr, "+i", str(probe)], capture_output=True).returncode != 0:
        pytest.skip(
            "needs chattr +i (root on a filesystem with the immutable attribute) to make the store refuse writes"
        )
    subprocess.run([chattr, "-i", str(probe)], check=True)

    group = f"sink-outage-{uuid.uuid4().hex[:8]}"
    start = _start_group_at_end(kafka_bootstrap, group)
    before, during = _decisions(2000, f"{group}:a"), _decisions(2000, f"{group}:b")
    _publish(kafka_bootstrap, before)
    ends_a = end_offsets(kafka_bootstrap, [DECISIONS])
    parts = [TopicPartition(DECISIONS, p) for p in range(len(ends_a))]

    store = tmp_path / "store"
    env = _env(kafka_bootstrap, store, group, SAFEGUARD_CLICKHOUSE__BATCH_ROWS="500")
    log_path = tmp_path / "sink.log"
    table_dirs: list[str] = []
    with log_path.open("w") as log:
        proc = subprocess.Popen(_sink_cmd("run"), env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_for(lambda: _committed(kafka_bootstrap, group, parts) == {tp: ends_a[tp] for tp in parts},
                  "the first messages committed")  # fmt: skip
        # The outage: every table directory refuses new parts (as a full or read-only disk would).
        table_dirs = [str(d) for d in (store / "store").glob("*/*") if d.is_dir()]
        subprocess.run([chattr, "+i", *table_dirs], check=True)
        _publish(kafka_bootstrap, during)
        ends_b = end_offsets(kafka_bootstrap, [DECISIONS])
        _wait_for(lambda: log_path.read_text().count("store unavailable") >= 3, "the sink to retry several times")
        assert _committed(kafka_bootstrap, group, parts) == {tp: ends_a[tp] for tp in parts}, "committed while down"
        assert proc.poll() is None, "the sink must keep running through the outage"
        subprocess.run([chattr, "-i", *table_dirs], check=True)
        table_dirs = []
        _wait_for(lambda: _committed(kafka_bootstrap, group, parts) == {tp: ends_b[tp] for tp in parts},
                  "the rest committed after the store came back")  # fmt: skip
        os.kill(proc.pid, signal.SIGTERM)  # graceful stop of the sink this test started
        assert proc.wait(timeout=60) == 0, log_path.read_text()[-3000:]
    finally:
        if table_dirs:
            subprocess.run([chattr, "-i", *table_dirs], check=False)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    assert "sink stopped" in log_path.read_text()

    client = store_client()
    ids = [json.loads(v)["event_id"] for _, _, v in before + during]
    stored = client.command(
        "SELECT count() FROM safeguard.contact_decisions FINAL WHERE event_id IN {ids:Array(String)}",
        parameters={"ids": ids},
    )
    assert stored == len(ids) == 4000
    assert sum(ends_b[tp] - start[tp] for tp in parts) == 4000


def test_messages_arriving_while_a_batch_is_in_flight_are_committed_while_the_sink_runs(
    kafka_bootstrap: str, tmp_path: Path, store_client: Any
) -> None:
    """`safeguard run`'s shape: a burst of events, then a trickle (the worker's alerts) that lands while the
    burst's batch is being inserted, then quiet. The sink commits everything, the last small batch included, by
    time while it keeps running; it used to hold a finished last batch uncommitted until it was stopped."""
    group = f"sink-late-{uuid.uuid4().hex[:8]}"
    start = _start_group_at_end(kafka_bootstrap, group)
    burst = _decisions(2000, f"{group}:burst")
    trickle = [_decisions(3, f"{group}:late{i}") for i in range(8)]
    log_path = tmp_path / "sink.log"
    env = _env(kafka_bootstrap, tmp_path / "store", group)
    with log_path.open("w") as log:
        proc = subprocess.Popen(_sink_cmd("run"), env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_for(lambda: "assigned" in log_path.read_text(), "the sink to join its group")
        _publish(kafka_bootstrap, burst)
        for items in trickle:  # some land while a batch is in flight, the last ones after it
            time.sleep(0.25)
            _publish(kafka_bootstrap, items)
        ends = end_offsets(kafka_bootstrap, [DECISIONS])
        parts = [TopicPartition(DECISIONS, p) for p in range(len(ends))]
        assert sum(ends[tp] - start[tp] for tp in parts) == 2000 + 8 * 3
        _wait_for(lambda: _committed(kafka_bootstrap, group, parts) == {tp: ends[tp] for tp in parts},
                  "every message committed while the sink keeps running", timeout_s=90)  # fmt: skip
        assert proc.poll() is None, log_path.read_text()[-3000:]
        os.kill(proc.pid, signal.SIGTERM)  # graceful stop of the sink this test started
        assert proc.wait(timeout=60) == 0, log_path.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    assert "(0 buffered, 0 in flight)" in log_path.read_text()
    client = store_client()
    ids = [json.loads(v)["event_id"] for _, _, v in burst + [i for items in trickle for i in items]]
    assert client.command(
        "SELECT count() FROM safeguard.contact_decisions FINAL WHERE event_id IN {ids:Array(String)}",
        parameters={"ids": ids},
    ) == len(ids)


def test_the_publishing_principal_travels_from_the_gateway_to_the_store(
    kafka_bootstrap: str, tmp_path: Path, store_client: Any
) -> None:
    """Events published by the gateway's own publisher (`gateway.kafka`, which sets the header) land with the
    principal in `published_by`; the same kinds of event from a plain producer (a direct agency producer, kcat) land
    with NULL. Read twice (a second group from the same offsets into the same store): replaced, not added, and the
    principal kept."""
    first, again = f"sink-principal-{uuid.uuid4().hex[:8]}", f"sink-principal-again-{uuid.uuid4().hex[:8]}"
    _start_group_at_end(kafka_bootstrap, first)
    _start_group_at_end(kafka_bootstrap, again)
    kinds = ("contact.received", "contact.decided", "missing.reported", "domestic_incident.recorded", "cp_plan.ended")

    def fresh(event_type: str) -> Any:
        return validate_event({**ex.full(event_type), "event_id": str(uuid.uuid4())})

    via_gateway, direct = [fresh(k) for k in kinds], [fresh(k) for k in kinds]
    publisher = GatewayPublisher.connect({"bootstrap_servers": kafka_bootstrap}, max_block_s=30)
    try:
        outgoing = [Outgoing(topic_for(e.event_type).name, message_key(e).encode(), encode(e), "police-wyp")
                    for e in via_gateway]  # fmt: skip
        outcomes = asyncio.run(publisher.publish(outgoing, timeout_s=60))
    finally:
        publisher.close()
    assert all(isinstance(o, Ack) for o in outcomes), outcomes
    _publish(kafka_bootstrap, [(topic_for(e.event_type).name, message_key(e).encode(), encode(e)) for e in direct])

    for group in (first, again):
        result = _run(_env(kafka_bootstrap, tmp_path / "store", group), "run", "--until-caught-up", cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]

    client = store_client()
    expected = {e.event_id: "police-wyp" for e in via_gateway} | {e.event_id: None for e in direct}
    tables = ("contacts", "contact_decisions", "missing_episodes", "domestic_incidents", "domestic_incident_children",
              "cp_plans")  # fmt: skip
    stored: dict[str, set[str | None]] = {}
    for table in tables:
        where = "event_id IN {ids:Array(String)}"
        rows = client.query(
            f"SELECT event_id, published_by FROM safeguard.{table} FINAL WHERE {where}", parameters={"ids": [*expected]}
        ).result_rows
        for event_id, principal in rows:
            stored.setdefault(event_id, set()).add(principal)
        raw = client.command(f"SELECT count() FROM safeguard.{table} WHERE {where}", parameters={"ids": [*expected]})
        assert raw >= len(rows) > 0, table
        if table == "domestic_incident_children":
            assert len(rows) == 4, "two children per incident, once each after FINAL"
        else:
            assert len(rows) == len({r[0] for r in rows}), f"{table}: each event once after FINAL"
    assert stored == {event_id: {principal} for event_id, principal in expected.items()}
    findings = client.command(
        "SELECT count() FROM safeguard.data_quality_findings WHERE claimed_event_id IN {ids:Array(String)}",
        parameters={"ids": [*expected]},
    )
    assert findings == 0


def test_sink_waits_while_another_process_holds_the_chdb_store(
    kafka_bootstrap: str, tmp_path: Path, store_client: Any
) -> None:
    """The one-process-per-store rule: a sink that finds the store held waits (nothing consumed, nothing
    committed) and starts once the holder lets go."""
    group = f"sink-held-{uuid.uuid4().hex[:8]}"
    start = _start_group_at_end(kafka_bootstrap, group)
    items = _decisions(500, group)
    _publish(kafka_bootstrap, items)
    parts = [TopicPartition(DECISIONS, p) for p in range(len(end_offsets(kafka_bootstrap, [DECISIONS])))]
    holder = store_client()  # this test process holds the store, as the report would
    log_path = tmp_path / "sink.log"
    env = _env(kafka_bootstrap, tmp_path / "store", group)
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            _sink_cmd("run", "--until-caught-up"), env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        _wait_for(lambda: "held by another process" in log_path.read_text(), "the sink to find the store held")
        assert proc.poll() is None, log_path.read_text()[-2000:]
        assert _committed(kafka_bootstrap, group, parts) == {tp: start[tp] for tp in parts}
        holder.close()
        assert proc.wait(timeout=120) == 0, log_path.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)  # the subprocess this test started
            proc.wait(timeout=30)
    client = store_client()
    ids = [json.loads(v)["event_id"] for _, _, v in items]
    assert client.command(
        "SELECT count() FROM safeguard.contact_decisions FINAL WHERE event_id IN {ids:Array(String)}",
        parameters={"ids": ids},
    ) == len(items)
