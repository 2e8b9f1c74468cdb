"""Several workers in one consumer group, against a real broker.

1. Records a foreign client put on a partition their key does not hash to (kcat's default partitioner is CRC32, not
   murmur2) still meet the rest of their subject's history with two workers: they are re-routed, through the worker's
   re-route topic, to the key's partition, and the alert that needs both parts is raised exactly once.
2. Scale-out: the first 90 days of the simulated Leeds year through two, then three workers in one group, one of them
   SIGKILLed mid-way so that its partitions move to the others: the alert ids equal the single-process reference's,
   none lost, none extra (an identical alert may be republished after the kill, as in test_worker_alerts.py).

The scale-out runs on a broker of its own (the contract topics hold only the slice); the kcat test on the session
broker, asserting only about its own subjects.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError
from kafka.structs import TopicPartition

from producers.publisher import EventPublisher
from producers.simulate import LEEDS_2019, generate
from safeguard.kafka_clients import client_options
from safeguard.settings import KafkaSettings
from schemas.alerts import AlertRaised
from schemas.codec import decode_alert, decode_dead_letter, encode
from schemas.events import AgencyEvent, MissingReported
from schemas.topics import ALERTS, DEAD_LETTER, DEFAULT_PARTITIONS, MISSING_EPISODES
from streams.app import STARTS_AT, rerouted_topic_name
from streams.tables import murmur2_partition
from tests.integration.kafka_reader import Record, end_offsets, read_new
from tests.integration.worker_runs import EVENT_TOPIC_NAMES, WorkerProcess, broker_holding, progress, reference_alerts
from tests.tiers import unavailable

pytestmark = pytest.mark.integration

DAYS = 90
PROCESS_TIMEOUT_S = 300


# --- 1. misplaced records, two workers -----------------------------------------------------------------------------


def _crc32_partition(key: bytes, partitions: int) -> int:
    """librdkafka's `consistent_random` partitioner, kcat's default: CRC-32 of the key modulo the partition count."""
    return zlib.crc32(key) % partitions


def _misplaced_children(partitions: int) -> list[str]:
    """Children whose (murmur2, CRC-32) partitions differ and, as edges, connect every partition: whichever way the
    partitions are split between two workers, at least one child's misplaced record is read by the other worker."""
    chosen: list[str] = []
    component = {p: p for p in range(partitions)}

    def root(p: int) -> int:
        while component[p] != p:
            p = component[p]
        return p

    i = 0
    while len({root(p) for p in range(partitions)}) > 1:
        child = hashlib.sha256(f"scale-out-{i}".encode()).hexdigest()
        i += 1
        home, crc = murmur2_partition(child.encode(), partitions), _crc32_partition(child.encode(), partitions)
        if root(home) != root(crc):
            component[root(home)] = root(crc)
            chosen.append(child)
    return chosen


def _report(child: str, occurred_at: datetime, n: int) -> MissingReported:
    return MissingReported.model_validate(
        {
            "event_id": str(hashlib.md5(f"{child}-{n}".encode()).hexdigest()[:32]),
            "event_type": "missing.reported",
            "schema_version": 1,
            "la_code": "383",
            "agency_type": "police",
            "agency_code": "WYP",
            "occurred_at": occurred_at,
            "recorded_at": occurred_at + timedelta(hours=1),
            "episode_id": f"MP-{child[:8]}-{n}",
            "child_id": child,
            "looked_after": False,
            "absence_type": "missing",
            "risk_level": "medium",
        }
    )


def _kcat_default_partitioner(bootstrap: str, topic: str, events: list[MissingReported]) -> None:
    """kcat with its default partitioner (no -p, no topic.partitioner): consistent_random, CRC-32 of the key."""
    payload = "".join(f"{event.child_id}|{encode(event).decode()}\n" for event in events)
    subprocess.run(
        ["kcat", "-P", "-b", bootstrap, "-t", topic, "-K", "|"], input=payload.encode(), check=True, timeout=60
    )


