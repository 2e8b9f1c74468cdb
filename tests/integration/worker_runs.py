"""Running the real worker as a subprocess against a broker, and the in-process reference it must agree with."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from kafka import KafkaConsumer
from kafka.structs import TopicPartition

from schemas.alerts import AlertRaised
from schemas.events import AgencyEvent
from schemas.topics import EVENT_TOPICS
from streams.app import START_UNKNOWN, STARTS_AT
from streams.replay import Replay, kafka_partitions
from streams.rules import Catalogue
from tests.integration.kafka_reader import end_offsets

ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def broker_holding(state_dir: Path, events: Iterable[AgencyEvent]) -> Iterator[str]:
    """A broker of the caller's own on `state_dir`, holding `events` on the contract topics; yields its bootstrap.

    Without Java or Maven it skips with the reason (fails when CI is set); stopped by its own pid at the end.
    """
    from producers.publisher import EventPublisher
    from safeguard.kafka_clients import client_options
    from safeguard.kafka_local import LocalBroker, MissingToolError, ensure_jars
    from safeguard.settings import KafkaSettings, LocalKafkaSettings
    from schemas.topics import DEFAULT_PARTITIONS
    from tests.tiers import unavailable

    local = LocalKafkaSettings(state_dir=state_dir)
    try:
        ensure_jars(local)
    except MissingToolError as exc:
        unavailable(str(exc))
    broker = LocalBroker(local, partitions=DEFAULT_PARTITIONS)
    broker.start()
    try:
        state = broker.read_state()
        assert state is not None
        with EventPublisher.connect(client_options(KafkaSettings(), state.bootstrap)) as publisher:
            for event in events:
                publisher.publish(event)
            report = publisher.flush()
        assert report.failed == 0, report
        yield state.bootstrap
    finally:
        broker.stop()


EVENT_TOPIC_NAMES = [spec.name for spec in EVENT_TOPICS]


def reference_alerts(events: Iterable[AgencyEvent], partitions: int) -> dict[str, AlertRaised]:
    """The alerts of processing `events` in order in one process: the same pure code, no Kafka, no Faust
    (`streams.replay`; obligations applied right after their incident, as if the repartition were instant)."""
    replay = Replay(
        Catalogue.default(), partition_of=kafka_partitions(partitions), raised_at=datetime(2030, 1, 1, tzinfo=UTC)
    )
    alerts: dict[str, AlertRaised] = {}
    for event in events:
        for alert in replay.apply(event):
            assert alert.alert_id not in alerts, f"the reference raised {alert.alert_id} twice"
            alerts[alert.alert_id] = alert
    return alerts


@dataclass
class WorkerProcess:
    """`python -m streams worker` with settings in its environment; stopped or killed by its own pid."""

    bootstrap: str
    app_id: str
    workdir: Path
    process: subprocess.Popen[bytes] | None = None
    log: IO[str] | None = None
    store_url: str = "memory://"  # the worker's default is rocksdb:// (tests/integration/test_worker_rocksdb.py)
    extra_env: dict[str, str] = field(default_factory=dict)

    def start(self) -> None:
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(self.workdir),
            "SAFEGUARD_KAFKA__BOOTSTRAP_SERVERS": self.bootstrap,
            "SAFEGUARD_STREAMS__APP_ID": self.app_id,
            "SAFEGUARD_STREAMS__DATA_DIR": str(self.workdir / "streams"),
            "SAFEGUARD_STREAMS__STORE_URL": self.store_url,
            **self.extra_env,
        }
        self.log = (self.workdir / f"worker-{self.app_id}.log").open("a")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streams", "worker", "-l", "info"],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self) -> str:
        path = self.workdir / f"worker-{self.app_id}.log"
        return path.read_text()[-4000:] if path.exists() else ""

    def logged(self, text: str) -> bool:
        path = self.workdir / f"worker-{self.app_id}.log"
        return path.exists() and text in path.read_text()

    def assert_fenced_from_the_broker(self) -> None:
        """The worker's offset fence started its partitions where the broker said (never its fallback)."""
        assert self.logged(STARTS_AT), f"the fence never asked the broker where to start:\n{self.log_tail()}"
        assert not self.logged(START_UNKNOWN), f"the fence fell back to Faust's view:\n{self.log_tail()}"

    def kill(self) -> None:
        """SIGKILL: no flush, no commit, no goodbye."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.log is not None:
            self.log.close()
            self.log = None


def committed(bootstrap: str, group: str, topics: list[str]) -> dict[TopicPartition, int]:
    """The offsets a consumer group has committed (0 where nothing yet)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        parts = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or [])]
        return {tp: consumer.committed(tp) or 0 for tp in parts}
    finally:
        consumer.close()


def progress(bootstrap: str, group: str, topics: list[str] | None = None) -> tuple[int, int]:
    """(records committed by the worker's group, records on `topics`: the event topics unless given)."""
    topics = EVENT_TOPIC_NAMES if topics is None else topics
    ends = end_offsets(bootstrap, topics)
    done = committed(bootstrap, group, topics)
    return sum(min(done.get(tp, 0), end) for tp, end in ends.items()), sum(ends.values())


def wait_for(worker: WorkerProcess, condition: str, check: object, timeout_s: float) -> None:
    """Poll `check()` every second until true; fail with the worker's log if it dies or time runs out."""
    assert callable(check)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        assert worker.alive(), f"the worker died while waiting for {condition}:\n{worker.log_tail()}"
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {condition}:\n{worker.log_tail()}")
