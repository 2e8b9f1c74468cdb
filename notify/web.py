"""The acknowledgement page (aiohttp): log in, see the team's open alerts, acknowledge with a note.

Security, in order of the request:
- a message's link `/l/<token>` is checked first (HMAC signature, then expiry): a forged or expired link gets
  403 and an audit row, whoever asks;
- every page but the login form needs a session: a random cookie (HttpOnly, SameSite=Lax, Secure when the base
  URL is https) whose SHA-256 is stored with its user, team, CSRF token and expiry;
- every POST carries a CSRF token (the session's, or for the login form one keyed on a pre-session cookie),
  compared in constant time, and a foreign `Origin` is refused;
- a manager only ever reads or acknowledges alerts whose routed team is their own (from settings, not the link);
- every login, failed login, view (with the alert ids shown), acknowledgement and refusal is in the audit table;
- responses carry a strict Content-Security-Policy, no-store and a same-origin referrer policy (the link token
  never leaves the site; same-origin POSTs still carry their Origin, which is checked).
The page shows rule, severity, summary, pseudonym and evidence event ids: nothing identifying beyond the pseudonym.
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

from aiohttp import web

from notify.security import (
    DUMMY_HASH,
    LinkRefused,
    keyed_token,
    new_token,
    same_token,
    token_hash,
    verify_link,
    verify_password,
)
from notify.store import AlertRecord, NotifyStore, Session
from safeguard.clock import Clock
from schemas.identifiers import is_nhs_number, is_upn

log = logging.getLogger(__name__)

SESSION_COOKIE = "sg_session"
PRE_COOKIE = "sg_pre"
MAX_NOTE = 1000
_NEXT = re.compile(r"^/(l/[A-Za-z0-9_\-.]{1,2000}|alerts)$")
_ALERT_ID = re.compile(r"^[0-9a-f]{16,64}$")

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class WebUser:
    password_hash: str
    team: str


@dataclass(frozen=True)
class WebConfig:
    base_url: str
    link_secret: bytes
    session_ttl_s: float
    users: Mapping[str, WebUser]
    timezone: str = "Europe/London"
    max_failed_logins: int = 5
    lockout_s: float = 900.0


STORE_KEY = web.AppKey("store", NotifyStore)
CONFIG_KEY = web.AppKey("config", WebConfig)
CLOCK_KEY: web.AppKey[Clock] = web.AppKey("clock")
FAILURES_KEY: web.AppKey[dict[str, deque[float]]] = web.AppKey("failures")


def make_app(store: NotifyStore, config: WebConfig, clock: Clock) -> web.Application:
    """The page as an aiohttp application (the service runs it; tests may too)."""
    app = web.Application(middlewares=[_headers], client_max_size=64 * 1024)
    app[STORE_KEY] = store
    app[CONFIG_KEY] = config
    app[CLOCK_KEY] = clock
    app[FAILURES_KEY] = {}
    app.add_routes(
        [
            web.get("/", _root),
            web.get("/login", _login_form),
            web.post("/login", _login),
            web.post("/logout", _logout),
            web.get("/l/{token}", _link),
            web.get("/alerts", _alerts),
            web.post("/alerts/{alert_id}/ack", _ack),
            web.get("/healthz", _health),
        ]
    )
    return app


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if isinstance(response, web.HTTPException):
        raise response
    return response


# -- helpers ----------------------------------------------------------------------------------------------------


def _cfg(request: web.Request) -> WebConfig:
    return request.app[CONFIG_KEY]


def _store(request: web.Request) -> NotifyStore:
    return request.app[STORE_KEY]


def _now(request: web.Request) -> float:
    return float(request.app[CLOCK_KEY]().timestamp())


def _secure(request: web.Request) -> bool:
    return _cfg(request).base_url.startswith("https://")


def _session(request: web.Request) -> tuple[str, Session] | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token or len(token) > 200:
        return None
    hashed = token_hash(token)
    session = _store(request).session(hashed, request.app[CLOCK_KEY]())
    return (hashed, session) if session else None


def _same_origin(request: web.Request) -> bool:
    """A browser's Origin (when sent) must be this site; a missing Origin is left to the CSRF token."""
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return origin is None
    base = urlsplit(_cfg(request).base_url)
    got = urlsplit(origin)
    host = request.host
    return (got.scheme, got.netloc) == (base.scheme, base.netloc) or got.netloc == host


