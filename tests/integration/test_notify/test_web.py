"""The acknowledgement page over real HTTP (aiohttp server on a loopback port, aiohttp client with cookies):
login, sessions that expire, CSRF on every POST, a team sees only its alerts, forged and expired links refused,
the audit trail."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from notify.core import Timing
from notify.security import hash_password, sign_link
from notify.store import NotifyStore
from notify.web import WebConfig, WebUser, make_app
from tests.unit.test_notify.helpers import FakeClock, make_alert, rota

SECRET = b"w" * 32
PASSWORD = "a long enough password"
HASH = hash_password(PASSWORD, n=2**10)
USERS = {"dana": WebUser(HASH, "front-door"), "niall": WebUser(HASH, "edt")}


class Page:
    def __init__(self, tmp_path: Path) -> None:
        self.clock = FakeClock()
        self.store = NotifyStore(tmp_path / "notify.sqlite3")
        self.config = WebConfig("http://127.0.0.1", SECRET, 3600, USERS, max_failed_logins=3)
        self.day = make_alert(1, la_code="383")  # front door (Monday 11:00 BST)
        self.other = make_alert(2, la_code="999", subject="child-2")  # no team for 999: the EDT (fallback)
        self.store.take([self.day, self.other], rota(), Timing(), self.clock())


Scenario = Callable[[Page, aiohttp.ClientSession, str], Awaitable[None]]


def serve(tmp_path: Path, scenario: Scenario) -> Page:
    page = Page(tmp_path)

    async def main() -> None:
        server = TestServer(make_app(page.store, page.config, page.clock), host="127.0.0.1")
        await server.start_server()
        try:
            jar = aiohttp.CookieJar(unsafe=True)
            async with aiohttp.ClientSession(cookie_jar=jar) as client:
                await scenario(page, client, str(server.make_url("")).rstrip("/"))
        finally:
            await server.close()

    asyncio.run(main())
    return page


def hidden(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match, f"no {name} field"
    return match.group(1)


async def login(client: aiohttp.ClientSession, base: str, user: str = "dana", password: str = PASSWORD) -> str:
    form = await (await client.get(f"{base}/login")).text()
    response = await client.post(
        f"{base}/login", data={"csrf": hidden(form, "csrf"), "next": "/alerts", "username": user, "password": password}
    )
    return await response.text()


def test_pages_need_a_login_and_show_only_the_users_team(tmp_path: Path) -> None:
    async def scenario(page: Page, client: aiohttp.ClientSession, base: str) -> None:
        first = await client.get(f"{base}/alerts", allow_redirects=False)
        assert first.status == 303 and first.headers["Location"].startswith("/login")
        text = await login(client, base)
        assert page.day.subject_id in text and page.day.summary in text
        assert page.day.evidence_event_ids[0] in text
        assert page.other.subject_id not in text  # the EDT's alert
        headers = (await client.get(f"{base}/alerts")).headers
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        assert headers["Referrer-Policy"] == "same-origin" and headers["Cache-Control"] == "no-store"

    page = serve(tmp_path, scenario)
    trail = page.store.audit_trail()
    assert [e.action for e in trail][::-1] == ["login", "viewed", "viewed"]
    viewed = next(e for e in trail if e.action == "viewed")
    assert viewed.actor == "dana" and viewed.alert_ids == (page.day.alert_id,)


def test_wrong_password_and_unknown_user_are_refused_then_locked(tmp_path: Path) -> None:
    async def scenario(page: Page, client: aiohttp.ClientSession, base: str) -> None:
        assert "Wrong user name or password" in await login(client, base, password="guess")
        assert "Wrong user name or password" in await login(client, base, user="nobody")
        assert "Wrong user name or password" in await login(client, base, password="guess2")
        assert "Wrong user name or password" in await login(client, base, password="guess3")
        assert "Too many failed attempts" in await login(client, base)  # locked, even with the right password
        page.clock.advance(901)
        assert page.day.subject_id in await login(client, base)

    page = serve(tmp_path, scenario)
    actions = [e.action for e in page.store.audit_trail()]
    assert actions.count("login_failed") == 4 and "login_locked" in actions


def test_every_post_needs_its_csrf_token(tmp_path: Path) -> None:
    async def scenario(page: Page, client: aiohttp.ClientSession, base: str) -> None:
        refused = await client.post(f"{base}/login", data={"username": "dana", "password": PASSWORD, "csrf": "x"})
        assert refused.status == 403
        await login(client, base)
        url = f"{base}/alerts/{page.day.alert_id}/ack"
        no_token = await client.post(url, data={"note": "seen"}, allow_redirects=False)
        assert no_token.status == 403
        text = await (await client.get(f"{base}/alerts")).text()
        foreign = await client.post(
            url, data={"note": "seen", "csrf": hidden(text, "csrf")}, headers={"Origin": "http://evil.example"}
        )
        assert foreign.status == 403
        assert page.store.alert(page.day.alert_id).acked_at is None  # type: ignore[union-attr]
        ok = await client.post(url, data={"note": "  called   the police  ", "csrf": hidden(text, "csrf")})
        assert ok.status == 200 and "Acknowledged alert" in await ok.text()

    page = serve(tmp_path, scenario)
    record = page.store.alert(page.day.alert_id)
    assert record is not None and (record.acked_by, record.ack_note) == ("dana", "called the police")
    assert [e.action for e in page.store.audit_trail()].count("csrf_refused") == 3


def test_a_manager_cannot_acknowledge_another_teams_alert(tmp_path: Path) -> None:
    async def scenario(page: Page, client: aiohttp.ClientSession, base: str) -> None:
        text = await login(client, base)
        response = await client.post(
            f"{base}/alerts/{page.other.alert_id}/ack", data={"note": "", "csrf": hidden(text, "csrf")}
        )
        assert "not an open alert of your team" in await response.text()

    page = serve(tmp_path, scenario)
    assert page.store.alert(page.other.alert_id).acked_at is None  # type: ignore[union-attr]


def test_identifying_notes_are_refused(tmp_path: Path) -> None:
    async def scenario(page: Page, client: aiohttp.ClientSession, base: str) -> None:
        text = await login(client, base)
        response = await client.post(
            f"{base}/alerts/{page.day.alert_id}/ack", data={"note": "NHS 943 476 5919", "csrf": hidden(text, "csrf")}
        )
        assert "must not identify anyone" in await response.text()

    page = serve(tmp_path, scenario)
    assert page.store.alert(page.day.alert_id).acked_at is None  # type: ignore[union-attr]


def test_links_forged_expired_or_for_another_team_are_refused(tmp_path: Path) -> None:
    async def scenario(page: Page, client: aiohttp.ClientSession, base: str) -> None:
        good = sign_link(SECRET, "front-door", 1, page.clock() + timedelta(hours=1))
        # not logged in: a genuine link leads to the login form and back
        response = await client.get(f"{base}/l/{good}", allow_redirects=False)
        assert response.status == 303 and response.headers["Location"].startswith("/login?next=/l/")
        forged = sign_link(b"z" * 32, "front-door", 1, page.clock() + timedelta(hours=1))
        response = await client.get(f"{base}/l/{forged}")
        assert response.status == 403 and "not genuine" in await response.text()
        await login(client, base)
        response = await client.get(f"{base}/l/{good}")
        assert response.status == 200 and str(response.url).endswith("/alerts?m=1")
        other = sign_link(SECRET, "edt", 1, page.clock() + timedelta(hours=1))
        response = await client.get(f"{base}/l/{other}")
        assert response.status == 403 and "another team" in await response.text()
        page.clock.advance(3601)
        response = await client.get(f"{base}/l/{good}")
        assert response.status == 403 and "expired" in await response.text()

    page = serve(tmp_path, scenario)
    refusals = [e.detail for e in page.store.audit_trail() if e.action == "link_refused"]
    assert sorted(refusals) == ["expired", "forged", "link for team edt"]


def test_sessions_expire_and_logout_ends_them(tmp_path: Path) -> None:
    async def scenario(page: Page, client: aiohttp.ClientSession, base: str) -> None:
        text = await login(client, base)
        assert "Open alerts" in text
        page.clock.advance(3601)
        response = await client.get(f"{base}/alerts", allow_redirects=False)
        assert response.status == 303  # expired: back to the login form
        text = await login(client, base)
        await client.post(f"{base}/logout", data={"csrf": hidden(text, "csrf")})
        response = await client.get(f"{base}/alerts", allow_redirects=False)
        assert response.status == 303

    serve(tmp_path, scenario)


def test_the_page_is_an_aiohttp_application(tmp_path: Path) -> None:
    page = Page(tmp_path)
    assert isinstance(make_app(page.store, page.config, page.clock), web.Application)
    page.store.close()
