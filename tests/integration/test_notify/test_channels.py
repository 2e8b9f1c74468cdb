"""The channels against real servers started by the test: SMTP (aiosmtpd) and an HTTP webhook endpoint."""

from __future__ import annotations

import json

import pytest

from notify.channels import DeliveryError, SmtpChannel, WebhookChannel
from notify.messages import Outgoing
from tests.integration.test_notify.conftest import SmtpServer, WebhookEndpoint, free_port
from tests.unit.test_notify.helpers import make_alert


def message() -> Outgoing:
    alerts = (make_alert(1, severity="critical", rule_id="high_risk_missing"), make_alert(2))
    return Outgoing(5, "front-door", "Day manager", 0, alerts, "http://127.0.0.1:8470/l/abc.def")


def test_email_is_accepted_by_a_real_smtp_server(smtp_server: SmtpServer) -> None:
    channel = SmtpChannel(smtp_server.host, smtp_server.port, "alerts@example.org", pool_size=2)
    try:
        for _ in range(3):  # the pooled connection is reused
            channel.send(message(), "day@example.org")
    finally:
        channel.close()
    received = smtp_server.box.to("day@example.org")
    assert len(received) == 3
    mail = received[0]
    assert mail["Subject"].startswith("[CRITICAL] 2 safeguarding alerts for child ")
    assert mail["From"] == "alerts@example.org"
    body = mail.get_payload(decode=True).decode()
    assert "http://127.0.0.1:8470/l/abc.def" in body and make_alert(1).subject_id in body
    assert "".join(mail["X-Safeguard-Alerts"].split()) == f"{make_alert(1).alert_id},{make_alert(2).alert_id}"


def test_smtp_refusal_and_absence_are_delivery_errors(smtp_server: SmtpServer) -> None:
    channel = SmtpChannel(smtp_server.host, smtp_server.port, "alerts@example.org")
    smtp_server.box.refuse = True
    with pytest.raises(DeliveryError, match="451"):
        channel.send(message(), "day@example.org")
    channel.close()
    nowhere = SmtpChannel("127.0.0.1", free_port(), "alerts@example.org", timeout_s=2)
    with pytest.raises(DeliveryError, match="ConnectionRefusedError"):
        nowhere.send(message(), "day@example.org")


def test_smtp_reconnects_after_the_server_restarts(smtp_server: SmtpServer) -> None:
    from aiosmtpd.controller import Controller

    from tests.integration.test_notify.conftest import Mailbox, _Handler

    port = free_port()
    box = Mailbox()
    controller = Controller(_Handler(box), hostname="127.0.0.1", port=port)
    controller.start()
    channel = SmtpChannel("127.0.0.1", port, "alerts@example.org")
    channel.send(message(), "a@example.org")
    controller.stop()  # the pooled connection is now dead
    controller = Controller(_Handler(box), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        channel.send(message(), "a@example.org")
    finally:
        channel.close()
        controller.stop()
    assert box.count() == 2


@pytest.mark.parametrize("fmt", ["slack", "teams"])
def test_webhook_posts_compatible_json_to_a_real_endpoint(webhook_endpoint: WebhookEndpoint, fmt: str) -> None:
    WebhookChannel(fmt, timeout_s=5).send(message(), webhook_endpoint.url)
    (body,) = webhook_endpoint.bodies
    payload = json.loads(body)
    if fmt == "slack":
        assert "<http://127.0.0.1:8470/l/abc.def|Open and acknowledge>" in payload["text"]
    else:
        card = payload["attachments"][0]["content"]
        assert payload["type"] == "message" and card["type"] == "AdaptiveCard"
        assert card["actions"][0]["url"] == "http://127.0.0.1:8470/l/abc.def"


def test_webhook_errors_name_no_url(webhook_endpoint: WebhookEndpoint) -> None:
    webhook_endpoint.status = 500
    with pytest.raises(DeliveryError) as caught:
        WebhookChannel("slack", timeout_s=5).send(message(), webhook_endpoint.url)
    assert str(caught.value) == "webhook answered HTTP 500"
    with pytest.raises(DeliveryError, match="unreachable") as unreachable:
        WebhookChannel("slack", timeout_s=2).send(message(), f"http://127.0.0.1:{free_port()}/secret-token")
    assert "secret-token" not in str(unreachable.value)
