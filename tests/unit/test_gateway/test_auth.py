"""Who may post what: no key, wrong key, revoked key, another agency's code, an event type outside the scope."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.test_gateway.helpers import Harness, domestic_incident, harness, missing_reported


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    return harness(tmp_path)


def _refused(h: Harness, response_status: int, status: int, error: str) -> None:
    assert response_status == status
    assert h.producer.sent == [], "a refused request published something"


def test_no_key_is_401_with_a_reason_and_nothing_published(h: Harness) -> None:
    response = h.client.post("/v1/events", json=missing_reported())
    _refused(h, response.status_code, 401, "unauthenticated")
    assert response.json()["error"] == "unauthenticated"
    assert "API key" in response.json()["reason"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer sgk_0123456789ab_not-a-key"},
        {"X-API-Key": "nonsense"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
    ],
)
def test_a_wrong_key_is_401(h: Harness, headers: dict[str, str]) -> None:
    response = h.client.post("/v1/events", json=missing_reported(), headers=headers)
    _refused(h, response.status_code, 401, "unauthenticated")
    assert response.json()["reason"]


def test_a_real_key_id_with_a_wrong_secret_is_401(h: Harness) -> None:
    key = h.keys["wyp"]
    response = h.client.post("/v1/events", json=missing_reported(), headers={"X-API-Key": key[:-3] + "xyz"})
    _refused(h, response.status_code, 401, "unauthenticated")


def test_a_revoked_key_is_401_and_says_so(h: Harness) -> None:
    response = h.client.post("/v1/events", json=missing_reported(), headers=h.headers("revoked"))
    _refused(h, response.status_code, 401, "unauthenticated")
    assert "revoked on 2026-03-01" in response.json()["reason"]


def test_the_x_api_key_header_works_too(h: Harness) -> None:
    response = h.client.post("/v1/events", json=missing_reported(), headers={"X-API-Key": h.keys["wyp"]})
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "accepted"
    assert len(h.producer.sent) == 1


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"agency_code": "LTHT"}, "agency_code", "another agency's code"),
        ({"la_code": "384"}, "la_code", "outside the local authorities"),
        ({"agency_type": "health"}, "agency_type", "not the agency type"),
    ],
)
def test_another_agencys_code_or_la_is_403_and_never_published(
    h: Harness, overrides: dict[str, str], field: str, words: str
) -> None:
    response = h.client.post("/v1/events", json=missing_reported(**overrides), headers=h.headers())
    _refused(h, response.status_code, 403, "out_of_scope")
    body = response.json()
    assert body["error"] == "out_of_scope"
    assert words in body["reason"]
    assert [i["field"] for i in body["issues"]] == [field]
    assert body["issues"][0]["code"] == "out_of_scope"


def test_an_event_type_outside_the_scope_is_403(h: Harness) -> None:
    # ltht may publish contact.received only.
    event = missing_reported(agency_type="health", agency_code="LTHT")
    response = h.client.post("/v1/events", json=event, headers=h.headers("ltht"))
    _refused(h, response.status_code, 403, "out_of_scope")
    assert "`missing.reported` is outside the scope of ltht" in response.json()["reason"]


def test_one_out_of_scope_event_refuses_the_whole_batch(h: Harness) -> None:
    batch = [missing_reported(), domestic_incident(agency_code="NYP"), missing_reported()]
    response = h.client.post("/v1/events:batch", json=batch, headers=h.headers())
    _refused(h, response.status_code, 403, "out_of_scope")
    body = response.json()
    assert "nothing published" in body["reason"]
    assert [r["index"] for r in body["results"]] == [1]
    assert body["results"][0]["issues"][0]["field"] == "agency_code"


def test_a_key_change_in_the_principals_file_takes_effect_without_a_restart(tmp_path: Path) -> None:
    from datetime import date

    from fastapi.testclient import TestClient

    from gateway.app import Gateway, create_app
    from gateway.dedupe import AcceptedIndex
    from gateway.kafka import GatewayPublisher
    from gateway.principals import PrincipalsFile, add_agency, add_key, revoke_key
    from gateway.settings import GatewaySettings
    from tests.unit.test_gateway.helpers import NOW, FakeProducer

    path = tmp_path / "principals.toml"
    _, first = add_agency(
        path,
        name="wyp",
        agency_type="police",
        agency_codes=["WYP"],
        la_codes=["383"],
        event_types=None,
        today=date(2026, 1, 1),
    )
    principals = PrincipalsFile(path, check_every_s=0)
    gw = Gateway(
        settings=GatewaySettings(),
        principals=principals.current,
        publisher=GatewayPublisher(FakeProducer()),
        index=AcceptedIndex(tmp_path / "a.sqlite", max_entries=1000),
        clock=lambda: NOW,
    )
    client = TestClient(create_app(gw))

    def post(key: str) -> int:
        headers = {"Authorization": f"Bearer {key}"}
        return client.post("/v1/events", json=missing_reported(), headers=headers).status_code

    assert post(first.secret) == 201
    second = add_key(path, "wyp", today=date(2026, 2, 1))  # rotation: both work until the old one is revoked
    assert post(second.secret) == 201
    assert post(first.secret) == 201
    revoke_key(path, "wyp", first.key.id, today=date(2026, 2, 2))
    assert post(first.secret) == 401
    assert post(second.secret) == 201
    text = path.read_text()
    assert "sha256" in text and first.secret not in text and second.secret not in text


def test_a_broken_principals_file_keeps_the_last_good_principals(tmp_path: Path) -> None:
    from datetime import date

    from gateway.principals import PrincipalsFile, add_agency

    path = tmp_path / "principals.toml"
    _, made = add_agency(
        path, name="wyp", agency_type="police", agency_codes=["WYP"], la_codes=["383"], event_types=None,
        today=date(2026, 1, 1),
    )  # fmt: skip
    principals = PrincipalsFile(path, check_every_s=0)
    assert principals.current().check_key(made.secret).principal is not None
    path.write_text("[[principal]\nname = ", encoding="utf-8")
    assert principals.current().check_key(made.secret).principal is not None
