"""Who may post: each principal (one agency system) has a scope and API keys stored as SHA-256 hashes.

The principals file (TOML, `gateway.principals_file`) is written by `safeguard gateway add-agency|add-key|
revoke-key` and re-read by a running gateway when it changes. A key is `sgk_<id>_<secret>`: the id finds
the stored hash, the secret (32 random bytes) is never stored. A plain SHA-256 suffices for secrets with
256 bits of entropy (a slow hash protects guessable passwords, which these are not), and it keeps an
authenticated request at a microsecond.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import threading
import time
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from schemas.errors import ConfigError
from schemas.events import EVENT_MODELS
from schemas.types import AgencyType

KEY_PREFIX = "sgk_"
log = logging.getLogger(__name__)
_NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
AGENCY_TYPES: tuple[str, ...] = get_args(AgencyType)


class ApiKey(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[0-9a-f]{8,32}$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the whole key, hex")
    created: date
    revoked: date | None = None


class Principal(BaseModel):
    """One agency system: what it may publish (every event must fall inside every part of the scope)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=_NAME_PATTERN)
    agency_type: AgencyType
    agency_codes: tuple[str, ...] = Field(min_length=1)
    la_codes: tuple[str, ...] = Field(min_length=1)
    event_types: tuple[str, ...] = Field(min_length=1)
    cert_subjects: tuple[str, ...] = Field(
        default=(),
        description="mTLS: client certificate subjects (RFC 4514, e.g. CN=records.wyp.example) of this principal",
    )
    keys: tuple[ApiKey, ...] = ()

    @field_validator("event_types")
    @classmethod
    def _known_types(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - EVENT_MODELS.keys())
        if unknown:
            raise ValueError(f"unknown event types {unknown}; the contract has {sorted(EVENT_MODELS)}")
        return value

    @field_validator("la_codes")
    @classmethod
    def _la_codes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for code in value:
            if len(code) != 3 or not code.isdigit():
                raise ValueError(f"{code!r} is not a three-digit DfE local authority code")
        return value


@dataclass(frozen=True)
class NewKey:
    """A key just made: `secret` is shown once and never stored."""

    key: ApiKey
    secret: str


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_key(today: date) -> NewKey:
    key_id = secrets.token_hex(6)
    secret = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    return NewKey(ApiKey(id=key_id, sha256=hash_key(secret), created=today), secret)


def key_id_of(secret: str) -> str | None:
    if not secret.startswith(KEY_PREFIX):
        return None
    key_id, sep, _ = secret[len(KEY_PREFIX) :].partition("_")
    return key_id if sep and key_id else None


@dataclass(frozen=True)
class KeyCheck:
    principal: Principal | None
    refusal: str | None


class Principals:
    """The principals of one file, indexed by key id and certificate subject."""

    def __init__(self, principals: Iterable[Principal]) -> None:
        self.by_name: dict[str, Principal] = {}
        self._by_key: dict[str, tuple[Principal, ApiKey]] = {}
        self._by_subject: dict[str, Principal] = {}
        for principal in principals:
            if principal.name in self.by_name:
                raise ConfigError(f"principal {principal.name!r} is listed twice")
            self.by_name[principal.name] = principal
            for key in principal.keys:
                if key.id in self._by_key:
                    raise ConfigError(f"API key id {key.id} is listed twice")
                self._by_key[key.id] = (principal, key)
            for subject in principal.cert_subjects:
                self._by_subject[normalise_subject(subject)] = principal

    def check_key(self, secret: str) -> KeyCheck:
        """The principal of an API key, or why it is refused (never saying whether another key exists)."""
        key_id = key_id_of(secret)
        found = self._by_key.get(key_id) if key_id else None
        if found is None or not hmac.compare_digest(found[1].sha256, hash_key(secret)):
            return KeyCheck(None, "the API key is not valid")
        principal, key = found
        if key.revoked is not None:
            return KeyCheck(None, f"the API key {key.id} was revoked on {key.revoked.isoformat()}")
        return KeyCheck(principal, None)

    def by_subject(self, subject: str) -> Principal | None:
        return self._by_subject.get(normalise_subject(subject))


def normalise_subject(subject: str) -> str:
    """`CN=a, O=b` and `cn=a,o=b` alike: attribute names lower-cased, spaces around separators removed."""
    parts = []
    for part in subject.split(","):
        name, _, value = part.strip().partition("=")
        parts.append(f"{name.strip().lower()}={value.strip()}")
    return ",".join(parts)


