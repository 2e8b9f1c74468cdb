"""Least privilege through a real broker: SASL/SCRAM-SHA-512 logins and the ACL catalogue (safeguard.kafka_acls).

Each service logs in with its own principal through the client options every service builds
(`safeguard.kafka_clients.client_options`); every denial is the broker's own answer. Then the worker, run as a
process under its principal, turns agency events published by the agency principal into the alerts of the
in-process reference: the ACLs are enough for the real pipeline, not only refusals.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import (
    GroupAuthorizationFailedError,
    GroupIdNotFoundError,
    KafkaError,
    RetriableError,
    TopicAuthorizationFailedError,
)
from kafka.structs import OffsetAndMetadata, TopicPartition

from producers.publisher import PRODUCER_DEFAULTS, EventPublisher
from producers.simulate import LEEDS_2019, generate
from safeguard.settings import ClickHouseSettings, KafkaAccessSettings, Settings
from schemas.codec import decode_alert
from schemas.errors import LocalKafkaError
from schemas.topics import ALERT_LIFECYCLE, ALERTS, CONTACTS, DEAD_LETTER, DEFAULT_PARTITIONS, EVENT_TOPICS, TOPICS
from sinks.service import kafka_consumer as sink_consumer
from sinks.store import connect
from tests.integration.secure_broker import SecureBroker, secure_broker
from tests.integration.worker_runs import WorkerProcess, reference_alerts, wait_for

pytestmark = pytest.mark.integration

__all__ = ["secure_broker"]  # the fixture, imported for this module

EVENT_NAMES = [spec.name for spec in EVENT_TOPICS]
ALL_NAMES = [spec.name for spec in TOPICS]
EVENTS_FOR_THE_WORKER = 2000
"""The first events of the simulated Leeds year: enough for seven rules, the obligations repartition among them."""


# -- helpers ----------------------------------------------------------------------------------------------------


def _send(options: dict[str, Any], topic: str, value: bytes = b"{}", *, idempotent: bool = True) -> None:
    """One record, as the project's producers send (acks=all, idempotent); raises the broker's refusal."""
    plain = {} if idempotent else {"enable_idempotence": False, "retries": 0}
    producer = KafkaProducer(**{**PRODUCER_DEFAULTS, **options, "linger_ms": 0, "max_block_ms": 15_000, **plain})
    try:
        producer.send(topic, key=b"acl-test", value=value).get(timeout=20)
    finally:
        producer.close(timeout=5)


def _read(options: dict[str, Any], topic: str, timeout_s: float = 10) -> int:
    """Records readable on `topic` from the beginning, without a group; raises the broker's refusal.

    A topic the principal may not even DESCRIBE is refused in its metadata, which kafka-python's `assign`ed
    consumer only logs (it never fetches): that refusal is raised from the admin's DescribeTopics answer."""
    admin = _admin(options)
    try:
        (described,) = admin.describe_topics([topic])
    finally:
        admin.close()
    if described["error_code"] == TopicAuthorizationFailedError.errno:
        raise TopicAuthorizationFailedError(topic)
    assert described["error_code"] == 0, described
    consumer = KafkaConsumer(**options, enable_auto_commit=False, group_id=None)
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(DEFAULT_PARTITIONS)])
        consumer.seek_to_beginning()
        seen, deadline = 0, time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            seen += sum(len(batch) for batch in consumer.poll(timeout_ms=500).values())
        return seen
    finally:
        consumer.close()


def _join(options: dict[str, Any], group: str, topics: list[str], timeout_s: float = 20) -> int:
    """Join `group` on `topics`, read what is there and commit it; raises the broker's refusal."""
    consumer = KafkaConsumer(**options, group_id=group, enable_auto_commit=False, auto_offset_reset="earliest")
    try:
        consumer.subscribe(topics)
        seen, deadline = 0, time.monotonic() + timeout_s
        while time.monotonic() < deadline and not seen:
            seen += sum(len(batch) for batch in consumer.poll(timeout_ms=500).values())
        consumer.commit()
        return seen
    finally:
        consumer.close()


def _admin(options: dict[str, Any]) -> KafkaAdminClient:
    return KafkaAdminClient(**options)


def _end_offsets(admin_options: dict[str, Any], topics: list[str]) -> dict[TopicPartition, int]:
    consumer = KafkaConsumer(**admin_options, enable_auto_commit=False, group_id=None)
    try:
        return dict(consumer.end_offsets([TopicPartition(t, p) for t in topics for p in range(DEFAULT_PARTITIONS)]))
    finally:
        consumer.close()


