"""The acknowledgement page over real HTTP (aiohttp server on a loopback port, aiohttp client with cookies):
login and its throttling (clients on distinct loopback addresses), sessions that expire, CSRF on every POST, a
team sees only its alerts, a page at a time, forged and expired links refused, identifying notes refused, the
audit trail."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
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
        self.config = WebConfig("http://127.0.0.1", SECRET, 3600, USERS)
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
    return await (await attempt(client, base, user, password)).text()


async def attempt(
    client: aiohttp.ClientSession, base: str, user: str = "dana", password: str = PASSWORD
) -> aiohttp.ClientResponse:
    form = await (await client.get(f"{base}/login")).text()
    response = await client.post(
        f"{base}/login", data={"csrf": hidden(form, "csrf"), "next": "/alerts", "username": user, "password": password}
    )
    await response.read()
    return response


def from_address(address: str) -> aiohttp.ClientSession:
    """A client whose requests come from `address` (any of 127.0.0.0/8 reaches the loopback server)."""
    connector = aiohttp.TCPConnector(local_addr=(address, 0))
    return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.CookieJar(unsafe=True))


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
    assert viewed.actor == "dana" and viewed.alert_ids == ()  # one row per view, not one id per alert shown
    assert viewed.detail == "team front-door, page 1 of 1, 1 of 1 shown"


def test_a_failing_client_waits_twice_as_long_after_each_failure(tmp_path: Path) -> None:
    async def scenario(page: Page, client: aiohttp.ClientSession, base: str) -> None:
        retry_after = []
        for guess in ("guess1", "guess2", "guess3"):
            failed = await attempt(client, base, password=guess)
            assert failed.status == 401 and "Wrong user name or password" in await failed.text()
            waiting = await attempt(client, base)  # the right password, during the wait: not even checked
            assert waiting.status == 429 and "Too many failed attempts" in await waiting.text()
            assert (await attempt(client, base)).status == 429
            retry_after.append(int(waiting.headers["Retry-After"]))
            page.clock.advance(retry_after[-1])
        assert retry_after == [1, 2, 4]
        assert (await attempt(client, base, user="nobody")).status == 401  # unknown names count the same
        assert (await attempt(client, base)).headers["Retry-After"] == "8"
        page.clock.advance(8)
        assert page.day.subject_id in await login(client, base)  # after the wait, the right password works

    page = serve(tmp_path, scenario)
    trail = page.store.audit_trail()
    actions = [e.action for e in trail]
    assert actions.count("login_failed") == 4 and actions.count("login") == 1
    assert actions.count("login_throttled") == 4  # once per wait, not once per refused attempt
    throttled = next(e for e in trail if e.action == "login_throttled")
    assert throttled.detail.startswith("from 127.0.0.1: client delay") and throttled.actor == "dana"
    assert next(e for e in trail if e.action == "login_failed").detail == "from 127.0.0.1"


def test_an_attacker_elsewhere_cannot_lock_the_manager_out(tmp_path: Path) -> None:
    async def scenario(page: Page, client: aiohttp.ClientSession, base: str) -> None:
        async with from_address("127.0.0.2") as attacker:
            for n in range(8):  # far beyond the old five-failure lock-out, waiting out each delay
                if n:
                    page.clock.advance(2 ** (n - 1))
                assert (await attempt(attacker, base, password=f"guess{n}")).status == 401
            assert (await attempt(attacker, base)).status == 429  # even with the right password
            assert page.day.subject_id in await login(client, base)  # the manager, from a clean address, at once

    page = serve(tmp_path, scenario)
    assert next(e.action for e in page.store.audit_trail()) == "viewed"  # the newest: the manager got in


def test_a_name_attacked_from_many_addresses_slows_only_those_addresses(tmp_path: Path) -> None:
    async def scenario(page: Page, client: aiohttp.ClientSession, base: str) -> None:
        attackers = [from_address(f"127.0.1.{n}") for n in range(1, 9)]
        try:
            for n, attacker in enumerate(attackers):  # every address's first guess is considered
                assert (await attempt(attacker, base, password=f"guess{n}")).status == 401
            page.clock.advance(2)  # every address's own one-second wait is over ...
            refused = await attempt(attackers[0], base, password="again")
            assert refused.status == 429  # ... but the name has failed 8 times: its delay applies to them
            assert "Too many failed attempts" in await refused.text()
            assert page.day.subject_id in await login(client, base)  # not to the manager's clean address
        finally:
            for attacker in attackers:
                await attacker.close()

    page = serve(tmp_path, scenario)
    throttled = [e.detail for e in page.store.audit_trail() if e.action == "login_throttled"]
    assert len(throttled) == 1 and throttled[0].startswith("from 127.0.1.1: user delay")


def test_spraying_user_names_from_one_client_gets_one_guess_per_wait(tmp_path: Path) -> None:
    async def scenario(page: Page, client: aiohttp.ClientSession, base: str) -> None:
        statuses = [(await attempt(client, base, user=f"user{n}", password="guess")).status for n in range(40)]
        assert statuses == [401] + [429] * 39

    page = serve(tmp_path, scenario)
    actions = [e.action for e in page.store.audit_trail()]
    assert actions.count("login_failed") == 1 and actions.count("login_throttled") == 1


def test_concurrent_guesses_from_one_client_are_considered_one_at_a_time(tmp_path: Path) -> None:
    async def scenario(page: Page, client: aiohttp.ClientSession, base: str) -> None:
        form = await (await client.get(f"{base}/login")).text()
        csrf = hidden(form, "csrf")

        async def guess(n: int) -> int:
            data = {"csrf": csrf, "next": "/alerts", "username": "dana", "password": f"guess{n}"}
            async with client.post(f"{base}/login", data=data) as response:
                return response.status

        statuses = await asyncio.gather(*(guess(n) for n in range(20)))
        assert sorted(statuses) == [401] + [429] * 19

    page = serve(tmp_path, scenario)
    assert [e.action for e in page.store.audit_trail()].count("login_failed") == 1


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


@pytest.mark.parametrize(
    ("note", "kind"),
    [
        ("NHS 943 476 5919", "an NHS number"),
        ("NHS9434765919", "an NHS number"),
        ("943.476.5919", "an NHS number"),
        ("\uff19\uff14\uff13\uff14\uff17\uff16\uff15\uff19\uff11\uff19", "an NHS number"),  # full-width digits
        ("saw Jane Smith at 12 Acacia Avenue", "a street address"),
    ],
)
def test_identifying_notes_are_refused_naming_the_kind(tmp_path: Path, note: str, kind: str) -> None:
    async def scenario(page: Page, client: aiohttp.ClientSession, base: str) -> None:
        text = await login(client, base)
        response = await client.post(
            f"{base}/alerts/{page.day.alert_id}/ack", data={"note": note, "csrf": hidden(text, "csrf"), "page": "1"}
        )
        shown = await response.text()
        assert "must not identify anyone" in shown and f"holds {kind}" in shown.replace("&#x27;", "'")
        assert note not in shown and "5919" not in shown and "Acacia" not in shown  # the value is not echoed
        assert "page=1" in str(response.url) and "5919" not in str(response.url)

    page = serve(tmp_path, scenario)
    assert page.store.alert(page.day.alert_id).acked_at is None  # type: ignore[union-attr]
    refused = next(e for e in page.store.audit_trail() if e.action == "ack_refused")
    assert refused.detail == f"note looked identifying: {kind}"


@pytest.mark.parametrize("note", ["strategy discussion booked for Monday", "contact made with school"])
def test_ordinary_notes_are_accepted(tmp_path: Path, note: str) -> None:
    async def scenario(page: Page, client: aiohttp.ClientSession, base: str) -> None:
        text = await login(client, base)
        response = await client.post(
            f"{base}/alerts/{page.day.alert_id}/ack", data={"note": note, "csrf": hidden(text, "csrf")}
        )
        assert "Acknowledged alert" in await response.text()

    page = serve(tmp_path, scenario)
    assert page.store.alert(page.day.alert_id).ack_note == note  # type: ignore[union-attr]


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


def add_alerts(page: Page, n: int) -> list[str]:
    """`n` more open alerts for the front door, one subject (so one message) each, a second apart."""
    ids = []
    for i in range(n):
        alert = make_alert(f"many-{i}", severity=("info", "medium", "high", "critical")[i % 4], subject=f"kid-{i}")
        page.store.take([alert], rota(), Timing(), page.clock())
        ids.append(alert.alert_id)
        page.clock.advance(1)
    return ids


def rows(text: str) -> list[str]:
    return re.findall(r'<tr id="alert-([0-9a-f]+)" class="(?:linked)?"', text)


def test_open_alerts_come_a_page_at_a_time(tmp_path: Path) -> None:
    async def scenario(page: Page, client: aiohttp.ClientSession, base: str) -> None:
        add_alerts(page, 119)  # 120 open alerts for the front door with page.day
        first = await login(client, base)
        assert len(rows(first)) == 50 and "Page 1 of 3 · 120 open alerts" in first
        assert 'href="/alerts?page=2" rel="next"' in first and 'rel="prev"' not in first
        severities = re.findall(r'<span class="sev (\w+)">', first)
        assert severities[:29] == ["critical"] * 29 and severities[29:] == ["high"] * 21
        second = await (await client.get(f"{base}/alerts?page=2")).text()
        last = await (await client.get(f"{base}/alerts?page=3")).text()
        assert len(rows(second)) == 50 and len(rows(last)) == 20
        assert 'href="/alerts?page=1" rel="prev"' in second and 'rel="next"' not in last
        assert len(set(rows(first) + rows(second) + rows(last))) == 120
        for odd in ("999999999", "99999999999999999999", "abc", "-1", "0", "%00"):
            response = await client.get(f"{base}/alerts?page={odd}")
            assert response.status == 200
            text = await response.text()
            assert ("Page 3 of 3" if odd == "999999999" else "Page 1 of 3") in text

    page = serve(tmp_path, scenario)
    views = [e for e in page.store.audit_trail() if e.action == "viewed"]
    assert len(views) == 9 and all(e.alert_ids == () for e in views)
    assert views[-1].detail == "team front-door, page 1 of 3, 50 of 120 shown"
    assert views[-3].detail == "team front-door, page 3 of 3, 20 of 120 shown"


def test_a_messages_link_opens_the_page_holding_its_alert(tmp_path: Path) -> None:
    async def scenario(page: Page, client: aiohttp.ClientSession, base: str) -> None:
        ids = add_alerts(page, 119)
        target = ids[0]  # info, received before the other info alerts: on the last page
        message = next(m for m in range(1, 500) if page.store.message_alert_ids(m) == [target])
        link = sign_link(SECRET, "front-door", message, page.clock() + timedelta(hours=1))
        await login(client, base)
        response = await client.get(f"{base}/l/{link}")
        text = await response.text()
        assert str(response.url).endswith(f"/alerts?m={message}") and "Page 3 of 3" in text
        assert f'<tr id="alert-{target}" class="linked"' in text
        assert text.count('class="linked"') == 1
        assert f'href="/alerts?page=2&amp;m={message}" rel="prev"' in text  # the highlight follows the pages
        # acknowledging from page 3 comes back to page 3
        ack = await client.post(
            f"{base}/alerts/{target}/ack", data={"note": "seen", "csrf": hidden(text, "csrf"), "page": "3"}
        )
        assert "page=3" in str(ack.url) and "Acknowledged alert" in await ack.text()

    serve(tmp_path, scenario)
