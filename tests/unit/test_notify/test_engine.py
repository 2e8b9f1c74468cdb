"""The notifier's work loop with an injected clock and channels that record: grouping, suppression, retries,
escalation, acknowledgement, and state that survives a restart."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from notify.core import Timing
from notify.engine import LinkConfig, Notifier
from notify.store import NotifyStore
from tests.unit.test_notify.helpers import FakeClock, RecordingChannel, make_alert, rota

TIMING = Timing(group_wait_s=0.5, group_window_s=60, repeat_interval_s=3600, escalate_after_s=900,
                retry_initial_s=2, retry_max_s=60)  # fmt: skip


class Rig:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.clock = FakeClock()
        self.email = RecordingChannel()
        self.console = RecordingChannel()
        self.hook = RecordingChannel()
        self.open()

    def open(self) -> None:
        self.store = NotifyStore(self.path)
        self.notifier = Notifier(
            store=self.store,
            rota=rota(),
            channels={"email": self.email, "console": self.console, "webhook-teams": self.hook},
            links=LinkConfig("http://127.0.0.1:8470", b"s" * 32, 3600),
            clock=self.clock,
            timing=TIMING,
        )

    def restart(self) -> None:
        self.store.close()
        self.open()

    def run(self, seconds: float = 0.0) -> None:
        """Advance the clock, then do what is due and wait for the deliveries it started."""
        self.clock.advance(seconds)

        async def once() -> None:
            await self.notifier.tick()
            await self.notifier.drain()

        asyncio.run(once())

    def states(self, alert_id: str) -> list[tuple[str, str | None, int]]:
        return [(e.state, e.recipient, e.escalation_level) for e in self.store.lifecycle_events(alert_id)]


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path / "notify.sqlite3")
    yield r
    r.store.close()


def test_a_households_three_medium_alerts_in_a_minute_are_one_message(rig: Rig) -> None:
    rules = ["domestic_abuse_child_present", "repeat_domestic_abuse", "marac_repeat"]
    alerts = [
        make_alert(i, severity="medium", rule_id=r, subject="household-1", subject_type="household")
        for i, r in enumerate(rules)
    ]
    rig.notifier.take([alerts[0]])
    rig.run(20)
    rig.notifier.take([alerts[1]])
    rig.run(30)
    rig.notifier.take([alerts[2]])
    rig.run(9.9)
    assert rig.email.sent == []  # the window opened by the first alert is still open
    rig.run(0.2)
    assert len(rig.email.sent) == 1
    message, address = rig.email.sent[0]
    assert address == "day@example.org"
    assert {a.alert_id for a in message.alerts} == {a.alert_id for a in alerts}
    for alert in alerts:
        assert rig.states(alert.alert_id) == [("raised", "day", 0), ("notified", "day", 0)]


def test_urgent_alerts_go_out_after_the_short_wait_and_per_subject(rig: Rig) -> None:
    critical = make_alert(2, subject="a", rule_id="high_risk_missing", severity="critical")
    rig.notifier.take([make_alert(1, subject="a"), critical, make_alert(3, subject="b")])
    rig.run(0.4)
    assert rig.email.sent == []
    rig.run(0.1)
    assert sorted(len(m.alerts) for m, _ in rig.email.sent) == [1, 2]
    assert all(m.link.startswith("http://127.0.0.1:8470/l/") for m, _ in rig.email.sent)


def test_a_redelivered_alert_is_taken_once(rig: Rig) -> None:
    alert = make_alert(1)
    assert rig.notifier.take([alert, alert]) == [alert.alert_id]
    assert rig.notifier.take([alert]) == []
    rig.run(1)
    rig.notifier.take([alert])
    rig.run(1)
    assert len(rig.email.sent) == 1


def test_repeat_medium_alerts_are_recorded_but_not_messaged_again(rig: Rig) -> None:
    first, repeat = make_alert(1, severity="medium"), make_alert(2, severity="medium")
    rig.notifier.take([first])
    rig.run(61)
    rig.notifier.take([repeat])  # same rule and subject, 61 s later
    rig.run(61)
    assert len(rig.email.sent) == 1
    assert [r.alert.alert_id for r in rig.store.open_alerts("front-door")] == [first.alert_id, repeat.alert_id]
    assert rig.states(repeat.alert_id) == [("raised", "day", 0)]
    rig.run(3600)
    rig.notifier.take([make_alert(3, severity="medium")])  # the interval has passed: messaged again
    rig.run(61)
    assert len(rig.email.sent) == 2


def test_failed_deliveries_are_retried_with_back_off_and_recorded(rig: Rig) -> None:
    alert = make_alert(1)
    rig.email.failing = True
    rig.notifier.take([alert])
    rig.run(0.5)
    rig.run(1.9)  # next try at +2 s
    assert [s for s, _, _ in rig.states(alert.alert_id)] == ["raised", "delivery_failed"]
    rig.run(0.1)
    rig.run(3.9)  # then at +4 s
    assert [s for s, _, _ in rig.states(alert.alert_id)] == ["raised", "delivery_failed", "delivery_failed"]
    rig.email.failing = False
    rig.run(0.1)
    assert [s for s, _, _ in rig.states(alert.alert_id)][-1] == "notified"
    assert len(rig.email.sent) == 1
    failed = [e for e in rig.store.lifecycle_events(alert.alert_id) if e.state == "delivery_failed"]
    assert failed[0].error == "the test server said no" and failed[0].event_id != failed[1].event_id


def test_unacknowledged_high_alert_escalates_along_the_chain(rig: Rig) -> None:
    alert = make_alert(1)
    rig.notifier.take([alert])
    rig.run(0.5)
    rig.run(899)
    assert [a for _, a in rig.email.sent] == ["day@example.org"]
    rig.run(1)  # 900 s after it was raised
    assert [a for _, a in rig.email.sent] == ["day@example.org", "senior@example.org"]
    escalated = rig.email.sent[1][0]
    assert escalated.level == 1 and "ESCALATED" in escalated.subject
    rig.run(900)  # level 2: the head of service, who also has the console
    assert rig.email.sent[-1][1] == "head@example.org" and rig.console.sent[-1][1] == "head"
    rig.run(900)  # the chain is exhausted: nothing more is sent, and it is in the audit trail
    rig.run(900)
    assert len(rig.email.sent) == 3
    assert rig.states(alert.alert_id) == [
        ("raised", "day", 0), ("notified", "day", 0),
        ("escalated", "senior", 1), ("notified", "senior", 1),
        ("escalated", "head", 2), ("notified", "head", 2), ("notified", "head", 2),
    ]  # fmt: skip
    assert rig.store.audit_trail()[0].action == "escalation_exhausted"


def test_acknowledged_alert_does_not_escalate(rig: Rig) -> None:
    alert = make_alert(1, severity="critical", rule_id="high_risk_missing")
    rig.notifier.take([alert])
    rig.run(0.5)
    assert rig.store.acknowledge(alert.alert_id, "dana", "front-door", "called the police", rig.clock()) == (
        "acknowledged"
    )
    assert rig.store.acknowledge(alert.alert_id, "eve", "front-door", None, rig.clock()) == "already"
    rig.run(3600)
    assert len(rig.email.sent) == 1
    ack = rig.store.lifecycle_events(alert.alert_id)[-1]
    assert (ack.state, ack.actor, ack.note) == ("acknowledged", "dana", "called the police")


def test_another_team_cannot_acknowledge(rig: Rig) -> None:
    alert = make_alert(1)
    rig.notifier.take([alert])
    assert rig.store.acknowledge(alert.alert_id, "mallory", "edt", None, rig.clock()) == "not_found"
    assert rig.store.open_alerts("front-door")[0].acked_at is None
    assert rig.store.audit_trail()[0].action == "ack_refused"


def test_medium_alerts_never_escalate(rig: Rig) -> None:
    rig.notifier.take([make_alert(1, severity="medium")])
    rig.run(61)
    rig.run(10 * 3600)
    assert len(rig.email.sent) == 1


def test_state_survives_a_restart(rig: Rig) -> None:
    """An alert taken, then a crash before its group is sent: after the restart it is sent, then escalated."""
    alert = make_alert(1)
    rig.notifier.take([alert])
    rig.restart()
    assert rig.notifier.take([alert]) == []  # re-read from Kafka after the crash: a duplicate
    rig.run(0.5)
    assert len(rig.email.sent) == 1
    rig.restart()
    rig.run(900)
    assert [a for _, a in rig.email.sent] == ["day@example.org", "senior@example.org"]


def test_routing_uses_the_rota_at_the_time_taken(rig: Rig) -> None:
    rig.clock.advance(11 * 3600)  # Monday 22:00 BST: the front door is off duty
    alert = make_alert(1)
    rig.notifier.take([alert])
    rig.run(0.5)
    assert rig.email.sent[0][1] == "night@example.org"
    assert rig.store.open_alerts("edt")[0].chain == ("night", "night-lead")


def test_webhook_contacts_get_the_webhook_and_lifecycle_names_no_url(rig: Rig) -> None:
    alert = make_alert(1, la_code="856", severity="critical", rule_id="high_risk_missing")
    rig.notifier.take([alert])
    rig.run(0.5)
    assert rig.hook.sent[0][1] == "http://127.0.0.1:9/hook"
    notified = rig.store.lifecycle_events(alert.alert_id)[-1]
    assert (notified.channel, notified.recipient, notified.team) == ("webhook-teams", "hook", "leicester")


def test_lifecycle_outbox_is_published_once(rig: Rig) -> None:
    alert = make_alert(1)
    rig.notifier.take([alert])
    rig.run(0.5)
    pending = rig.store.pending_lifecycle()
    assert [p[1] for p in pending] == [alert.alert_id, alert.alert_id]
    rig.store.mark_published([pending[0][0]])
    assert [p[0] for p in rig.store.pending_lifecycle()] == [pending[1][0]]


def test_a_failing_delivery_survives_a_restart_and_is_delivered_after_it(rig: Rig) -> None:
    alert = make_alert(1)
    rig.email.failing = True
    rig.notifier.take([alert])
    rig.run(0.5)
    assert rig.store.counts()["failing_deliveries"] == 1
    rig.restart()
    rig.email.failing = False
    rig.run(2)
    assert [a for _, a in rig.email.sent] == ["day@example.org"]
    assert rig.store.counts()["pending_deliveries"] == 0