def test_records_kcat_put_on_the_wrong_partition_meet_their_history_with_two_workers(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    if shutil.which("kcat") is None:
        unavailable("kcat is not installed (apt-get install kcat; .ci/run installs it)")
    partitions = DEFAULT_PARTITIONS
    topic = MISSING_EPISODES.name
    children = _misplaced_children(partitions)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=30)
    # repeat_missing: three reports in 90 days. Two go the contract's way, the third with kcat's default partitioner.
    placed = [_report(child, start + timedelta(days=n * 7), n) for child in children for n in (0, 1)]
    misplaced = [_report(child, start + timedelta(days=14), 2) for child in children]
    app_id = f"scale-out-kcat-{int(time.time())}"
    reroute_topic = rerouted_topic_name(app_id, topic)
    before = end_offsets(kafka_bootstrap, [topic, ALERTS.name, DEAD_LETTER.name])

    workers = _workers(kafka_bootstrap, app_id, tmp_path, 2)
    for worker in workers:
        worker.start()
    try:
        # Both workers own partitions before anything is published, so each reads its own share from the start.
        _wait(workers, "both workers owning partitions", _spread_over(kafka_bootstrap, app_id, 2), 240)
        owners = _contract_assignments(kafka_bootstrap, app_id)
        assert owners is not None
        owner = {p: i for i, member in enumerate(owners) for (t, p) in member if t == topic}
        crossing = [
            c for c in children if owner[murmur2_partition(c.encode(), 6)] != owner[_crc32_partition(c.encode(), 6)]
        ]
        assert crossing, "some misplaced record must be read by the worker that does not hold its child's state"

        with EventPublisher.connect(client_options(KafkaSettings(), kafka_bootstrap)) as publisher:
            for event in placed:
                publisher.publish(event)
            assert publisher.flush().failed == 0
        _kcat_default_partitioner(kafka_bootstrap, topic, misplaced)

        # The premise: kcat put each third report on its CRC-32 partition, not its key's murmur2 partition.
        written = {json.loads(r.value)["event_id"]: r for r in read_new(kafka_bootstrap, before, [topic])}
        for event in misplaced:
            record = written[event.event_id]
            key = event.child_id.encode()
            assert record.partition == _crc32_partition(key, partitions) != murmur2_partition(key, partitions)
        for event in placed:
            assert written[event.event_id].partition == murmur2_partition(event.child_id.encode(), partitions)

        def raised() -> dict[str, list[AlertRaised]]:
            return _alerts_about(read_new(kafka_bootstrap, before, [ALERTS.name]), set(children))

        _wait(workers, "an alert per child", lambda: set(raised()) == set(children), 240)
        alerts = _alerts_about(_quiet_alerts(kafka_bootstrap, before), set(children))  # anything raised twice is in
    finally:
        for worker in workers:
            worker.stop()
    for worker in workers:
        worker.assert_fenced_from_the_broker()

    for child, copies in alerts.items():
        [alert] = copies  # exactly once: no crash here, so no republication either
        print(f"child {child[:8]}: {'across workers' if child in crossing else 'one worker'}, alert raised once")
        assert alert.rule_id == "repeat_missing"
        mine = [e.event_id for e in [*placed, *misplaced] if e.child_id == child]
        assert sorted(alert.evidence_event_ids) == sorted(mine), "the alert needs the misplaced report too"
    # The copies are on the key's partition of the re-route topic; nothing of these children was dead-lettered. A
    # record read again (a rebalance while workers start: CI, 2026-12-07) is re-routed again: the same event id,
    # applied once (the alert above is raised once), so each misplaced report has at least one copy, and only they.
    rerouted = read_new(kafka_bootstrap, {}, [reroute_topic])
    assert {json.loads(r.value)["event_id"] for r in rerouted} == {e.event_id for e in misplaced}
    assert all(r.partition == murmur2_partition(r.key or b"", partitions) for r in rerouted)
    letters = [decode_dead_letter(r.value) for r in read_new(kafka_bootstrap, before, [DEAD_LETTER.name])]
    assert not [letter for letter in letters if letter.source_key in children]


def _workers(bootstrap: str, group: str, tmp_path: Path, count: int) -> list[WorkerProcess]:
    """`count` workers in one group, each with a directory (home, log, data dir) of its own; web servers off."""
    workers = []
    for i in range(count):
        workdir = tmp_path / f"worker-{i}"
        workdir.mkdir(parents=True)
        workers.append(WorkerProcess(bootstrap, group, workdir))
    return workers


