"""The pieces `safeguard run` starts and watches: service subprocesses, the alert feed, consumer-group progress.

Each service is a subprocess of this command with its own log file; it is stopped by its own process id
(SIGTERM, then SIGKILL after a grace period), never by name.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from kafka import KafkaConsumer
from kafka.structs import TopicPartition

from schemas.alerts import AlertRaised
from schemas.codec import decode_alert
from schemas.errors import ContractError
from schemas.topics import ALERTS


@dataclass
class ServiceProcess:
    """One long-running service (the worker, the sink, the notifier) as a child process."""

    name: str
    argv: Sequence[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    @classmethod
    def python_module(cls, name: str, module_args: Sequence[str], log_dir: Path) -> ServiceProcess:
        return cls(name, [sys.executable, "-m", *module_args], log_dir / f"{name}.log")

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(self.argv, stdout=self._log, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, grace_s: float = 30.0) -> int | None:
        """SIGTERM and wait; SIGKILL if it does not stop within the grace period. Returns the exit code."""
        code = None
        if self.process is not None:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(timeout=grace_s)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
            code = self.process.returncode
        if self._log is not None:
            self._log.close()
            self._log = None
        return code


class AlertFeed:
    """Reads safeguarding.alerts.v1 from its current end (no consumer group) and hands each new alert on once."""

    def __init__(self, client_options: dict[str, Any], on_alert: Callable[[AlertRaised], None]) -> None:
        self._consumer = KafkaConsumer(**client_options, enable_auto_commit=False, group_id=None)
        partitions = [TopicPartition(ALERTS.name, p) for p in sorted(self._consumer.partitions_for_topic(ALERTS.name))]
        self._consumer.assign(partitions)
        self._consumer.seek_to_end(*partitions)
        for partition in partitions:
            self._consumer.position(partition)  # resolve "end" now, before anything new is published
        self._on_alert = on_alert
        self._seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="alert-feed", daemon=True)
        self.unreadable = 0

    @property
    def count(self) -> int:
        return len(self._seen)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for records in self._consumer.poll(timeout_ms=200).values():
                for record in records:
                    try:
                        alert = decode_alert(record.value or b"")
                    except ContractError:
                        self.unreadable += 1
                        continue
                    if alert.alert_id not in self._seen:  # at-least-once upstream: the same alert may come twice
                        self._seen.add(alert.alert_id)
                        self._on_alert(alert)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._consumer.close()


@contextmanager
def repeating(interval_s: float, action: Callable[[], None], *, name: str) -> Iterator[None]:
    """Call `action` every `interval_s` on a thread of its own while the block runs (the main thread publishes)."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval_s):
            action()

    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=interval_s + 5)


def group_progress(client_options: dict[str, Any], group: str, topics: Sequence[str]) -> tuple[int, int]:
    """(records the consumer group has committed, records on `topics`): how far a service has got."""
    consumer = KafkaConsumer(**client_options, enable_auto_commit=False, group_id=group)  # reads, never joins
    try:
        parts = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or [])]
        ends = consumer.end_offsets(parts)
        committed = {tp: consumer.committed(tp) or 0 for tp in parts}
    finally:
        consumer.close()
    return sum(min(committed[tp], ends[tp]) for tp in parts), sum(ends.values())


def records_on(client_options: dict[str, Any], topics: Sequence[str]) -> int:
    """How many records `topics` hold (end minus beginning offsets)."""
    consumer = KafkaConsumer(**client_options, enable_auto_commit=False, group_id=None)
    try:
        parts = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or [])]
        ends, starts = consumer.end_offsets(parts), consumer.beginning_offsets(parts)
    finally:
        consumer.close()
    return sum(ends[tp] - starts[tp] for tp in parts)