def _records(admin_options: dict[str, Any], topic: str, start: dict[TopicPartition, int]) -> list[tuple[bytes, bytes]]:
    """(key, value) of every record on `topic` after `start`, up to its current end, read by the admin."""
    end = _end_offsets(admin_options, [topic])
    wanted = {tp: off for tp, off in end.items() if off > start.get(tp, 0)}
    if not wanted:
        return []
    consumer = KafkaConsumer(**admin_options, enable_auto_commit=False, group_id=None)
    out: list[tuple[bytes, bytes]] = []
    try:
        consumer.assign(list(wanted))
        for tp in wanted:
            consumer.seek(tp, start.get(tp, 0))
        deadline = time.monotonic() + 60
        while wanted and time.monotonic() < deadline:
            for tp, batch in consumer.poll(timeout_ms=500, max_records=5000).items():
                out += [(r.key or b"", r.value or b"") for r in batch if r.offset < wanted.get(tp, -1)]
                if batch and tp in wanted and batch[-1].offset + 1 >= wanted[tp]:
                    del wanted[tp]
        assert not wanted, f"timed out reading {topic}"
        return out
    finally:
        consumer.close()


def _committed(admin_options: dict[str, Any], group: str) -> dict[TopicPartition, int]:
    admin = _admin(admin_options)
    try:
        offsets: dict[TopicPartition, OffsetAndMetadata] = admin.list_group_offsets({group: None}).get(group, {})
        return {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}
    except (RetriableError, GroupIdNotFoundError):  # no group yet (the offsets topic is made on first use)
        return {}
    finally:
        admin.close()


@pytest.fixture(scope="module")
def published(secure_broker: SecureBroker) -> Iterator[int]:
    """One record on every event topic, published by the agency principal (what the readers below look for)."""
    options = secure_broker.options("agency")
    for name in EVENT_NAMES:
        _send(options, name)
    yield len(EVENT_NAMES)


# -- logins -----------------------------------------------------------------------------------------------------


def test_a_client_without_the_right_password_or_without_sasl_cannot_connect(secure_broker: SecureBroker) -> None:
    with pytest.raises(KafkaError):
        _send(secure_broker.options("agency", password="not-the-password"), CONTACTS.name)
    plaintext = {"bootstrap_servers": [secure_broker.bootstrap], "request_timeout_ms": 5_000}
    with pytest.raises(KafkaError):
        _send(plaintext, CONTACTS.name)
    # ... nor with another service's password under its own name.
    with pytest.raises(KafkaError):
        _send(secure_broker.options("agency", password=secure_broker.password("worker")), CONTACTS.name)


def test_the_broker_log_and_state_never_show_a_password(secure_broker: SecureBroker) -> None:
    log = secure_broker.broker.log_file.read_text(encoding="utf-8", errors="replace")
    state = secure_broker.broker.state_file.read_text(encoding="utf-8")
    for secret in secure_broker.secrets():
        assert secret not in log
        assert secret not in state
    properties = secure_broker.broker.state_dir / "server.properties"
    assert properties.stat().st_mode & 0o077 == 0, "server.properties holds the admin password: owner-only"


# -- producers: the gateway and an agency -----------------------------------------------------------------------


@pytest.mark.parametrize("role", ["agency", "gateway"])
def test_a_producer_writes_the_event_topics(secure_broker: SecureBroker, role: str) -> None:
    options = secure_broker.options(role)
    for name in EVENT_NAMES:
        _send(options, name)


@pytest.mark.parametrize("role", ["agency", "gateway"])
@pytest.mark.parametrize("topic", [ALERTS.name, ALERT_LIFECYCLE.name, DEAD_LETTER.name, "safeguard-streams-x"])
def test_a_producer_cannot_write_alerts_nor_anything_but_events(
    secure_broker: SecureBroker, role: str, topic: str
) -> None:
    with pytest.raises(TopicAuthorizationFailedError):
        _send(secure_broker.options(role), topic, b'{"forged": "alert"}')


@pytest.mark.parametrize("role", ["agency", "gateway"])
def test_a_producer_cannot_read_events_nor_alerts(secure_broker: SecureBroker, published: int, role: str) -> None:
    _send(secure_broker.options("worker"), ALERTS.name)  # something to read, were it allowed
    assert _read(secure_broker.admin_options(), CONTACTS.name, timeout_s=3) >= 1
    for topic in (CONTACTS.name, ALERTS.name):
        with pytest.raises(TopicAuthorizationFailedError):
            _read(secure_broker.options(role), topic)
    with pytest.raises((GroupAuthorizationFailedError, TopicAuthorizationFailedError)):
        _join(secure_broker.options(role), "agency-snooping", [CONTACTS.name])


