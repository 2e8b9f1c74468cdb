"""The worker on its default store, RocksDB, through a real broker: SIGKILLed mid-way and restarted, and with
partitions moving to another worker and back; every alert of the in-process reference raised, with the same id and
content, and none other. A restart recovers from the local databases: it reads only the changelog tail written
after the offsets stored in them, not the whole changelog (what the memory store has to do).

A broker of this module's own holds the first months of the simulated Leeds year (enough for several rules and a
few minutes' run). Under CI a missing broker or Java fails (tests/tiers.py).
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from rocksdict import AccessType, Options, Rdict

from producers.simulate import LEEDS_2019, generate
from schemas.alerts import AlertRaised
from schemas.codec import decode_alert
from schemas.events import AgencyEvent
from schemas.topics import ALERTS, DEFAULT_PARTITIONS
from streams.app import TABLES, obligations_topic_name
from streams.tables import murmur2_partition
from tests.integration.kafka_reader import Record, end_offsets, read_new
from tests.integration.worker_runs import (
    EVENT_TOPIC_NAMES,
    WorkerProcess,
    broker_holding,
    committed,
    progress,
    reference_alerts,
    wait_for,
)

PROCESS_TIMEOUT_S = 600
QUIET_S = 10
"""The alerts topic this long unchanged once every event is committed: after a rebalance, a partition's deadlines wait
for its clock to be merged back (up to a few seconds of a quiet partition) before they can fire."""
SHARE_OF_THE_YEAR = 0.5
"""The first half of the year, in the order it is published: enough for kills and rebalances mid-way."""


@pytest.fixture(scope="module")
def events() -> list[AgencyEvent]:
    year = generate(LEEDS_2019, seed=7)
    return year[: int(len(year) * SHARE_OF_THE_YEAR)]


@pytest.fixture(scope="module")
def expected(events: list[AgencyEvent]) -> dict[str, AlertRaised]:
    return reference_alerts(events, DEFAULT_PARTITIONS)


@pytest.fixture(scope="module")
def broker_with_events(tmp_path_factory: pytest.TempPathFactory, events: list[AgencyEvent]) -> Iterator[str]:
    with broker_holding(tmp_path_factory.mktemp("kafka-worker-rocksdb"), events) as bootstrap:
        yield bootstrap


def _rocks_worker(bootstrap: str, app_id: str, workdir: Path, instance: str | None = None) -> WorkerProcess:
    extra = {"SAFEGUARD_STREAMS__GROUP_INSTANCE_ID": instance} if instance else {}
    return WorkerProcess(bootstrap, app_id, workdir, store_url="rocksdb://", extra_env=extra)


def _share_done(bootstrap: str, group: str, share: float) -> bool:
    processed, total = progress(bootstrap, group)
    return processed >= share * total


def _obligations_done(bootstrap: str, group: str) -> bool:
    """The group has committed its whole obligations repartition topic: every duty the incidents opened is applied."""
    processed, total = progress(bootstrap, group, [obligations_topic_name(group)])
    return processed >= total


def _wait_until_done(worker: WorkerProcess, bootstrap: str, alerts_from: dict) -> list[Record]:
    wait_for(worker, "every event processed", lambda: _share_done(bootstrap, worker.app_id, 1.0), PROCESS_TIMEOUT_S)
    # Not done before the obligations are: a partition that moved reads its obligations' tail after its events (seen
    # 2026-12-07: B stopped 4 s after taking partitions back, before their last obligations; 5 da_contact_overdue).
    wait_for(worker, "every obligation applied", lambda: _obligations_done(bootstrap, worker.app_id), PROCESS_TIMEOUT_S)
    seen, quiet_since = -1, time.monotonic()
    while time.monotonic() - quiet_since < QUIET_S:  # alerts from the obligations repartition, clocks merged back
        records = read_new(bootstrap, alerts_from, [ALERTS.name])
        if len(records) != seen:
            seen, quiet_since = len(records), time.monotonic()
        time.sleep(1)
    return records


def _check_alerts(records: list[Record], expected: dict[str, AlertRaised]) -> int:
    """Every expected alert id raised, nothing else, every copy the same; returns how many were republished."""
    raised: dict[str, list[AlertRaised]] = {}
    for record in records:
        alert = decode_alert(record.value)
        assert record.key == alert.alert_id.encode(), "alerts are keyed by alert_id"
        raised.setdefault(alert.alert_id, []).append(alert)
    missing = set(expected) - set(raised)
    extra = set(raised) - set(expected)
    assert not missing, (
        f"{len(missing)} expected alerts never raised: {Counter(expected[i].rule_id for i in missing)}, by partition "
        f"{Counter(murmur2_partition(expected[i].subject_id.encode(), DEFAULT_PARTITIONS) for i in missing)}, by month "
        f"{sorted(Counter(expected[i].triggered_at.strftime('%Y-%m') for i in missing).items())}, "
        f"e.g. {[expected[i] for i in sorted(missing)[:2]]}"
    )
    assert not extra, f"{len(extra)} alerts not in the reference, e.g. {[raised[i][0] for i in sorted(extra)[:3]]}"
    for alert_id, copies in raised.items():
        want = expected[alert_id].model_dump(exclude={"raised_at"})
        assert all(copy.model_dump(exclude={"raised_at"}) == want for copy in copies), f"{alert_id} differs"
    return sum(len(copies) - 1 for copies in raised.values())


def _changelogs(app_id: str) -> list[str]:
    return [f"{app_id}-{table}-changelog" for table in TABLES]


def _stored_offsets(tables_dir: Path, app_id: str) -> dict[tuple[str, int], int]:
    """The changelog offset each partition's database says it holds (Faust's `persisted_offset`), read from disk."""
    offsets: dict[tuple[str, int], int] = {}
    for table in TABLES:
        for partition in range(DEFAULT_PARTITIONS):
            path = tables_dir / f"{table}-{partition}.db"
            if not path.exists():
                continue
            db = Rdict(str(path), options=Options(raw_mode=True), access_type=AccessType.read_only())
            try:
                value = db.get(b"__faust\0offset__")
            finally:
                db.close()
            if value is not None:
                offsets[(f"{app_id}-{table}-changelog", partition)] = int(value)
    return offsets


_ROW = re.compile(r"^\|\s*(?P<topic>\S+)\s*\|\s*(?P<partition>\d+)\s*\|\s*(?P<offset>-?\d+)\s*\|", re.MULTILINE)


@dataclass(frozen=True)
class Recovery:
    read: int
    """changelog messages read: highwater minus the offset reading started at, summed over the partitions"""
    whole: int
    """the messages of those changelog partitions: what a recovery without local state reads"""


def _recoveries(log: str, app_id: str) -> list[Recovery]:
    """Every recovery in a worker's log, from the two tables Faust logs for each: "Highwater - Active" and "Reading
    Starts At - Active" (topic, partition, offset; a topic repeated on the next row is shown as a ditto mark)."""
    found: list[Recovery] = []
    sections = re.split(r"(Highwater for active changelog partitions|active offsets at start of reading)", log)
    highwaters: dict[tuple[str, int], int] | None = None
    for title, body in zip(sections[1::2], sections[2::2], strict=True):
        rows: dict[tuple[str, int], int] = {}
        topic = ""
        for match in _ROW.finditer(body.split("\n[", 1)[0]):
            topic = topic if match["topic"] == "〃" else match["topic"]
            if topic.startswith(app_id):
                rows[(topic, int(match["partition"]))] = int(match["offset"])
        if title.startswith("Highwater"):
            highwaters = rows
        elif highwaters is not None:
            read = sum(max(0, highwaters[tp] - start) for tp, start in rows.items() if tp in highwaters)
            found.append(Recovery(read=read, whole=sum(end + 1 for end in highwaters.values())))
            highwaters = None
    return found


