"""Limits: body size, batch size, per-principal rate, content type; the pseudonymising variant; access logs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from gateway.ratelimit import EventRateLimiter
from producers.pseudonymise import Pseudonymiser
from tests.unit.test_gateway.helpers import CHILD, harness, missing_reported


def test_a_body_over_the_limit_is_413(tmp_path: Path) -> None:
    h = harness(tmp_path, max_body_bytes=2048)
    batch = [missing_reported() for _ in range(10)]
    response = h.client.post("/v1/events:batch", json=batch, headers=h.headers())
    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"
    assert h.producer.sent == []


def test_a_chunked_body_over_the_limit_is_413_too(tmp_path: Path) -> None:
    h = harness(tmp_path, max_body_bytes=2048)

    def chunks():  # no Content-Length: the limit holds while reading
        for _ in range(10):
            yield json.dumps(missing_reported()).encode() + b"\n"

    response = h.client.post(
        "/v1/events:batch", content=chunks(), headers={**h.headers(), "Content-Type": "application/x-ndjson"}
    )
    assert response.status_code == 413
    assert h.producer.sent == []


def test_a_batch_over_the_event_limit_is_413(tmp_path: Path) -> None:
    h = harness(tmp_path, max_batch_events=3)
    response = h.client.post("/v1/events:batch", json=[missing_reported() for _ in range(4)], headers=h.headers())
    assert response.status_code == 413
    assert "at most 3" in response.json()["reason"]
    assert h.producer.sent == []


def test_an_empty_batch_and_a_non_array_are_422(tmp_path: Path) -> None:
    h = harness(tmp_path)
    assert h.client.post("/v1/events:batch", json=[], headers=h.headers()).json()["error"] == "empty_batch"
    assert h.client.post("/v1/events:batch", json={"a": 1}, headers=h.headers()).json()["error"] == "not_array"


def test_another_content_type_is_415(tmp_path: Path) -> None:
    h = harness(tmp_path)
    response = h.client.post(
        "/v1/events", content=b"<event/>", headers={**h.headers(), "Content-Type": "application/xml"}
    )
    assert response.status_code == 415
    assert response.json()["reason"]


def test_the_rate_limit_is_per_principal_and_says_when_to_retry(tmp_path: Path) -> None:
    h = harness(tmp_path, rate_events_per_s=1, rate_burst_events=3)
    statuses = [h.client.post("/v1/events", json=missing_reported(), headers=h.headers()).status_code for _ in range(4)]
    assert statuses == [201, 201, 201, 429]
    limited = h.client.post("/v1/events", json=missing_reported(), headers=h.headers())
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1
    assert "rate" in limited.json()["reason"]
    assert len(h.producer.sent) == 3


def test_the_token_bucket_refills_with_time() -> None:
    now = [0.0]
    limiter = EventRateLimiter(rate_per_s=10, burst=20, monotonic=lambda: now[0])
    assert limiter.take("a", 20) == 0
    assert limiter.take("a", 1) == 1.0
    assert limiter.take("b", 20) == 0  # another principal has its own bucket
    now[0] = 1.0
    assert limiter.take("a", 10) == 0
    assert limiter.take("a", 500) > 0  # a request over the burst waits for a full bucket, never forever
    now[0] = 10.0
    assert limiter.take("a", 500) == 0


def test_pseudonymising_is_refused_unless_enabled(tmp_path: Path) -> None:
    h = harness(tmp_path)
    response = h.client.post(
        "/v1/events?pseudonymise=child_id", json=missing_reported(child_id="9434765919"), headers=h.headers()
    )
    assert response.status_code == 400
    assert response.json()["error"] == "pseudonymise_disabled"
    assert h.producer.sent == []


def test_the_pseudonymising_variant_hashes_raw_fields_before_validation(tmp_path: Path) -> None:
    h = harness(tmp_path, pseudonymise=True)
    pseudonymiser = Pseudonymiser.from_secret("partnership-secret-key-0123456789")
    h.gateway.pseudonymiser = pseudonymiser
    response = h.client.post(
        "/v1/events?pseudonymise=child_id", json=missing_reported(child_id="943 476 5919"), headers=h.headers()
    )
    assert response.status_code == 201, response.text
    sent = h.producer.sent[0]
    assert sent["key"] == pseudonymiser.pseudonym("9434765919").encode()
    assert b"943" not in sent["value"].replace(sent["key"], b"")
    # A pseudonym already is left as it is; an unknown field name is refused.
    assert (
        h.client.post("/v1/events?pseudonymise=child_id", json=missing_reported(), headers=h.headers()).json()["status"]
        == "accepted"
    )
    assert h.producer.sent[1]["key"] == CHILD.encode()
    refused = h.client.post("/v1/events?pseudonymise=name", json=missing_reported(), headers=h.headers())
    assert refused.status_code == 422
    assert refused.json()["error"] == "invalid_request"
    assert "pseudonymise" in refused.json()["reason"]


def test_access_logs_name_the_principal_and_never_the_payload(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    h = harness(tmp_path)
    event = missing_reported(child_id="9434765919")  # rejected: the raw identifier must not reach the log
    with caplog.at_level(logging.INFO, logger="gateway.access"):
        h.client.post("/v1/events", json=event, headers=h.headers())
        h.client.post("/v1/events", json=missing_reported(), headers=h.headers())
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "gateway.access"]
    assert [(line["principal"], line["status"]) for line in lines] == [("wyp", 422), ("wyp", 201)]
    assert lines[1]["events"] == {"accepted": 1}
    assert "9434765919" not in caplog.text
    assert h.keys["wyp"] not in caplog.text
