"""A gateway over a fake Kafka producer (unit tests: no I/O but the SQLite index in a temp dir)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from gateway.app import Gateway, create_app
from gateway.dedupe import AcceptedIndex
from gateway.kafka import GatewayPublisher
from gateway.principals import Principal, Principals, new_key
from gateway.settings import GatewaySettings

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
CHILD = "5f2c" + "0123456789abcdef" * 3 + "9e11d0c7a3e1"
HOUSEHOLD = "ab" * 32


def missing_reported(**overrides: Any) -> dict[str, Any]:
    at = NOW - timedelta(days=1)
    event: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "event_type": "missing.reported",
        "schema_version": 1,
        "la_code": "383",
        "agency_type": "police",
        "agency_code": "WYP",
        "occurred_at": at.isoformat(),
        "recorded_at": (at + timedelta(hours=1)).isoformat(),
        "episode_id": "MP-383-0001",
        "child_id": CHILD,
        "looked_after": False,
        "absence_type": "missing",
        "risk_level": "medium",
    }
    event.update(overrides)
    return {k: v for k, v in event.items() if v is not None}


def domestic_incident(**overrides: Any) -> dict[str, Any]:
    at = NOW - timedelta(days=2)
    event: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "event_type": "domestic_incident.recorded",
        "schema_version": 1,
        "la_code": "383",
        "agency_type": "police",
        "agency_code": "WYP",
        "occurred_at": at.isoformat(),
        "recorded_at": (at + timedelta(hours=2)).isoformat(),
        "incident_id": "DI-383-0001",
        "household_id": HOUSEHOLD,
        "dash_risk": "standard",
        "is_crime": False,
        "children": [{"child_id": CHILD, "present": True}],
    }
    event.update(overrides)
    return event


class _Sent:
    def __init__(self, producer: FakeProducer, topic: str, partition: int, offset: int) -> None:
        self._producer, self.topic, self.partition, self.offset = producer, topic, partition, offset
        self.callbacks: list[Callable[[Any], None]] = []
        self.errbacks: list[Callable[[BaseException], None]] = []

    def add_callback(self, fn: Callable[[Any], None]) -> None:
        if self._producer.mode == "ack":
            fn(self)
        else:
            self.callbacks.append(fn)

    def add_errback(self, fn: Callable[[BaseException], None]) -> None:
        if self._producer.mode == "fail":
            fn(RuntimeError("KafkaTimeoutError: broker down"))
        else:
            self.errbacks.append(fn)


@dataclass
class FakeProducer:
    """Acknowledges at once ('ack'), fails at once ('fail') or never answers ('silent')."""

    mode: str = "ack"
    sent: list[dict[str, Any]] = field(default_factory=list)
    pending: list[_Sent] = field(default_factory=list)

    def send(self, topic: str, value: bytes | None = None, key: bytes | None = None, headers: Any = None) -> _Sent:
        record = {"topic": topic, "key": key, "value": value, "headers": headers}
        self.sent.append(record)
        future = _Sent(self, topic, 0, len(self.sent) - 1)
        if self.mode == "silent":
            self.pending.append(future)
        return future

    def flush(self, timeout: float | None = None) -> None:
        return None

    def close(self, timeout: float | None = None) -> None:
        return None


@dataclass
class Harness:
    client: TestClient
    producer: FakeProducer
    keys: dict[str, str]
    gateway: Gateway
    principals: dict[str, Principal]

    def headers(self, who: str = "wyp") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}


def principal(name: str, **scope: Any) -> tuple[Principal, str]:
    made = new_key(date(2026, 1, 1))
    fields: dict[str, Any] = {
        "name": name,
        "agency_type": "police",
        "agency_codes": ("WYP",),
        "la_codes": ("383",),
        "event_types": ("missing.reported", "missing.found", "domestic_incident.recorded"),
    }
    fields.update(scope)
    return Principal(**fields, keys=(made.key,)), made.secret


def harness(tmp_path: Path, *, mode: str = "ack", **settings: Any) -> Harness:
    wyp, wyp_key = principal("wyp")
    health, health_key = principal(
        "ltht", agency_type="health", agency_codes=("LTHT",), event_types=("contact.received",)
    )
    revoked_made = new_key(date(2026, 1, 1))
    revoked = revoked_made.key.model_copy(update={"revoked": date(2026, 3, 1)})
    wyp = wyp.model_copy(update={"keys": (*wyp.keys, revoked)})
    principals = Principals([wyp, health])
    producer = FakeProducer(mode=mode)
    gw_settings = GatewaySettings(**{"ack_timeout_s": 0.5, **settings})
    gw = Gateway(
        settings=gw_settings,
        principals=lambda: principals,
        publisher=GatewayPublisher(producer),
        index=AcceptedIndex(tmp_path / "accepted.sqlite", max_entries=10_000),
        clock=lambda: NOW,
    )
    client = TestClient(create_app(gw), raise_server_exceptions=True)
    keys = {"wyp": wyp_key, "ltht": health_key, "revoked": revoked_made.secret}
    return Harness(client, producer, keys, gw, {"wyp": wyp, "ltht": health})


def digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()