def _raised_any(log: Path) -> bool:
    """The worker has logged alerts published: it applies events (the line is logged once the broker has them)."""
    return log.exists() and "[INFO] alerts published: " in log.read_text()


def _first_progress_after(worker: WorkerProcess, bootstrap: str, at_kill: int, started: float) -> float:
    """Seconds from `started` until the worker's group commits beyond `at_kill` (its first processing, committed)."""
    wait_for(
        worker, "the restarted worker's first commit", lambda: progress(bootstrap, worker.app_id)[0] > at_kill, 120
    )
    return time.monotonic() - started


def test_a_killed_worker_restarts_from_its_local_state_reading_only_the_changelog_tail(
    broker_with_events: str, expected: dict[str, AlertRaised], tmp_path: Path
) -> None:
    bootstrap, app_id = broker_with_events, "rocks-kill"
    alerts_from = end_offsets(bootstrap, [ALERTS.name])
    worker = _rocks_worker(bootstrap, app_id, tmp_path, instance="worker-1")  # static membership
    tables_dir = tmp_path / "streams" / app_id / "worker-1" / "v1" / "tables"
    worker.start()
    try:
        wait_for(worker, "half the events processed", lambda: _share_done(bootstrap, app_id, 0.5), PROCESS_TIMEOUT_S)
        worker.kill()
        at_kill, total = progress(bootstrap, app_id)
        assert at_kill < total, "the worker finished before it could be killed mid-way"
        changelog_ends = {
            (tp.topic, tp.partition): end for tp, end in end_offsets(bootstrap, _changelogs(app_id)).items()
        }
        stored = _stored_offsets(tables_dir, app_id)
        written = sum(changelog_ends.values())
        tail = sum(end - stored.get(tp, -1) - 1 for tp, end in changelog_ends.items() if end > 0)
        assert written > 1000, "the tables must have a changelog worth not reading"
        assert tail < 0.05 * written, f"the databases held only {written - tail} of {written} changelog messages"

        started = time.monotonic()
        worker.start()  # same app id and instance id: the same group member, data dir and changelogs
        log = tmp_path / f"worker-{app_id}.log"
        wait_for(worker, "the restarted worker ready", lambda: log.read_text().count("Worker ready") >= 2, 120)
        ready_s = time.monotonic() - started
        first_commit_s = _first_progress_after(worker, bootstrap, at_kill, started)
        records = _wait_until_done(worker, bootstrap, alerts_from)
    finally:
        worker.stop()
    republished = _check_alerts(records, expected)
    recoveries = _recoveries((tmp_path / f"worker-{app_id}.log").read_text(), app_id)
    assert len(recoveries) >= 2, f"expected a recovery per start in the log, found {recoveries}"
    assert recoveries[0].whole == 0, "the first start had nothing to recover"
    restart_read = sum(r.read for r in recoveries[1:])
    whole = recoveries[1].whole
    assert restart_read <= tail, f"the restart read {restart_read} changelog messages, more than the tail {tail}"
    assert whole >= written - 10, "the restart's changelogs are the ones written before the kill"
    print(
        f"killed at {at_kill}/{total} events; changelogs held {written} messages, the databases all but {tail}; "
        f"the restart's recovery read {restart_read} of {whole}; "
        f"ready {ready_s:.0f} s and first commit {first_commit_s:.1f} s after the restart; "
        f"{republished} alert messages republished"
    )