def load_principals(path: Path) -> Principals:
    """Read the principals file; a missing file means nobody may post yet (every request is 401)."""
    if not path.exists():
        return Principals([])
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    try:
        items = [Principal.model_validate(item) for item in data.get("principal", [])]
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{path}: {where}: {first['msg']}") from None
    return Principals(items)


class PrincipalsFile:
    """The principals of a file, re-read when the file changes (checked at most once a second)."""

    def __init__(self, path: Path, *, check_every_s: float = 1.0) -> None:
        self._path = path
        self._every = check_every_s
        self._lock = threading.Lock()
        self._stamp = self._file_stamp()
        self._current = load_principals(path)
        self._checked = time.monotonic()

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            stat = self._path.stat()
        except FileNotFoundError:
            return None
        return (stat.st_mtime_ns, stat.st_size)

    def current(self) -> Principals:
        now = time.monotonic()
        if now - self._checked >= self._every:
            with self._lock:
                self._checked = now
                stamp = self._file_stamp()
                if stamp != self._stamp:
                    try:
                        self._current = load_principals(self._path)
                        self._stamp = stamp
                    except ConfigError as exc:  # a broken file: keep the last good principals, say why
                        log.error("keeping the previous principals: %s", exc)
                        self._stamp = stamp
        return self._current


# --- writing the file ------------------------------------------------------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def render_principals(principals: Iterable[Principal]) -> str:
    """The principals file's text (comments of a hand-edited file are not kept)."""
    lines = [
        "# Principals of the safeguard ingestion gateway,",
        "# written by `safeguard gateway add-agency|add-key|revoke-key`.",
        "# Keys are stored as SHA-256 hashes; the keys themselves were shown once, when made.",
    ]
    for principal in principals:
        lines += ["", "[[principal]]"]
        for name in ("name", "agency_type", "agency_codes", "la_codes", "event_types", "cert_subjects"):
            lines.append(f"{name} = {_toml_value(getattr(principal, name))}")
        for key in principal.keys:
            lines += ["", "[[principal.keys]]"]
            lines.append(f"id = {_toml_value(key.id)}")
            lines.append(f"sha256 = {_toml_value(key.sha256)}")
            lines.append(f"created = {_toml_value(key.created)}")
            if key.revoked is not None:
                lines.append(f"revoked = {_toml_value(key.revoked)}")
    return "\n".join(lines) + "\n"


def write_principals(path: Path, principals: Principals) -> None:
    """Replace the file atomically (a running gateway never reads half of it), readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(render_principals(principals.by_name.values()), encoding="utf-8")
    tmp.chmod(0o600)
    os.replace(tmp, path)


def add_agency(
    path: Path,
    *,
    name: str,
    agency_type: str,
    agency_codes: Iterable[str],
    la_codes: Iterable[str],
    event_types: Iterable[str] | None,
    cert_subjects: Iterable[str] = (),
    today: date,
) -> tuple[Principal, NewKey]:
    existing = load_principals(path)
    if name in existing.by_name:
        raise ConfigError(f"principal {name!r} already exists: use `safeguard gateway add-key {name}` for another key")
    made = new_key(today)
    try:
        principal = Principal(
            name=name,
            agency_type=agency_type,
            agency_codes=tuple(agency_codes),
            la_codes=tuple(la_codes),
            event_types=tuple(event_types) if event_types else tuple(sorted(EVENT_MODELS)),
            cert_subjects=tuple(cert_subjects),
            keys=(made.key,),
        )
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        raise ConfigError(f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from None
    write_principals(path, Principals([*existing.by_name.values(), principal]))
    return principal, made


def add_key(path: Path, name: str, *, today: date) -> NewKey:
    existing = load_principals(path)
    principal = _named(existing, name)
    made = new_key(today)
    updated = principal.model_copy(update={"keys": (*principal.keys, made.key)})
    write_principals(path, Principals(updated if p.name == name else p for p in existing.by_name.values()))
    return made


def revoke_key(path: Path, name: str, key_id: str, *, today: date) -> ApiKey:
    existing = load_principals(path)
    principal = _named(existing, name)
    if not any(k.id == key_id for k in principal.keys):
        raise ConfigError(f"principal {name!r} has no key {key_id!r} (see `safeguard gateway list`)")
    keys = tuple(k.model_copy(update={"revoked": k.revoked or today}) if k.id == key_id else k for k in principal.keys)
    updated = principal.model_copy(update={"keys": keys})
    write_principals(path, Principals(updated if p.name == name else p for p in existing.by_name.values()))
    return next(k for k in keys if k.id == key_id)


def _named(principals: Principals, name: str) -> Principal:
    try:
        return principals.by_name[name]
    except KeyError:
        raise ConfigError(f"no principal {name!r} (see `safeguard gateway list`)") from None
