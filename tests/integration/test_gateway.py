"""The gateway through a real broker: accepted = on its topic (contract key, murmur2 partition, principal header),
rejected = nothing published, duplicates not republished, and with the broker stopped mid-stream nothing is
answered `accepted` that is not on the topic."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from kafka import KafkaConsumer
from kafka.structs import TopicPartition

from gateway.app import Gateway, create_app
from gateway.dedupe import AcceptedIndex
from gateway.kafka import PRINCIPAL_HEADER, GatewayPublisher
from gateway.principals import Principals
from gateway.settings import GatewaySettings
from safeguard.kafka_clients import client_options
from safeguard.kafka_local import LocalBroker
from safeguard.settings import KafkaSettings
from schemas.topics import DOMESTIC_INCIDENTS, MISSING_EPISODES
from tests.integration.kafka_reader import murmur2_partition
from tests.integration.own_broker import own_broker  # noqa: F401  (a fixture)
from tests.unit.test_gateway.helpers import NOW, domestic_incident, missing_reported, principal

pytestmark = pytest.mark.integration
TOPICS = [MISSING_EPISODES.name, DOMESTIC_INCIDENTS.name]


@contextmanager
def gateway_client(tmp_path: Path, bootstrap: str, **settings: Any) -> Iterator[tuple[TestClient, dict[str, str]]]:
    wyp, key = principal("wyp")
    gw_settings = GatewaySettings(**{"ack_timeout_s": 10.0, **settings})
    publisher = GatewayPublisher.connect(
        client_options(KafkaSettings(bootstrap_servers=bootstrap), bootstrap), max_block_s=gw_settings.ack_timeout_s
    )
    index = AcceptedIndex(tmp_path / "accepted.sqlite", max_entries=100_000)
    gw = Gateway(
        settings=gw_settings,
        principals=lambda: Principals([wyp]),
        publisher=publisher,
        index=index,
        clock=lambda: NOW,
    )
    try:
        with TestClient(create_app(gw)) as client:
            yield client, {"Authorization": f"Bearer {key}"}
    finally:
        publisher.close(timeout=5)
        index.close()


def records_with_ids(bootstrap: str, ids: set[str], timeout_s: float = 30) -> list[Any]:
    """Every record of the event topics whose value holds one of `ids` (read from the beginning up to the end)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    try:
        parts = [TopicPartition(t, p) for t in TOPICS for p in sorted(consumer.partitions_for_topic(t) or [])]
        end = consumer.end_offsets(parts)
        wanted = [tp for tp in parts if end[tp] > 0]
        consumer.assign(wanted)
        consumer.seek_to_beginning(*wanted)
        remaining = {tp: end[tp] for tp in wanted}
        found = []
        deadline = time.monotonic() + timeout_s
        while remaining and time.monotonic() < deadline:
            for tp, messages in consumer.poll(timeout_ms=500, max_records=5000).items():
                for msg in messages:
                    if msg.offset < remaining.get(tp, -1) and any(i.encode() in msg.value for i in ids):
                        found.append(msg)
                if tp in remaining and messages and messages[-1].offset + 1 >= remaining[tp]:
                    del remaining[tp]
        assert not remaining, f"timed out reading {remaining}"
        return found
    finally:
        consumer.close()


def _event_id(record: Any) -> str:
    import json

    return str(json.loads(record.value)["event_id"])


def test_accepted_is_published_rejected_is_not_and_duplicates_are_not_republished(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    good = [missing_reported(), domestic_incident(), missing_reported()]
    bad = [missing_reported(risk_level="extreme"), missing_reported(child_id="9434765919")]
    with gateway_client(tmp_path, kafka_bootstrap) as (client, auth):
        response = client.post("/v1/events:batch", json=[good[0], bad[0], good[1], bad[1]], headers=auth)
        assert response.status_code == 200, response.text
        assert [r["status"] for r in response.json()["results"]] == ["accepted", "rejected", "accepted", "rejected"]
        single = client.post("/v1/events", json=good[2], headers=auth)
        assert single.status_code == 201, single.text
        # The same again, as a batch and one by one: answered duplicate, not published again.
        again = client.post("/v1/events:batch", json=good, headers=auth)
        assert [r["status"] for r in again.json()["results"]] == ["duplicate"] * 3
        assert client.post("/v1/events", json=good[0], headers=auth).json()["status"] == "duplicate"
        answered = {r["event_id"]: r for r in response.json()["results"] if r["status"] == "accepted"}
        answered[single.json()["event_id"]] = single.json()

    ids = {e["event_id"] for e in good + bad}
    records = records_with_ids(kafka_bootstrap, ids)
    assert sorted(_event_id(r) for r in records) == sorted(e["event_id"] for e in good)  # once each, no bad ones
    for record in records:
        event_id = _event_id(record)
        expected_key = good[1]["household_id"] if record.topic == DOMESTIC_INCIDENTS.name else good[0]["child_id"]
        assert record.key == expected_key.encode()
        assert record.partition == murmur2_partition(record.key, 6)
        assert dict(record.headers)[PRINCIPAL_HEADER] == b"wyp"
        assert (answered[event_id]["topic"], answered[event_id]["partition"], answered[event_id]["offset"]) == (
            record.topic,
            record.partition,
            record.offset,
        )


def test_kafka_stopped_mid_stream_nothing_acknowledged_is_missing_from_the_topic(
    tmp_path: Path,
    own_broker: LocalBroker,  # noqa: F811
) -> None:
    state = own_broker.read_state()
    assert state is not None
    bootstrap = state.bootstrap
    accepted: set[str] = set()
    statuses: list[int] = []
    sent: set[str] = set()
    # The loop posts as fast as the gateway answers, which on a quick machine is above the default rate limit; this
    # test is about acknowledgements, so the limit is set out of its way.
    unlimited = {"rate_events_per_s": 1_000_000.0, "rate_burst_events": 1_000_000}
    with gateway_client(tmp_path, bootstrap, ack_timeout_s=3.0, retry_after_s=1, **unlimited) as (client, auth):
        stopper = threading.Timer(1.5, own_broker.stop)
        stopper.start()
        try:
            deadline = time.monotonic() + 12
            while time.monotonic() < deadline:
                batch = [missing_reported(event_id=str(uuid.uuid4())) for _ in range(50)]
                sent |= {e["event_id"] for e in batch}
                response = client.post("/v1/events:batch", json=batch, headers=auth)
                statuses.append(response.status_code)
                results = response.json()["results"]
                accepted |= {r["event_id"] for r in results if r["status"] == "accepted"}
                if response.status_code == 503:
                    assert response.headers["Retry-After"] == "1"
                    assert {r["status"] for r in results} <= {"accepted", "not_acknowledged"}
                else:
                    assert response.status_code == 200, response.text
                    assert all(r["status"] == "accepted" for r in results)
                if statuses.count(503) >= 2:
                    break
        finally:
            stopper.join()
        assert 200 in statuses, f"nothing was accepted before the broker stopped: {statuses}"
        assert 503 in statuses, f"the gateway never answered 503 with the broker stopped: {statuses}"

    own_broker.start()
    on_topic = {_event_id(r) for r in records_with_ids(bootstrap, sent, timeout_s=60)}
    missing = accepted - on_topic
    assert not missing, f"{len(missing)} events answered accepted are not on the topic"
