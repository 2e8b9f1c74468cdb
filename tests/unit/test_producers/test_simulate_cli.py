"""`safeguard simulate`: JSONL out with a summary, publishing through a fake producer, and usage errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import safeguard.simulate_cli as simulate_cli
from producers.publisher import EventPublisher
from safeguard.cli import cli
from safeguard.settings import Settings
from schemas.codec import decode_event

ARGS = ["simulate", "--scenario", "leicester-2019", "--seed", "7", "--days", "5"]


class _Future:
    def __init__(self, topic: str, fail: bool) -> None:
        self.topic = topic
        self.fail = fail

    def add_callback(self, fn: Any, *args: Any) -> None:
        if not self.fail:
            fn(*args, "metadata")

    def add_errback(self, fn: Any, *args: Any) -> None:
        if self.fail:
            fn(*args, RuntimeError("broker said no"))


class FakeProducer:
    """Answers every send at once; fails the topics it is told to fail."""

    def __init__(self, fail_topic: str | None = None) -> None:
        self.sent: list[tuple[str, bytes | None, bytes]] = []
        self.fail_topic = fail_topic
        self.closed = False

    def send(self, topic: str, value: bytes | None = None, key: bytes | None = None) -> _Future:
        assert value is not None
        self.sent.append((topic, key, value))
        return _Future(topic, topic == self.fail_topic)

    def flush(self, timeout: float | None = None) -> None:
        pass

    def close(self, timeout: float | None = None) -> None:
        self.closed = True


def connect_to(producer: FakeProducer, monkeypatch: pytest.MonkeyPatch) -> None:
    def connect(settings: Settings) -> EventPublisher:
        assert isinstance(settings, Settings)
        return EventPublisher(producer)

    monkeypatch.setattr(simulate_cli, "_connect", connect)


def test_out_writes_jsonl_and_prints_counts_per_event_type(tmp_path: Path) -> None:
    out = tmp_path / "leicester.jsonl"
    result = CliRunner().invoke(cli, [*ARGS, "--out", str(out)])
    assert result.exit_code == 0, result.output
    lines = out.read_bytes().splitlines()
    events = [decode_event(line) for line in lines]
    assert len(events) > 500
    assert "contact.received" in result.output and "missing.reported" in result.output
    assert f"{len(events):,}" in result.output


def test_publish_sends_every_event_keyed_and_closes(monkeypatch: pytest.MonkeyPatch) -> None:
    producer = FakeProducer()
    connect_to(producer, monkeypatch)
    result = CliRunner().invoke(cli, [*ARGS, "--publish"])
    assert result.exit_code == 0, result.output
    assert producer.closed
    topics = {topic for topic, _, _ in producer.sent}
    assert topics == {
        "safeguarding.contacts.v1",
        "safeguarding.missing-episodes.v1",
        "safeguarding.domestic-incidents.v1",
        "safeguarding.cp-plans.v1",
    }
    assert all(key for _, key, _ in producer.sent)
    assert "safeguarding.contacts.v1" in result.output and "delivered" in result.output


def test_publish_with_speed_paces_and_still_sends_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    producer = FakeProducer()
    connect_to(producer, monkeypatch)
    result = CliRunner().invoke(cli, [*ARGS, "--publish", "--speed", "50000000"])  # 5 days in about 10 ms
    assert result.exit_code == 0, result.output
    assert len(producer.sent) > 500


def test_publish_exits_non_zero_when_deliveries_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    producer = FakeProducer(fail_topic="safeguarding.cp-plans.v1")
    connect_to(producer, monkeypatch)
    result = CliRunner().invoke(cli, [*ARGS, "--publish"])
    assert result.exit_code == 2
    assert producer.closed
    assert "not delivered" in result.output


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--out", "x.jsonl", "--publish"], "choose one"),
        (["--speed", "60"], "--speed"),
        (["--speed", "0", "--publish"], "range"),
    ],
)
def test_usage_errors(extra: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, [*ARGS, *extra])
    assert result.exit_code == 2
    assert message in result.output
