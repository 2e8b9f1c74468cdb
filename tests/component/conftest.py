"""The component tier runs the worker on the memory store: no files, no RocksDB (the worker's default is rocksdb://;
the RocksDB store has its own tests: tests/unit/test_streams/test_tables.py, tests/integration/test_worker_rocksdb.py).

This tier has no broker. The worker waits for the broker's acknowledgement of every table change before it
acknowledges a batch, so the changelog sends are replaced here (`changelogs`): acknowledged as they are sent,
unless a test makes some of them fail or wait.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import faust.tables.base
import pytest
from faust.types import TP
from faust.types.tuples import FutureMessage, PendingMessage, RecordMetadata


@pytest.fixture(autouse=True)
def memory_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings built in a component test read `memory://` from the environment (after tests/conftest.py cleaned it)."""
    monkeypatch.setenv("SAFEGUARD_STREAMS__STORE_URL", "memory://")


@dataclass
class ChangelogSend:
    table: str
    partition: int | None
    key: Any
    value: Any
    sent: FutureMessage


@dataclass
class Changelogs:
    """Every table change the worker sends, in order. `answer` decides each one's ack: None acknowledges it at once;
    an exception fails it; "hold" leaves it pending until the test resolves `sent` itself."""

    sends: list[ChangelogSend] = field(default_factory=list)
    answer: Callable[[ChangelogSend], BaseException | str | None] = lambda send: None

    def send(
        self,
        table: Any,
        partition: int | None,
        key: Any,
        value: Any,
        key_serializer: Any = None,
        value_serializer: Any = None,
    ) -> FutureMessage:
        pending = PendingMessage(
            table.changelog_topic, key, value, partition, None, None, key_serializer, value_serializer, None
        )
        sent = FutureMessage(pending)
        record = ChangelogSend(table.name, partition, key, value, sent)
        self.sends.append(record)
        answer = self.answer(record)
        if isinstance(answer, BaseException):
            sent.set_exception(answer)
        elif answer is None:
            acked(record)
        return sent


def acked(send: ChangelogSend) -> None:
    """Acknowledge a held change, as the broker would."""
    topic = f"{send.table}-changelog"
    partition = send.partition or 0
    send.sent.set_result(RecordMetadata(topic, partition, TP(topic, partition), 0))


@pytest.fixture(autouse=True)
def changelogs(monkeypatch: pytest.MonkeyPatch) -> Changelogs:
    """Table changes go here instead of a producer (which has no broker to reach in this tier)."""
    recorder = Changelogs()

    def send_changelog(table: Any, *args: Any, **kwargs: Any) -> FutureMessage:
        return recorder.send(table, *args, **kwargs)

    monkeypatch.setattr(faust.tables.base.Collection, "send_changelog", send_changelog)
    return recorder
