"""The silences page through aiohttp's test client (the app in process, a loopback server, no Kafka): the form
makes a silence for the manager's own team only, with the session's CSRF token and a same-site Origin; bad values
are refused with every problem; silences are listed and expired (audited); a silenced alert is marked on the alerts
page with its silence named. Also the form's parsing as a pure function."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from aiohttp.test_utils import TestClient, TestServer

from notify.core import Timing
from notify.holds import Silence, matchers_of
from notify.security import hash_password
from notify.store import NotifyStore
from notify.web import WebConfig, WebUser, make_app, parse_silence_form
from tests.unit.test_notify.helpers import FakeClock, make_alert, pseudonym, rota

PASSWORD = "a long enough password"
USERS = {"dana": WebUser(hash_password(PASSWORD, n=2**10), "front-door"), "niall": WebUser("x", "edt")}
RULES = frozenset({"repeat_missing", "high_risk_missing"})
LONDON = ZoneInfo("Europe/London")


class Rig:
    def __init__(self, tmp_path: Path) -> None:
        self.clock = FakeClock()  # Monday 2 June 2025, 11:00 BST
        self.store = NotifyStore(tmp_path / "notify.sqlite3")
        self.config = WebConfig("http://127.0.0.1", b"k" * 32, 3600, USERS, known_rules=RULES)


Scenario = Callable[[Rig, TestClient], Awaitable[None]]


def run(tmp_path: Path, scenario: Scenario) -> Rig:
    rig = Rig(tmp_path)

    async def main() -> None:
        async with TestClient(TestServer(make_app(rig.store, rig.config, rig.clock))) as client:
            await scenario(rig, client)

    try:
        asyncio.run(main())
    finally:
        rig.store.close()
    return rig


def hidden(page: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert match, f"no {name} field"
    return match.group(1)


async def login(client: TestClient) -> str:
    """Log in as dana; the silences page's text (its CSRF token is the session's)."""
    form = await (await client.get("/login")).text()
    data = {"csrf": hidden(form, "csrf"), "next": "/alerts", "username": "dana", "password": PASSWORD}
    response = await client.post("/login", data=data)
    assert response.status == 200 and "Open alerts" in await response.text()
    return await (await client.get("/silences")).text()


GOOD = {"rule": "repeat_missing", "severity": ["medium", "high"], "end": "2025-06-02T13:00",
        "reason": "planned residential trip"}  # fmt: skip


def form_data(csrf: str, fields: dict[str, str | list[str]]) -> list[tuple[str, str]]:
    data = [("csrf", csrf)]
    for key, value in fields.items():
        data += [(key, v) for v in value] if isinstance(value, list) else [(key, value)]
    return data


def test_a_manager_makes_a_silence_for_their_own_team_and_it_is_audited(tmp_path: Path) -> None:
    async def scenario(rig: Rig, client: TestClient) -> None:
        page = await login(client)
        assert 'id="new-silence"' in page and "No silences for your team." in page
        data = form_data(hidden(page, "csrf"), {**GOOD, "team": "edt"})  # a team field is ignored
        response = await client.post("/silences", data=data, allow_redirects=False)
        assert response.status == 303
        silence_id = response.headers["Location"].rsplit("=", 1)[1]
        [silence] = rig.store.silences(rig.clock())
        assert silence.silence_id == silence_id and silence.author == "dana"
        assert dict(silence.matchers) == {
            "rule": {"repeat_missing"}, "severity": {"medium", "high"}, "team": {"front-door"},
        }  # fmt: skip
        assert silence.starts_at == rig.clock() and silence.ends_at == datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
        listed = await (await client.get(response.headers["Location"])).text()
        assert f'id="silence-{silence_id}"' in listed and 'id="created"' in listed and "Expire now" in listed
        entry = next(e for e in rig.store.audit_trail() if e.action == "silence_created")
        assert entry.actor == "dana" and "via page" in entry.detail and "planned residential trip" in entry.detail

    run(tmp_path, scenario)


def test_a_silence_needs_the_sessions_csrf_token_and_a_same_site_origin(tmp_path: Path) -> None:
    async def scenario(rig: Rig, client: TestClient) -> None:
        page = await login(client)
        response = await client.post("/silences", data=form_data("forged", GOOD))
        assert response.status == 403
        response = await client.post(
            "/silences", data=form_data(hidden(page, "csrf"), GOOD), headers={"Origin": "https://evil.example"}
        )
        assert response.status == 403
        assert rig.store.silences(rig.clock()) == []
        assert [e.action for e in rig.store.audit_trail()[:2]] == ["csrf_refused", "csrf_refused"]

    run(tmp_path, scenario)


def test_without_a_session_the_form_leads_to_the_login(tmp_path: Path) -> None:
    async def scenario(rig: Rig, client: TestClient) -> None:
        response = await client.get("/silences", allow_redirects=False)
        assert response.status == 303 and response.headers["Location"].startswith("/login")
        response = await client.post("/silences", data=form_data("x", GOOD), allow_redirects=False)
        assert response.status == 303 and response.headers["Location"] == "/login"

    run(tmp_path, scenario)


def test_bad_values_are_refused_with_every_problem_and_kept_in_the_form(tmp_path: Path) -> None:
    async def scenario(rig: Rig, client: TestClient) -> None:
        page = await login(client)
        bad = {"la_code": "38", "end": "2025-06-02T10:00", "reason": "at 12 Acacia Avenue"}
        response = await client.post("/silences", data=form_data(hidden(page, "csrf"), bad))
        text = await response.text()
        assert response.status == 400 and 'id="silence-errors"' in text
        for problem in ("three-digit LA code", "the end must be after the start", "a street address"):
            assert problem in text
        assert 'value="38"' in text
        assert rig.store.silences(rig.clock()) == []

    run(tmp_path, scenario)


def test_a_silenced_alert_is_marked_on_the_alerts_page_with_its_silence(tmp_path: Path) -> None:
    async def scenario(rig: Rig, client: TestClient) -> None:
        page = await login(client)
        await client.post("/silences", data=form_data(hidden(page, "csrf"), GOOD))
        [silence] = rig.store.silences(rig.clock())
        alert = make_alert(1)
        rig.store.take([alert], rota(), Timing(), rig.clock())
        alerts = await (await client.get("/alerts")).text()
        row = alerts[alerts.index(f'id="alert-{alert.alert_id}"') :]
        row = row[: row.index("</tr>")]
        assert "silenced, not messaged yet" in row and f"silence {silence.silence_id}" in row
        assert f'data-held-by="{silence.silence_id}"' in row and "2025-06-02 13:00 BST" in row

    run(tmp_path, scenario)


def test_a_manager_expires_their_teams_silence_but_not_a_wider_one(tmp_path: Path) -> None:
    async def scenario(rig: Rig, client: TestClient) -> None:
        now = rig.clock()
        wide = Silence("0000000000aa", matchers_of({"rule": ["high_risk_missing"]}), now, now + timedelta(hours=1),
                       "broker maintenance", "ops", now)  # fmt: skip
        rig.store.create_silence(wide, "cli")
        other = Silence("0000000000bb", matchers_of({"team": ["edt"], "severity": ["info"]}), now,
                        now + timedelta(hours=1), "edt's own", "niall", now)  # fmt: skip
        rig.store.create_silence(other, "page")
        page = await login(client)
        await client.post("/silences", data=form_data(hidden(page, "csrf"), GOOD))
        page = await (await client.get("/silences")).text()
        assert 'id="silence-0000000000aa"' in page and "wider than your team" in page
        assert 'id="silence-0000000000bb"' not in page  # another team's silence is not shown
        own = next(s for s in rig.store.silences(now) if s.author == "dana")
        csrf = hidden(page, "csrf")
        response = await client.post("/silences/0000000000aa/expire", data={"csrf": csrf}, allow_redirects=False)
        assert response.headers["Location"] == "/silences?shown=notyours&id=0000000000aa"
        response = await client.post(f"/silences/{own.silence_id}/expire", data={"csrf": "no"})
        assert response.status == 403
        rig.clock.advance(60)
        response = await client.post(f"/silences/{own.silence_id}/expire", data={"csrf": csrf})
        text = await response.text()
        assert 'id="expired"' in text and "expired by dana" in text
        expired = rig.store.silence(own.silence_id)
        assert expired is not None and expired.end == rig.clock() and expired.expired_by == "dana"
        assert [s.silence_id for s in rig.store.silences(rig.clock())] == ["0000000000aa", "0000000000bb"]
        actions = [(e.actor, e.action) for e in rig.store.audit_trail()]
        assert ("dana", "silence_expired") in actions and ("dana", "silence_expire_refused") in actions
        response = await client.post("/silences/not-an-id/expire", data={"csrf": csrf}, allow_redirects=False)
        assert response.headers["Location"] == "/silences?shown=gone"

    run(tmp_path, scenario)


# -- the form's parsing (pure) --------------------------------------------------------------------------------------

NOW = datetime(2025, 6, 2, 10, 0, tzinfo=UTC)


def parse(**fields: list[str]) -> tuple[Silence | None, tuple[str, ...]]:
    form = parse_silence_form(fields, "front-door", "dana", NOW, LONDON, RULES, "00000000000f")
    return form.silence, form.problems


def test_the_form_is_read_in_the_rotas_timezone_and_limited_to_the_team() -> None:
    subject = pseudonym("child-1").upper()
    silence, problems = parse(subject=[subject], start=["2025-06-02T12:00"], end=["2025-06-02T14:30"],
                              reason=["  school   trip "])  # fmt: skip
    assert problems == () and silence is not None
    assert dict(silence.matchers) == {"team": {"front-door"}, "subject": {subject.lower()}}
    assert silence.starts_at == datetime(2025, 6, 2, 11, 0, tzinfo=UTC)  # 12:00 BST
    assert silence.ends_at == datetime(2025, 6, 2, 13, 30, tzinfo=UTC) and silence.reason == "school trip"


def test_the_form_refuses_a_whole_team_silence_and_unknown_values() -> None:
    silence, problems = parse(end=["2025-06-02T14:30"], reason=["quiet please"])
    assert silence is None and any("at least one of rule, severity" in p for p in problems)
    _, problems = parse(rule=["nope"], severity=["urgent"], end=["tomorrow"], reason=["x"])
    assert "an unknown severity was sent" in problems and any("unknown rule 'nope'" in p for p in problems)
    assert any("'tomorrow' is not a date and time" in p for p in problems)
    _, problems = parse(rule=["repeat_missing"], reason=["x"])
    assert "the end is required" in problems
