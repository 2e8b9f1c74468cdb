"""Passwords, signed links and tokens for the acknowledgement page: stdlib only (scrypt, HMAC-SHA256, secrets).

- Passwords are stored as `scrypt$<n>$<r>$<p>$<salt>$<hash>` (base64url); `hash_password` makes one
  (`safeguard notify hash-password`), `verify_password` compares in constant time.
- A message's link is `<base_url>/l/<token>`: the token carries the team, the message id and an expiry, signed
  with HMAC-SHA256 under the link secret. A changed byte or a passed expiry makes it worthless.
- Session and CSRF tokens are random; the store keeps only the SHA-256 of a session token.
- `LoginThrottle` slows password guessing without letting anyone lock a manager out (see its docstring);
  `client_key` is the address a login attempt is counted against.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import secrets
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from schemas.errors import SafeguardError

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
_MAXMEM = 64 * 1024 * 1024


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """A self-describing scrypt hash of `password` with a random salt."""
    if not password:
        raise ValueError("the password must not be empty")
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=32)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(digest)}"


def is_password_hash(value: str) -> bool:
    """Whether `value` is in the format `hash_password` writes (checked when settings are read)."""
    parts = value.split("$")
    return len(parts) == 6 and parts[0] == "scrypt" and all(x.isdigit() for x in parts[1:4])


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` matches `stored`; False (never an exception) for a malformed hash."""
    try:
        scheme, n, r, p, salt, expected = stored.split("$")
        if scheme != "scrypt":
            return False
        digest = hashlib.scrypt(
            password.encode("utf-8"), salt=_unb64(salt), n=int(n), r=int(r), p=int(p), maxmem=_MAXMEM, dklen=32
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest, _unb64(expected))


DUMMY_HASH = "scrypt$16384$8$1$c2FsdHNhbHRzYWx0c2FsdA$" + _b64(bytes(32))
"""Verified against when a user name is unknown, so a wrong name costs as long as a wrong password."""


class LinkRefused(SafeguardError):
    """A link that is forged, damaged or expired. `reason` is `forged`, `malformed` or `expired`."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"the link is {reason}")


@dataclass(frozen=True)
class LinkClaims:
    team: str
    message_id: int
    expires_at: datetime


def sign_link(secret: bytes, team: str, message_id: int, expires_at: datetime) -> str:
    """The token of a message's acknowledgement link."""
    body = json.dumps({"t": team, "m": message_id, "e": int(expires_at.timestamp())}, separators=(",", ":"))
    payload = _b64(body.encode("utf-8"))
    return f"{payload}.{_mac(secret, payload)}"


def verify_link(secret: bytes, token: str, now: datetime) -> LinkClaims:
    """The claims of a genuine, unexpired token. Raises LinkRefused otherwise (the signature is checked first)."""
    payload, dot, mac = token.partition(".")
    if not dot or not payload or not mac or len(token) > 2000:
        raise LinkRefused("malformed")
    if not hmac.compare_digest(_mac(secret, payload), mac):
        raise LinkRefused("forged")
    try:
        body = json.loads(_unb64(payload))
        claims = LinkClaims(str(body["t"]), int(body["m"]), datetime.fromtimestamp(int(body["e"]), UTC))
    except (ValueError, KeyError, TypeError):
        raise LinkRefused("malformed") from None
    if now >= claims.expires_at:
        raise LinkRefused("expired")
    return claims


def _mac(secret: bytes, payload: str) -> str:
    return _b64(hmac.new(secret, b"link|" + payload.encode("ascii"), hashlib.sha256).digest())