# -- the sink: read only ----------------------------------------------------------------------------------------


def test_the_sink_reads_every_topic_in_its_group(secure_broker: SecureBroker, published: int) -> None:
    group = secure_broker.settings.clickhouse.consumer_group
    consumer = sink_consumer(secure_broker.options("sink"), ClickHouseSettings(consumer_group=group))
    try:
        consumer.subscribe(ALL_NAMES)
        seen: set[str] = set()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not set(EVENT_NAMES) <= seen:
            seen |= {tp.topic for tp in consumer.poll(timeout_ms=500)}
        consumer.commit()
    finally:
        consumer.close()
    assert set(EVENT_NAMES) <= seen
    assert _committed(secure_broker.admin_options(), group), "the sink's group committed its offsets"


def test_the_sink_cannot_even_start_an_idempotent_producer(secure_broker: SecureBroker) -> None:
    """A producer id needs WRITE on some topic (KIP-679): the sink has none, so the broker refuses it at once."""
    with pytest.raises(KafkaError, match="ClusterAuthorizationFailed"):
        _send(secure_broker.options("sink"), CONTACTS.name)


@pytest.mark.parametrize("topic", ALL_NAMES)
def test_the_sink_cannot_write_any_topic(secure_broker: SecureBroker, topic: str) -> None:
    with pytest.raises(TopicAuthorizationFailedError):
        _send(secure_broker.options("sink"), topic, idempotent=False)


def test_the_sink_cannot_use_another_services_group(secure_broker: SecureBroker, published: int) -> None:
    with pytest.raises(GroupAuthorizationFailedError):
        _join(secure_broker.options("sink"), secure_broker.settings.streams.app_id, [CONTACTS.name])


# -- the worker -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("topic", [*EVENT_NAMES, ALERT_LIFECYCLE.name])
def test_the_worker_cannot_write_another_services_topics(secure_broker: SecureBroker, topic: str) -> None:
    with pytest.raises(TopicAuthorizationFailedError):
        _send(secure_broker.options("worker"), topic)


def test_the_worker_creates_topics_only_under_its_app_id(secure_broker: SecureBroker) -> None:
    app_id = secure_broker.settings.streams.app_id
    admin = _admin(secure_broker.options("worker"))
    try:
        outside = admin.create_topics([NewTopic("not-the-workers-topic", 1, 1)], raise_errors=False)
        inside = admin.create_topics([NewTopic(f"{app_id}-acl-test", 1, 1)], raise_errors=False)
    finally:
        admin.close()
    assert [t["error_code"] for t in outside["topics"]] == [TopicAuthorizationFailedError.errno]
    assert [t["error_code"] for t in inside["topics"]] == [0]


def test_the_worker_cannot_read_the_lifecycle_nor_join_the_sinks_group(
    secure_broker: SecureBroker, published: int
) -> None:
    with pytest.raises(TopicAuthorizationFailedError):
        _read(secure_broker.options("worker"), ALERT_LIFECYCLE.name)
    with pytest.raises(GroupAuthorizationFailedError):
        _join(secure_broker.options("worker"), secure_broker.settings.clickhouse.consumer_group, EVENT_NAMES)


# -- the notifier -----------------------------------------------------------------------------------------------


def test_the_notifier_reads_alerts_in_its_group_and_writes_the_lifecycle(secure_broker: SecureBroker) -> None:
    _send(secure_broker.options("worker"), ALERTS.name)  # the worker may write alerts
    options = secure_broker.options("notifier")
    assert _join(options, secure_broker.settings.notify.consumer_group, [ALERTS.name]) >= 1
    _send(options, ALERT_LIFECYCLE.name)


@pytest.mark.parametrize("topic", [ALERTS.name, DEAD_LETTER.name, *EVENT_NAMES])
def test_the_notifier_writes_nothing_but_the_lifecycle(secure_broker: SecureBroker, topic: str) -> None:
    with pytest.raises(TopicAuthorizationFailedError):
        _send(secure_broker.options("notifier"), topic)


def test_the_notifier_cannot_read_events(secure_broker: SecureBroker, published: int) -> None:
    with pytest.raises(TopicAuthorizationFailedError):
        _read(secure_broker.options("notifier"), CONTACTS.name)


