"""The alert lifecycle beyond acknowledgement (issue 11, item 5): an acknowledged high or critical alert not
resolved in time is messaged again to whoever of its team is on duty, until it is resolved; resolution with an
outcome and a note (store, page, CLI), audited and recorded as `alert.lifecycle` events; the pure decision."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner

from notify.core import OUTCOMES, Timing, outcome_of, renotify_due
from notify.security import hash_password
from notify.store import NotifyStore
from notify.web import WebConfig, WebUser, make_app
from safeguard.notify_cli import notify
from safeguard.settings import NotifySettings, Settings
from schemas.codec import decode_alert_lifecycle, encode
from tests.unit.test_notify.helpers import FakeClock, make_alert
from tests.unit.test_notify.test_engine import TIMING, Rig

HOUR = 3600.0
T0 = datetime(2025, 6, 2, 10, 0, tzinfo=UTC)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path / "notify.sqlite3")
    r.notifier.timing = dataclasses.replace(TIMING, renotify_after_s=HOUR)
    yield r
    r.store.close()


def reminders(rig: Rig) -> list[tuple[str, str]]:
    return [(a, m.subject) for m, a in rig.email.sent if m.reminder]


# -- the pure decision --------------------------------------------------------------------------------------------


def test_renotify_due_only_for_acknowledged_unresolved_urgent_alerts_after_the_time() -> None:
    acked = T0
    at = T0 + timedelta(seconds=HOUR)
    assert renotify_due("high", acked, False, None, at, HOUR)
    assert not renotify_due("high", acked, False, None, at - timedelta(seconds=1), HOUR)
    assert renotify_due("critical", acked, False, None, at, HOUR)
    assert not renotify_due("medium", acked, False, None, at, HOUR)
    assert not renotify_due("high", None, False, None, at, HOUR)  # not acknowledged: escalation's business
    assert not renotify_due("high", acked, True, None, at, HOUR)  # resolved
    assert not renotify_due("high", acked, False, None, at, 0)  # turned off
    # after a reminder, the next one is counted from it
    assert not renotify_due("high", acked, False, at, at + timedelta(seconds=HOUR - 1), HOUR)
    assert renotify_due("high", acked, False, at, at + timedelta(seconds=HOUR), HOUR)


def test_outcomes_are_read_from_their_code_or_their_words() -> None:
    assert outcome_of("contact_made") == "contact_made"
    assert outcome_of(" Strategy discussion ") == "strategy_discussion"
    assert outcome_of("no-further-action") == "no_further_action"
    assert outcome_of("dup") is None and outcome_of("") is None
    assert set(OUTCOMES) == {"contact_made", "strategy_discussion", "no_further_action", "duplicate"}


# -- reminders in the work loop -----------------------------------------------------------------------------------


def test_an_acknowledged_high_alert_not_resolved_is_messaged_again_until_resolved(rig: Rig) -> None:
    alert = make_alert(1)  # high, front door; the day manager is on duty (Monday 11:00 BST)
    rig.notifier.take([alert])
    rig.run(0.5)
    assert len(rig.email.sent) == 1
    rig.run(60)
    assert rig.store.acknowledge(alert.alert_id, "dana", "front-door", "on it", rig.clock()) == "acknowledged"
    rig.run(HOUR - 1)
    assert reminders(rig) == []
    rig.run(1)
    [(address, subject)] = reminders(rig)
    assert address == "day@example.org" and subject.startswith("[HIGH] [NOT RESOLVED]")
    message = next(m for m, _ in rig.email.sent if m.reminder)
    assert "acknowledged but are not resolved" in message.text() and message.link.startswith("http://127.0.0.1")
    renotified = [e for e in rig.store.lifecycle_events(alert.alert_id) if e.state == "renotified"]
    assert [(e.recipient, e.note) for e in renotified] == [
        ("day", "acknowledged by dana at 2025-06-02T10:01+00:00, not resolved: reminder 1")
    ]
    # no `notified` event for the reminder, no escalation of an acknowledged alert
    assert [s for s, _, _ in rig.states(alert.alert_id)] == ["raised", "notified", "acknowledged", "renotified"]
    rig.run(HOUR)  # and again an hour after the reminder
    assert len(reminders(rig)) == 2
    assert rig.store.alert(alert.alert_id).reminders == 2  # type: ignore[union-attr]
    assert rig.store.resolve(alert.alert_id, "dana", "front-door", "contact_made", "child seen", rig.clock()) == (
        "resolved"
    )
    rig.run(3 * HOUR)
    assert len(reminders(rig)) == 2
    audit = [e.action for e in rig.store.audit_trail()]
    assert audit.count("renotified") == 2 and audit[0] == "resolved"


def test_medium_alerts_and_unacknowledged_alerts_are_not_reminded(rig: Rig) -> None:
    medium = make_alert(1, severity="medium")
    rig.notifier.take([medium, make_alert(2, subject="child-2")])
    rig.run(61)
    rig.store.acknowledge(medium.alert_id, "dana", "front-door", None, rig.clock())
    rig.run(5 * HOUR)
    assert reminders(rig) == []
    assert rig.store.counts()["unresolved"] == 1


def test_the_reminder_goes_to_whoever_is_on_duty_now(rig: Rig) -> None:
    """Acknowledged by the day manager at 19:30; at 20:30 the front door has nobody on duty, so the reminder goes
    to the contact the alert was with; an EDT alert acknowledged at night is reminded to the night contact."""
    rig.clock.now = datetime(2025, 6, 2, 18, 30, tzinfo=UTC)  # 19:30 BST
    day = make_alert(1)
    night = make_alert(2, la_code="999", subject="child-2")  # no team matches: the fallback team (EDT)
    rig.notifier.take([day, night])
    rig.run(1)
    rig.store.acknowledge(day.alert_id, "dana", "front-door", None, rig.clock())
    rig.store.acknowledge(night.alert_id, "niall", "edt", None, rig.clock())
    rig.run(HOUR)
    assert sorted(a for a, _ in reminders(rig)) == ["day@example.org", "night@example.org"]


def test_reminders_survive_a_restart(rig: Rig) -> None:
    alert = make_alert(1)
    rig.notifier.take([alert])
    rig.run(1)
    rig.store.acknowledge(alert.alert_id, "dana", "front-door", None, rig.clock())
    rig.run(HOUR)
    rig.restart()
    rig.notifier.timing = dataclasses.replace(TIMING, renotify_after_s=HOUR)
    rig.run(HOUR - 1)
    assert len(reminders(rig)) == 1  # the second is an hour after the first, not after the restart
    rig.run(1)
    assert len(reminders(rig)) == 2


# -- resolution in the store --------------------------------------------------------------------------------------


def test_resolving_records_the_outcome_and_note_and_publishes_them(rig: Rig) -> None:
    alert = make_alert(1)
    rig.notifier.take([alert])
    rig.run(1)
    rig.store.acknowledge(alert.alert_id, "dana", "front-door", "seen", rig.clock())
    rig.run(600)
    assert rig.store.resolve(alert.alert_id, "eve", "edt", "duplicate", "x", rig.clock()) == "not_found"
    assert rig.store.resolve(alert.alert_id, "dana", "front-door", "strategy_discussion", "meeting held",
                             rig.clock()) == "resolved"  # fmt: skip
    assert rig.store.resolve(alert.alert_id, "dana", "front-door", "duplicate", "again", rig.clock()) == "already"
    record = rig.store.alert(alert.alert_id)
    assert record is not None and record.resolved and record.outcome == "strategy_discussion"
    assert (record.resolved_by, record.resolve_note) == ("dana", "meeting held")
    [event] = [e for e in rig.store.lifecycle_events(alert.alert_id) if e.state == "resolved"]
    assert (event.outcome, event.note, event.actor, event.team) == (
        "strategy_discussion", "meeting held", "dana", "front-door",
    )  # fmt: skip
    assert decode_alert_lifecycle(encode(event)) == event  # the contract carries the outcome
    audit = rig.store.audit_trail(3)
    assert (audit[0].action, audit[0].detail) == ("resolved", "strategy discussion (via page): meeting held")
    assert audit[1].action == "resolve_refused" and audit[1].actor == "eve"
    assert [r.alert.alert_id for r in rig.store.recently_resolved("front-door")] == [alert.alert_id]
    assert rig.store.unresolved("front-door") == []
    with pytest.raises(ValueError, match="not an outcome"):
        rig.store.resolve(alert.alert_id, "dana", None, "fixed", "x", rig.clock())  # type: ignore[arg-type]


def test_resolving_an_unacknowledged_alert_acknowledges_it_and_stops_its_escalation(rig: Rig) -> None:
    alert = make_alert(1)
    rig.notifier.take([alert])
    rig.run(1)
    assert rig.store.resolve(alert.alert_id, "ops", None, "duplicate", "same as yesterday's", rig.clock(), "cli") == (
        "resolved"
    )
    rig.run(3600)
    assert [a for _, a in rig.email.sent] == ["day@example.org"]  # no escalation, no reminder
    states = [e.state for e in rig.store.lifecycle_events(alert.alert_id)]
    assert states == ["raised", "notified", "acknowledged", "resolved"]
    assert rig.store.open_alerts("front-door") == []


# -- the page -----------------------------------------------------------------------------------------------------

PASSWORD = "a long enough password"
USERS = {"dana": WebUser(hash_password(PASSWORD, n=2**10), "front-door"), "niall": WebUser("x", "edt")}


def hidden(page: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert match, f"no {name} field"
    return match.group(1)


def test_a_manager_resolves_an_acknowledged_alert_on_the_page(tmp_path: Path) -> None:
    clock = FakeClock()
    store = NotifyStore(tmp_path / "notify.sqlite3")
    from tests.unit.test_notify.helpers import rota

    ours, theirs, open_one = make_alert(1), make_alert(2, la_code="999", subject="c2"), make_alert(3, subject="c3")
    store.take([ours, theirs, open_one], rota(), Timing(), clock())
    store.acknowledge(ours.alert_id, "dana", "front-door", "calling school", clock())
    store.acknowledge(theirs.alert_id, "niall", "edt", None, clock())
    config = WebConfig("http://127.0.0.1", b"k" * 32, 3600, USERS)

    async def scenario(client: TestClient) -> None:
        form = await (await client.get("/login")).text()
        data = {"csrf": hidden(form, "csrf"), "next": "/alerts", "username": "dana", "password": PASSWORD}
        page = await (await client.post("/login", data=data)).text()
        assert f'id="acked-{ours.alert_id}"' in page and 'class="resolve-outcome"' in page
        assert f'id="acked-{theirs.alert_id}"' not in page  # another team's
        csrf = hidden(page, "csrf")
        url = f"/alerts/{ours.alert_id}/resolve"

        async def post(path: str, **fields: str) -> str:
            response = await client.post(path, data={"csrf": csrf, "page": "1", **fields}, allow_redirects=False)
            assert response.status == 303, await response.text()
            return response.headers["Location"]

        assert "error=outcome" in await post(url, outcome="", note="done")
        assert "error=outcome" in await post(url, outcome="fixed", note="done")
        assert "error=outcome" in await post(url, outcome="contact_made", note="  ")
        assert "error=rnote" in await post(url, outcome="contact_made", note="rang 07700 900123")
        assert "error=notacked" in await post(f"/alerts/{theirs.alert_id}/resolve", outcome="duplicate", note="x")
        assert "error=notacked" in await post(f"/alerts/{open_one.alert_id}/resolve", outcome="duplicate", note="x")
        response = await client.post(url, data={"csrf": "forged", "outcome": "duplicate", "note": "x"})
        assert response.status == 403
        assert store.alert(ours.alert_id).resolved_at is None  # type: ignore[union-attr]

        location = await post(url, outcome="contact_made", note="child seen at school, safe")
        assert f"resolved={ours.alert_id}" in location
        shown = await (await client.get(location)).text()
        assert 'id="flash"' in shown and f'id="resolved-{ours.alert_id}"' in shown
        assert "contact made" in shown and "child seen at school, safe" in shown
        assert f'id="acked-{ours.alert_id}"' not in shown and 'id="none-to-resolve"' in shown
        assert "error=notacked" in await post(url, outcome="duplicate", note="again")  # already resolved

    async def main() -> None:
        async with TestClient(TestServer(make_app(store, config, clock))) as client:
            await scenario(client)

    try:
        asyncio.run(main())
        record = store.alert(ours.alert_id)
        assert record is not None and (record.outcome, record.resolved_by) == ("contact_made", "dana")
        actions = [e.action for e in store.audit_trail(30)]
        assert actions.count("resolved") == 1 and actions.count("resolve_refused") >= 1
        assert "csrf_refused" in actions
    finally:
        store.close()


# -- the command line ---------------------------------------------------------------------------------------------


def test_resolve_from_the_command_line(tmp_path: Path) -> None:
    from tests.unit.test_notify.helpers import rota

    store = NotifyStore(tmp_path / "notify.sqlite3")
    alert = make_alert(1)
    store.take([alert], rota(), Timing(), T0)
    store.close()
    settings = Settings(_env_file=None, notify=NotifySettings(data_dir=tmp_path))

    def invoke(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(notify, ["resolve", *args], obj=settings)
        return result.exit_code, result.output

    code, out = invoke(alert.alert_id, "--outcome", "fixed", "--note", "x", "--author", "ops")
    assert code == 2 and "fixed" in out
    code, out = invoke(alert.alert_id, "--outcome", "duplicate", "--note", "see 12 Acacia Avenue", "--author", "ops")
    assert code == 2 and "street address" in out
    code, out = invoke(alert.alert_id, "--outcome", "no_further_action", "--note", "closed by MASH", "--author", "ops")
    assert code == 0 and "resolved: no further action" in out, out
    code, out = invoke(alert.alert_id, "--outcome", "duplicate", "--note", "x", "--author", "ops")
    assert code == 1 and "already resolved" in out
    code, out = invoke("0" * 32, "--outcome", "duplicate", "--note", "x", "--author", "ops")
    assert code == 1 and "no alert" in out
    store = NotifyStore(tmp_path / "notify.sqlite3")
    try:
        states = [e.state for e in store.lifecycle_events(alert.alert_id)]
        assert states == ["raised", "acknowledged", "resolved"]
        entries = [(e.actor, e.action, e.detail) for e in store.audit_trail(3)]
        assert entries[0] == ("ops", "resolve_refused", "no such alert")
        assert ("ops", "resolved", "no further action (via cli): closed by MASH") in entries
    finally:
        store.close()
