"""The sink while its Kafka broker dies and comes back: a broker of the test's own (the session broker is shared),
stopped by its own pid while `safeguard sink run` runs, then started again on the same address.

The sink must never crash on the way: kafka-python calls the rebalance listener on its IO thread (with the
partitions *lost* when the broker is back after more than the session timeout, *revoked* when another member
joins), and a blocking commit there (or any exception out of it) used to kill the sink while it held a batch.
After the broker is back the sink resumes by itself, and every message published before, around and after the
outage has its row (the tables dedupe re-read messages by id: ReplacingMergeTree, read with FINAL).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from kafka import KafkaConsumer
from kafka.structs import TopicPartition

from safeguard.kafka_local import LocalBroker
from safeguard.settings import ClickHouseSettings, Settings
from schemas.topics import TOPICS
from sinks.store import connect
from tests.integration.kafka_reader import end_offsets
from tests.integration.own_broker import own_broker  # noqa: F401 (a fixture)
from tests.integration.test_sink_kafka import DECISIONS, _committed, _decisions, _env, _publish, _sink_cmd, _wait_for

pytestmark = pytest.mark.integration


def _stored(store: Path, ids: list[str]) -> int:
    client = connect(Settings(_env_file=None, clickhouse=ClickHouseSettings(url=f"chdb://{store}")))
    try:
        count: int = client.command(
            "SELECT count() FROM safeguard.contact_decisions FINAL WHERE event_id IN {ids:Array(String)}",
            parameters={"ids": ids},
        )
        return count
    finally:
        client.close()


_LOG_RECORD = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3} ", re.MULTILINE)
# kafka-python 3.0.12 (the newest) can log this with a traceback when a consumer closes while its IO thread is
# reading (`self._sock` already None in kafka/net/transport.py): its own race, handled by it, nothing lost.
_KNOWN_LIBRARY_RACE = "ERROR kafka.net.transport: <KafkaTCPTransport [none] (closed)>: Error receiving network data"


def _without_known_library_races(log: str) -> str:
    """The log without records of that one kafka-python close race, so any other traceback still fails the test."""
    starts = [m.start() for m in _LOG_RECORD.finditer(log)] + [len(log)]
    records = [log[: starts[0]], *(log[a:b] for a, b in itertools.pairwise(starts))]
    return "".join(r for r in records if _KNOWN_LIBRARY_RACE not in r)


def _rejoined(log_path: Path) -> int:
    """How many times the sink was given partitions (its listener logs each assignment)."""
    return len(re.findall(r"assigned [1-9][0-9]* partitions", log_path.read_text()))


def _another_member(bootstrap: str, group: str, seconds: float) -> None:
    """A second member of the sink's group for a while (as `--scale sink=2`, or a replica restarted after the
    outage): its joining revokes the sink's partitions mid-batch. It never commits, so nothing it reads is lost."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False, session_timeout_ms=6000
    )
    try:
        consumer.subscribe([spec.name for spec in TOPICS])
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            consumer.poll(timeout_ms=200)
    finally:
        consumer.close(autocommit=False)


def test_the_sink_survives_its_broker_dying_and_resumes_when_it_is_back(
    own_broker: LocalBroker,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
) -> None:
    state = own_broker.read_state()
    assert state is not None
    bootstrap = state.bootstrap
    group = f"sink-broker-outage-{uuid.uuid4().hex[:8]}"
    # A batch closes at 1000 messages (never by time during the test): `before` is one batch, stored and committed;
    # `around` (600) is held, read but not stored, when the broker dies; `after` (600) fills that batch once the
    # sink is back (stored and committed while it runs) and leaves 200 held when the group re-forms.
    before, around, after = (_decisions(n, f"{group}:{tag}") for n, tag in ((1000, "a"), (600, "b"), (600, "c")))
    _publish(bootstrap, before)
    parts = [TopicPartition(DECISIONS, p) for p in range(len(end_offsets(bootstrap, [DECISIONS])))]

    store = tmp_path / "store"
    env = _env(
        bootstrap,
        store,
        group,
        SAFEGUARD_CLICKHOUSE__SESSION_TIMEOUT_MS="6000",
        SAFEGUARD_KAFKA__REQUEST_TIMEOUT_MS="5000",
        SAFEGUARD_CLICKHOUSE__BATCH_ROWS="1000",
        SAFEGUARD_CLICKHOUSE__BATCH_SECONDS="900",
    )
    log_path = tmp_path / "sink.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(_sink_cmd("run"), env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)

    def alive(what: str) -> None:
        assert proc.poll() is None, f"the sink ended {what}:\n" + log_path.read_text()[-4000:]

    def committed() -> int:
        return sum(_committed(bootstrap, group, parts).values())

    try:
        _wait_for(lambda: committed() == len(before), "the first batch to be committed")

        # The sink reads these and holds them; the broker dies for longer than the session timeout, so the group
        # gives the sink's partitions away: when the broker is back, kafka-python tells the listener they are lost.
        _publish(bootstrap, around)
        time.sleep(3)
        joins = _rejoined(log_path)
        stopped = own_broker.stop()  # the broker this test started, by its own pid
        assert stopped is not None and stopped.bootstrap == bootstrap
        time.sleep(10)
        alive("while Kafka was down")
        again = own_broker.start()
        assert again.bootstrap == bootstrap, "a restarted local broker keeps its address"
        # Whether the group re-forms is up to timing: the restarted coordinator may take the sink's heartbeats back
        # within the session timeout (kafka-python reconnects silently, no new assignment, nothing lost), or the
        # sink's partitions are lost and assigned again. Seen both ways on this machine; either way the sink must go
        # on storing and committing, which the next step proves.
        settle_until = time.monotonic() + 45
        while time.monotonic() < settle_until and proc.poll() is None and _rejoined(log_path) <= joins:
            time.sleep(0.5)
        alive("when Kafka came back")

        # Back to work: a full batch is stored and committed while the sink runs.
        _publish(bootstrap, after)
        _wait_for(lambda: committed() == len(before) + 1000, "the sink to resume committing", 90)

        # While it holds the rest, the group re-forms (a replica restarted after the outage joins and leaves): its
        # partitions are revoked mid-batch.
        time.sleep(2)
        joins = _rejoined(log_path)
        _another_member(bootstrap, group, seconds=8)
        _wait_for(lambda: proc.poll() is not None or _rejoined(log_path) > joins, "the sink to rejoin", 60)
        time.sleep(3)
        alive("when its partitions were revoked mid-batch")
        assert committed() == len(before) + 1000, "the held messages are not committed before they are stored"

        os.kill(proc.pid, signal.SIGTERM)  # graceful stop of the sink this test started: flush, commit
        assert proc.wait(timeout=60) == 0, log_path.read_text()[-4000:]
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    text = log_path.read_text()
    assert "Traceback" not in _without_known_library_races(text) and "rebalance callback" not in text, text[-4000:]
    assert "sink stopped" in text
    assert "messages read but not yet committed will be read again" in text, "the held batches were re-read"

    ends = end_offsets(bootstrap, [DECISIONS])
    assert sum(ends.values()) == len(before) + len(around) + len(after)
    assert _committed(bootstrap, group, parts) == {tp: ends[tp] for tp in parts}
    ids = [json.loads(value)["event_id"] for _, _, value in before + around + after]
    assert _stored(store, ids) == len(ids), "every message has its row, none twice (FINAL)"
