"""The notifier service end to end on the session's real Kafka broker, a real SMTP server and a real webhook
endpoint: alerts on the topic become grouped messages, every change is an alert.lifecycle event on the topic,
failures are retried, high alerts escalate on the (jumped) clock, and a restart neither loses nor repeats."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer

from notify.rota import parse_rota
from schemas.alerts import AlertRaised
from schemas.codec import decode_alert_lifecycle, encode
from tests.integration.kafka_reader import read_new
from tests.integration.test_notify.conftest import (
    JumpClock,
    RunningService,
    SmtpServer,
    WebhookEndpoint,
    create_topics,
    notify_settings,
    start_service,
    wait_for,
)
from tests.unit.test_notify.helpers import ROTA_TOML, make_alert

pytestmark = pytest.mark.integration


class Harness:
    def __init__(self, bootstrap: str, tmp_path: Path, smtp: SmtpServer, hook: WebhookEndpoint, pw: str) -> None:
        self.bootstrap = bootstrap
        self.topics = create_topics(bootstrap)
        self.rota = parse_rota(ROTA_TOML.replace("http://127.0.0.1:9/hook", hook.url))
        self.settings = notify_settings(tmp_path, smtp, pw, group_window_s=5.0, escalate_after_s=600)
        self.clock = JumpClock()
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
        self.running: RunningService | None = None

    def start(self) -> RunningService:
        self.running = start_service(self.settings, self.bootstrap, self.rota, self.topics, self.clock)
        return self.running

    def publish(self, *alerts: AlertRaised) -> None:
        for alert in alerts:
            self.producer.send(self.topics.alerts, key=alert.alert_id.encode(), value=encode(alert))
        self.producer.flush(30)

    def lifecycle(self) -> list[Any]:
        records = read_new(self.bootstrap, {}, [self.topics.lifecycle])
        return [decode_alert_lifecycle(r.value) for r in records]

    def states(self, alert_id: str) -> list[str]:
        return sorted(e.state for e in self.lifecycle() if e.alert_id == alert_id)

    def close(self) -> None:
        if self.running is not None and self.running.thread.is_alive():
            self.running.stop()
        self.producer.close()


@pytest.fixture
def harness(
    kafka_bootstrap: str, tmp_path: Path, smtp_server: SmtpServer, webhook_endpoint: WebhookEndpoint, password_hash: str
) -> Iterator[Harness]:
    h = Harness(kafka_bootstrap, tmp_path, smtp_server, webhook_endpoint, password_hash)
    yield h
    h.close()


def test_alerts_become_grouped_messages_and_lifecycle_events(
    harness: Harness, smtp_server: SmtpServer, webhook_endpoint: WebhookEndpoint
) -> None:
    household = [
        make_alert(i, severity="medium", rule_id=rule, subject="household-9", subject_type="household")
        for i, rule in enumerate(["domestic_abuse_child_present", "repeat_domestic_abuse", "marac_repeat"])
    ]
    critical = make_alert(10, la_code="856", severity="critical", rule_id="high_risk_missing", subject="child-10")
    running = harness.start()
    harness.publish(*household, critical, household[0])  # the last one is a re-delivery (at-least-once upstream)
    harness.producer.send(harness.topics.alerts, key=b"junk", value=b"not an alert")
    harness.producer.flush(30)

    wait_for(lambda: webhook_endpoint.bodies, what="the webhook message")
    mail = wait_for(lambda: smtp_server.box.to("day@example.org"), what="the household's email")
    assert len(mail) == 1
    assert mail[0]["Subject"].startswith("[MEDIUM] 3 safeguarding alerts for household ")
    assert "/l/" in mail[0].get_payload(decode=True).decode()

    everyone = [*household, critical]
    wait_for(lambda: len(harness.lifecycle()) >= 8, what="8 lifecycle events")
    events = harness.lifecycle()
    assert sorted((e.alert_id, e.state) for e in events) == sorted(
        [(a.alert_id, "raised") for a in everyone] + [(a.alert_id, "notified") for a in everyone]
    )
    assert len({e.event_id for e in events}) == len(events)
    by_alert = {e.alert_id: e for e in events if e.state == "notified"}
    assert (by_alert[critical.alert_id].team, by_alert[critical.alert_id].channel) == ("leicester", "webhook-teams")
    assert by_alert[household[0].alert_id].recipient == "day"
    assert len(webhook_endpoint.bodies) == 1 and smtp_server.box.count() == 1
    trail = running.service.call(lambda: running.service.store.audit_trail(10))  # type: ignore[union-attr]
    trail = [e for e in trail if e.action != "coverage_checked"]  # the coverage check at start is audited too
    assert [e.action for e in trail] == ["unreadable_alert"] and trail[0].detail.endswith(": undecodable")


def test_refused_email_is_retried_until_accepted(harness: Harness, smtp_server: SmtpServer) -> None:
    alert = make_alert(20, subject="child-20")
    smtp_server.box.refuse = True
    harness.start()
    harness.publish(alert)
    wait_for(lambda: "delivery_failed" in harness.states(alert.alert_id), what="a delivery_failed event")
    assert smtp_server.box.count() == 0
    smtp_server.box.refuse = False
    wait_for(lambda: smtp_server.box.to("day@example.org"), what="the email after the retry")
    wait_for(lambda: "notified" in harness.states(alert.alert_id), what="the notified event")
    failed = [e for e in harness.lifecycle() if e.state == "delivery_failed"]
    assert failed and "451" in (failed[0].error or "")


def test_escalation_on_the_clock_and_a_restart_that_neither_loses_nor_repeats(
    harness: Harness, smtp_server: SmtpServer
) -> None:
    high = make_alert(30, subject="child-30")
    running = harness.start()
    harness.publish(high)
    wait_for(lambda: smtp_server.box.to("day@example.org"), what="the primary's email")
    running.stop()  # stopped before the escalation time

    harness.publish(high)  # re-delivered while the notifier was down
    harness.clock.advance(601)
    harness.start()  # same data dir and consumer group: state and offsets carry on
    wait_for(lambda: smtp_server.box.to("senior@example.org"), what="the escalation email")
    escalated = smtp_server.box.to("senior@example.org")[0]
    assert "[ESCALATED, level 1]" in escalated["Subject"]
    wait_for(lambda: harness.states(high.alert_id).count("notified") == 2, what="the level-1 notified event")
    assert len(smtp_server.box.to("day@example.org")) == 1  # the re-delivered alert was not sent again
    assert harness.states(high.alert_id) == ["escalated", "notified", "notified", "raised"]
    levels = {(e.state, e.escalation_level, e.recipient) for e in harness.lifecycle()}
    assert ("escalated", 1, "senior") in levels