def test_partitions_that_move_away_and_come_back_are_recovered_from_the_changelog_tail(
    broker_with_events: str, expected: dict[str, AlertRaised], tmp_path: Path
) -> None:
    """Worker A alone, then B joins (rebalance), B is SIGKILLed (its partitions go back to A, whose databases for
    them are stale), B restarts (they move to B again, stale in B's): at each move the new owner reads the tail
    written by the other since its stored offsets, never acting on what its database held before."""
    bootstrap, app_id = broker_with_events, "rocks-rebalance"
    alerts_from = end_offsets(bootstrap, [ALERTS.name])
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = _rocks_worker(bootstrap, app_id, tmp_path / "a")
    b = _rocks_worker(bootstrap, app_id, tmp_path / "b")
    a_log, b_log = (tmp_path / side / f"worker-{app_id}.log" for side in ("a", "b"))

    def recovered(log: Path) -> list[Recovery]:
        return _recoveries(log.read_text(), app_id) if log.exists() else []

    a.start()
    try:
        wait_for(a, "a fifth of the events processed", lambda: _share_done(bootstrap, app_id, 0.2), PROCESS_TIMEOUT_S)
        b.start()
        wait_for(b, "B sharing the work", lambda: len(recovered(b_log)) >= 1 and len(recovered(a_log)) >= 2, 120)
        # Recovered is not yet working: B killed before it applied anything leaves A nothing to read on takeover.
        wait_for(b, "B applying events (its first alert)", lambda: _raised_any(b_log), PROCESS_TIMEOUT_S)
        wait_for(b, "40% of the events processed", lambda: _share_done(bootstrap, app_id, 0.4), PROCESS_TIMEOUT_S)
        b.kill()
        at_kill = committed(bootstrap, app_id, EVENT_TOPIC_NAMES)
        ends = end_offsets(bootstrap, EVENT_TOPIC_NAMES)

        def a_took_over() -> bool:
            now = committed(bootstrap, app_id, EVENT_TOPIC_NAMES)
            moved = all(now[tp] > at_kill[tp] for tp in at_kill if at_kill[tp] < ends[tp])
            return moved and len(recovered(a_log)) >= 3

        wait_for(a, "A taking B's partitions over and reading on", a_took_over, PROCESS_TIMEOUT_S)
        b.start()
        records = _wait_until_done(a, bootstrap, alerts_from)
        wait_for(b, "B recovering its partitions again", lambda: len(recovered(b_log)) >= 2, 120)
    finally:
        b.stop()
        a.stop()
    republished = _check_alerts(records, expected)
    a_recoveries, b_recoveries = recovered(a_log), recovered(b_log)
    print(f"recoveries (read, whole): A {a_recoveries}, B {b_recoveries}; {republished} alerts republished")
    takeover = a_recoveries[2]
    assert 0 < takeover.read < takeover.whole, "A read what B wrote since A gave the partitions away, and only that"
    assert all(r.read < r.whole for r in a_recoveries[1:] if r.whole), "A always recovers from its local state"
    back = b_recoveries[-1]
    assert back.read < back.whole, "B's restart recovered from its own databases, not the whole changelog"
