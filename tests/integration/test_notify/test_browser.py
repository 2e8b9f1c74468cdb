"""End to end in headless Chromium (Debian's chromium + chromedriver, driven by selenium): an alert on the real
Kafka topic reaches a real SMTP server; the manager follows the email's link, logs in, sees the alert and
acknowledges it; when the clock passes the escalation time the acknowledged alert does not escalate while an
unacknowledged one does; a forged link and an expired link are refused. A manager resolves an acknowledged alert
with an outcome (published on the lifecycle topic) while another, left unresolved, is messaged again; and makes an
override on the Rota page: the stand-in gets the hand-over message and the next alert, until it is cancelled. A
silence made on the Silences page holds a matching alert (recorded, marked on the alerts page, not emailed) while
others are emailed, until the manager expires it or the clock passes its end; then the held alert is emailed."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.integration.test_notify.conftest import PASSWORD, SmtpServer, WebhookEndpoint, wait_for
from tests.integration.test_notify.test_service import Harness
from tests.tiers import unavailable
from tests.unit.test_notify.helpers import make_alert

pytestmark = pytest.mark.integration

FIRST_DELIVERY_S = 90.0
"""The first delivery after a notifier starts includes its consumer group forming (seen taking over 30 s under a
loaded CI run); a limit that only catches hangs."""
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
    wait_for(
        lambda: len(smtp_server.box.to("day@example.org")) == 2,
        timeout_s=FIRST_DELIVERY_S,
        what="two emails to the manager on duty",
    )
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


def log_in(browser: Any, base: str) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{base}/login")
    browser.find_element(By.ID, "username").send_keys("dana")
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.ID, "login-button").click()
    wait_for(lambda: "/alerts" in browser.current_url, what="the alerts page")


def test_resolve_with_an_outcome_and_a_reminder_for_the_one_left_unresolved(
    browser: Any, harness: Harness, smtp_server: SmtpServer
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    harness.settings = harness.settings.model_copy(update={"renotify_after_s": 1200.0})
    resolved, left = make_alert(50, subject="child-50"), make_alert(51, subject="child-51")
    running = harness.start()
    harness.publish(resolved, left)
    wait_for(
        lambda: len(smtp_server.box.to("day@example.org")) == 2,
        timeout_s=FIRST_DELIVERY_S,
        what="two emails to the manager on duty",
    )
    log_in(browser, running.base)
    for alert in (resolved, left):
        row = browser.find_element(By.ID, f"alert-{alert.alert_id}")
        row.find_element(By.NAME, "note").send_keys("on it")
        row.find_element(By.CLASS_NAME, "ack-button").click()
        wait_for(lambda a=alert: browser.find_elements(By.ID, f"acked-{a.alert_id}"), what="the acknowledgement")

    row = browser.find_element(By.ID, f"acked-{resolved.alert_id}")
    Select(row.find_element(By.CLASS_NAME, "resolve-outcome")).select_by_value("strategy_discussion")
    row.find_element(By.CLASS_NAME, "resolve-note").send_keys("strategy meeting held with police")
    row.find_element(By.CLASS_NAME, "resolve-button").click()
    wait_for(lambda: browser.find_elements(By.ID, f"resolved-{resolved.alert_id}"), what="the resolution")
    assert f"Resolved alert {resolved.alert_id}" in browser.find_element(By.ID, "flash").text
    assert not browser.find_elements(By.ID, f"acked-{resolved.alert_id}")
    done = browser.find_element(By.ID, f"resolved-{resolved.alert_id}").text
    assert "strategy discussion" in done and "strategy meeting held with police" in done and "dana" in done
    assert browser.find_element(By.ID, f"acked-{left.alert_id}")  # still to resolve

    wait_for(lambda: "resolved" in harness.states(resolved.alert_id), what="the resolved event on the topic")
    event = next(e for e in harness.lifecycle() if e.state == "resolved")
    assert (event.alert_id, event.outcome, event.note, event.actor) == (
        resolved.alert_id, "strategy_discussion", "strategy meeting held with police", "dana",
    )  # fmt: skip

    harness.clock.advance(1201)  # past the reminder time of both acknowledgements
    reminder = wait_for(
        lambda: [m for m in smtp_server.box.to("day@example.org") if "[NOT RESOLVED]" in m["Subject"]],
        what="the reminder of the alert left unresolved",
    )
    assert [m["X-Safeguard-Alerts"] for m in reminder] == [left.alert_id]
    wait_for(lambda: "renotified" in harness.states(left.alert_id), what="the renotified event")
    assert "renotified" not in harness.states(resolved.alert_id)
    trail = running.service.call(lambda: running.service.store.audit_trail(50))  # type: ignore[union-attr]
    assert ("dana", "resolved") in [(e.actor, e.action) for e in trail]


def test_an_override_made_on_the_rota_page_takes_the_next_alert_until_cancelled(
    browser: Any, harness: Harness, smtp_server: SmtpServer
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    waiting = make_alert(60, subject="child-60")
    running = harness.start()
    harness.publish(waiting)
    wait_for(lambda: smtp_server.box.to("day@example.org"), timeout_s=FIRST_DELIVERY_S, what="the day manager's email")
    log_in(browser, running.base)
    browser.find_element(By.ID, "rota-link").click()
    wait_for(lambda: browser.find_elements(By.ID, "new-override"), what="the rota page")
    assert browser.find_element(By.ID, "on-duty").text.splitlines()[0] == "Day manager (day)"
    assert "no escalation" not in browser.find_element(By.ID, "gaps").text

    form = browser.find_element(By.ID, "new-override")
    Select(form.find_element(By.ID, "override-contact")).select_by_value("senior")
    Select(form.find_element(By.ID, "override-level")).select_by_value("0")
    end = (harness.clock() + timedelta(hours=3)).astimezone(ZoneInfo("Europe/London")).strftime("%Y-%m-%dT%H:%M")
    browser.execute_script("arguments[0].value = arguments[1]", form.find_element(By.NAME, "end"), end)
    form.find_element(By.NAME, "reason").send_keys("day manager at court")
    form.find_element(By.ID, "override-button").click()
    wait_for(lambda: browser.find_elements(By.ID, "created"), what="the override")
    assert browser.find_element(By.ID, "on-duty").text.splitlines()[:2] == [
        "Senior manager (senior)", "Head of service (head)",
    ]  # fmt: skip
    [row] = browser.find_elements(By.CSS_SELECTOR, "#changes tr.change-active")
    assert "senior as primary of team front-door" in row.text and "day manager at court" in row.text

    harness.clock.advance(31)  # the next look at duty
    handover = wait_for(
        lambda: [m for m in smtp_server.box.to("senior@example.org") if "[HAND-OVER]" in m["Subject"]],
        what="the hand-over message to the stand-in",
    )
    assert handover[0]["X-Safeguard-Alerts"] == waiting.alert_id
    assert "You are now on duty for team front-door." in handover[0].get_payload(decode=True).decode()

    during = make_alert(61, subject="child-61")
    harness.publish(during)
    wait_for(
        lambda: [m for m in smtp_server.box.to("senior@example.org") if m["X-Safeguard-Alerts"] == during.alert_id],
        what="the next alert, to the stand-in",
    )
    assert len(smtp_server.box.to("day@example.org")) == 1

    row.find_element(By.CLASS_NAME, "cancel-button").click()
    wait_for(lambda: browser.find_elements(By.ID, "cancelled"), what="the cancellation")
    assert browser.find_element(By.ID, "on-duty").text.splitlines()[0] == "Day manager (day)"
    after = make_alert(62, subject="child-62")
    harness.publish(after)
    wait_for(
        lambda: [m for m in smtp_server.box.to("day@example.org") if m["X-Safeguard-Alerts"] == after.alert_id],
        what="the alert after the cancellation, to the day manager",
    )
    trail = running.service.call(lambda: running.service.store.audit_trail(100))  # type: ignore[union-attr]
    actions = [(e.actor, e.action) for e in trail]
    assert ("dana", "override_created") in actions and ("dana", "override_cancelled") in actions
    assert ("system", "handover") in actions


def test_a_silence_made_on_the_page_holds_a_matching_alert_until_it_is_expired(
    browser: Any, harness: Harness, smtp_server: SmtpServer
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    silenced = make_alert(70, subject="child-70")  # repeat_missing: both matchers match
    other_rule = make_alert(71, subject="child-70", rule_id="high_risk_missing", severity="critical")
    other_child = make_alert(72, subject="child-71")  # the silenced rule, another child
    running = harness.start()
    log_in(browser, running.base)
    browser.find_element(By.ID, "silences-link").click()
    wait_for(lambda: browser.find_elements(By.ID, "new-silence"), what="the silences page")
    assert browser.find_element(By.ID, "no-silences")

    form = browser.find_element(By.ID, "new-silence")
    Select(form.find_element(By.ID, "silence-rule")).select_by_value("repeat_missing")
    form.find_element(By.ID, "silence-subject").send_keys(silenced.subject_id)
    end = (harness.clock() + timedelta(hours=2)).astimezone(ZoneInfo("Europe/London")).strftime("%Y-%m-%dT%H:%M")
    browser.execute_script("arguments[0].value = arguments[1]", form.find_element(By.ID, "silence-end"), end)
    form.find_element(By.ID, "silence-reason").send_keys("planned school residential trip")
    form.find_element(By.ID, "silence-button").click()
    created = wait_for(lambda: browser.find_elements(By.ID, "created"), what="the silence")
    silence_id = browser.current_url.rsplit("=", 1)[1]
    assert silence_id in created[0].text
    row = browser.find_element(By.ID, f"silence-{silence_id}")
    assert "silence-active" in (row.get_attribute("class") or "")
    matches = f"rule=repeat_missing team=front-door subject={silenced.subject_id[:12]}"  # pseudonyms shortened
    assert matches in row.text and f"{end.replace('T', ' ')} BST" in row.text  # the end, in the rota's timezone
    assert "dana: planned school residential trip" in row.text

    harness.publish(silenced, other_rule, other_child)
    wait_for(
        lambda: all("notified" in harness.states(a.alert_id) for a in (other_rule, other_child)),
        what="the two unsilenced alerts' notified events",
    )
    emailed = sorted(m["X-Safeguard-Alerts"] for m in smtp_server.box.to("day@example.org"))
    assert emailed == sorted([other_rule.alert_id, other_child.alert_id]), (emailed, silenced.alert_id)
    assert harness.states(silenced.alert_id) == ["raised"]  # recorded, not messaged
    raised = next(e for e in harness.lifecycle() if e.alert_id == silenced.alert_id)
    assert f"silenced by silence {silence_id}" in (raised.note or "")

    browser.find_element(By.ID, "alerts-link").click()
    wait_for(lambda: browser.find_elements(By.ID, f"alert-{silenced.alert_id}"), what="the alerts page")
    held = browser.find_element(By.ID, f"alert-{silenced.alert_id}").find_element(By.CSS_SELECTOR, ".held.silence")
    assert held.get_attribute("data-held-by") == silence_id
    assert "silenced, not messaged yet" in held.text and f"silence {silence_id}" in held.text
    for alert in (other_rule, other_child):
        assert not browser.find_element(By.ID, f"alert-{alert.alert_id}").find_elements(By.CLASS_NAME, "held")

    browser.find_element(By.ID, "silences-link").click()
    wait_for(lambda: browser.find_elements(By.ID, "new-silence"), what="the silences page")
    browser.find_element(By.ID, f"silence-{silence_id}").find_element(By.CLASS_NAME, "expire-button").click()
    wait_for(lambda: browser.find_elements(By.ID, "expired"), what="the expiry")
    row = browser.find_element(By.ID, f"silence-{silence_id}")
    assert "expired by dana" in row.text and not row.find_elements(By.CLASS_NAME, "expire-button")

    released = wait_for(
        lambda: [m for m in smtp_server.box.to("day@example.org") if m["X-Safeguard-Alerts"] == silenced.alert_id],
        what="the held alert's email once the silence is expired",
    )
    assert len(released) == 1 and len(smtp_server.box.to("day@example.org")) == 3
    wait_for(lambda: "notified" in harness.states(silenced.alert_id), what="the held alert's notified event")
    browser.find_element(By.ID, "alerts-link").click()
    wait_for(lambda: browser.find_elements(By.ID, f"alert-{silenced.alert_id}"), what="the alerts page")
    assert not browser.find_element(By.ID, f"alert-{silenced.alert_id}").find_elements(By.CLASS_NAME, "held")

    trail = running.service.call(lambda: running.service.store.audit_trail(100))  # type: ignore[union-attr]
    by_action = {(e.actor, e.action): e for e in trail}
    assert "via page" in by_action["dana", "silence_created"].detail
    assert by_action["system", "held_silence"].alert_ids == (silenced.alert_id,)
    assert by_action["dana", "silence_expired"].alert_ids == (silenced.alert_id,)
    assert by_action["system", "hold_released"].alert_ids == (silenced.alert_id,)
    assert "messaged now" in by_action["system", "hold_released"].detail

    # A second silence, left to end on the clock: the alert it holds is messaged when the clock passes its end.
    browser.find_element(By.ID, "silences-link").click()
    form = wait_for(lambda: browser.find_elements(By.ID, "new-silence"), what="the silences page")[0]
    form.find_element(By.CSS_SELECTOR, 'input[name="severity"][value="medium"]').click()
    form.find_element(By.ID, "silence-la").send_keys("383")
    end = (harness.clock() + timedelta(hours=1)).astimezone(ZoneInfo("Europe/London")).strftime("%Y-%m-%dT%H:%M")
    browser.execute_script("arguments[0].value = arguments[1]", form.find_element(By.ID, "silence-end"), end)
    form.find_element(By.ID, "silence-reason").send_keys("case review of the unit's medium alerts")
    form.find_element(By.ID, "silence-button").click()
    wait_for(lambda: browser.find_elements(By.ID, "created"), what="the second silence")
    second = browser.current_url.rsplit("=", 1)[1]
    medium = make_alert(73, subject="child-73", severity="medium")
    harness.publish(medium)
    wait_for(lambda: harness.states(medium.alert_id) == ["raised"], what="the medium alert, recorded")
    raised = next(e for e in harness.lifecycle() if e.alert_id == medium.alert_id)
    assert f"silenced by silence {second}" in (raised.note or "")

    harness.clock.advance(3601)  # past the second silence's end
    wait_for(
        lambda: [m for m in smtp_server.box.to("day@example.org") if m["X-Safeguard-Alerts"] == medium.alert_id],
        what="the held alert's email once the clock passes the silence's end",
    )
    wait_for(lambda: "notified" in harness.states(medium.alert_id), what="the medium alert's notified event")
    notified = next(e for e in harness.lifecycle() if e.alert_id == medium.alert_id and e.state == "notified")
    ended = running.service.call(lambda: running.service.store.silence(second))  # type: ignore[union-attr]
    assert ended is not None and notified.occurred_at >= ended.ends_at  # messaged only once the silence was over
    browser.refresh()
    assert "silence-ended" in (browser.find_element(By.ID, f"silence-{second}").get_attribute("class") or "")
    trail = running.service.call(lambda: running.service.store.audit_trail(100))  # type: ignore[union-attr]
    releases = [e for e in trail if e.action == "hold_released" and e.alert_ids == (medium.alert_id,)]
    assert len(releases) == 1 and second in releases[0].detail
