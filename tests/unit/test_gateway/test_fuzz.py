"""Schemathesis fuzzes the gateway from its own OpenAPI document: no 5xx, every answer as documented, and every 4xx
says why (a `reason`). Kafka is a fake producer that acknowledges everything; authentication is a real key."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from producers.pseudonymise import Pseudonymiser
from tests.unit.test_gateway.helpers import harness

pytestmark = pytest.mark.slow  # about 20 s: schemathesis' coverage phase sends some thousand requests

_H = harness(Path(tempfile.mkdtemp(prefix="gateway-fuzz-")), pseudonymise=True, rate_events_per_s=1e9)
_H.gateway.pseudonymiser = Pseudonymiser.from_secret("partnership-secret-key-0123456789")
_WIDE = {"Authorization": f"Bearer {_H.keys['wyp']}"}

# The document the gateway serves; the requests go through FastAPI's TestClient (`_call`), not schemathesis' own
# transport.
schema = schemathesis.openapi.from_asgi("/openapi.json", _H.client.app)


@schemathesis.check
def every_4xx_has_a_reason(ctx: Any, response: Any, case: Case) -> bool | None:
    if 400 <= response.status_code < 500:
        body = response.json()
        assert isinstance(body, dict) and isinstance(body.get("reason"), str) and body["reason"].strip(), (
            f"{response.status_code} without a reason: {response.text[:300]}"
        )
    return None


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    every_4xx_has_a_reason,
]


def _call(case: Case, headers: dict[str, str]) -> Any:
    """The case sent through FastAPI's TestClient (httpx), the way the gateway's own tests call it."""
    # Credentials are ours: generated Authorization / X-API-Key values would only ever be refused.
    case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() not in {"authorization", "x-api-key"}}
    kwargs = case.as_transport_kwargs(headers=headers)
    kwargs.pop("cookies", None)
    if "data" in kwargs:
        data = kwargs.pop("data")
        kwargs["content"] = data if isinstance(data, bytes | str) else None
        if kwargs["content"] is None:
            kwargs["data"] = data
    return _H.client.request(**kwargs)


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_gateway_answers_as_its_openapi_document_says(case: Case) -> None:
    case.validate_response(_call(case, _WIDE), checks=CHECKS)


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_without_credentials_every_answer_is_a_reasoned_401(case: Case) -> None:
    response = _call(case, {"Authorization": "Bearer sgk_000000000000_wrong"})
    case.validate_response(response, checks=CHECKS)
    if case.path != "/healthz":
        assert response.status_code in {401, 404, 405, 422}, response.text