def _contract_assignments(bootstrap: str, group: str) -> list[set[tuple[str, int]]] | None:
    """Per member of the (stable) group, the contract topic partitions it owns; None while the group rebalances."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        described = admin.describe_groups([group])[group]
    except KafkaError:  # e.g. no coordinator yet: the group is still forming
        return None
    finally:
        admin.close()
    if described.get("group_state") != "Stable":
        return None
    members: list[set[tuple[str, int]]] = []
    for member in described["members"]:
        assigned = (member.get("member_assignment") or {}).get("assigned_partitions") or []
        members.append(
            {(tp["topic"], p) for tp in assigned if tp["topic"] in EVENT_TOPIC_NAMES for p in tp["partitions"]}
        )
    return members


def _spread_over(bootstrap: str, group: str, members: int) -> Callable[[], bool]:
    """The group is stable with `members` members, each owning contract topic partitions, together all of them."""

    def check() -> bool:
        assignments = _contract_assignments(bootstrap, group)
        if assignments is None or len(assignments) != members or not all(assignments):
            return False
        return len(set().union(*assignments)) == len(EVENT_TOPIC_NAMES) * DEFAULT_PARTITIONS

    return check


def _alerts_about(records: list[Record], subjects: set[str]) -> dict[str, list[AlertRaised]]:
    found: dict[str, list[AlertRaised]] = {}
    for record in records:
        alert = decode_alert(record.value)
        if alert.subject_id in subjects:
            found.setdefault(alert.subject_id, []).append(alert)
    return found


def _wait(
    workers: list[WorkerProcess],
    what: str,
    check: Callable[[], bool],
    timeout_s: float,
    detail: Callable[[], str] | None = None,
    every_s: float = 1.0,
) -> None:
    """Poll `check()` every second; fail with the workers' logs (and `detail()`) when one dies or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        dead = [worker for worker in workers if worker.process is not None and not worker.alive()]
        assert not dead, f"a worker died while waiting for {what}:\n{dead[0].log_tail()}"
        time.sleep(every_s)
    tails = "\n---\n".join(worker.log_tail()[-2000:] for worker in workers)
    more = f"{detail()}\n" if detail is not None else ""
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}:\n{more}{tails}")


# --- 2. scale-out: two and three workers, one killed ---------------------------------------------------------------


@pytest.fixture(scope="module")
def slice_of_year() -> list[AgencyEvent]:
    return generate(LEEDS_2019, seed=7, days=DAYS)


@pytest.fixture(scope="module")
def expected(slice_of_year: list[AgencyEvent]) -> dict[str, AlertRaised]:
    return reference_alerts(slice_of_year, DEFAULT_PARTITIONS)


@pytest.fixture(scope="module")
def broker_with_slice(tmp_path_factory: pytest.TempPathFactory, slice_of_year: list[AgencyEvent]) -> Iterator[str]:
    """A broker of this module's own, holding the slice of the year on the contract topics."""
    with broker_holding(tmp_path_factory.mktemp("kafka-scale-out"), slice_of_year) as bootstrap:
        yield bootstrap


