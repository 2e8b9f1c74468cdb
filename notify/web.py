"""The acknowledgement page (aiohttp): log in, see the team's open alerts, acknowledge with a note.

Security, in order of the request:
- a message's link `/l/<token>` is checked first (HMAC signature, then expiry): a forged or expired link gets
  403 and an audit row, whoever asks;
- every page but the login form needs a session: a random cookie (HttpOnly, SameSite=Lax, Secure when the base
  URL is https) whose SHA-256 is stored with its user, team, CSRF token and expiry;
- every POST carries a CSRF token (the session's, or for the login form one keyed on a pre-session cookie),
  compared in constant time, and a foreign `Origin` is refused;
- failed logins slow later attempts per client and per user name (`notify.security.LoginThrottle`): a waiting
  client gets 429 with Retry-After before its password is looked at, and a clean client is never locked out;
- a manager only ever reads or acknowledges alerts whose routed team is their own (from settings, not the link);
- every login, failed or throttled login, view (one row: page and number shown), acknowledgement, resolution and
  refusal is in the audit table, and so is every silence made or expired (`/silences`);
- an acknowledged alert is resolved on the page with an outcome (`notify.core.OUTCOMES`) and a note (required,
  checked like an acknowledgement note), only by a manager of its team;
- a manager makes overrides and swaps (`/rota`) only for their own team and cancels only their team's; each is
  audited, and the page shows who is on duty now and the team's gaps in cover for the next 14 days;
- a manager makes silences only for their own team (the team matcher is theirs, whatever the form says) and
  expires only silences limited to their team; silences of other scopes are listed but expired with the CLI;
- responses carry a strict Content-Security-Policy, no-store and a same-origin referrer policy (the link token
  never leaves the site; same-origin POSTs still carry their Origin, which is checked).
The page shows rule, severity, summary, pseudonym and evidence event ids: nothing identifying beyond the pseudonym;
a note that holds an identifier (`schemas.identifiers.find_identifiers`) is refused, naming the kind found.

Load: the open alerts come a page at a time (`page_size`, most severe first), and every store call and the
rendering of a page run in the app's own small thread pool, never on the event loop, so a flood of views queues
there while `/healthz`, logins and the service's own work carry on.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import html
import logging
import math
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import ParamSpec, TypeVar
from urllib.parse import quote, urlencode, urlsplit
from zoneinfo import ZoneInfo

from aiohttp import web

from notify.core import OUTCOMES, outcome_of
from notify.cover import CHANGE_ID, RotaChange, chain_at, check_change, coverage
from notify.evidence import Evidence, EvidenceSource, timeline
from notify.holds import (
    SEVERITIES,
    SILENCE_ID,
    Silence,
    check_matchers,
    check_reason,
    check_silence,
    describe_matchers,
    matchers_of,
)
from notify.rota import Rota
from notify.security import (
    DUMMY_HASH,
    LinkRefused,
    LoginThrottle,
    Throttled,
    ThrottlePolicy,
    client_address,
    client_key,
    keyed_token,
    new_token,
    same_token,
    token_hash,
    verify_link,
    verify_password,
)
from notify.store import AlertFilter, AlertPage, AlertRecord, NotifyStore, Session
from safeguard.clock import Clock
from schemas.identifiers import (
    DATE_OF_BIRTH,
    NHS_NUMBER,
    PERSON_NAME,
    PHONE_NUMBER,
    POSTCODE,
    STREET_ADDRESS,
    UPN,
    find_identifiers,
)

log = logging.getLogger(__name__)

SESSION_COOKIE = "sg_session"
PRE_COOKIE = "sg_pre"
MAX_NOTE = 1000
_NEXT = re.compile(r"^/(l/[A-Za-z0-9_\-.]{1,2000}|alerts)$")
_ALERT_ID = re.compile(r"^[0-9a-f]{16,64}$")
_PAGE_NUMBER = re.compile(r"^[0-9]{1,9}$")
_MESSAGE_ID = re.compile(r"^[0-9]{1,17}$")
_RULE_ID = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_PSEUDONYM_PREFIX = re.compile(r"^[0-9a-f]{4,64}$")

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
    throttle: ThrottlePolicy = field(default_factory=ThrottlePolicy)
    page_size: int = 50
    page_threads: int = 2  # SQLite reads and page rendering; more would only contend for the GIL
    trusted_proxies: frozenset[str] = frozenset()  # addresses whose X-Forwarded-For names the client
    known_rules: frozenset[str] | None = None  # rule ids a silence may name (None: the rule catalogue's)
    rota: Callable[[], Rota] | None = None  # the rota in use (it may be reloaded); None: no rota page
    channels: frozenset[str] | None = None  # the enabled channels, for the coverage check (None: any)
    evidence: EvidenceSource | None = None  # evidence events for the timeline (None: the ids alone)

    def rule_ids(self) -> frozenset[str]:
        if self.known_rules is not None:
            return self.known_rules
        from streams.rules.definitions import RULES_BY_ID

        return frozenset(RULES_BY_ID)


STORE_KEY = web.AppKey("store", NotifyStore)
CONFIG_KEY = web.AppKey("config", WebConfig)
CLOCK_KEY: web.AppKey[Clock] = web.AppKey("clock")
THROTTLE_KEY = web.AppKey("throttle", LoginThrottle)
EXECUTOR_KEY = web.AppKey("executor", ThreadPoolExecutor)
LOCKS_KEY: web.AppKey[KeyedLocks] = web.AppKey("login_locks")


class KeyedLocks:
    """An asyncio lock per key, kept only while someone holds or waits for it (the dict never outgrows the
    requests in flight). Login attempts of one client are considered one after another, so concurrent guesses
    cannot all pass the throttle before the first failure is recorded."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, holders = self._locks.get(key, (None, 0))
        lock = lock or asyncio.Lock()
        self._locks[key] = (lock, holders + 1)
        try:
            async with lock:
                yield
        finally:
            lock, holders = self._locks[key]
            if holders == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, holders - 1)

    def __len__(self) -> int:
        return len(self._locks)


def make_app(store: NotifyStore, config: WebConfig, clock: Clock) -> web.Application:
    """The page as an aiohttp application (the service runs it; tests may too)."""
    app = web.Application(middlewares=[_headers], client_max_size=64 * 1024)
    app[STORE_KEY] = store
    app[CONFIG_KEY] = config
    app[CLOCK_KEY] = clock
    app[THROTTLE_KEY] = LoginThrottle(config.throttle, config.users)
    app[LOCKS_KEY] = KeyedLocks()
    # threads start on first use and end at cleanup, before the service closes the store
    app[EXECUTOR_KEY] = ThreadPoolExecutor(max(1, config.page_threads), thread_name_prefix="notify-page")
    app.on_cleanup.append(_stop_executor)
    app.add_routes(
        [
            web.get("/", _root),
            web.get("/login", _login_form),
            web.post("/login", _login),
            web.post("/logout", _logout),
            web.get("/l/{token}", _link),
            web.get("/alerts", _alerts),
            web.post("/alerts/{alert_id}/ack", _ack),
            web.post("/alerts/{alert_id}/resolve", _resolve),
            web.get("/silences", _silences),
            web.post("/silences", _create_silence),
            web.post("/silences/{silence_id}/expire", _expire_silence),
            web.get("/rota", _rota_page),
            web.post("/rota/changes", _create_change),
            web.post("/rota/changes/{change_id}/cancel", _cancel_change),
            web.get("/healthz", _health),
        ]
    )
    return app