def new_token() -> str:
    """A random token for a session or a CSRF check (256 bits)."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What the store keeps of a session token: a leaked database does not hand out sessions."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def keyed_token(secret: bytes, purpose: str, value: str) -> str:
    """An HMAC of `value` for `purpose` (the login form's CSRF token is keyed on its pre-session cookie)."""
    return _b64(hmac.new(secret, f"{purpose}|{value}".encode(), hashlib.sha256).digest())


def same_token(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


# -- login throttling -------------------------------------------------------------------------------------------


def client_address(remote: str | None, forwarded_for: str, trusted_proxies: frozenset[str]) -> str | None:
    """The client's address: the peer's, or when the peer is a trusted proxy the nearest address in its
    `X-Forwarded-For` that is not a trusted proxy (everything left of that is whatever the client wrote)."""
    if remote not in trusted_proxies:
        return remote
    for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
        remote = hop
        if hop not in trusted_proxies:
            break
    return remote


def client_key(remote: str | None) -> str:
    """The address login attempts are counted against: an IPv4 address, or the /64 network of an IPv6 address.

    One IPv6 subscriber usually holds a whole /64, so counting single IPv6 addresses would hand an attacker 2**64
    clean clients."""
    if not remote:
        return "unknown"
    try:
        ip = ipaddress.ip_address(remote)
    except ValueError:
        return remote[:100]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


@dataclass(frozen=True)
class ThrottlePolicy:
    """How failed logins slow later attempts (the defaults: 1 s after a first failure, doubling up to 15 minutes)."""

    initial_delay_s: float = 1.0
    max_delay_s: float = 900.0
    forget_after_s: float = 3600.0  # a client or name with no failure for this long is clean again
    user_free_failures: int = 5  # failures on one name (from anywhere) before its own delay starts
    max_clients: int = 10_000  # tracked clients; beyond it the least recently failed are forgotten
    max_unknown_names: int = 10_000  # tracked names that are not users; configured users are always tracked


@dataclass
class _Failures:
    count: int
    last_at: float
    audited: int = 0  # the `count` at which a refusal was last audited: one audit row per wait


@dataclass(frozen=True)
class Throttled:
    """An attempt refused before its password is checked: by its client's delay or by the name's."""

    scope: Literal["client", "user"]
    retry_after_s: float
    first: bool  # the first refusal of this wait (worth an audit row; repeats within the wait are not)


class LoginThrottle:
    """Exponential delays after failed logins, per client and per user name, that never lock out a clean client.

    - **Per client** (`client_key`): after the n-th failure from a client, its next attempt is considered only
      `initial_delay_s * 2**(n-1)` later (capped at `max_delay_s`); until then it is refused without checking the
      password. One client spraying user names gets about one guess per `max_delay_s`.
    - **Per user name**: after more than `user_free_failures` failures on a name (from any clients), attempts on it
      wait the same doubling delay, counted from the name's last failure, but **only from clients that failed
      recently themselves**. A client with no recent failure is always considered, so an attacker elsewhere can
      slow the manager's name but cannot lock the manager out; many attackers together share the name's budget
      after their first guess each.
    - A success resets nothing: a client could otherwise clear its record by logging in to an account of its own
      between guesses at another. Records are forgotten `forget_after_s` after their last failure.
    - Bounded: configured user names are always tracked; other names and clients are kept in least-recently-
      failed order, expired ones are dropped whenever a failure is recorded, and the oldest beyond the maxima.
    - Pure: the caller passes the time (epoch seconds) and serialises attempts of one client (and, for clients
      that are not clean, of one name), so two concurrent attempts cannot both pass one check.
    """

    def __init__(self, policy: ThrottlePolicy, users: Iterable[str] = ()) -> None:
        self.policy = policy
        self._forget_s = max(policy.forget_after_s, policy.max_delay_s)  # a record outlives its longest wait
        self._clients: OrderedDict[str, _Failures] = OrderedDict()
        self._users: dict[str, _Failures | None] = dict.fromkeys(users)
        self._names: OrderedDict[str, _Failures] = OrderedDict()

    def delay_s(self, failures: int) -> float:
        """The wait after `failures` failures (0 for none)."""
        if failures <= 0:
            return 0.0
        return float(min(self.policy.initial_delay_s * 2.0 ** min(failures - 1, 64), self.policy.max_delay_s))

    def is_clean(self, client: str, now: float) -> bool:
        """Whether `client` has no failure within `forget_after_s` (the per-name delay does not apply to it)."""
        return self._live(self._clients.get(client), now) is None

    def check(self, client: str, user: str, now: float) -> Throttled | None:
        """Whether an attempt by `client` for `user` must wait; None when its password may be checked."""
        mine = self._live(self._clients.get(client), now)
        if mine is None:
            return None
        refusal = self._refusal("client", mine, self.delay_s(mine.count), now)
        if refusal is not None:
            return refusal
        name = self._live(self._name(user), now)
        if name is None:
            return None
        return self._refusal("user", name, self.delay_s(name.count - self.policy.user_free_failures), now)

    def failed(self, client: str, user: str, now: float) -> None:
        """Record a failed attempt by `client` for `user`, and forget what has expired."""
        self._bump(self._clients, client, now)
        if user in self._users:
            self._users[user] = self._next(self._users[user], now)
        else:
            self._bump(self._names, user, now)
        self._prune(self._clients, self.policy.max_clients, now)
        self._prune(self._names, self.policy.max_unknown_names, now)

    def sizes(self) -> tuple[int, int]:
        """(clients, names that are not users) tracked: for tests and status."""
        return len(self._clients), len(self._names)

    # -- internals --------------------------------------------------------------------------------------------

    def _live(self, record: _Failures | None, now: float) -> _Failures | None:
        return record if record is not None and now - record.last_at < self._forget_s else None

    def _name(self, user: str) -> _Failures | None:
        return self._users[user] if user in self._users else self._names.get(user)

    def _next(self, record: _Failures | None, now: float) -> _Failures:
        live = self._live(record, now)
        return _Failures(1, now) if live is None else _Failures(live.count + 1, now, live.audited)

    def _bump(self, table: OrderedDict[str, _Failures], key: str, now: float) -> None:
        table[key] = self._next(table.get(key), now)
        table.move_to_end(key)

    def _prune(self, table: OrderedDict[str, _Failures], limit: int, now: float) -> None:
        while table:
            oldest = next(iter(table.values()))
            if now - oldest.last_at < self._forget_s and len(table) <= limit:
                break
            table.popitem(last=False)

    @staticmethod
    def _refusal(scope: Literal["client", "user"], record: _Failures, delay_s: float, now: float) -> Throttled | None:
        wait = record.last_at + delay_s - now
        if wait <= 0:
            return None
        first = record.audited != record.count
        record.audited = record.count
        return Throttled(scope, wait, first)
