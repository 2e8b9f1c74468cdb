"""Rota operations (issue 11, item 4): overrides and swaps (pure, in routing, on the page, on the command line,
audited), the coverage check, hand-over messages to the incoming manager, and reloading the rota file without a
restart (a bad file keeps the old rota and says why)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner

from notify.cover import RotaChange, apply_changes, chain_at, check_change, coverage, handover_due, summary
from notify.security import hash_password
from notify.service import NotifierService
from notify.store import NotifyStore
from notify.web import WebConfig, WebUser, make_app, parse_change_form
from safeguard.notify_cli import notify
from safeguard.settings import NotifySettings, NotifyUser, Settings
from tests.unit.test_notify.helpers import ROTA_TOML, FakeClock, make_alert, rota
from tests.unit.test_notify.test_engine import Rig

T0 = datetime(2025, 6, 2, 10, 0, tzinfo=UTC)  # Monday 11:00 BST: front door's day shift (day → senior → head)
HOUR = timedelta(hours=1)


def change(
    kind: str = "override", contact: str = "head", *, team: str = "front-door", level: int = 0,
    other: str | None = None, start: datetime = T0, hours: float = 8, n: int = 1, reason: str = "annual leave",
) -> RotaChange:  # fmt: skip
    return RotaChange(
        f"{n:012x}", kind, team, contact, start, start + timedelta(hours=hours), reason, "dana",  # type: ignore[arg-type]
        T0 - HOUR, level=level, other=other,
    )  # fmt: skip


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path / "notify.sqlite3")
    yield r
    r.store.close()


def addresses(rig: Rig) -> list[str]:
    return [a for m, a in rig.email.sent if not m.handover]


def handovers(rig: Rig) -> list[tuple[str, tuple[str, ...]]]:
    return [(a, tuple(x.alert_id for x in m.alerts)) for m, a in rig.email.sent if m.handover]


# -- pure ---------------------------------------------------------------------------------------------------------


def test_an_override_takes_a_level_and_a_contact_never_appears_twice() -> None:
    chain = ("day", "senior", "head")
    assert apply_changes(chain, "front-door", [change(contact="night")], T0) == ("night", "senior", "head")
    assert apply_changes(chain, "front-door", [change(contact="night", level=1)], T0) == ("day", "night", "head")
    assert apply_changes(chain, "front-door", [change(contact="head")], T0) == ("head", "senior")
    assert apply_changes(("day",), "front-door", [change(contact="senior", level=3)], T0) == ("day", "senior")
    # inactive, or of another team: nothing changes
    assert apply_changes(chain, "front-door", [change(contact="night", start=T0 + HOUR)], T0) == chain
    assert apply_changes(chain, "front-door", [change(contact="night", team="edt")], T0) == chain
    assert apply_changes(chain, "front-door", [change(contact="night", hours=1)], T0 + HOUR) == chain  # half-open


def test_a_swap_trades_places_and_later_changes_win() -> None:
    chain = ("day", "senior", "head")
    swap = change("swap", "day", other="senior")
    assert apply_changes(chain, "front-door", [swap], T0) == ("senior", "day", "head")
    assert apply_changes(chain, "front-door", [change("swap", "day", other="night")], T0) == ("night", "senior", "head")
    later = change(contact="head", n=2)
    assert apply_changes(chain, "front-door", [swap, later], T0) == ("head", "day")
    cancelled = RotaChange(**{**change().__dict__, "cancelled_at": T0})
    assert apply_changes(chain, "front-door", [cancelled], T0) == chain


def test_changes_are_checked_with_every_problem() -> None:
    r = rota()
    assert check_change(change(), r, T0) == []
    bad = change("swap", "nobody", team="nowhere", other="nobody", hours=-1, reason="call 07700 900123")
    problems = check_change(bad, r, T0)
    assert any("'nowhere' is not a team" in p for p in problems)
    assert any("'nobody' is not a contact" in p for p in problems)
    assert "a swap needs two different contacts" in problems
    assert "the end must be after the start" in problems
    assert any("phone number" in p for p in problems)
    assert any("at most 62 days" in p for p in check_change(change(hours=24 * 70), r, T0))
    assert "the end is in the past" in check_change(change(start=T0 - 3 * HOUR, hours=1), r, T0)


def test_coverage_finds_hours_without_a_primary_an_escalation_or_a_channel() -> None:
    r = rota()
    gaps = coverage(r, [], T0, days=7)
    front = [g for g in gaps if g.team == "front-door"]
    # weekday evenings from 20:00 BST and whole weekends: nobody of the front door on duty
    first = front[0]
    assert (first.kind, first.starts_at, first.ends_at) == ("no_primary", datetime(2025, 6, 2, 19, 0, tzinfo=UTC),
                                                            datetime(2025, 6, 3, 7, 0, tzinfo=UTC))  # fmt: skip
    assert "its alerts go to edt" in first.detail
    [leicester] = [g for g in gaps if g.team == "leicester"]
    assert leicester.kind == "no_escalation" and leicester.ends_at - leicester.starts_at == timedelta(days=7)
    assert not [g for g in gaps if g.team == "edt"]
    # the webhook channel off: the leicester team's only contact is reached by nothing
    unreachable = [g for g in coverage(r, [], T0, days=1, channels=["email", "console"]) if g.kind == "unreachable"]
    assert [(g.team, g.detail) for g in unreachable] == [
        ("leicester", "hook is on duty and no enabled channel reaches them")
    ]
    # an override adding an escalation contact closes the leicester gap while it lasts
    fix = change(contact="head", team="leicester", level=1, start=T0 + 2 * HOUR, hours=3)
    stretches = [(g.starts_at, g.ends_at) for g in coverage(r, [fix], T0, days=1, teams=["leicester"])]
    assert stretches == [(T0, T0 + 2 * HOUR), (T0 + 5 * HOUR, T0 + timedelta(days=1))]
    lines = summary(r, gaps, days=7)
    assert any(line.startswith("rota coverage: team front-door: nobody on duty") for line in lines)
    assert len(lines) == 2


def test_a_handover_is_due_when_duty_passes_to_someone_new() -> None:
    assert handover_due(None, ("day",)) is None  # the first look
    assert handover_due("day", ("day", "senior")) is None
    assert handover_due("day", ("night",)) == "night"
    assert handover_due("", ("day",)) == "day"  # the morning's shift starts
    assert handover_due("day", ()) is None  # nobody on duty: nobody to hand over to


# -- in the work loop ---------------------------------------------------------------------------------------------


def test_alerts_taken_during_an_override_go_to_the_stand_in_and_escalate_along_the_changed_chain(rig: Rig) -> None:
    rig.store.create_change(change(contact="night", hours=2), "test")
    before = make_alert(1)
    rig.notifier.take([before])
    rig.run(0.5)
    assert addresses(rig) == ["night@example.org"]
    rig.run(900)  # not acknowledged: escalates to the next of the changed chain (the override kept senior)
    assert addresses(rig) == ["night@example.org", "senior@example.org"]
    rig.run(2 * 3600)  # the override is over
    rig.notifier.take([make_alert(2, subject="child-2")])
    rig.run(0.5)
    assert addresses(rig)[-1] == "day@example.org"
    [entry] = [e for e in rig.store.audit_trail() if e.action == "override_created"]
    assert "night as primary of team front-door via test" in entry.detail


def test_a_swap_and_its_cancellation(rig: Rig) -> None:
    swap = change("swap", "day", other="senior", hours=8)
    rig.store.create_change(swap, "test")
    rig.notifier.take([make_alert(1)])
    rig.run(0.5)
    assert addresses(rig) == ["senior@example.org"]
    assert rig.store.cancel_change(swap.change_id, "eve", rig.clock(), "test", team="edt") == "not_yours"
    assert rig.store.cancel_change(swap.change_id, "eve", rig.clock(), "test") == "cancelled"
    assert rig.store.cancel_change(swap.change_id, "eve", rig.clock(), "test") == "ended"
    assert rig.store.cancel_change("0" * 12, "eve", rig.clock(), "test") == "not_found"
    rig.notifier.take([make_alert(2, subject="child-2")])
    rig.run(0.5)
    assert addresses(rig)[-1] == "day@example.org"
    [listed] = rig.store.changes(rig.clock(), ended_within_s=60)
    assert listed.status(rig.clock()) == "cancelled" and listed.cancelled_by == "eve"
    actions = [e.action for e in rig.store.audit_trail()]
    assert "swap_created" in actions and "swap_cancelled" in actions and "rota_change_cancel_refused" in actions


def test_the_incoming_manager_gets_the_open_alerts_when_duty_passes(rig: Rig) -> None:
    acked, open_one, done = make_alert(1), make_alert(2, subject="child-2"), make_alert(3, subject="child-3")
    rig.notifier.take([acked, open_one, done])
    rig.run(0.5)  # the first look at duty: noted, no hand-over
    assert handovers(rig) == []
    rig.store.acknowledge(acked.alert_id, "dana", "front-door", None, rig.clock())
    rig.store.resolve(done.alert_id, "dana", "front-door", "duplicate", "same as child-2's", rig.clock())
    rig.store.create_change(change(contact="head", start=rig.clock() + HOUR, hours=1), "test")
    rig.run(3600)  # the override starts: head comes on duty
    [(address, ids)] = handovers(rig)
    assert address == "head@example.org"
    assert set(ids) == {open_one.alert_id, acked.alert_id}  # the resolved one is left out
    message = next(m for m, _ in rig.email.sent if m.handover)
    assert message.subject == "[HAND-OVER] Team front-door: 2 open alerts"
    assert "You are now on duty for team front-door." in message.text() and open_one.summary in message.text()
    rig.run(3600)  # over: back to the day manager
    assert [a for a, _ in handovers(rig)] == ["head@example.org", "day@example.org"]
    rig.run(8 * 3600)  # 20:00 BST: nobody of the front door on duty; no hand-over to nobody
    assert len(handovers(rig)) == 2
    trail = [e for e in rig.store.audit_trail() if e.action == "handover"]
    assert trail[-1].detail == "duty of team front-door passed from day to head: 2 open alerts"


def test_a_handover_with_nothing_open_says_so(rig: Rig) -> None:
    rig.run(0)
    rig.store.create_change(change(contact="senior", start=rig.clock() + HOUR, hours=1), "test")
    rig.run(3600)
    [message] = [m for m, _ in rig.email.sent if m.handover]
    assert message.alerts == () and "Nothing is open." in message.text()
    assert message.subject == "[HAND-OVER] Team front-door: 0 open alerts"


def test_the_coverage_check_warns_at_the_first_tick_and_daily(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="notify.engine"):
        rig.run(0)
    assert any("team leicester: no escalation contact after hook" in r.message for r in caplog.records)
    checks = [e for e in rig.store.audit_trail() if e.action == "coverage_checked"]
    assert len(checks) == 1 and "[no_escalation]" in checks[0].detail
    rig.run(23 * 3600)
    assert len([e for e in rig.store.audit_trail() if e.action == "coverage_checked"]) == 1
    rig.run(3600)
    assert len([e for e in rig.store.audit_trail() if e.action == "coverage_checked"]) == 2


# -- reloading the rota file --------------------------------------------------------------------------------------


def test_a_changed_rota_file_is_used_and_a_bad_one_keeps_the_old_rota(rig: Rig, tmp_path: Path) -> None:
    path = tmp_path / "rota.toml"
    path.write_text(ROTA_TOML)
    settings = NotifySettings(
        data_dir=tmp_path, users={"dana": NotifyUser(password_hash=USERS["dana"].password_hash, team="front-door")}
    )
    channels = {"email": rig.email, "console": rig.console, "webhook-teams": rig.hook}
    service = NotifierService(settings, {}, rig.notifier.rota, channels=channels, rota_path=path)
    rig.run(0)
    day_shift = 'primary = "day"\n  escalation = ["senior", "head"]'
    assert day_shift in ROTA_TOML
    path.write_text(ROTA_TOML.replace(day_shift, 'primary = "senior"\n  escalation = ["head"]'))
    assert service.reload_rota(rig.notifier, rig.store, path)
    assert chain_at(rig.notifier.rota, "front-door", [], rig.clock()) == ("senior", "head")
    rig.notifier.take([make_alert(1)])
    rig.run(0.5)
    assert addresses(rig) == ["senior@example.org"]
    # a broken file, a file without the users' team, a contact no channel reaches: each refused, the rota kept
    path.write_text("timezone = 'Mars/Olympus'\n" + ROTA_TOML.split("\n", 2)[2])
    assert not service.reload_rota(rig.notifier, rig.store, path)
    path.write_text(ROTA_TOML.replace('name = "front-door"', 'name = "front door"'))
    assert not service.reload_rota(rig.notifier, rig.store, path)
    path.write_text(ROTA_TOML.replace('email = "day@example.org"', 'webhook = "http://127.0.0.1:9/x"'))
    assert not service.reload_rota(rig.notifier, rig.store, path)
    path.unlink()
    assert not service.reload_rota(rig.notifier, rig.store, path)
    assert chain_at(rig.notifier.rota, "front-door", [], rig.clock()) == ("senior", "head")
    refused = [e.detail for e in rig.store.audit_trail() if e.action == "rota_reload_refused"]
    assert len(refused) == 4
    assert "no such file" in refused[0]
    assert "no enabled channel: day" in refused[1]
    assert "user 'dana' is in team 'front-door', which is not a team" in refused[2]
    assert "'Mars/Olympus' is not a known timezone" in refused[3]
    assert [e.action for e in rig.store.audit_trail()].count("rota_reloaded") == 1


def test_the_service_watches_the_rota_file(rig: Rig, tmp_path: Path) -> None:
    path = tmp_path / "rota.toml"
    path.write_text(ROTA_TOML)
    settings = NotifySettings(data_dir=tmp_path)
    channels = {"email": rig.email, "console": rig.console, "webhook-teams": rig.hook}
    service = NotifierService(settings, {}, rig.notifier.rota, channels=channels, rota_path=path, reload_check_s=0.01)

    async def main() -> None:
        service._stop = asyncio.Event()
        service._reload_now = asyncio.Event()
        watch = asyncio.create_task(service._watch_rota(rig.notifier, rig.store))
        await asyncio.sleep(0.05)
        assert service.rota is rig.notifier.rota  # unchanged file: nothing read
        path.write_text(ROTA_TOML.replace('primary = "day"', 'primary = "night-lead"', 1))
        for _ in range(200):
            await asyncio.sleep(0.01)
            if chain_at(rig.notifier.rota, "front-door", [], T0)[0] == "night-lead":
                break
        service._stop.set()
        await watch

    asyncio.run(main())
    assert chain_at(rig.notifier.rota, "front-door", [], T0) == ("night-lead", "senior", "head")
    assert service.rota is rig.notifier.rota


# -- the page -----------------------------------------------------------------------------------------------------

PASSWORD = "a long enough password"
USERS = {"dana": WebUser(hash_password(PASSWORD, n=2**10), "front-door"), "niall": WebUser("x", "edt")}


def hidden(page: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert match, f"no {name} field"
    return match.group(1)


def test_parse_change_form() -> None:
    r = rota()
    fields = {"kind": "override", "contact": "head", "level": "1", "end": "2025-06-02T18:00", "reason": "training",
              "team": "edt"}  # fmt: skip
    parsed = parse_change_form(fields, r, "front-door", "dana", T0, "a" * 12)
    assert parsed.problems == () and parsed.change is not None
    assert (parsed.change.team, parsed.change.level, parsed.change.starts_at) == ("front-door", 1, T0)
    assert parsed.change.ends_at == datetime(2025, 6, 2, 17, 0, tzinfo=UTC)
    bad = parse_change_form({"kind": "swap", "contact": "day", "other": "day", "end": "x"}, r, "front-door", "dana",
                            T0, "b" * 12)  # fmt: skip
    assert bad.change is None and any("not a date and time" in p for p in bad.problems)
    assert parse_change_form({"kind": "nope"}, r, "front-door", "dana", T0, "c" * 12).problems == (
        "choose an override or a swap",
    )


def test_a_manager_makes_and_cancels_an_override_for_their_team_on_the_page(tmp_path: Path) -> None:
    clock = FakeClock()
    store = NotifyStore(tmp_path / "notify.sqlite3")
    current = rota()
    config = WebConfig("http://127.0.0.1", b"k" * 32, 3600, USERS, rota=lambda: current,
                       channels=frozenset({"email", "console", "webhook-teams"}))  # fmt: skip
    other = change(team="edt", contact="head", n=9)
    store.create_change(other, "test")

    async def scenario(client: TestClient) -> None:
        form = await (await client.get("/login")).text()
        data = {"csrf": hidden(form, "csrf"), "next": "/alerts", "username": "dana", "password": PASSWORD}
        alerts = await (await client.post("/login", data=data)).text()
        assert 'id="rota-link"' in alerts
        page = await (await client.get("/rota")).text()
        assert "Day manager (day)" in page and 'id="no-changes"' in page and "nobody on duty" in page
        csrf = hidden(page, "csrf")
        bad = {"csrf": csrf, "kind": "override", "contact": "head", "level": "0", "end": "2025-06-02T10:00",
               "reason": "cover"}  # fmt: skip
        response = await client.post("/rota/changes", data=bad)
        assert response.status == 400 and "the end must be after the start" in await response.text()
        good = {**bad, "end": "2025-06-02T15:00", "team": "edt"}
        response = await client.post("/rota/changes", data=good, allow_redirects=False)
        assert response.status == 303
        change_id = response.headers["Location"].rsplit("=", 1)[1]
        shown = await (await client.get(response.headers["Location"])).text()
        assert f'id="change-{change_id}"' in shown and 'id="created"' in shown
        assert re.search(r'<ol id="on-duty"><li>Head of service \(head\)</li><li>Senior manager', shown)
        assert f"change-{other.change_id}" not in shown  # another team's change is not listed
        response = await client.post(f"/rota/changes/{other.change_id}/cancel", data={"csrf": csrf},
                                     allow_redirects=False)  # fmt: skip
        assert response.headers["Location"] == f"/rota?shown=notyours&id={other.change_id}"
        response = await client.post("/rota/changes", data={**good, "csrf": "forged"})
        assert response.status == 403
        response = await client.post(f"/rota/changes/{change_id}/cancel", data={"csrf": csrf}, allow_redirects=False)
        assert response.headers["Location"] == f"/rota?shown=cancelled&id={change_id}"

    async def main() -> None:
        async with TestClient(TestServer(make_app(store, config, clock))) as client:
            await scenario(client)

    try:
        asyncio.run(main())
        [made] = [c for c in store.changes(clock(), ended_within_s=60) if c.team == "front-door"]
        assert (made.contact, made.author, made.status(clock())) == ("head", "dana", "cancelled")
        actions = [e.action for e in store.audit_trail(20)]
        for action in ("override_created", "override_cancelled", "rota_change_cancel_refused", "csrf_refused",
                       "viewed_rota"):  # fmt: skip
            assert action in actions
    finally:
        store.close()


# -- the command line ---------------------------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "examples" / "rota.toml"


def test_overrides_and_swaps_on_the_command_line(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, notify=NotifySettings(data_dir=tmp_path, rota_file=EXAMPLE))

    def invoke(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(notify, list(args), obj=settings)
        return result.exit_code, result.output

    code, out = invoke("override", "add", "--team", "missing", "--contact", "fd-day", "--duration", "8h",
                       "--reason", "co-ordinator on leave", "--author", "ops-dana")  # fmt: skip
    assert code == 0 and "fd-day as primary of team missing" in out, out
    override_id = out.split()[1].rstrip(":")
    code, out = invoke("override", "swap", "--team", "emergency-duty", "--contact", "edt", "--with", "edt-manager",
                       "--duration", "12h", "--reason", "swapped nights", "--author", "ops-dana")  # fmt: skip
    assert code == 0 and "edt <-> edt-manager in team emergency-duty" in out, out
    code, out = invoke("override", "add", "--team", "nowhere", "--contact", "x", "--duration", "1h", "--reason",
                       "r", "--author", "a")  # fmt: skip
    assert code == 2 and "'nowhere' is not a team" in out and "'x' is not a contact" in out
    code, out = invoke("override", "list")
    assert code == 0 and override_id in out and "active" in out and "(ops-dana: co-ordinator on leave)" in out
    code, out = invoke("override", "cancel", override_id, "--author", "ops-eve")
    assert code == 0 and f"{override_id} cancelled" in out
    code, out = invoke("override", "list", "--all")
    assert "cancelled by ops-eve" in out
    assert invoke("override", "cancel", override_id, "--author", "ops-eve")[0] == 1
    code, out = invoke("coverage", "--days", "2")
    assert code == 0
    code, out = invoke("coverage", "--days", "2", "--channels", "email", "--fail-on-gaps")
    assert code in (0, 1)  # the example rota's contacts all have email
    store = NotifyStore(tmp_path / "notify.sqlite3")
    try:
        actions = [e.action for e in store.audit_trail()]
    finally:
        store.close()
    assert {"override_created", "swap_created", "override_cancelled"} <= set(actions)


def test_coverage_command_reports_gaps(tmp_path: Path) -> None:
    path = tmp_path / "rota.toml"
    path.write_text(ROTA_TOML)
    settings = Settings(_env_file=None, notify=NotifySettings(data_dir=tmp_path, rota_file=path))
    result = CliRunner().invoke(notify, ["coverage", "--days", "1", "--channels", "email,console", "--fail-on-gaps"],
                                obj=settings)  # fmt: skip
    assert result.exit_code == 1
    assert "unreachable    team leicester: hook is on duty and no enabled channel reaches them" in result.output
    assert "no_escalation  team leicester" in result.output