def _page(title: str, body: str, *, status: int = 200) -> web.Response:
    doc = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="referrer" content="same-origin"><title>{html.escape(title)}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1b1f24}}
header{{background:#1d3557;color:#fff;padding:.8rem 1.5rem;display:flex;justify-content:space-between;
align-items:center}}
main{{padding:1rem 1.5rem;max-width:70rem}}
table{{border-collapse:collapse;width:100%;background:#fff}}
th,td{{text-align:left;padding:.5rem;border-bottom:1px solid #dde;vertical-align:top}}
.sev{{font-weight:bold;padding:.1rem .4rem;border-radius:.2rem}}
.critical{{background:#b00020;color:#fff}} .high{{background:#e63946;color:#fff}}
.medium{{background:#f4a261}} .info{{background:#a8dadc}}
tr.linked{{outline:3px solid #457b9d}} code{{font-size:.8rem;word-break:break-all}}
.flash{{background:#e9f5ec;border:1px solid #2a9d8f;padding:.5rem;margin-bottom:1rem}}
.error{{background:#fdecea;border:1px solid #b00020;padding:.5rem;margin-bottom:1rem}}
form.inline{{display:flex;gap:.3rem}} input[type=text]{{width:14rem}}
</style></head><body>{body}</body></html>"""
    return web.Response(text=doc, content_type="text/html", status=status)


def _refused(title: str, detail: str, status: int = 403) -> web.Response:
    body = f'<main><h1>{html.escape(title)}</h1><p class="error">{html.escape(detail)}</p>'
    body += '<p><a href="/login">Log in</a></p></main>'
    return _page(title, body, status=status)


def _fmt(ts: float | None, zone: ZoneInfo) -> str:
    from datetime import UTC, datetime

    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, UTC).astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


# -- handlers ---------------------------------------------------------------------------------------------------


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def _root(request: web.Request) -> web.Response:
    raise web.HTTPSeeOther("/alerts")


async def _login_form(request: web.Request) -> web.Response:
    nxt = request.query.get("next", "/alerts")
    return _login_page(request, nxt if _NEXT.match(nxt) else "/alerts")


def _login_page(request: web.Request, nxt: str, error: str = "", status: int = 200) -> web.Response:
    pre = request.cookies.get(PRE_COOKIE)
    if not pre or len(pre) > 100:
        pre = new_token()
    csrf = keyed_token(_cfg(request).link_secret, "login", pre)
    err = f'<p class="error">{html.escape(error)}</p>' if error else ""
    body = f"""<header><strong>Safeguarding alerts</strong></header><main>
<h1>Log in</h1>{err}
<form method="post" action="/login" id="login">
<input type="hidden" name="csrf" value="{html.escape(csrf)}">
<input type="hidden" name="next" value="{html.escape(nxt)}">
<p><label>User name <input type="text" name="username" id="username" autocomplete="username" required></label></p>
<p><label>Password <input type="password" name="password" id="password" autocomplete="current-password" required>
</label></p>
<p><button type="submit" id="login-button">Log in</button></p></form></main>"""
    response = _page("Log in", body, status=status)
    response.set_cookie(PRE_COOKIE, pre, httponly=True, samesite="Strict", secure=_secure(request), path="/login")
    return response


async def _login(request: web.Request) -> web.Response:
    cfg, store, clock = _cfg(request), _store(request), request.app[CLOCK_KEY]
    form = await request.post()
    nxt = str(form.get("next", "/alerts"))
    nxt = nxt if _NEXT.match(nxt) else "/alerts"
    pre = request.cookies.get(PRE_COOKIE, "")
    expected = keyed_token(cfg.link_secret, "login", pre) if pre else ""
    if not _same_origin(request) or not expected or not same_token(str(form.get("csrf", "")), expected):
        store.audit(clock(), "anonymous", "csrf_refused", (), "login form")
        return _login_page(request, nxt, "The form expired; please try again.", status=403)
    username = str(form.get("username", ""))[:100]
    password = str(form.get("password", ""))[:1000]
    failures: dict[str, deque[float]] = request.app[FAILURES_KEY]
    recent = failures.setdefault(username, deque(maxlen=cfg.max_failed_logins))
    now = _now(request)
    if len(recent) >= cfg.max_failed_logins and now - recent[0] < cfg.lockout_s:
        store.audit(clock(), username or "anonymous", "login_locked", (), "too many failed attempts")
        return _login_page(request, nxt, "Too many failed attempts; try again later.", status=429)
    user = cfg.users.get(username)
    ok = await asyncio.to_thread(verify_password, password, user.password_hash if user else DUMMY_HASH)
    if not ok or user is None:
        recent.append(now)
        store.audit(clock(), username or "anonymous", "login_failed", (), "")
        return _login_page(request, nxt, "Wrong user name or password.", status=401)
    recent.clear()
    token, csrf = new_token(), new_token()
    store.create_session(token_hash(token), username, user.team, csrf, clock(), cfg.session_ttl_s)
    store.audit(clock(), username, "login", (), f"team {user.team}")
    response = web.HTTPSeeOther(nxt)
    response.set_cookie(
        SESSION_COOKIE, token, httponly=True, samesite="Lax", secure=_secure(request), path="/",
        max_age=int(cfg.session_ttl_s),
    )  # fmt: skip
    response.del_cookie(PRE_COOKIE, path="/login")
    raise response


async def _logout(request: web.Request) -> web.Response:
    found = _session(request)
    form = await request.post()
    if found is None:
        raise web.HTTPSeeOther("/login")
    hashed, session = found
    if not _same_origin(request) or not same_token(str(form.get("csrf", "")), session.csrf):
        return _refused("Refused", "The form was not sent from this page.")
    _store(request).end_session(hashed)
    _store(request).audit(request.app[CLOCK_KEY](), session.user, "logout")
    response = web.HTTPSeeOther("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


async def _link(request: web.Request) -> web.Response:
    cfg, store, clock = _cfg(request), _store(request), request.app[CLOCK_KEY]
    token = request.match_info["token"]
    found = _session(request)
    who = found[1].user if found else "anonymous"
    try:
        claims = verify_link(cfg.link_secret, token, clock())
    except LinkRefused as exc:
        store.audit(clock(), who, "link_refused", (), exc.reason)
        title = "Link expired" if exc.reason == "expired" else "Link not valid"
        detail = (
            "This link has expired. Log in to see your team's open alerts."
            if exc.reason == "expired"
            else "This link is not genuine. Use the link in the message you received, or log in."
        )
        return _refused(title, detail)
    if found is None:
        raise web.HTTPSeeOther(f"/login?next={quote('/l/' + token, safe='')}")
    _, session = found
    if session.team != claims.team:
        store.audit(clock(), session.user, "link_refused", (), f"link for team {claims.team}")
        return _refused("Not your team", "This message was for another team.")
    raise web.HTTPSeeOther(f"/alerts?m={claims.message_id}")


async def _alerts(request: web.Request) -> web.Response:
    found = _session(request)
    if found is None:
        raise web.HTTPSeeOther("/login?next=/alerts")
    _, session = found
    store, cfg, clock = _store(request), _cfg(request), request.app[CLOCK_KEY]
    zone = ZoneInfo(cfg.timezone)
    linked: set[str] = set()
    m = request.query.get("m", "")
    if m.isdigit() and len(m) < 18:
        linked = set(store.message_alert_ids(int(m)))
    records = store.open_alerts(session.team)
    acked = store.recently_acknowledged(session.team, 10)
    store.audit(clock(), session.user, "viewed", [r.alert.alert_id for r in records], f"team {session.team}")
    flash = ""
    done = request.query.get("acked", "")
    if _ALERT_ID.match(done):
        flash = f'<p class="flash" id="flash">Acknowledged alert <code>{html.escape(done)}</code>.</p>'
    problem = request.query.get("error", "")
    if problem in _ERRORS:
        flash += f'<p class="error" id="error">{html.escape(_ERRORS[problem])}</p>'
    rows = "".join(_row(r, session, zone, r.alert.alert_id in linked) for r in records)
    if not rows:
        rows = '<tr><td colspan="6" id="no-alerts">No open alerts for your team.</td></tr>'
    acked_rows = "".join(
        f"<tr><td>{html.escape(r.alert.rule_id)}</td><td><code>{html.escape(r.alert.subject_id)}</code></td>"
        f"<td>{html.escape(r.acked_by or '')}</td><td>{_fmt(r.acked_at.timestamp() if r.acked_at else None, zone)}"
        f"</td><td>{html.escape(r.ack_note or '')}</td></tr>"
        for r in acked
    )
    body = f"""<header><strong>Safeguarding alerts · team {html.escape(session.team)}</strong>
<form method="post" action="/logout" class="inline"><span>{html.escape(session.user)}</span>
<input type="hidden" name="csrf" value="{html.escape(session.csrf)}"><button type="submit">Log out</button></form>
</header><main>{flash}
<h1>Open alerts</h1>
<table id="open-alerts"><thead><tr><th>Severity</th><th>Rule</th><th>Summary</th><th>Pseudonym</th>
<th>Evidence (event ids)</th><th>Acknowledge</th></tr></thead><tbody>{rows}</tbody></table>
<h2>Recently acknowledged</h2>
<table id="acked-alerts"><thead><tr><th>Rule</th><th>Pseudonym</th><th>By</th><th>When</th><th>Note</th></tr></thead>
<tbody>{acked_rows}</tbody></table></main>"""
    return _page(f"Alerts · {session.team}", body)


def _row(record: AlertRecord, session: Session, zone: ZoneInfo, linked: bool) -> str:
    a = record.alert
    aid = html.escape(a.alert_id)
    state = f"escalated to level {record.level}" if record.level else ("not messaged (repeat)" if record.suppressed
                                                                          else "")  # fmt: skip
    evidence = "<br>".join(f"<code>{html.escape(e)}</code>" for e in a.evidence_event_ids)
    triggered = _fmt(a.triggered_at.timestamp(), zone)
    return f"""<tr id="alert-{aid}" class="{"linked" if linked else ""}">
<td><span class="sev {html.escape(a.severity)}">{html.escape(a.severity)}</span><br>
<small>{html.escape(state)}</small></td>
<td>{html.escape(a.rule_id)}<br><small>triggered {triggered}</small></td>
<td>{html.escape(a.summary)}</td>
<td>{html.escape(a.subject_type)}<br><code>{html.escape(a.subject_id)}</code></td>
<td>{evidence}</td>
<td><form method="post" action="/alerts/{aid}/ack" class="ack">
<input type="hidden" name="csrf" value="{html.escape(session.csrf)}">
<input type="text" name="note" maxlength="{MAX_NOTE}" placeholder="note (no names or NHS numbers)" aria-label="note">
<button type="submit" class="ack-button">Acknowledge</button></form></td></tr>"""


_ERRORS = {
    "note": "The note looks like it holds an NHS number or UPN; notes must not identify anyone. Not acknowledged.",
    "gone": "That alert is not an open alert of your team.",
}


async def _ack(request: web.Request) -> web.Response:
    found = _session(request)
    form = await request.post()
    if found is None:
        raise web.HTTPSeeOther("/login")
    _, session = found
    store, clock = _store(request), request.app[CLOCK_KEY]
    alert_id = request.match_info["alert_id"]
    if not _same_origin(request) or not same_token(str(form.get("csrf", "")), session.csrf):
        store.audit(clock(), session.user, "csrf_refused", [alert_id] if _ALERT_ID.match(alert_id) else [], "ack")
        return _refused("Refused", "The form was not sent from this page; nothing was acknowledged.")
    if not _ALERT_ID.match(alert_id):
        raise web.HTTPSeeOther("/alerts?error=gone")
    note = " ".join(str(form.get("note", "")).split())[:MAX_NOTE]
    if _identifying(note):
        store.audit(clock(), session.user, "ack_refused", [alert_id], "note looked identifying")
        raise web.HTTPSeeOther("/alerts?error=note")
    outcome = store.acknowledge(alert_id, session.user, session.team, note or None, clock())
    if outcome == "not_found":
        raise web.HTTPSeeOther("/alerts?error=gone")
    raise web.HTTPSeeOther(f"/alerts?acked={alert_id}")


def _identifying(note: str) -> bool:
    """A note holding an NHS number or a UPN (the checks the contract applies to identifiers)."""
    joined = re.sub(r"(?<=\d)[ -](?=\d)", "", note)  # 943 476 5919 -> 9434765919
    return any(is_nhs_number(w) or is_upn(w) for w in re.findall(r"[A-Za-z0-9]+", joined))
