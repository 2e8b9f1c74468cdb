"""Per-event answers: accepted once Kafka acknowledged, duplicate, rejected in the contract's words, 503 when Kafka
does not acknowledge; keys, topics and the principal header as the contract says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.kafka import PRINCIPAL_HEADER
from schemas.codec import decode_event
from schemas.topics import DOMESTIC_INCIDENTS, MISSING_EPISODES
from tests.unit.test_gateway.helpers import CHILD, HOUSEHOLD, Harness, domestic_incident, harness, missing_reported


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    return harness(tmp_path)


def test_an_accepted_event_is_on_its_topic_keyed_by_contract_with_the_principal_header(h: Harness) -> None:
    event = missing_reported()
    response = h.client.post("/v1/events", json=event, headers=h.headers())
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "accepted"
    assert body["event_id"] == event["event_id"]
    assert body["topic"] == MISSING_EPISODES.name
    [sent] = h.producer.sent
    assert sent["topic"] == MISSING_EPISODES.name
    assert sent["key"] == CHILD.encode()
    assert sent["headers"] == [(PRINCIPAL_HEADER, b"wyp")]
    assert decode_event(sent["value"]).event_id == event["event_id"]


def test_a_household_event_is_keyed_by_household(h: Harness) -> None:
    response = h.client.post("/v1/events", json=domestic_incident(), headers=h.headers())
    assert response.status_code == 201, response.text
    assert h.producer.sent[0]["topic"] == DOMESTIC_INCIDENTS.name
    assert h.producer.sent[0]["key"] == HOUSEHOLD.encode()


def test_the_same_event_again_is_a_duplicate_and_not_republished(h: Harness) -> None:
    event = missing_reported()
    assert h.client.post("/v1/events", json=event, headers=h.headers()).status_code == 201
    again = h.client.post("/v1/events", json=event, headers=h.headers())
    assert again.status_code == 200
    assert again.json()["status"] == "duplicate"
    assert len(h.producer.sent) == 1


def test_a_reused_event_id_with_other_content_is_rejected(h: Harness) -> None:
    event = missing_reported()
    assert h.client.post("/v1/events", json=event, headers=h.headers()).status_code == 201
    changed = {**event, "risk_level": "high"}
    response = h.client.post("/v1/events", json=changed, headers=h.headers())
    assert response.status_code == 422
    assert response.json()["issues"][0] == {
        "field": "event_id",
        "reason": "was already accepted for a different event; a new event needs a new id",
        "code": "event_id_reused",
    }
    assert len(h.producer.sent) == 1


@pytest.mark.parametrize(
    ("event", "field", "code"),
    [
        (missing_reported(risk_level="extreme"), "risk_level", "not_in_code_list"),
        (missing_reported(child_id="9434765919"), "child_id", "raw_identifier"),
        (missing_reported(episode_id=None), "episode_id", "missing"),
        (missing_reported(colour="red"), "colour", "unknown_field"),
        (missing_reported(occurred_at="2026-05-31T09:00:00"), "occurred_at", "naive_timestamp"),
        (missing_reported(recorded_at="2026-07-01T09:00:00+00:00"), "recorded_at", "in_the_future"),
    ],
)
def test_an_invalid_event_is_rejected_with_field_and_reason_and_not_published(
    h: Harness, event: dict[str, object], field: str, code: str
) -> None:
    response = h.client.post("/v1/events", json=event, headers=h.headers())
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "rejected"
    assert body["reason"]
    assert (field, code) in {(i["field"], i["code"]) for i in body["issues"]}
    assert h.producer.sent == []
    assert "9434765919" not in response.text  # the raw identifier is never echoed


@pytest.mark.parametrize("body", [b"", b"[]", b"{", b"\xff\xfe", b'"text"'])
def test_a_body_that_is_not_one_event_is_rejected(h: Harness, body: bytes) -> None:
    response = h.client.post("/v1/events", content=body, headers={**h.headers(), "Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.json()["reason"]


def test_a_batch_answers_every_event_in_order(h: Harness) -> None:
    first = missing_reported()
    batch = [first, missing_reported(risk_level="extreme"), first, domestic_incident(), "text"]
    response = h.client.post("/v1/events:batch", json=batch, headers=h.headers())
    assert response.status_code == 200, response.text
    body = response.json()
    assert [r["status"] for r in body["results"]] == ["accepted", "rejected", "duplicate", "accepted", "rejected"]
    assert [r["index"] for r in body["results"]] == [0, 1, 2, 3, 4]
    assert (body["accepted"], body["duplicate"], body["rejected"], body["not_acknowledged"]) == (2, 1, 2, 0)
    assert body["results"][1]["issues"][0]["field"] == "risk_level"
    assert body["results"][4]["issues"][0]["code"] == "not_object"
    assert len(h.producer.sent) == 2


def test_an_ndjson_batch(h: Harness) -> None:
    events = [missing_reported(), missing_reported()]
    body = "\n".join(json.dumps(e) for e in events).encode() + b"\n\n{not json\n"
    response = h.client.post(
        "/v1/events:batch", content=body, headers={**h.headers(), "Content-Type": "application/x-ndjson"}
    )
    assert response.status_code == 200, response.text
    assert [r["status"] for r in response.json()["results"]] == ["accepted", "accepted", "rejected"]
    assert response.json()["results"][2]["issues"][0]["code"] == "not_json"


def test_kafka_failing_is_503_with_retry_after_and_nothing_claimed(tmp_path: Path) -> None:
    h = harness(tmp_path, mode="fail")
    event = missing_reported()
    response = h.client.post("/v1/events", json=event, headers=h.headers())
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.json()["results"][0]["status"] == "not_acknowledged"
    # Not remembered as accepted: once Kafka is back, the same event is published, not called a duplicate.
    h.producer.mode = "ack"
    assert h.client.post("/v1/events", json=event, headers=h.headers()).status_code == 201


def test_kafka_silent_is_503_and_a_retry_never_publishes_an_event_twice(tmp_path: Path) -> None:
    h = harness(tmp_path, mode="silent", ack_timeout_s=0.2)
    events = [missing_reported(), missing_reported()]
    with h.client:  # one event loop for every request, as under uvicorn
        response = h.client.post("/v1/events:batch", json=events, headers=h.headers())
        assert response.status_code == 503
        assert response.headers["Retry-After"]
        assert [r["status"] for r in response.json()["results"]] == ["not_acknowledged", "not_acknowledged"]
        assert len(h.producer.sent) == 2
        # A retry while Kafka still holds both: not published again, still not acknowledged.
        early = h.client.post("/v1/events:batch", json=events, headers=h.headers())
        assert early.status_code == 503
        assert [r["status"] for r in early.json()["results"]] == ["not_acknowledged", "not_acknowledged"]
        assert "still waiting" in early.json()["results"][0]["reason"]
        assert len(h.producer.sent) == 2
        # Kafka acknowledges the first after the answers and fails the second.
        first, second = h.producer.pending
        for callback in first.callbacks:
            callback(first)
        for errback in second.errbacks:
            errback(RuntimeError("KafkaTimeoutError: delivery timed out"))
        h.client.get("/healthz")  # let the event loop run the late answers
        h.producer.mode = "ack"
        retry = h.client.post("/v1/events:batch", json=events, headers=h.headers())
        assert retry.status_code == 200, retry.text
        assert [r["status"] for r in retry.json()["results"]] == ["duplicate", "accepted"]
        assert len(h.producer.sent) == 3  # the first once, the second twice (its first send failed)
