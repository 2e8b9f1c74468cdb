"""Done-when of the foundation: an event written by hand from event-contract.md, published by an outside
client (kcat), is accepted by the worker; each malformed variant is dead-lettered with a reason."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from schemas import DEAD_LETTER, MISSING_EPISODES, decode_dead_letter
from tests.integration.kafka_reader import end_offsets, read_new
from tests.tiers import unavailable

pytestmark = pytest.mark.integration

CHILD = "5f2c9a0b" * 8
HAND_WRITTEN = {
    "event_id": "0b9c1e52-4f7e-4a59-9a55-2f0f7c3d9e11",
    "event_type": "missing.reported",
    "schema_version": 1,
    "la_code": "856",
    "agency_type": "police",
    "agency_code": "LEICS",
    "occurred_at": "2025-03-01T21:15:00+00:00",
    "recorded_at": "2025-03-01T22:02:41+00:00",
    "episode_id": "MP-2025-00417",
    "child_id": CHILD,
    "looked_after": True,
    "absence_type": "missing",
    "risk_level": "medium",
}
# (key, value, expected reason_code, words the error must contain)
MALFORMED = [
    (CHILD, "not json", "undecodable", "not valid JSON"),
    (CHILD, json.dumps({**HAND_WRITTEN, "child_id": "9434765919"}), "raw_identifier", "NHS number"),
    (CHILD, json.dumps({**HAND_WRITTEN, "occurred_at": "2025-03-01T21:15:00"}), "invalid", "offset"),
    (CHILD, json.dumps({**HAND_WRITTEN, "recorded_at": "2025-03-01T20:00:00+00:00"}), "invalid", "before"),
    (CHILD, json.dumps({**HAND_WRITTEN, "risk_level": "extreme"}), "invalid", "risk_level"),
    (CHILD, json.dumps({k: v for k, v in HAND_WRITTEN.items() if k != "episode_id"}), "invalid", "episode_id"),
    (CHILD, json.dumps({**HAND_WRITTEN, "event_type": "contact.decided"}), "invalid", "outcome"),
    (CHILD, json.dumps({**HAND_WRITTEN, "event_type": "domestic_incident.recorded"}), "invalid", "household_id"),
    ("someone-else", json.dumps(HAND_WRITTEN), "key_mismatch", "key"),
]


def _kcat_publish(bootstrap: str, topic: str, lines: list[tuple[str, str]]) -> None:
    payload = "".join(f"{key}|{value}\n" for key, value in lines)
    subprocess.run(
        ["kcat", "-P", "-b", bootstrap, "-t", topic, "-K", "|", "-X", "topic.partitioner=murmur2_random"],
        input=payload.encode(),
        check=True,
        timeout=60,
    )


def test_hand_written_event_from_kcat_is_accepted_and_malformed_ones_dead_lettered(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    if shutil.which("kcat") is None:
        unavailable("kcat is not installed (apt-get install kcat; .ci/run installs it)")
    topic = MISSING_EPISODES.name
    before = end_offsets(kafka_bootstrap, [topic, DEAD_LETTER.name])
    _kcat_publish(kafka_bootstrap, topic, [(CHILD, json.dumps(HAND_WRITTEN))] + [(k, v) for k, v, _, _ in MALFORMED])
    published = read_new(kafka_bootstrap, before, [topic])
    assert len(published) == 1 + len(MALFORMED)
    by_content = {(r.key, r.value): r for r in published}
    valid = by_content[(CHILD.encode(), json.dumps(HAND_WRITTEN).encode())]
    malformed = [by_content[(k.encode(), v.encode())] for k, v, _, _ in MALFORMED]

    app_id = f"kcat-contract-{int(time.time())}"
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "SAFEGUARD_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "SAFEGUARD_STREAMS__APP_ID": app_id,
        "SAFEGUARD_STREAMS__DATA_DIR": str(tmp_path / "streams"),
        "BROKER_URL": "kafka://127.0.0.1:1",  # a stray Faust variable must not win over our settings
    }
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "streams", "worker", "-l", "info"],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        letters = []
        while time.monotonic() < deadline:
            new = read_new(kafka_bootstrap, before, [DEAD_LETTER.name])
            letters = [decode_dead_letter(r.value) for r in new]
            letters = [d for d in letters if d.source_topic == topic]
            processed = _committed(kafka_bootstrap, app_id, topic, valid.partition) > valid.offset
            if len(letters) >= len(MALFORMED) and processed:
                break
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
            time.sleep(1)
        by_offset = {(d.source_partition, d.source_offset): d for d in letters}
        assert (valid.partition, valid.offset) not in by_offset, "the hand-written event was dead-lettered"
        assert _committed(kafka_bootstrap, app_id, topic, valid.partition) > valid.offset, "not processed"
        for record, (_, _, reason, words) in zip(malformed, MALFORMED, strict=True):
            letter = by_offset.get((record.partition, record.offset))
            assert letter is not None, f"offset {record.offset} ({reason}) was not dead-lettered"
            assert letter.reason_code == reason, letter.error
            assert words in letter.error, letter.error
            if letter.original_masked:  # the raw identifier is masked in what is kept; the rest is as sent
                assert b"9434765919" not in letter.original() and reason == "raw_identifier"
                assert json.loads(letter.original()) == {
                    **json.loads(record.value),
                    "child_id": "[masked: an NHS number]",
                }
            else:
                assert letter.original() == record.value
            assert letter.original_size == len(record.value)
            assert letter.source_partition == record.partition
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        log.close()


def _committed(bootstrap: str, group: str, topic: str, partition: int) -> int:
    """The offset the worker's consumer group has committed: past a record means the worker processed it."""
    from kafka import KafkaConsumer
    from kafka.structs import TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        committed = consumer.committed(TopicPartition(topic, partition))
    finally:
        consumer.close()
    return committed if committed is not None else -1
