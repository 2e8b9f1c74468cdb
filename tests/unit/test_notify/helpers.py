"""Shared test material for the notifier: alerts, a rota, a settable clock, a channel that records."""

from __future__ import annotations

import hashlib
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from notify.messages import Outgoing
from notify.rota import Rota, parse_rota
from schemas.alerts import AlertRaised

ROTA_TOML = """
timezone = "Europe/London"
fallback_team = "edt"

[contacts.day]
name = "Day manager"
email = "day@example.org"
[contacts.senior]
name = "Senior manager"
email = "senior@example.org"
[contacts.head]
name = "Head of service"
email = "head@example.org"
console = true
[contacts.night]
name = "Night duty"
email = "night@example.org"
[contacts.night-lead]
name = "Night lead"
email = "night-lead@example.org"
[contacts.hook]
name = "Team channel"
webhook = "http://127.0.0.1:9/hook"
webhook_format = "teams"

[[teams]]
name = "front-door"
la_codes = ["383"]
  [[teams.shifts]]
  days = "weekdays"
  start = "08:00"
  end = "20:00"
  primary = "day"
  escalation = ["senior", "head"]

[[teams]]
name = "leicester"
la_codes = ["856"]
severities = ["high", "critical"]
  [[teams.shifts]]
  days = "daily"
  start = "00:00"
  end = "24:00"
  primary = "hook"

[[teams]]
name = "edt"
  [[teams.shifts]]
  days = "daily"
  start = "20:00"
  end = "08:00"
  primary = "night"
  escalation = ["night-lead"]
  [[teams.shifts]]
  days = "weekdays"
  start = "08:00"
  end = "20:00"
  primary = "night"
  escalation = ["night-lead"]
  [[teams.shifts]]
  days = "weekends"
  start = "08:00"
  end = "20:00"
  primary = "night"
  escalation = ["night-lead", "head"]
"""


def rota() -> Rota:
    return parse_rota(ROTA_TOML, source="test-rota.toml")


def pseudonym(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def make_alert(
    n: int | str,
    *,
    rule_id: str = "repeat_missing",
    severity: str = "high",
    la_code: str = "383",
    subject: str = "child-1",
    subject_type: str = "child",
    at: datetime | None = None,
) -> AlertRaised:
    when = at or datetime(2025, 6, 2, 10, 0, tzinfo=UTC)
    return AlertRaised(
        alert_id=hashlib.sha256(f"alert-{n}".encode()).hexdigest()[:32],
        rule_id=rule_id,
        rule_version=1,
        severity=severity,  # type: ignore[arg-type]
        la_code=la_code,
        subject_type=subject_type,  # type: ignore[arg-type]
        subject_id=pseudonym(subject),
        triggered_at=when,
        raised_at=when,
        evidence_event_ids=[str(uuid.uuid5(uuid.NAMESPACE_URL, f"event-{n}"))],
        summary=f"Test alert {n}: three missing episodes within 90 days.",
    )


@dataclass
class FakeClock:
    """A clock the test moves by hand."""

    now: datetime = field(default_factory=lambda: datetime(2025, 6, 2, 10, 0, tzinfo=UTC))  # a Monday, 11:00 BST

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class RecordingChannel:
    """Accepts (or, while `failing`, refuses) messages and keeps what it accepted."""

    sent: list[tuple[Outgoing, str]] = field(default_factory=list)
    failing: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, message: Outgoing, address: str) -> None:
        from notify.channels import DeliveryError

        if self.failing:
            raise DeliveryError("the test server said no")
        with self._lock:
            self.sent.append((message, address))

    def close(self) -> None:
        return None
