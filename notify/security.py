"""Passwords, signed links and tokens for the acknowledgement page: stdlib only (scrypt, HMAC-SHA256, secrets).

- Passwords are stored as `scrypt$<n>$<r>$<p>$<salt>$<hash>` (base64url); `hash_password` makes one
  (`safeguard notify hash-password`), `verify_password` compares in constant time.
- A message's link is `<base_url>/l/<token>`: the token carries the team, the message id and an expiry, signed
  with HMAC-SHA256 under the link secret. A changed byte or a passed expiry makes it worthless.
- Session and CSRF tokens are random; the store keeps only the SHA-256 of a session token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

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
