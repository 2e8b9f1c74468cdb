"""A generated file with bad lines mixed in, through `safeguard publish` into a real broker, read back independently."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from click.testing import CliRunner

from safeguard.cli import cli
from schemas import DEAD_LETTER, EVENT_TOPICS, decode_dead_letter, decode_event, message_key, topic_for
from tests.integration.kafka_reader import end_offsets, murmur2_partition, read_new

pytestmark = pytest.mark.integration

BAD_LINES = [
    "this is not json",
    "[1, 2, 3]",
    '{"event_type": "missing.reported"}',
    "",  # blank: skipped, not counted
]


def _bad_variants(valid: dict) -> list[str]:
    return [
        json.dumps({**valid, "child_id": "9434765919"}),  # raw NHS number
        json.dumps({**valid, "occurred_at": "2019-05-01T10:00:00"}),  # naive timestamp
        json.dumps({**valid, "event_type": "contact.lost"}),
        json.dumps({**valid, "la_code": "38"}),
    ]


def test_publish_generated_file_reconciles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kafka_bootstrap: str
) -> None:
    monkeypatch.setenv("SAFEGUARD_KAFKA__BOOTSTRAP_SERVERS", kafka_bootstrap)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    generated = tmp_path / "generated.jsonl"
    result = runner.invoke(
        cli, ["simulate", "--scenario", "leeds-2019", "--seed", "11", "--days", "10", "--out", str(generated)]
    )
    assert result.exit_code == 0, result.output
    good_lines = generated.read_text().splitlines()
    assert len(good_lines) > 1000

    # Mix bad lines in among the good ones.
    mixed: list[str] = []
    bad_count = 0
    for i, line in enumerate(good_lines):
        mixed.append(line)
        if i % 97 == 0:
            variants = _bad_variants(json.loads(line)) + BAD_LINES
            bad = variants[(i // 97) % len(variants)]
            mixed.append(bad)
            bad_count += 1 if bad.strip() else 0
    path = tmp_path / "agency-upload.jsonl"
    path.write_text("\n".join(mixed) + "\n")
    lines_read = sum(1 for line in mixed if line.strip())

    topics = [t.name for t in EVENT_TOPICS] + [DEAD_LETTER.name]
    before = end_offsets(kafka_bootstrap, topics)
    result = runner.invoke(cli, ["publish", str(path)])
    assert result.exit_code == 1, result.output  # some lines were rejected
    assert f"{lines_read} records read" in result.output

    records = read_new(kafka_bootstrap, before, topics)
    accepted = [r for r in records if r.topic != DEAD_LETTER.name]
    dead = [r for r in records if r.topic == DEAD_LETTER.name]
    assert len(accepted) + len(dead) == lines_read
    assert len(dead) == bad_count
    assert len(accepted) == len(good_lines)

    # Every accepted event is on its contract topic, keyed by its child or household, on the murmur2 partition.
    partitions_by_key: dict[tuple[str, bytes], set[int]] = defaultdict(set)
    for record in accepted:
        event = decode_event(record.value)
        assert topic_for(event.event_type).name == record.topic
        assert record.key == message_key(event).encode()
        assert record.partition == murmur2_partition(record.key, 6)
        partitions_by_key[(record.topic, record.key)].add(record.partition)
    assert all(len(p) == 1 for p in partitions_by_key.values())
    assert Counter(r.topic for r in accepted).keys() == {t.name for t in EVENT_TOPICS}

    # Every dead letter names the file, the line and the reason, and keeps the original bytes.
    lines_of_file = path.read_text().splitlines()
    for record in dead:
        letter = decode_dead_letter(record.value)
        assert letter.source == "file" and letter.source_file == path.name
        assert letter.source_line is not None
        line = lines_of_file[letter.source_line - 1]
        if letter.original_masked:  # a raw identifier is masked in what is kept; the rest is the line as written
            # (an unknown field on an incident, reason `invalid`, or a raw pseudonym, reason `raw_identifier`)
            assert "9434765919" not in letter.original().decode()
            assert json.loads(letter.original()) == {**json.loads(line), "child_id": "[masked: an NHS number]"}
        else:
            assert letter.original().decode() == line
        assert letter.error and letter.reason_code
    reasons = Counter(decode_dead_letter(r.value).reason_code for r in dead)
    assert reasons["raw_identifier"] >= 1 and reasons["undecodable"] >= 1 and reasons["unknown_event_type"] >= 1