# -- the pipeline under its principals ---------------------------------------------------------------------------


def test_the_worker_under_its_principal_turns_agency_events_into_the_reference_alerts_the_sink_stores(
    secure_broker: SecureBroker, published: int, tmp_path: Path
) -> None:
    """Agency events published as the agency, the worker run as a process under its principal, then `safeguard sink
    run` under the sink's: the reference alerts, each raised, and each stored."""
    events = generate(LEEDS_2019, seed=7)[:EVENTS_FOR_THE_WORKER]
    expected = reference_alerts(events, DEFAULT_PARTITIONS)
    assert len({a.rule_id for a in expected.values()}) >= 5, "the slice must exercise several rules"
    admin = secure_broker.admin_options()
    alerts_from = _end_offsets(admin, [ALERTS.name])
    with EventPublisher.connect(secure_broker.options("agency")) as publisher:
        for event in events:
            publisher.publish(event)
        report = publisher.flush()
    assert report.failed == 0, report
    ends = _end_offsets(admin, EVENT_NAMES)
    app_id = secure_broker.settings.streams.app_id
    worker = WorkerProcess(secure_broker.bootstrap, app_id, tmp_path, extra_env=secure_broker.env("worker"))
    worker.start()
    try:

        def all_committed() -> bool:
            done = _committed(admin, app_id)
            return all(done.get(tp, 0) >= end for tp, end in ends.items())

        wait_for(worker, "every event committed by the worker's group", all_committed, 600)
        seen, quiet_since = -1, time.monotonic()
        while time.monotonic() - quiet_since < 10:  # deadlines and the obligations repartition may still fire
            records = _records(admin, ALERTS.name, alerts_from)
            if len(records) != seen:
                seen, quiet_since = len(records), time.monotonic()
            time.sleep(1)
        assert worker.alive(), worker.log_tail()
        log = worker.log_tail()
    finally:
        worker.stop()
    raised = {}
    for key, value in records:
        if value == b"{}":  # the notifier test's placeholder record
            continue
        alert = decode_alert(value)
        assert key == alert.alert_id.encode()
        raised[alert.alert_id] = alert
    assert set(raised) == set(expected), (
        f"missing {len(set(expected) - set(raised))}, unexpected {len(set(raised) - set(expected))}"
    )
    assert "AuthorizationFailed" not in log, log
    for secret in secure_broker.secrets():
        assert secret not in (tmp_path / f"worker-{app_id}.log").read_text()

    store = tmp_path / "store"
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        **secure_broker.env("sink"),
        "SAFEGUARD_CLICKHOUSE__URL": f"chdb://{store}",
        "SAFEGUARD_CLICKHOUSE__BATCH_SECONDS": "0.5",
    }
    sink = subprocess.run(
        [sys.executable, "-c", "from safeguard.cli import main; main()", "sink", "run", "--until-caught-up"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert sink.returncode == 0, sink.stderr[-3000:]
    assert not any(secret in sink.stderr + sink.stdout for secret in secure_broker.secrets())
    client = connect(Settings.model_construct(clickhouse=ClickHouseSettings(url=f"chdb://{store}")))
    try:
        stored = {row[0] for row in client.query("SELECT DISTINCT alert_id FROM safeguard.alerts").result_rows}
    finally:
        client.close()
    assert stored == set(expected), f"stored {len(stored)} of {len(expected)} alerts"


@pytest.mark.parametrize("role", ["agency", "worker", "sink", "notifier"])
def test_no_service_can_grant_itself_rights_or_change_a_password(secure_broker: SecureBroker, role: str) -> None:
    """ACLs and SCRAM credentials need ALTER on the cluster: only the admin has it."""
    from kafka.admin import ScramMechanism, UserScramCredentialUpsertion

    from safeguard.kafka_acls import apply

    admin = _admin(secure_broker.options(role))
    try:
        with pytest.raises(LocalKafkaError, match="ClusterAuthorizationFailed"):
            apply(admin, secure_broker.settings.model_copy(update={"kafka_access": KafkaAccessSettings()}))
        upsert = UserScramCredentialUpsertion(secure_broker.user("sink"), ScramMechanism.SCRAM_SHA_512, "hijacked")
        refused = admin.alter_user_scram_credentials([upsert])
    finally:
        admin.close()
    assert refused[secure_broker.user("sink")], "the broker refused the credential change"
    _join(secure_broker.options("sink"), secure_broker.settings.clickhouse.consumer_group, [CONTACTS.name], 5)
