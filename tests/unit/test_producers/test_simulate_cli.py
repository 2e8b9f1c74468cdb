"""`safeguard simulate`: JSONL out with a summary, publishing through a fake producer, and usage errors."""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from kafka.errors import KafkaTimeoutError
from rich.console import Console

import safeguard.simulate_cli as simulate_cli
from producers.publisher import EventPublisher
from safeguard.cli import cli
from safeguard.settings import Settings
from schemas.codec import decode_event

ARGS = ["simulate", "--scenario", "leicester-2019", "--seed", "7", "--days", "5"]


class _Future:
    def __init__(self, topic: str, fail: bool, answered: bool = True) -> None:
        self.topic = topic
        self.fail = fail
        self.answered = answered

    def add_callback(self, fn: Any, *args: Any) -> None:
        if self.answered and not self.fail:
            fn(*args, "metadata")

    def add_errback(self, fn: Any, *args: Any) -> None:
        if self.answered and self.fail:
            fn(*args, RuntimeError("broker said no"))


class FakeProducer:
    """Answers every send at once; fails the topics it is told to fail."""

    def __init__(
        self, fail_topic: str | None = None, *, gone_after: int | None = None, blocks_after: int | None = None
    ) -> None:
        self.sent: list[tuple[str, bytes | None, bytes]] = []
        self.fail_topic = fail_topic
        self.gone_after = gone_after
        """The broker goes away after this many messages: later ones are buffered, never answered."""
        self.blocks_after = blocks_after
        """... and after this many, send gives up as kafka-python does after max_block_ms."""
        self.closed = False

    def send(self, topic: str, value: bytes | None = None, key: bytes | None = None) -> _Future:
        assert value is not None
        if self.blocks_after is not None and len(self.sent) >= self.blocks_after:
            raise KafkaTimeoutError("Failed to allocate memory within the configured max blocking time 60000 ms.")
        self.sent.append((topic, key, value))
        answered = self.gone_after is None or len(self.sent) <= self.gone_after
        return _Future(topic, topic == self.fail_topic, answered)

    def flush(self, timeout: float | None = None) -> None:
        if self.gone_after is not None and len(self.sent) > self.gone_after:
            raise KafkaTimeoutError("Timeout waiting for future")

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


def test_publish_year_tells_its_caller_how_far_it_has_got(monkeypatch: pytest.MonkeyPatch) -> None:
    """`safeguard run`'s live view follows publishing through this hook instead of the progress bar."""
    producer = FakeProducer()
    connect_to(producer, monkeypatch)
    told: list[tuple[int, int, datetime]] = []
    simulate_cli.publish_year(
        Settings(_env_file=None), "leicester-2019", 7, 5, None, on_progress=lambda *seen: told.append(seen)
    )
    total = len(producer.sent)
    assert total > 500
    assert [done for done, _, _ in told] == list(range(1, total + 1))
    assert {events for _, events, _ in told} == {total}
    times = [at for _, _, at in told]
    assert times == sorted(times), "published in event-time order"


def test_publish_year_prints_on_the_consoles_it_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    """`safeguard run` passes the console of its live view: a console of its own would write across the view."""
    connect_to(FakeProducer(), monkeypatch)
    out, err = io.StringIO(), io.StringIO()
    simulate_cli.publish_year(
        Settings(_env_file=None),
        "leicester-2019",
        7,
        5,
        None,
        lambda *_: None,
        out=Console(file=out, width=100),
        err=Console(file=err, width=100),
    )
    assert "delivered to Kafka" in out.getvalue() and "safeguarding.contacts.v1" in out.getvalue()
    assert "events generated" in err.getvalue()


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


def _the_error_line(result: Result) -> str:
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), "a clear error, not a traceback"
    lines = result.output.splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert errors == lines[-1:], result.output
    return errors[0]


def test_kafka_going_away_mid_run_is_one_clear_line_and_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    """send() gives up (no broker within max_block_ms): the simulation stops there and says how far it got."""
    producer = FakeProducer(gone_after=200, blocks_after=300)
    connect_to(producer, monkeypatch)
    result = CliRunner().invoke(cli, [*ARGS, "--publish"])
    line = _the_error_line(result)
    assert producer.closed
    assert line.startswith("error: Kafka stopped answering: 200 of ") and "events delivered" in line, line
    assert "100 unanswered" in line and "Failed to allocate memory" in line, line


def test_kafka_going_away_after_the_last_send_is_one_clear_line_and_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every event handed over, but Kafka never answered for the last ones: the flush times out."""
    producer = FakeProducer(gone_after=100)
    connect_to(producer, monkeypatch)
    result = CliRunner().invoke(cli, [*ARGS, "--publish"])
    line = _the_error_line(result)
    assert producer.closed
    total = len(producer.sent)
    assert f"Kafka stopped answering: 100 of {total:,} events delivered" in line, line
    assert f"{total - 100:,} unanswered, 0 not sent" in line and "Timeout waiting for future" in line, line