async def _stop_executor(app: web.Application) -> None:
    await asyncio.to_thread(app[EXECUTOR_KEY].shutdown, True, cancel_futures=True)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
P = ParamSpec("P")
T = TypeVar("T")


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


async def _off_loop(request: web.Request, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`fn(*args)` in the page's thread pool: SQLite and rendering never run on the event loop."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(request.app[EXECUTOR_KEY], functools.partial(fn, *args, **kwargs))


async def _audit(
    request: web.Request, actor: str, action: str, alert_ids: tuple[str, ...] = (), detail: str = ""
) -> None:
    await _off_loop(request, _store(request).audit, request.app[CLOCK_KEY](), actor, action, alert_ids, detail)


def _secure(request: web.Request) -> bool:
    return _cfg(request).base_url.startswith("https://")


def _client(request: web.Request) -> str:
    forwarded = request.headers.get("X-Forwarded-For", "")
    return client_key(client_address(request.remote, forwarded, _cfg(request).trusted_proxies))


async def _session(request: web.Request) -> tuple[str, Session] | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token or len(token) > 200:
        return None
    hashed = token_hash(token)
    session = await _off_loop(request, _store(request).session, hashed, request.app[CLOCK_KEY]())
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
    return web.Response(text=_document(title, body), content_type="text/html", status=status)


def _document(title: str, body: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="referrer" content="same-origin"><title>{html.escape(title)}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1b1f24;line-height:1.4}}
header{{background:#1d3557;color:#fff;padding:.8rem 1.5rem;display:flex;justify-content:space-between;
align-items:center;flex-wrap:wrap;gap:.5rem}}
header nav{{display:flex;gap:1rem}}
main{{padding:1rem 1.5rem;max-width:70rem}}
table{{border-collapse:collapse;width:100%;background:#fff}}
th,td{{text-align:left;padding:.5rem;border-bottom:1px solid #dde;vertical-align:top}}
.sev{{font-weight:bold;padding:.1rem .4rem;border-radius:.2rem}}
.critical{{background:#b00020;color:#fff}} .high{{background:#c1121f;color:#fff}}
.medium{{background:#f4a261;color:#1b1f24}} .info{{background:#a8dadc;color:#1b1f24}}
tr.linked{{outline:3px solid #457b9d}} code{{font-size:.8rem;word-break:break-all}}
.flash{{background:#e9f5ec;border:1px solid #2a9d8f;padding:.5rem;margin-bottom:1rem}}
.error{{background:#fdecea;border:1px solid #b00020;padding:.5rem;margin-bottom:1rem}}
form.inline{{display:flex;gap:.3rem;align-items:center}} input[type=text]{{width:14rem;max-width:100%}}
header a{{color:#fff}} .held{{color:#5a3d82}} fieldset{{border:1px solid #dde;background:#fff;margin-bottom:1rem}}
nav.pages{{display:flex;gap:1rem;align-items:center;margin:.6rem 0;flex-wrap:wrap}}
button,select,input{{font:inherit;min-height:2.2rem}} button{{cursor:pointer}}
a:focus-visible,button:focus-visible,input:focus-visible,select:focus-visible{{outline:3px solid #ffbf47;
outline-offset:2px}}
.skip{{position:absolute;left:-999px}} .skip:focus{{left:.5rem;top:.5rem;background:#fff;color:#1d3557;padding:.4rem;
z-index:9}}
form.filters{{display:flex;flex-wrap:wrap;gap:.6rem;align-items:flex-end;margin:.6rem 0}}
form.filters label{{display:flex;flex-direction:column;font-size:.9rem}}
ol.evidence{{margin:0;padding-left:1.1rem}} ol.evidence li{{margin-bottom:.2rem}} .muted{{color:#4a5560}}
@media (max-width:40rem){{
main{{padding:.6rem}} header{{padding:.6rem}}
table,thead,tbody,tr,th,td{{display:block}} thead{{position:absolute;left:-9999px}}
tr{{border:1px solid #dde;border-radius:.3rem;margin-bottom:.8rem;background:#fff}}
td{{border-bottom:none;padding:.35rem .6rem}}
td[data-label]::before{{content:attr(data-label);display:block;font-size:.75rem;font-weight:bold;color:#4a5560;
text-transform:uppercase}}
input[type=text],select{{width:100%}} button{{min-height:2.75rem;width:100%}}
form.inline button{{width:auto}} form.filters label{{width:100%}}
}}
</style></head><body><a class="skip" href="#content">Skip to content</a>{body}</body></html>"""


def _refused(title: str, detail: str, status: int = 403) -> web.Response:
    body = f'<main id="content"><h1>{html.escape(title)}</h1><p class="error">{html.escape(detail)}</p>'
    body += '<p><a href="/login">Log in</a></p></main>'
    return _page(title, body, status=status)


def _fmt(ts: float | None, zone: ZoneInfo) -> str:
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
    err = f'<p class="error" id="login-error">{html.escape(error)}</p>' if error else ""
    body = f"""<header><strong>Safeguarding alerts</strong></header><main id="content">
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
        await _audit(request, "anonymous", "csrf_refused", (), "login form")
        return _login_page(request, nxt, "The form expired; please try again.", status=403)
    username = str(form.get("username", ""))[:100]
    password = str(form.get("password", ""))[:1000]
    client = _client(request)
    throttle, locks = request.app[THROTTLE_KEY], request.app[LOCKS_KEY]
    async with contextlib.AsyncExitStack() as held:
        # one attempt per client at a time; and per name, for clients that failed recently (a clean client never
        # waits behind an attacker's attempts on the same name)
        await held.enter_async_context(locks.hold(f"client {client}"))
        if not throttle.is_clean(client, _now(request)):
            await held.enter_async_context(locks.hold(f"user {username}"))
        refusal = throttle.check(client, username, _now(request))
        if refusal is not None:
            return await _throttled(request, nxt, username, client, refusal)
        user = cfg.users.get(username)
        ok = await asyncio.to_thread(verify_password, password, user.password_hash if user else DUMMY_HASH)
        if not ok or user is None:
            throttle.failed(client, username, _now(request))
            await _audit(request, username or "anonymous", "login_failed", (), f"from {client}")
            return _login_page(request, nxt, "Wrong user name or password.", status=401)
    token, csrf = new_token(), new_token()
    await _off_loop(request, store.create_session, token_hash(token), username, user.team, csrf, clock(),
                    cfg.session_ttl_s)  # fmt: skip
    await _audit(request, username, "login", (), f"team {user.team}")
    response = web.HTTPSeeOther(nxt)
    response.set_cookie(
        SESSION_COOKIE, token, httponly=True, samesite="Lax", secure=_secure(request), path="/",
        max_age=int(cfg.session_ttl_s),
    )  # fmt: skip
    response.del_cookie(PRE_COOKIE, path="/login")
    raise response


async def _throttled(request: web.Request, nxt: str, username: str, client: str, refusal: Throttled) -> web.Response:
    """429 with Retry-After; the first refusal of a wait is audited (a client hammering during its wait would
    otherwise write an audit row per request)."""
    seconds = max(1, math.ceil(refusal.retry_after_s))
    if refusal.first:
        detail = f"from {client}: {refusal.scope} delay, {seconds} s left (further attempts in this wait not audited)"
        await _audit(request, username or "anonymous", "login_throttled", (), detail)
    response = _login_page(request, nxt, f"Too many failed attempts; try again in {seconds} seconds.", status=429)
    response.headers["Retry-After"] = str(seconds)
    return response


async def _logout(request: web.Request) -> web.Response:
    found = await _session(request)
    form = await request.post()
    if found is None:
        raise web.HTTPSeeOther("/login")
    hashed, session = found
    if not _same_origin(request) or not same_token(str(form.get("csrf", "")), session.csrf):
        return _refused("Refused", "The form was not sent from this page.")
    await _off_loop(request, _store(request).end_session, hashed)
    await _audit(request, session.user, "logout")
    response = web.HTTPSeeOther("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


async def _link(request: web.Request) -> web.Response:
    cfg, clock = _cfg(request), request.app[CLOCK_KEY]
    token = request.match_info["token"]
    found = await _session(request)
    who = found[1].user if found else "anonymous"
    try:
        claims = verify_link(cfg.link_secret, token, clock())
    except LinkRefused as exc:
        await _audit(request, who, "link_refused", (), exc.reason)
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
        await _audit(request, session.user, "link_refused", (), f"link for team {claims.team}")
        return _refused("Not your team", "This message was for another team.")
    raise web.HTTPSeeOther(f"/alerts?m={claims.message_id}")


# -- the alerts page ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ViewQuery:
    """What `/alerts?…` asks for, validated: anything malformed is as if absent."""

    page: int | None = None  # None: the page of the linked message's first open alert, else the first
    message: int | None = None  # `m`: the message whose link was followed (its alerts are highlighted)
    acked: str = ""  # an alert id just acknowledged
    resolved: str = ""  # an alert id just resolved
    error: str = ""  # a key of _ERRORS
    kinds: tuple[str, ...] = ()  # for error "note": codes of the kinds of identifier found
    severity: str = ""  # filters: one severity, one rule, a pseudonym's first characters (4 to 64 hex)
    rule: str = ""
    q: str = ""

    @property
    def filters(self) -> AlertFilter:
        return AlertFilter(self.severity, self.rule, self.q)

    def filter_params(self) -> dict[str, str]:
        """The filters as query parameters (kept by the pager and the forms)."""
        return {k: v for k, v in (("severity", self.severity), ("rule", self.rule), ("q", self.q)) if v}

    @classmethod
    def parse(cls, query: Mapping[str, str]) -> ViewQuery:
        page, m = query.get("page", ""), query.get("m", "")
        acked, error = query.get("acked", ""), query.get("error", "")
        resolved = query.get("resolved", "")
        severity, rule = query.get("severity", ""), query.get("rule", "")
        q = query.get("q", "").strip().lower()
        kinds = tuple(k for k in query.get("kinds", "").split(",")[:8] if k in _CODE_KINDS)
        return cls(
            page=int(page) if _PAGE_NUMBER.match(page) else None,
            message=int(m) if _MESSAGE_ID.match(m) else None,
            acked=acked if _ALERT_ID.match(acked) else "",
            resolved=resolved if _ALERT_ID.match(resolved) else "",
            error=error if error in _ERRORS else "",
            kinds=kinds,
            severity=severity if severity in SEVERITIES else "",
            rule=rule if _RULE_ID.match(rule) else "",
            q=q if _PSEUDONYM_PREFIX.match(q) else "",
        )


async def _alerts(request: web.Request) -> web.Response:
    found = await _session(request)
    if found is None:
        raise web.HTTPSeeOther("/login?next=/alerts")
    _, session = found
    view = ViewQuery.parse(request.query)
    doc = await _off_loop(request, _alerts_document, _store(request), _cfg(request), session, view,
                          request.app[CLOCK_KEY]())  # fmt: skip
    return web.Response(text=doc, content_type="text/html")


def _alerts_document(store: NotifyStore, cfg: WebConfig, session: Session, view: ViewQuery, now: datetime) -> str:
    """The whole alerts page for one view, and its audit row. Runs in the page's thread pool."""
    zone = ZoneInfo(cfg.timezone)
    shown = store.alerts_page(session.team, view.page, cfg.page_size, view.message, view.filters)
    wanted = [e for r in shown.records for e in r.alert.evidence_event_ids]
    found = cfg.evidence.lookup(wanted) if cfg.evidence is not None and wanted else {}
    acked = store.unresolved(session.team, 50)
    resolved = store.recently_resolved(session.team, 10)
    store.audit(
        now, session.user, "viewed", (),
        f"team {session.team}, page {shown.page} of {shown.pages}, {len(shown.records)} of {shown.total} shown"
        + (f" (filtered: {', '.join(f'{k}={v}' for k, v in view.filter_params().items())})" if view.filters.active
           else ""),
    )  # fmt: skip
    flash = ""
    if view.acked:
        flash = f'<p class="flash" id="flash">Acknowledged alert <code>{html.escape(view.acked)}</code>.</p>'
    if view.resolved:
        flash = f'<p class="flash" id="flash">Resolved alert <code>{html.escape(view.resolved)}</code>.</p>'
    if view.error:
        flash += f'<p class="error" id="error">{html.escape(_error_text(view))}</p>'
    linked_here = sum(r.alert.alert_id in shown.linked for r in shown.records)
    if shown.linked_open > linked_here:
        flash += '<p class="flash" id="linked-elsewhere">Some of this message\'s open alerts are on other pages.</p>'
    rows = "".join(
        _row(r, session, zone, r.alert.alert_id in shown.linked, shown.page, found, view) for r in shown.records
    )
    if not rows:
        none = "No open alerts match the filters." if view.filters.active else "No open alerts for your team."
        rows = f'<tr><td colspan="6" id="no-alerts">{none}</td></tr>'
    acked_rows = "".join(_acked_row(r, session, zone, shown.page) for r in acked)
    if not acked_rows:
        acked_rows = '<tr><td colspan="6" id="none-to-resolve">Nothing acknowledged waits to be resolved.</td></tr>'
    resolved_rows = "".join(
        f'<tr id="resolved-{html.escape(r.alert.alert_id)}"><td>{html.escape(r.alert.rule_id)}</td>'
        f"<td><code>{html.escape(r.alert.subject_id)}</code></td>"
        f"<td>{html.escape(OUTCOMES[r.outcome] if r.outcome else '')}</td><td>{html.escape(r.resolved_by or '')}</td>"
        f"<td>{_fmt(r.resolved_at.timestamp() if r.resolved_at else None, zone)}</td>"
        f"<td>{html.escape(r.resolve_note or '')}</td></tr>"
        for r in resolved
    )
    pager, pager_below = _pager(shown, view, "above"), _pager(shown, view, "below")
    body = f"""<header><strong>Safeguarding alerts · team {html.escape(session.team)}</strong>
<nav aria-label="pages of the site"><a href="/silences" id="silences-link">Silences</a>
<a href="/rota" id="rota-link">Rota</a></nav>
<form method="post" action="/logout" class="inline"><span>{html.escape(session.user)}</span>
<input type="hidden" name="csrf" value="{html.escape(session.csrf)}"><button type="submit">Log out</button></form>
</header><main id="content">{flash}
<h1>Open alerts</h1>{_filter_form(view, cfg)}{pager}
<table id="open-alerts"><thead><tr><th>Severity</th><th>Rule</th><th>Summary</th><th>Pseudonym</th>
<th>Evidence</th><th>Acknowledge</th></tr></thead><tbody>{rows}</tbody></table>{pager_below}
<h2>Acknowledged, to resolve</h2>
<p>Resolve an alert with its outcome once it is dealt with. High and critical alerts left unresolved are messaged
again.</p>
<table id="acked-alerts"><thead><tr><th>Rule</th><th>Pseudonym</th><th>By</th><th>When</th><th>Note</th>
<th>Resolve</th></tr></thead>
<tbody>{acked_rows}</tbody></table>
<h2>Recently resolved</h2>
<table id="resolved-alerts"><thead><tr><th>Rule</th><th>Pseudonym</th><th>Outcome</th><th>By</th><th>When</th>
<th>Note</th></tr></thead><tbody>{resolved_rows}</tbody></table></main>"""
    return _document(f"Alerts · {session.team}", body)


def _alerts_url(**params: object) -> str:
    given = {k: v for k, v in params.items() if v not in (None, "")}
    return "/alerts?" + urlencode(given) if given else "/alerts"


def _pager(shown: AlertPage, view: ViewQuery, where: str = "above") -> str:
    """Previous / next links (keeping a followed message's highlight) and where this page is."""
    page, pages = shown.page, shown.pages

    def link(to: int, text: str, rel: str) -> str:
        href = html.escape(_alerts_url(page=to, m=view.message, **view.filter_params()))
        return f'<a href="{href}" rel="{rel}" class="{rel}-page">{text}</a>'

    prev = link(page - 1, "← Previous", "prev") if page > 1 else "<span>← Previous</span>"
    nxt = link(page + 1, "Next →", "next") if page < pages else "<span>Next →</span>"
    count = f"{shown.total} open alert{'' if shown.total == 1 else 's'}"
    return (
        f'<nav class="pages" aria-label="pages of open alerts ({where} the table)">{prev}'
        f'<span class="page-status">Page {page} of {pages} · {count}</span>{nxt}</nav>'
    )


def _filter_form(view: ViewQuery, cfg: WebConfig) -> str:
    """Filters of the open alerts (a GET form: the filters are in the address, so they can be bookmarked)."""
    severities = "".join(
        f'<option value="{s}"{" selected" if view.severity == s else ""}>{s}</option>' for s in SEVERITIES
    )
    rules = "".join(
        f'<option value="{html.escape(r)}"{" selected" if view.rule == r else ""}>{html.escape(r)}</option>'
        for r in sorted(cfg.rule_ids())
    )
    clear = ' <a href="/alerts" id="clear-filters">Clear filters</a>' if view.filters.active else ""
    return f"""<form method="get" action="/alerts" class="filters" id="filters" role="search">
<label>Severity <select name="severity" id="filter-severity"><option value="">any</option>{severities}</select></label>
<label>Rule <select name="rule" id="filter-rule"><option value="">any</option>{rules}</select></label>
<label>Pseudonym starts with <input type="text" name="q" id="filter-q" value="{html.escape(view.q)}" maxlength="64"
inputmode="latin" autocomplete="off" spellcheck="false"></label>
<button type="submit" id="filter-button">Filter</button>{clear}</form>"""


def _evidence(event_ids: list[str], found: Mapping[str, Evidence], zone: ZoneInfo) -> str:
    """The evidence timeline: each event's type, time and agency in time order; ids not (yet) in the store after."""
    items = []
    for event_id, ev in timeline(event_ids, found):
        if ev is None:
            items.append(f'<li><code>{html.escape(event_id)}</code> <small class="muted">(not in the store yet)'
                         "</small></li>")  # fmt: skip
            continue
        agency = f"{ev.agency_type} {ev.agency_code}".strip()
        items.append(
            f'<li class="evidence-event"><strong>{html.escape(ev.event_type)}</strong> '
            f"<time>{_fmt(ev.occurred_at.timestamp(), zone)}</time> · {html.escape(agency)}</li>"
        )
    return f'<ol class="evidence">{"".join(items)}</ol>'


def _row(
    record: AlertRecord, session: Session, zone: ZoneInfo, linked: bool, page: int,
    found: Mapping[str, Evidence] | None = None, view: ViewQuery | None = None,
) -> str:  # fmt: skip
    a = record.alert
    aid = html.escape(a.alert_id)
    state = f"escalated to level {record.level}" if record.level else ("not messaged (repeat)" if record.suppressed
                                                                          else "")  # fmt: skip
    held = ""
    if record.held_kind is not None:
        until = _fmt(record.held_until.timestamp() if record.held_until else None, zone)
        label = "silenced" if record.held_kind == "silence" else "held back (inhibited)"
        held = (
            f'<br><small class="held {html.escape(record.held_kind)}" '
            f'data-held-by="{html.escape(record.held_by or "")}">'
            f"{label}, not messaged yet: {html.escape(record.held_note or '')}; looked at again {until}</small>"
        )
    evidence = _evidence(list(a.evidence_event_ids), found or {}, zone)
    triggered = _fmt(a.triggered_at.timestamp(), zone)
    keep = "".join(
        f'<input type="hidden" name="{k}" value="{html.escape(v)}">'
        for k, v in (view.filter_params() if view else {}).items()
    )
    return f"""<tr id="alert-{aid}" class="{"linked" if linked else ""}">
<td data-label="Severity"><span class="sev {html.escape(a.severity)}">{html.escape(a.severity)}</span><br>
<small>{html.escape(state)}</small>{held}</td>
<td data-label="Rule">{html.escape(a.rule_id)}<br><small>triggered {triggered}</small></td>
<td data-label="Summary">{html.escape(a.summary)}</td>
<td data-label="Pseudonym">{html.escape(a.subject_type)}<br><code>{html.escape(a.subject_id)}</code></td>
<td data-label="Evidence">{evidence}</td>
<td data-label="Acknowledge"><form method="post" action="/alerts/{aid}/ack" class="ack">
<input type="hidden" name="csrf" value="{html.escape(session.csrf)}"><input type="hidden" name="page" value="{page}">
{keep}<input type="text" name="note" maxlength="{MAX_NOTE}" placeholder="note (no names, addresses or NHS numbers)"
aria-label="acknowledgement note for {html.escape(a.rule_id)} alert {aid[:8]}">
<button type="submit" class="ack-button">Acknowledge</button></form></td></tr>"""


_ERRORS = {
    "note": "The note looks like it holds {kinds}; notes must not identify anyone. Not acknowledged.",
    "gone": "That alert is not an open alert of your team.",
    "rnote": "The note looks like it holds {kinds}; notes must not identify anyone. Not resolved.",
    "outcome": "Choose the outcome and write a note to resolve an alert. Not resolved.",
    "notacked": "That alert is not an acknowledged alert of your team waiting to be resolved.",
}
# The kinds find_identifiers reports, by the short code that carries them in the redirect (never the value found).
_KIND_CODES = {
    NHS_NUMBER: "nhs",
    UPN: "upn",
    POSTCODE: "postcode",
    PERSON_NAME: "name",
    STREET_ADDRESS: "address",
    PHONE_NUMBER: "phone",
    DATE_OF_BIRTH: "dob",
}
_CODE_KINDS = {code: kind for kind, code in _KIND_CODES.items()} | {"other": "an identifier"}


def _error_text(view: ViewQuery) -> str:
    kinds = [_CODE_KINDS[k] for k in view.kinds] or ["an identifier"]
    listed = kinds[0] if len(kinds) == 1 else ", ".join(kinds[:-1]) + " and " + kinds[-1]
    return _ERRORS[view.error].format(kinds=listed)


def identifier_kinds(note: str) -> list[str]:
    """The kinds of identifier in an acknowledgement note (`an NHS number`, `a street address`, …), each once."""
    kinds: list[str] = []
    for match in find_identifiers(note, context="text"):
        if match.kind not in kinds:
            kinds.append(match.kind)
    return kinds


async def _ack(request: web.Request) -> web.Response:
    found = await _session(request)
    form = await request.post()
    if found is None:
        raise web.HTTPSeeOther("/login")
    _, session = found
    store, clock = _store(request), request.app[CLOCK_KEY]
    alert_id = request.match_info["alert_id"]
    if not _same_origin(request) or not same_token(str(form.get("csrf", "")), session.csrf):
        await _audit(request, session.user, "csrf_refused", (alert_id,) if _ALERT_ID.match(alert_id) else (), "ack")
        return _refused("Refused", "The form was not sent from this page; nothing was acknowledged.")
    page_field = str(form.get("page", ""))
    page = int(page_field) if _PAGE_NUMBER.match(page_field) else None
    if not _ALERT_ID.match(alert_id):
        raise web.HTTPSeeOther(_alerts_url(page=page, error="gone"))
    note = " ".join(str(form.get("note", "")).split())[:MAX_NOTE]
    kinds = identifier_kinds(note)
    if kinds:
        await _audit(request, session.user, "ack_refused", (alert_id,), "note looked identifying: " + ", ".join(kinds))
        codes = ",".join(_KIND_CODES.get(kind, "other") for kind in kinds)
        raise web.HTTPSeeOther(_alerts_url(page=page, error="note", kinds=codes))
    outcome = await _off_loop(request, store.acknowledge, alert_id, session.user, session.team, note or None, clock())
    kept = ViewQuery.parse({k: str(form.get(k, "")) for k in ("severity", "rule", "q")}).filter_params()
    if outcome == "not_found":
        raise web.HTTPSeeOther(_alerts_url(page=page, error="gone", **kept))
    raise web.HTTPSeeOther(_alerts_url(page=page, acked=alert_id, **kept))


def _acked_row(record: AlertRecord, session: Session, zone: ZoneInfo, page: int) -> str:
    """An acknowledged alert waiting to be resolved, with the form that resolves it (outcome and note)."""
    a = record.alert
    aid = html.escape(a.alert_id)
    options = "".join(f'<option value="{o}">{html.escape(text)}</option>' for o, text in OUTCOMES.items())
    reminded = f"<br><small>reminded {record.reminders} times</small>" if record.reminders else ""
    acked_at = _fmt(record.acked_at.timestamp() if record.acked_at else None, zone)
    return f"""<tr id="acked-{aid}"><td><span class="sev {html.escape(a.severity)}">{html.escape(a.severity)}</span>
{html.escape(a.rule_id)}{reminded}</td><td><code>{html.escape(a.subject_id)}</code></td>
<td>{html.escape(record.acked_by or "")}</td><td>{acked_at}</td>
<td>{html.escape(record.ack_note or "")}</td>
<td><form method="post" action="/alerts/{aid}/resolve" class="resolve">
<input type="hidden" name="csrf" value="{html.escape(session.csrf)}"><input type="hidden" name="page" value="{page}">
<label>Outcome <select name="outcome" class="resolve-outcome" required><option value="">choose…</option>{options}
</select></label> <label>Note <input type="text" name="note" class="resolve-note" maxlength="{MAX_NOTE}" required
placeholder="no names, addresses or NHS numbers"></label>
<button type="submit" class="resolve-button">Resolve</button></form></td></tr>"""


async def _resolve(request: web.Request) -> web.Response:
    found = await _session(request)
    form = await request.post()
    if found is None:
        raise web.HTTPSeeOther("/login")
    _, session = found
    store, clock = _store(request), request.app[CLOCK_KEY]
    alert_id = request.match_info["alert_id"]
    if not _same_origin(request) or not same_token(str(form.get("csrf", "")), session.csrf):
        ids = (alert_id,) if _ALERT_ID.match(alert_id) else ()
        await _audit(request, session.user, "csrf_refused", ids, "resolve")
        return _refused("Refused", "The form was not sent from this page; nothing was resolved.")
    page_field = str(form.get("page", ""))
    page = int(page_field) if _PAGE_NUMBER.match(page_field) else None
    if not _ALERT_ID.match(alert_id):
        raise web.HTTPSeeOther(_alerts_url(page=page, error="notacked"))
    outcome = outcome_of(str(form.get("outcome", ""))[:40])
    note = " ".join(str(form.get("note", "")).split())[:MAX_NOTE]
    if outcome is None or not note:
        raise web.HTTPSeeOther(_alerts_url(page=page, error="outcome"))
    kinds = identifier_kinds(note)
    if kinds:
        await _audit(request, session.user, "resolve_refused", (alert_id,),
                     "note looked identifying: " + ", ".join(kinds))  # fmt: skip
        codes = ",".join(_KIND_CODES.get(kind, "other") for kind in kinds)
        raise web.HTTPSeeOther(_alerts_url(page=page, error="rnote", kinds=codes))
    record = await _off_loop(request, store.alert, alert_id)
    if record is None or record.team != session.team or record.acked_at is None or record.resolved:
        raise web.HTTPSeeOther(_alerts_url(page=page, error="notacked"))
    result = await _off_loop(request, store.resolve, alert_id, session.user, session.team, outcome, note, clock())
    if result != "resolved":
        raise web.HTTPSeeOther(_alerts_url(page=page, error="notacked"))
    raise web.HTTPSeeOther(_alerts_url(page=page, resolved=alert_id))


# -- silences ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SilenceForm:
    """What the silence form asked for, checked: a silence to make, or the problems (and the fields to show again)."""

    values: Mapping[str, str]
    severities: tuple[str, ...]
    silence: Silence | None
    problems: tuple[str, ...]


def parse_silence_form(
    fields: Mapping[str, list[str]], team: str, author: str, now: datetime, zone: ZoneInfo, rules: frozenset[str],
    silence_id: str,
) -> SilenceForm:  # fmt: skip
    """The form's fields (each a list: severities are checkboxes) → a silence limited to `team`. Times are
    `YYYY-MM-DDTHH:MM` wall-clock times in the rota's timezone; an empty start is now."""
    one = {k: (v[0] if v else "").strip()[:600] for k, v in fields.items()}
    severities = tuple(v for v in fields.get("severity", []) if v in SEVERITIES)
    problems: list[str] = []
    given: dict[str, list[str]] = {"team": [team]}
    if one.get("rule"):
        given["rule"] = [one["rule"]]
    if severities:
        given["severity"] = list(severities)
    if len(severities) != len(fields.get("severity", [])):
        problems.append("an unknown severity was sent")
    if one.get("la_code"):
        given["la"] = [one["la_code"]]
    if one.get("subject"):
        given["subject"] = [one["subject"].lower()]
    start = _local_time(one.get("start", ""), zone, "start", problems) if one.get("start") else now
    end = _local_time(one.get("end", ""), zone, "end", problems) if one.get("end") else None
    if not one.get("end"):
        problems.append("the end is required")
    matchers = matchers_of(given)
    if not any(f != "team" for f, _ in matchers):
        problems.append("choose at least one of rule, severity, LA code or pseudonym (a silence of a whole team's "
                        "alerts must be made with the command line)")  # fmt: skip
    reason = " ".join(one.get("reason", "").split())
    if start is not None and end is not None:
        problems += check_silence(matchers, start, end, reason, author, now, known_rules=rules, teams=[team])
    else:
        problems += check_matchers(matchers, known_rules=rules, teams=[team]) + check_reason(reason)
    if problems or start is None or end is None:
        return SilenceForm(one, severities, None, tuple(dict.fromkeys(problems)))
    return SilenceForm(one, severities, Silence(silence_id, matchers, start, end, reason, author, now), ())


def _local_time(text: str, zone: ZoneInfo, what: str, problems: list[str]) -> datetime | None:
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        problems.append(f"{what} {text[:40]!r} is not a date and time (YYYY-MM-DD HH:MM)")
        return None
    return at.replace(tzinfo=zone) if at.tzinfo is None else at


_SILENCE_FIELDS = ("rule", "severity", "la_code", "subject", "start", "end", "reason")


_SILENCE_MESSAGES = {
    "created": "Silence {id} made. Matching alerts are shown here and on the alerts page, and messaged if still "
    "open when it ends.",
    "expired": "Silence {id} expired. The alerts it held that are still open are messaged now.",
    "notyours": "That silence is not limited to your team; expire it with `safeguard notify silence expire`.",
    "gone": "No such silence, or it is already over.",
}


async def _silences(request: web.Request) -> web.Response:
    found = await _session(request)
    if found is None:
        raise web.HTTPSeeOther("/login?next=/alerts")
    _, session = found
    shown = request.query.get("shown", "")
    sid = request.query.get("id", "")
    message = ""
    if shown in _SILENCE_MESSAGES and (not sid or SILENCE_ID.match(sid)):
        cls = "flash" if shown in ("created", "expired") else "error"
        message = f'<p class="{cls}" id="{shown}">{html.escape(_SILENCE_MESSAGES[shown].format(id=sid))}</p>'
    doc = await _off_loop(request, _silences_document, _store(request), _cfg(request), session,
                          request.app[CLOCK_KEY](), message, None)  # fmt: skip
    return web.Response(text=doc, content_type="text/html")


async def _create_silence(request: web.Request) -> web.Response:
    found = await _session(request)
    form = await request.post()
    if found is None:
        raise web.HTTPSeeOther("/login")
    _, session = found
    store, cfg, now = _store(request), _cfg(request), request.app[CLOCK_KEY]()
    if not _same_origin(request) or not same_token(str(form.get("csrf", "")), session.csrf):
        await _audit(request, session.user, "csrf_refused", (), "silence form")
        return _refused("Refused", "The form was not sent from this page; no silence was made.")
    fields = {k: [str(v) for v in form.getall(k, [])] for k in _SILENCE_FIELDS}
    parsed = parse_silence_form(fields, session.team, session.user, now, ZoneInfo(cfg.timezone), cfg.rule_ids(),
                                secrets.token_hex(6))  # fmt: skip
    if parsed.silence is None:
        doc = await _off_loop(request, _silences_document, store, cfg, session, now, "", parsed)
        return web.Response(text=doc, content_type="text/html", status=400)
    await _off_loop(request, store.create_silence, parsed.silence, "page")
    raise web.HTTPSeeOther(f"/silences?shown=created&id={parsed.silence.silence_id}")


async def _expire_silence(request: web.Request) -> web.Response:
    found = await _session(request)
    form = await request.post()
    if found is None:
        raise web.HTTPSeeOther("/login")
    _, session = found
    silence_id = request.match_info["silence_id"]
    if not _same_origin(request) or not same_token(str(form.get("csrf", "")), session.csrf):
        await _audit(request, session.user, "csrf_refused", (), "expire silence")
        return _refused("Refused", "The form was not sent from this page; nothing was expired.")
    if not SILENCE_ID.match(silence_id):
        raise web.HTTPSeeOther("/silences?shown=gone")
    outcome = await _off_loop(request, _store(request).expire_silence, silence_id, session.user,
                              request.app[CLOCK_KEY](), "page", session.team)  # fmt: skip
    shown = {"expired": "expired", "not_yours": "notyours"}.get(outcome, "gone")
    raise web.HTTPSeeOther(f"/silences?shown={shown}&id={silence_id}")


def _silences_document(
    store: NotifyStore, cfg: WebConfig, session: Session, now: datetime, message: str, form: SilenceForm | None
) -> str:
    """The silences that can touch the team (limited to it, or to no team) and the form. Runs in the pool."""
    zone = ZoneInfo(cfg.timezone)
    listed = [s for s in store.silences(now, ended_within_s=7 * 86400) if session.team in (s.teams() or {session.team})]
    store.audit(now, session.user, "viewed_silences", (), f"team {session.team}, {len(listed)} silences shown")
    rows = "".join(_silence_row(s, session, now, zone) for s in reversed(listed))
    if not rows:
        rows = '<tr><td colspan="7" id="no-silences">No silences for your team.</td></tr>'
    problems = ""
    if form is not None and form.problems:
        items = "".join(f"<li>{html.escape(p)}</li>" for p in form.problems)
        problems = f'<div class="error" id="silence-errors"><p>No silence was made:</p><ul>{items}</ul></div>'
    values = form.values if form is not None else {}
    checked = form.severities if form is not None else ()
    rule_options = "".join(
        f'<option value="{html.escape(r)}"{" selected" if values.get("rule") == r else ""}>{html.escape(r)}</option>'
        for r in sorted(cfg.rule_ids())
    )
    severity_boxes = "".join(
        f'<label><input type="checkbox" name="severity" value="{s}"{" checked" if s in checked else ""}> {s}</label> '
        for s in SEVERITIES
    )

    def value(name: str) -> str:
        return html.escape(values.get(name, ""))

    body = f"""<header><strong>Safeguarding alerts · team {html.escape(session.team)}</strong>
<a href="/alerts" id="alerts-link">Open alerts</a>
<form method="post" action="/logout" class="inline"><span>{html.escape(session.user)}</span>
<input type="hidden" name="csrf" value="{html.escape(session.csrf)}"><button type="submit">Log out</button></form>
</header><main id="content">{message}{problems}
<h1>Silences</h1>
<p>A silence holds back messages about matching alerts of your team from its start to its end. Silenced alerts
are still shown on the alerts page, marked with the silence, and are messaged if they are still open when it ends.
Values must match exactly; every field you fill in must match.</p>
<form method="post" action="/silences" id="new-silence">
<input type="hidden" name="csrf" value="{html.escape(session.csrf)}">
<fieldset><legend>New silence for team {html.escape(session.team)}</legend>
<p><label>Rule <select name="rule" id="silence-rule"><option value="">any rule</option>{rule_options}</select>
</label></p>
<p>Severity: {severity_boxes}<small>(none ticked: any)</small></p>
<p><label>LA code <input type="text" name="la_code" id="silence-la" value="{value("la_code")}" maxlength="3"
inputmode="numeric" placeholder="any"></label></p>
<p><label>Pseudonym <input type="text" name="subject" id="silence-subject" value="{value("subject")}"
maxlength="64" placeholder="any child or household"></label></p>
<p><label>Start <input type="datetime-local" name="start" id="silence-start" value="{value("start")}"></label>
<small>(empty: now; times in {html.escape(cfg.timezone)})</small></p>
<p><label>End <input type="datetime-local" name="end" id="silence-end" value="{value("end")}" required></label></p>
<p><label>Reason <input type="text" name="reason" id="silence-reason" value="{value("reason")}" maxlength="500"
required placeholder="no names, addresses or NHS numbers"></label></p>
<p><button type="submit" id="silence-button">Make silence</button></p></fieldset></form>
<h2>Silences</h2>
<table id="silences"><thead><tr><th>Id</th><th>Matches</th><th>Start</th><th>End</th><th>Status</th>
<th>By, reason</th><th></th></tr></thead><tbody>{rows}</tbody></table></main>"""
    return _document(f"Silences · {session.team}", body)


def _silence_row(silence: Silence, session: Session, now: datetime, zone: ZoneInfo) -> str:
    sid = html.escape(silence.silence_id)
    status = silence.status(now)
    status_text = f"expired by {silence.expired_by or '?'}" if status == "expired" else status
    action = ""
    if status in ("active", "pending"):
        if silence.teams() == frozenset({session.team}):
            action = (
                f'<form method="post" action="/silences/{sid}/expire" class="expire">'
                f'<input type="hidden" name="csrf" value="{html.escape(session.csrf)}">'
                '<button type="submit" class="expire-button">Expire now</button></form>'
            )
        else:
            action = "<small>wider than your team: expire with the command line</small>"
    return (
        f'<tr id="silence-{sid}" class="silence-{status}"><td><code>{sid}</code></td>'
        f"<td><code>{html.escape(describe_matchers(silence.matchers))}</code></td>"
        f"<td>{_fmt(silence.starts_at.timestamp(), zone)}</td><td>{_fmt(silence.end.timestamp(), zone)}</td>"
        f"<td>{html.escape(status_text)}</td><td>{html.escape(silence.author)}: {html.escape(silence.reason)}</td>"
        f"<td>{action}</td></tr>"
    )


# -- rota: overrides and swaps -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChangeForm:
    """What an override or swap form asked for, checked: the change to make, or the problems."""

    values: Mapping[str, str]
    change: RotaChange | None
    problems: tuple[str, ...]


def parse_change_form(
    fields: Mapping[str, str], rota: Rota, team: str, author: str, now: datetime, change_id: str
) -> ChangeForm:
    """The form's fields → an override or swap of `team` (whatever the form says of the team). Times are
    `YYYY-MM-DDTHH:MM` wall-clock times in the rota's timezone; an empty start is now."""
    one = {k: str(v).strip()[:600] for k, v in fields.items()}
    zone = rota.zone
    problems: list[str] = []
    kind = one.get("kind", "")
    if kind not in ("override", "swap"):
        return ChangeForm(one, None, ("choose an override or a swap",))
    start = _local_time(one["start"], zone, "start", problems) if one.get("start") else now
    end = _local_time(one["end"], zone, "end", problems) if one.get("end") else None
    if not one.get("end"):
        problems.append("the end is required")
    level_text = one.get("level", "0") or "0"
    level = int(level_text) if level_text.isdigit() and len(level_text) < 3 else -1
    reason = " ".join(one.get("reason", "").split())
    if start is None or end is None:
        return ChangeForm(one, None, tuple(dict.fromkeys(problems)))
    change = RotaChange(
        change_id, kind, team, one.get("contact", ""), start, end, reason, author, now,  # type: ignore[arg-type]
        level=level if kind == "override" else 0, other=one.get("other", "") if kind == "swap" else None,
    )  # fmt: skip
    problems += check_change(change, rota, now)
    if problems:
        return ChangeForm(one, None, tuple(dict.fromkeys(problems)))
    return ChangeForm(one, change, ())


_CHANGE_FIELDS = ("kind", "contact", "other", "level", "start", "end", "reason")
_CHANGE_MESSAGES = {
    "created": "Change {id} made; it applies to alerts taken on while it is active.",
    "cancelled": "Change {id} cancelled.",
    "notyours": "That change is of another team.",
    "gone": "No such change, or it is already over.",
}


async def _rota_page(request: web.Request) -> web.Response:
    found = await _session(request)
    if found is None:
        raise web.HTTPSeeOther("/login?next=/alerts")
    _, session = found
    cfg = _cfg(request)
    if cfg.rota is None:
        return _refused("No rota here", "This page is not served by the notifier; use the notifier's address.", 404)
    shown, cid = request.query.get("shown", ""), request.query.get("id", "")
    message = ""
    if shown in _CHANGE_MESSAGES and (not cid or CHANGE_ID.match(cid)):
        cls = "flash" if shown in ("created", "cancelled") else "error"
        message = f'<p class="{cls}" id="{shown}">{html.escape(_CHANGE_MESSAGES[shown].format(id=cid))}</p>'
    doc = await _off_loop(request, _rota_document, _store(request), cfg, cfg.rota(), session, request.app[CLOCK_KEY](),
                          message, None)  # fmt: skip
    return web.Response(text=doc, content_type="text/html")


async def _create_change(request: web.Request) -> web.Response:
    found = await _session(request)
    form = await request.post()
    if found is None:
        raise web.HTTPSeeOther("/login")
    _, session = found
    store, cfg, now = _store(request), _cfg(request), request.app[CLOCK_KEY]()
    if not _same_origin(request) or not same_token(str(form.get("csrf", "")), session.csrf):
        await _audit(request, session.user, "csrf_refused", (), "rota change form")
        return _refused("Refused", "The form was not sent from this page; nothing was changed.")
    if cfg.rota is None:
        return _refused("No rota here", "This page is not served by the notifier.", 404)
    rota = cfg.rota()
    fields = {k: str(form.get(k, "")) for k in _CHANGE_FIELDS}
    parsed = parse_change_form(fields, rota, session.team, session.user, now, secrets.token_hex(6))
    if parsed.change is None:
        doc = await _off_loop(request, _rota_document, store, cfg, rota, session, now, "", parsed)
        return web.Response(text=doc, content_type="text/html", status=400)
    await _off_loop(request, store.create_change, parsed.change, "page")
    raise web.HTTPSeeOther(f"/rota?shown=created&id={parsed.change.change_id}")


async def _cancel_change(request: web.Request) -> web.Response:
    found = await _session(request)
    form = await request.post()
    if found is None:
        raise web.HTTPSeeOther("/login")
    _, session = found
    change_id = request.match_info["change_id"]
    if not _same_origin(request) or not same_token(str(form.get("csrf", "")), session.csrf):
        await _audit(request, session.user, "csrf_refused", (), "cancel rota change")
        return _refused("Refused", "The form was not sent from this page; nothing was cancelled.")
    if not CHANGE_ID.match(change_id):
        raise web.HTTPSeeOther("/rota?shown=gone")
    outcome = await _off_loop(request, _store(request).cancel_change, change_id, session.user,
                              request.app[CLOCK_KEY](), "page", session.team)  # fmt: skip
    shown = {"cancelled": "cancelled", "not_yours": "notyours"}.get(outcome, "gone")
    raise web.HTTPSeeOther(f"/rota?shown={shown}&id={change_id}")


def _rota_document(
    store: NotifyStore, cfg: WebConfig, rota: Rota, session: Session, now: datetime, message: str,
    form: ChangeForm | None,
) -> str:  # fmt: skip
    """Who is on duty now, the team's gaps in cover, its overrides and swaps, and the forms. Runs in the pool."""
    zone = rota.zone
    team = session.team
    changes = store.active_changes(now)
    on_duty = chain_at(rota, team, changes, now)

    def name(cid: str) -> str:
        contact = rota.contacts.get(cid)
        return f"{contact.name} ({cid})" if contact else cid

    duty = (
        '<ol id="on-duty">' + "".join(f"<li>{html.escape(name(c))}</li>" for c in on_duty) + "</ol>"
        if on_duty
        else f'<p id="on-duty">Nobody of team {html.escape(team)} is on duty now: alerts go to the fallback team '
        f"{html.escape(rota.fallback_team)}.</p>"
    )
    gaps = coverage(rota, changes, now, channels=cfg.channels, teams=[team])
    gap_items = (
        "".join(f'<li class="gap {g.kind}">{html.escape(g.describe(rota))}</li>' for g in gaps[:50])
        or '<li id="no-gaps">No gaps: someone is on duty, with an escalation contact, every hour.</li>'
    )
    listed = [c for c in store.changes(now, ended_within_s=7 * 86400) if c.team == team]
    store.audit(now, session.user, "viewed_rota", (), f"team {team}, {len(listed)} changes shown")
    rows = "".join(_change_row(c, session, now, zone) for c in listed) or (
        '<tr><td colspan="6" id="no-changes">No overrides or swaps for your team.</td></tr>'
    )
    problems = ""
    if form is not None and form.problems:
        items = "".join(f"<li>{html.escape(p)}</li>" for p in form.problems)
        problems = f'<div class="error" id="change-errors"><p>Nothing was changed:</p><ul>{items}</ul></div>'
    values = form.values if form is not None else {}

    def options(selected: str) -> str:
        return "".join(
            f'<option value="{html.escape(c)}"{" selected" if c == selected else ""}>{html.escape(name(c))}</option>'
            for c in sorted(rota.contacts)
        )

    def value(key: str) -> str:
        return html.escape(values.get(key, ""))

    levels = "".join(
        f'<option value="{n}"{" selected" if values.get("level") == str(n) else ""}>'
        f"{'primary' if n == 0 else f'escalation level {n}'}</option>"
        for n in range(4)
    )
    times = f"""<p><label>Start <input type="datetime-local" name="start" value="{value("start")}"></label>
<small>(empty: now; times in {html.escape(rota.timezone)})</small></p>
<p><label>End <input type="datetime-local" name="end" value="{value("end")}" required></label></p>
<p><label>Reason <input type="text" name="reason" value="{value("reason")}" maxlength="500" required
placeholder="no names, addresses or NHS numbers"></label></p>"""
    csrf = html.escape(session.csrf)
    body = f"""<header><strong>Safeguarding alerts · team {html.escape(team)}</strong>
<nav><a href="/alerts" id="alerts-link">Open alerts</a> <a href="/silences" id="silences-link">Silences</a></nav>
<form method="post" action="/logout" class="inline"><span>{html.escape(session.user)}</span>
<input type="hidden" name="csrf" value="{csrf}"><button type="submit">Log out</button></form>
</header><main id="content">{message}{problems}
<h1>Rota</h1>
<h2>On duty now</h2>{duty}
<h2>Gaps in cover, next 14 days</h2><ul id="gaps">{gap_items}</ul>
<form method="post" action="/rota/changes" id="new-override">
<input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="kind" value="override">
<fieldset><legend>Override: someone stands in</legend>
<p><label>Contact <select name="contact" id="override-contact">{options(values.get("contact", ""))}</select></label>
<label>as <select name="level" id="override-level">{levels}</select></label></p>{times}
<p><button type="submit" id="override-button">Make override</button></p></fieldset></form>
<form method="post" action="/rota/changes" id="new-swap">
<input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="kind" value="swap">
<fieldset><legend>Swap: two people trade places</legend>
<p><label>Contact <select name="contact" id="swap-contact">{options(values.get("contact", ""))}</select></label>
<label>with <select name="other" id="swap-other">{options(values.get("other", ""))}</select></label></p>{times}
<p><button type="submit" id="swap-button">Make swap</button></p></fieldset></form>
<h2>Overrides and swaps</h2>
<table id="changes"><thead><tr><th>Id</th><th>Change</th><th>Start</th><th>End</th><th>Status, by, reason</th>
<th></th></tr></thead><tbody>{rows}</tbody></table></main>"""
    return _document(f"Rota · {team}", body)


def _change_row(change: RotaChange, session: Session, now: datetime, zone: ZoneInfo) -> str:
    cid = html.escape(change.change_id)
    status = change.status(now)
    status_text = f"cancelled by {change.cancelled_by or '?'}" if status == "cancelled" else status
    action = ""
    if status in ("active", "pending"):
        action = (
            f'<form method="post" action="/rota/changes/{cid}/cancel" class="cancel">'
            f'<input type="hidden" name="csrf" value="{html.escape(session.csrf)}">'
            '<button type="submit" class="cancel-button">Cancel now</button></form>'
        )
    return (
        f'<tr id="change-{cid}" class="change-{status}"><td><code>{cid}</code></td>'
        f"<td>{html.escape(change.describe().split(': ', 1)[1])}</td>"
        f"<td>{_fmt(change.starts_at.timestamp(), zone)}</td><td>{_fmt(change.end.timestamp(), zone)}</td>"
        f"<td>{html.escape(status_text)}; {html.escape(change.author)}: {html.escape(change.reason)}</td>"
        f"<td>{action}</td></tr>"
    )
