"""The application image built from the Dockerfile, run the way docker-compose.yml runs it (its command, its
environment, read-only root filesystem, no capabilities) on the network with the Kafka and ClickHouse containers:

- small and unprivileged: no chDB, no testcontainers, a numeric non-root user, `safeguard` as the entrypoint;
- the compose `topics`/`migrate` jobs and the `sink` service work from the image with their compose accounts, and
  their healthchecks pass;
- the notifier runs from the image with its state on a named volume and the repository's example rota: it takes
  an alert from the alerts topic, records its lifecycle, and its acknowledgement page answers;
- the worker scales: two worker containers share the contract topics' partitions (state is partitioned by key),
  process every event, and together raise exactly the alerts of the in-process reference.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kafka.admin import KafkaAdminClient
from testcontainers.core.container import DockerContainer
from testcontainers.core.image import DockerImage
from testcontainers.core.network import Network

from producers.publisher import EventPublisher
from producers.simulate import LEEDS_2019, generate
from safeguard.kafka_clients import client_options
from safeguard.settings import KafkaSettings
from schemas.codec import decode_alert
from schemas.topics import ALERTS, EVENT_TOPICS
from tests.containers.engine import require_docker
from tests.containers.stack import (
    DATABASE,
    ClickHouseNode,
    KafkaNode,
    compose,
    compose_environment,
    container_logs,
    kafka_node,
    wait_until,
)
from tests.integration.kafka_reader import end_offsets, read_new
from tests.integration.worker_runs import progress, reference_alerts
from tests.unit.test_deploy.deploy_files import ROOT, bind_mounts

require_docker()
pytestmark = [pytest.mark.containers, pytest.mark.slow]

MAX_IMAGE_BYTES = 600 * 1024 * 1024


@pytest.fixture(scope="module")
def app_image() -> Iterator[str]:
    """The Dockerfile built into a throw-away tag (removed at the end)."""
    tag = f"safeguarding-pipeline:test-{uuid.uuid4().hex[:8]}"
    with DockerImage(path=ROOT, tag=tag, clean_up=True, rm=True, forcerm=True):
        yield tag


def _service(app_image: str, service: str, network: Network, **environment: str) -> DockerContainer:
    """A container of the application image configured as the compose `service`: same command and entrypoint, same
    environment (plus `environment`), the same lock-down (read-only root, tmpfs, no capabilities) and bind mounts."""
    spec = compose()["services"][service]
    container = (
        DockerContainer(app_image).with_network(network).with_envs(**compose_environment(service, **environment))
    )
    container.with_kwargs(  # once: with_kwargs replaces what an earlier call set
        read_only=spec.get("read_only", False),
        tmpfs={path: "" for path in spec.get("tmpfs", [])},
        cap_drop=spec.get("cap_drop"),
        security_opt=spec.get("security_opt"),
        init=spec.get("init", False),
        **({"entrypoint": spec["entrypoint"]} if "entrypoint" in spec else {}),
    )
    for host_path, target in bind_mounts(spec):
        container.with_volume_mapping(str((ROOT / host_path).resolve()), target, "ro")
    container.with_command(spec["command"])
    return container


def _run_job(container: DockerContainer, timeout_s: float = 300) -> str:
    """Start a one-shot service, wait for it to exit, return its logs. It must exit 0: compose waits for that."""
    container.start()
    try:
        result = container.get_wrapped_container().wait(timeout=timeout_s)
        logs = container_logs(container)
        assert result["StatusCode"] == 0, logs
        return logs
    finally:
        container.stop()


def _healthcheck(container: DockerContainer, service: str) -> tuple[int, str]:
    test = compose()["services"][service]["healthcheck"]["test"]
    assert test[0] == "CMD"
    exit_code, output = container.exec(test[1:])
    return exit_code, output.decode(errors="replace")


def _exec_python(app_image: str, code: str) -> str:
    container = DockerContainer(app_image).with_kwargs(entrypoint=["python", "-c", code])
    container.start()
    try:
        assert container.get_wrapped_container().wait(timeout=120)["StatusCode"] == 0, container_logs(container)
        return container_logs(container)
    finally:
        container.stop()


def test_the_image_is_small_unprivileged_and_has_no_dev_or_test_dependencies(app_image: str) -> None:
    from testcontainers.core.docker_client import DockerClient

    image = DockerClient().client.images.get(app_image)
    config = image.attrs["Config"]
    assert config["User"].split(":")[0] not in ("", "0", "root"), config["User"]
    assert config["Entrypoint"] == ["safeguard"]
    assert image.attrs["Size"] < MAX_IMAGE_BYTES, f"image is {image.attrs['Size'] / 2**20:.0f} MiB"
    report = json.loads(
        _exec_python(
            app_image,
            "import importlib.util, json, os\n"
            "from sinks.migrate import load_migrations\n"
            "print(json.dumps({'uid': os.getuid(), 'migrations': len(load_migrations()),"
            " 'absent': [m for m in ('chdb', 'testcontainers', 'pytest', 'ruff')"
            " if importlib.util.find_spec(m) is None]}))",
        )
        .strip()
        .splitlines()[-1]
    )
    assert report["uid"] == 10001
    assert report["migrations"] >= 1, "the installed package carries sinks/migrations/*.sql"
    assert report["absent"] == ["chdb", "testcontainers", "pytest", "ruff"], "no embedded engine, test or dev tools"
    env = {e.split("=", 1)[0] for e in config.get("Env", [])}
    assert not {e for e in env if any(word in e for word in ("PASSWORD", "TOKEN", "SECRET", "KEY"))}


def test_jobs_and_the_sink_run_from_the_image_with_their_compose_accounts(
    app_image: str, network: Network, kafka: KafkaNode, clickhouse: ClickHouseNode
) -> None:
    _run_job(_service(app_image, "topics", network))
    migrated = _run_job(_service(app_image, "migrate", network))
    assert "0001_initial" in migrated or "up to date" in migrated
    events = generate(LEEDS_2019, 105, days=3)  # a seed no other test publishes
    with EventPublisher.connect(client_options(KafkaSettings(), kafka.bootstrap)) as publisher:
        for event in events:
            publisher.publish(event)
        assert publisher.flush().failed == 0
    ids = {e.event_id for e in events}
    group = f"sink-image-{uuid.uuid4().hex[:8]}"
    sink = _service(app_image, "sink", network, SAFEGUARD_CLICKHOUSE__CONSUMER_GROUP=group)
    sink.start()
    analyst = clickhouse.analyst()
    try:

        def stored() -> int:
            rows = analyst.query(f"SELECT event_id FROM {DATABASE}.contacts FINAL").result_rows
            rows += analyst.query(f"SELECT event_id FROM {DATABASE}.missing_episodes FINAL").result_rows
            rows += analyst.query(f"SELECT event_id FROM {DATABASE}.domestic_incidents FINAL").result_rows
            rows += analyst.query(f"SELECT event_id FROM {DATABASE}.contact_decisions FINAL").result_rows
            rows += analyst.query(f"SELECT event_id FROM {DATABASE}.cp_plans FINAL").result_rows
            return len({r[0] for r in rows} & ids)

        wait_until(
            lambda: stored() == len(ids), "the sink container to store every event", 300, lambda: container_logs(sink)
        )
        code, output = _healthcheck(sink, "sink")
        assert code == 0, output
    finally:
        analyst.close()
        sink.stop()


def test_the_notifier_runs_from_the_image_with_its_volume_and_rota(
    app_image: str, network: Network, kafka: KafkaNode
) -> None:
    from kafka import KafkaProducer

    from schemas.alerts import AlertRaised
    from schemas.codec import decode_alert_lifecycle, encode
    from schemas.topics import ALERT_LIFECYCLE
    from tests.unit.test_schemas import examples as ex

    spec = compose()["services"]["notify"]
    volume = f"safeguard-notify-test-{uuid.uuid4().hex[:8]}"
    notify = _service(app_image, "notify", network, SAFEGUARD_NOTIFY__CONSUMER_GROUP=f"notify-{volume}")
    assert f"notify-data:{spec['environment']['SAFEGUARD_NOTIFY__DATA_DIR']}" in spec["volumes"]
    notify.with_volume_mapping(volume, "/var/lib/safeguard/notify", "rw")  # a named volume, as in compose
    notify.with_exposed_ports(8470)
    alert = AlertRaised.model_validate({**ex.alert(), "alert_id": uuid.uuid4().hex})
    from_offsets = end_offsets(kafka.bootstrap, [ALERT_LIFECYCLE.name])
    notify.start()
    try:
        logs: Callable[[], str] = lambda: container_logs(notify)  # noqa: E731
        wait_until(lambda: _healthcheck(notify, "notify")[0] == 0, "the notifier's healthcheck", 120, logs)
        producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
        producer.send(ALERTS.name, key=alert.alert_id.encode(), value=encode(alert)).get(timeout=30)
        producer.close()

        def recorded() -> bool:
            records = read_new(kafka.bootstrap, from_offsets, [ALERT_LIFECYCLE.name])
            return any(decode_alert_lifecycle(r.value).alert_id == alert.alert_id for r in records)

        wait_until(recorded, "a lifecycle event for the published alert", 120, logs)
        import urllib.request

        url = f"http://{notify.get_container_host_ip()}:{notify.get_exposed_port(8470)}/healthz"
        with urllib.request.urlopen(url, timeout=10) as response:  # published as compose publishes it
            assert response.status == 200
        exit_code, listing = notify.exec(["ls", "/var/lib/safeguard/notify"])
        assert exit_code == 0 and b"notify.sqlite3" in listing, "the notifier's state is on its volume"
    finally:
        notify.stop()
        from testcontainers.core.docker_client import DockerClient

        DockerClient().client.volumes.get(volume).remove(force=True)


def _group_members(bootstrap: str, group: str) -> list[set[tuple[str, int]]]:
    """The contract-topic partitions each live member of `group` is assigned (kafka-python's describe_groups)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        description = admin.describe_groups([group])[group]
    finally:
        admin.close()
    event_topics = {spec.name for spec in EVENT_TOPICS}
    return [
        {(t, n) for t, n in _assigned(_get(member, "member_assignment")) if t in event_topics}
        for member in _get(description, "members") or []
    ]


def _get(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def _assigned(obj: Any) -> set[tuple[str, int]]:
    """(topic, partition) pairs anywhere in a decoded member assignment (dicts, lists or protocol objects)."""
    if obj is None or isinstance(obj, str | bytes | int):
        return set()
    topic, partitions = _get(obj, "topic"), _get(obj, "partitions")
    if isinstance(topic, str) and isinstance(partitions, list):
        return {(topic, int(n)) for n in partitions}
    if isinstance(obj, tuple | list):
        if len(obj) == 2 and isinstance(obj[0], str) and isinstance(obj[1], list):
            return {(obj[0], int(n)) for n in obj[1]}
        return set().union(*(_assigned(item) for item in obj)) if obj else set()
    if isinstance(obj, dict):
        return set().union(*(_assigned(v) for v in obj.values())) if obj else set()
    return _assigned(_get(obj, "assigned_partitions") or _get(obj, "assignment"))


def test_two_worker_replicas_share_the_partitions_and_raise_the_reference_alerts(app_image: str) -> None:
    """What `docker compose up --scale worker=2` does, on a broker and a network of this test's own (the replicas
    reach it as compose's services do, kafka:19092)."""
    with Network() as isolated, kafka_node(isolated) as own:
        _scaled_workers(app_image, isolated, own)


def _scaled_workers(app_image: str, network: Network, kafka: KafkaNode) -> None:
    events = generate(LEEDS_2019, 7, days=45)
    expected = reference_alerts(events, KafkaSettings().topic_partitions)
    alerts_from = end_offsets(kafka.bootstrap, [ALERTS.name])
    with EventPublisher.connect(client_options(KafkaSettings(), kafka.bootstrap)) as publisher:
        for event in events:
            publisher.publish(event)
        assert publisher.flush().failed == 0
    app_id = f"scaled-{uuid.uuid4().hex[:6]}"
    replicas = [_service(app_image, "worker", network, SAFEGUARD_STREAMS__APP_ID=app_id) for _ in range(2)]
    for replica in replicas:
        replica.start()
    try:
        logs: Callable[[], str] = lambda: "\n".join(container_logs(r)[-2000:] for r in replicas)  # noqa: E731
        wait_until(lambda: _two_members_share(kafka.bootstrap, app_id), "two members sharing partitions", 180, logs)
        wait_until(lambda: _all_processed(kafka.bootstrap, app_id), "every event processed", 600, logs)
        for replica in replicas:
            code, output = _healthcheck(replica, "worker")
            assert code == 0, output
        raised: dict[str, Any] = {}
        seen, quiet_since = -1, time.monotonic()
        while time.monotonic() - quiet_since < 5:
            records = read_new(kafka.bootstrap, alerts_from, [ALERTS.name])
            if len(records) != seen:
                seen, quiet_since = len(records), time.monotonic()
            time.sleep(1)
        for record in records:
            alert = decode_alert(record.value)
            raised.setdefault(alert.alert_id, alert)
        assert set(raised) == set(expected), (
            f"missing {len(set(expected) - set(raised))}, extra {len(set(raised) - set(expected))}"
        )
    finally:
        for replica in replicas:
            replica.stop()


def _two_members_share(bootstrap: str, group: str) -> bool:
    members = _group_members(bootstrap, group)
    return len(members) == 2 and all(members) and not (members[0] & members[1])


def _all_processed(bootstrap: str, group: str) -> bool:
    done, total = progress(bootstrap, group)
    return total > 0 and done >= total
