"""End to end in headless Chromium (Debian's chromium + chromedriver, driven by selenium): an alert on the real
Kafka topic reaches a real SMTP server; the manager follows the email's link, logs in, sees the alert and
acknowledges it; when the clock passes the escalation time the acknowledged alert does not escalate while an
unacknowledged one does; a forged link and an expired link are refused."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_notify.conftest import PASSWORD, SmtpServer, WebhookEndpoint, wait_for
from tests.integration.test_notify.test_service import Harness
from tests.tiers import unavailable
from tests.unit.test_notify.helpers import make_alert

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture
def browser() -> Iterator[Any]:
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')")
    from selenium.webdriver.chrome.service import Service

    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        unavailable(
            "Debian's chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1000",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def harness(
    kafka_bootstrap: str, tmp_path: Path, smtp_server: SmtpServer, webhook_endpoint: WebhookEndpoint, password_hash: str
) -> Iterator[Harness]:
    h = Harness(kafka_bootstrap, tmp_path, smtp_server, webhook_endpoint, password_hash)
    yield h
    h.close()


def link_in(mail: Any) -> str:
    match = re.search(r"(http://127\.0\.0\.1:\d+/l/[A-Za-z0-9_\-.]+)", mail.get_payload(decode=True).decode())
    assert match, "no acknowledgement link in the email"
    return match.group(1)


def test_log_in_see_acknowledge_no_escalation_and_bad_links_refused(
    browser: Any, harness: Harness, smtp_server: SmtpServer
) -> None:
    from selenium.webdriver.common.by import By

    acked = make_alert(40, subject="child-40", rule_id="high_risk_missing", severity="critical")
    ignored = make_alert(41, subject="child-41")
    running = harness.start()
    harness.publish(acked, ignored)
    wait_for(lambda: len(smtp_server.box.to("day@example.org")) == 2, what="two emails to the manager on duty")
    mail = next(m for m in smtp_server.box.to("day@example.org") if acked.alert_id in m["X-Safeguard-Alerts"])
    link = link_in(mail)

    browser.get(link)  # not logged in: the login form, which leads back to the link
    assert browser.find_element(By.TAG_NAME, "h1").text == "Log in"
    browser.find_element(By.ID, "username").send_keys("dana")
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.ID, "login-button").click()
    wait_for(lambda: "/alerts?m=" in browser.current_url, what="the alerts page")
    row = browser.find_element(By.ID, f"alert-{acked.alert_id}")
    assert "linked" in (row.get_attribute("class") or "")
    assert acked.summary in row.text and acked.subject_id in row.text and "critical" in row.text
    assert acked.evidence_event_ids[0] in row.text
    assert browser.find_element(By.ID, f"alert-{ignored.alert_id}")  # the team's other open alert

    row.find_element(By.NAME, "note").send_keys("Police informed, strategy meeting at 14:00")
    row.find_element(By.CLASS_NAME, "ack-button").click()
    flash = wait_for(lambda: browser.find_elements(By.ID, "flash"), what="the acknowledgement")
    assert acked.alert_id in flash[0].text
    assert not browser.find_elements(By.ID, f"alert-{acked.alert_id}")  # no longer open
    assert "Police informed" in browser.find_element(By.ID, "acked-alerts").text

    wait_for(lambda: "acknowledged" in harness.states(acked.alert_id), what="the acknowledged event on the topic")
    ack = next(e for e in harness.lifecycle() if e.state == "acknowledged")
    assert (ack.actor, ack.note, ack.team) == ("dana", "Police informed, strategy meeting at 14:00", "front-door")

    harness.clock.advance(601)  # past the escalation time of both alerts
    wait_for(lambda: smtp_server.box.to("senior@example.org"), what="the unacknowledged alert's escalation")
    escalations = smtp_server.box.to("senior@example.org")
    assert [m["X-Safeguard-Alerts"] for m in escalations] == [ignored.alert_id]
    assert "escalated" not in harness.states(acked.alert_id)
    assert "escalated" in harness.states(ignored.alert_id)

    token = link.rsplit("/", 1)[1]
    payload, signature = token.split(".")
    forged = link.replace(token, f"{payload}.{signature[:-3]}{'AAA' if signature[-3:] != 'AAA' else 'BBB'}")
    browser.get(forged)
    assert browser.find_element(By.TAG_NAME, "h1").text == "Link not valid"
    harness.clock.advance(harness.settings.link_ttl_s)
    browser.get(link)
    assert browser.find_element(By.TAG_NAME, "h1").text == "Link expired"
    trail = running.service.call(lambda: running.service.store.audit_trail(50))  # type: ignore[union-attr]
    refused = [(e.actor, e.detail) for e in trail if e.action == "link_refused"]
    assert refused == [("anonymous", "expired"), ("dana", "forged")]  # the session had expired too