@pytest.mark.parametrize("workers_in_group", [2, 3])
def test_workers_in_one_group_one_killed_raise_the_single_worker_alerts(
    broker_with_slice: str, expected: dict[str, AlertRaised], tmp_path: Path, workers_in_group: int
) -> None:
    bootstrap = broker_with_slice
    group = f"scale-out-{workers_in_group}"
    alerts_from = end_offsets(bootstrap, [ALERTS.name])
    workers = _workers(bootstrap, group, tmp_path, workers_in_group)
    started = time.monotonic()
    for worker in workers:
        worker.start()
    try:
        _wait(workers, "every worker owning partitions", _spread_over(bootstrap, group, workers_in_group), 240)
        # Mid-way by the alerts already out, not by the group's committed offsets: commits come every few seconds,
        # and three workers once read the whole slice between two commits, too fast to be killed mid-way (CI,
        # 2026-12-07). Alerts are out as their batches are applied; the worker to be killed has applied some too.
        victim = workers[0]

        def mid_way() -> bool:
            out = set(expected) & _alert_ids(read_new(bootstrap, alerts_from, [ALERTS.name]))
            return len(out) >= len(expected) / 5 and victim.logged(STARTS_AT)

        _wait(workers, "a fifth of the expected alerts", mid_way, PROCESS_TIMEOUT_S, every_s=0.2)
        victim.kill()  # SIGKILL: no flush, no commit; its partitions move to the others once its session lapses
        at_kill, total = progress(bootstrap, group)
        assert at_kill < total, "the workers finished before one could be killed mid-way"
        survivors = workers[1:]
        # Its partitions move: the group settles with the others only, owning every partition between them.
        _wait(survivors, "the partitions to move", _spread_over(bootstrap, group, workers_in_group - 1), 240)
        # Done: every expected alert is out, then nothing moves (alerts, commits) for a while. Not "every offset
        # committed": a partition a worker keeps across a rebalance, read to its end but not yet committed, stays
        # uncommitted until a new record arrives (Faust drops its acks on revocation and does not read it again).
        _wait(
            survivors,
            "every expected alert",
            lambda: set(expected) <= _alert_ids(read_new(bootstrap, alerts_from, [ALERTS.name])),
            PROCESS_TIMEOUT_S,
            detail=lambda: _missing_alerts(bootstrap, alerts_from, group, expected),
        )
        records = _quiet_alerts(bootstrap, alerts_from, group=group, quiet_s=8)
        at_end, _ = progress(bootstrap, group)
    finally:
        for worker in workers:
            worker.stop()
    for worker in workers:
        worker.assert_fenced_from_the_broker()
    elapsed = time.monotonic() - started

    raised: dict[str, list[AlertRaised]] = {}
    for record in records:
        alert = decode_alert(record.value)
        assert record.key == alert.alert_id.encode(), "alerts are keyed by alert_id"
        raised.setdefault(alert.alert_id, []).append(alert)
    missing = set(expected) - set(raised)
    extra = set(raised) - set(expected)
    by_rule = Counter(expected[i].rule_id for i in missing), Counter(raised[i][0].rule_id for i in extra)
    assert not missing, f"{len(missing)} expected alerts never raised {dict(by_rule[0])}, e.g. {sorted(missing)[:3]}"
    assert not extra, f"{len(extra)} alerts not in the reference {dict(by_rule[1])}, e.g. {raised[min(extra)][0]}"
    for alert_id, copies in raised.items():
        reference = expected[alert_id].model_dump(exclude={"raised_at"})
        assert all(copy.model_dump(exclude={"raised_at"}) == reference for copy in copies), f"{alert_id} differs"
    republished = sum(len(copies) - 1 for copies in raised.values())
    per_rule = Counter(a.rule_id for a in expected.values())
    print(
        f"{workers_in_group} workers, one killed at {at_kill}/{total} events: {len(expected)} alerts {dict(per_rule)}, "
        f"{republished} republished after the kill; {at_end}/{total} committed at the end; {elapsed:.0f} s"
    )


def _missing_alerts(
    bootstrap: str, alerts_from: dict[TopicPartition, int], group: str, expected: dict[str, AlertRaised]
) -> str:
    """What a timed-out wait still lacked: the missing alerts by rule and partition, and the group's progress."""
    missing = [expected[i] for i in set(expected) - _alert_ids(read_new(bootstrap, alerts_from, [ALERTS.name]))]
    by_rule = Counter(alert.rule_id for alert in missing)
    done, total = progress(bootstrap, group)
    return f"{len(missing)} expected alerts missing {dict(by_rule)}, e.g. {missing[:2]}; {done}/{total} committed"


def _alert_ids(records: list[Record]) -> set[str]:
    return {decode_alert(record.value).alert_id for record in records}


def _quiet_alerts(
    bootstrap: str, alerts_from: dict[TopicPartition, int], *, group: str | None = None, quiet_s: float = 5
) -> list[Record]:
    """The alerts topic once it has stopped growing (and the group's commits have stopped moving) for `quiet_s`."""
    seen: tuple[int, int] = (-1, -1)
    quiet_since = time.monotonic()
    records: list[Record] = []
    while time.monotonic() - quiet_since < quiet_s:
        records = read_new(bootstrap, alerts_from, [ALERTS.name])
        now = (len(records), progress(bootstrap, group)[0] if group else 0)
        if now != seen:
            seen, quiet_since = now, time.monotonic()
        time.sleep(1)
    return records
