"""The pure decisions: grouping times, repeat suppression, escalation, back-off, lifecycle ids; and passwords
and signed links."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from notify.core import (
    EscalationState,
    Timing,
    escalation_due,
    is_repeat,
    lifecycle,
    lifecycle_event_id,
    next_contact,
    retry_delay,
    send_at,
)
from notify.messages import Outgoing, ordered, slack_payload, teams_payload
from notify.security import (
    LinkRefused,
    hash_password,
    is_password_hash,
    sign_link,
    verify_link,
    verify_password,
)
from tests.unit.test_notify.helpers import make_alert

T0 = datetime(2025, 6, 2, 10, 0, tzinfo=UTC)
TIMING = Timing(group_wait_s=0.5, group_window_s=60, repeat_interval_s=3600, escalate_after_s=900)


def test_urgent_groups_wait_briefly_and_others_wait_the_window() -> None:
    assert send_at("high", T0, TIMING) == T0 + timedelta(seconds=0.5)
    assert send_at("medium", T0, TIMING) == T0 + timedelta(seconds=60)
    # a critical alert joining a waiting medium group brings the send forward; a medium one never delays it
    later = T0 + timedelta(seconds=20)
    assert send_at("critical", later, TIMING, T0 + timedelta(seconds=60)) == later + timedelta(seconds=0.5)
    assert send_at("medium", later, TIMING, T0 + timedelta(seconds=60)) == T0 + timedelta(seconds=60)


def test_repeats_of_medium_alerts_are_held_back_within_the_interval() -> None:
    assert is_repeat("medium", T0, T0 + timedelta(minutes=59), TIMING)
    assert not is_repeat("medium", T0, T0 + timedelta(minutes=60), TIMING)
    assert not is_repeat("medium", None, T0, TIMING)
    assert not is_repeat("high", T0, T0 + timedelta(seconds=1), TIMING)


def test_escalation_is_due_only_for_unacknowledged_urgent_alerts_after_the_wait() -> None:
    state = EscalationState("high", False, 0, T0, ("a", "b", "c"))
    assert not escalation_due(state, T0 + timedelta(seconds=899), 900)
    assert escalation_due(state, T0 + timedelta(seconds=900), 900)
    assert not escalation_due(EscalationState("high", True, 0, T0, ("a", "b")), T0 + timedelta(hours=1), 900)
    assert not escalation_due(EscalationState("medium", False, 0, T0, ("a", "b")), T0 + timedelta(hours=1), 900)
    assert next_contact(state) == (1, "b")
    assert next_contact(EscalationState("high", False, 2, T0, ("a", "b", "c"))) is None


def test_retry_back_off_doubles_and_is_capped() -> None:
    timing = Timing(retry_initial_s=1, retry_max_s=10)
    assert [retry_delay(n, timing) for n in (1, 2, 3, 4, 5, 9)] == [1, 2, 4, 8, 10, 10]


def test_lifecycle_event_ids_are_deterministic_per_change() -> None:
    alert = make_alert(1)
    a = lifecycle(alert, "notified", T0, channel="email", recipient="day", level=0)
    b = lifecycle(alert, "notified", T0 + timedelta(seconds=5), channel="email", recipient="day", level=0)
    c = lifecycle(alert, "notified", T0, channel="email", recipient="senior", level=1)
    assert a.event_id == b.event_id != c.event_id
    assert lifecycle_event_id(alert.alert_id, "delivery_failed", "x", 1) != lifecycle_event_id(
        alert.alert_id, "delivery_failed", "x", 2
    )
    assert (a.rule_id, a.severity, a.la_code, a.state) == (alert.rule_id, alert.severity, alert.la_code, "notified")


def test_message_text_carries_the_pseudonym_evidence_and_link() -> None:
    alerts = ordered([make_alert(1, severity="medium"), make_alert(2, severity="critical")])
    assert [a.severity for a in alerts] == ["critical", "medium"]
    msg = Outgoing(7, "front-door", "Day manager", 0, alerts, "http://x/l/token")
    assert msg.subject.startswith("[CRITICAL] 2 safeguarding alerts for child ")
    text = msg.text()
    assert alerts[0].subject_id in text and alerts[0].evidence_event_ids[0] in text and "http://x/l/token" in text
    assert "http://x/l/token" in slack_payload(msg)["text"]
    card = teams_payload(msg)["attachments"][0]["content"]
    assert card["actions"][0]["url"] == "http://x/l/token"


def test_passwords_hash_and_verify() -> None:
    hashed = hash_password("correct horse battery", n=2**10)
    assert is_password_hash(hashed) and "correct" not in hashed
    assert verify_password("correct horse battery", hashed)
    assert not verify_password("correct horse batterY", hashed)
    assert not verify_password("anything", "not-a-hash")
    assert hash_password("same", n=2**10) != hash_password("same", n=2**10)  # salted


SECRET = b"k" * 32


def test_signed_link_round_trip_and_expiry() -> None:
    token = sign_link(SECRET, "front-door", 42, T0 + timedelta(hours=1))
    claims = verify_link(SECRET, token, T0)
    assert (claims.team, claims.message_id) == ("front-door", 42)
    with pytest.raises(LinkRefused) as expired:
        verify_link(SECRET, token, T0 + timedelta(hours=1))
    assert expired.value.reason == "expired"


@pytest.mark.parametrize(
    "forge",
    [
        lambda t: t[:-2] + ("AA" if t[-2:] != "AA" else "BB"),  # damaged signature
        lambda t: sign_link(b"x" * 32, "front-door", 42, T0 + timedelta(hours=1)),  # another key
        lambda t: (
            sign_link(SECRET, "front-door", 42, T0 + timedelta(hours=1)).split(".")[0] + "." + t.split(".")[1]
        ),  # same signature, other payload... of the same claims: still must verify only itself
    ],
)
def test_forged_links_are_refused(forge: object) -> None:
    token = sign_link(SECRET, "front-door", 41, T0 + timedelta(hours=1))
    forged = forge(token)  # type: ignore[operator]
    with pytest.raises(LinkRefused) as refused:
        verify_link(SECRET, forged, T0)
    assert refused.value.reason == "forged"


def test_extended_expiry_without_the_key_is_refused() -> None:
    import base64
    import json

    token = sign_link(SECRET, "front-door", 41, T0 + timedelta(hours=1))
    payload, mac = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=="))
    body["e"] += 10 * 86400
    longer = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    with pytest.raises(LinkRefused, match="forged"):
        verify_link(SECRET, f"{longer}.{mac}", T0 + timedelta(days=2))
    for junk in ("", "nodot", ".", "a.", ".b"):
        with pytest.raises(LinkRefused, match="malformed"):
            verify_link(SECRET, junk, T0)


def test_email_bytes_are_a_valid_utf8_message_with_single_line_headers() -> None:
    import email

    from notify.channels import SmtpChannel

    alert = make_alert(1).model_copy(update={"summary": "Three or more (≥ 3) episodes — 90 days."})
    msg = Outgoing(7, "front-door", "Day manager", 0, (alert,), "http://x/l/token")
    raw = SmtpChannel("127.0.0.1", 25, "alerts@example.org").build(msg, "day@example.org\r\nBcc: evil@example.org")
    parsed = email.message_from_bytes(raw)
    assert parsed["Bcc"] is None and parsed["To"] == "day@example.org Bcc: evil@example.org"
    assert parsed["Content-Transfer-Encoding"] == "quoted-printable"
    assert "(≥ 3) episodes — 90 days." in parsed.get_payload(decode=True).decode("utf-8")
