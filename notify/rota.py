"""The rota: who is on duty for which alerts, read from a TOML or YAML file and checked at start-up.

```toml
timezone = "Europe/London"          # shift times are wall-clock times here (BST/GMT handled)
fallback_team = "emergency-duty"    # must be on duty around the clock; gets whatever no other team takes

[contacts.alice]
name = "Alice (Front Door manager)"
email = "alice@example.org"
webhook = "https://hooks.example.org/T000/B000"   # optional
webhook_format = "slack"                          # or "teams"
console = true                                    # optional: print messages on the notifier's console

[[teams]]
name = "front-door"
la_codes = ["383"]                  # or ["*"] (the default)
rules = ["*"]                       # rule ids of rules.md, or ["*"]
severities = ["medium", "high", "critical"]   # default: all four
escalate_after_minutes = 15         # optional, overrides the setting for this team
  [[teams.shifts]]
  days = "weekdays"                 # mon..sun, a list of them, "daily", "weekdays" or "weekends"
  start = "08:00"
  end = "18:00"                     # an end at or before the start crosses midnight
  primary = "alice"
  escalation = ["bob", "carol"]     # escalation level 1, 2, ...

[[inhibit]]                         # optional, any number: an open source alert holds back targets
name = "high-risk-holds-repeat"     # optional (default inhibit[0], ...); named on the held alerts
source_rules = ["high_risk_missing"]
source_severities = ["high", "critical"]   # optional, default all four
target_rules = ["repeat_missing"]
target_severities = ["medium", "high"]     # optional, default all four
equal = ["subject"]                 # fields source and target share: subject (default), la, team
hours = 24                          # the longest a target is held after the source was taken on
```

Routing (`Rota.route`): the first team in file order whose `la_codes`, `rules` and `severities` match the alert
*and* that has a shift on duty at that instant takes it; otherwise the fallback team does. A team may leave hours
uncovered (a day-time specialist team); the fallback team may not. Shifts are matched on the local wall clock, so a
20:00-08:00 night shift ends at 08:00 whether that is 07:00 or 08:00 UTC, and lasts 11 or 13 hours on the nights
the clocks change. Every problem in a file is reported at once (`RotaError.problems`), each naming the place.
Inhibition rules (`[[inhibit]]`) are checked here and applied by `notify.holds`.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from notify.holds import EQUAL_FIELDS, MAX_INHIBIT, InhibitRule, MatcherField
from schemas.errors import ConfigError
from schemas.types import Severity

SEVERITIES: tuple[Severity, ...] = ("info", "medium", "high", "critical")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_GROUPS: dict[str, tuple[int, ...]] = {
    "daily": tuple(range(7)),
    "weekdays": tuple(range(5)),
    "weekends": (5, 6),
}
MINUTES_PER_DAY = 24 * 60
MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY
WebhookFormat = Literal["slack", "teams"]

_CONTACT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_TEAM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,99}$")
_EMAIL = re.compile(r"^[^@\s<>,;\"]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$")
_HHMM = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)$")
_LA_CODE = re.compile(r"^\d{3}$")


class _RotaLoader(yaml.SafeLoader):
    """YAML 1.1 reads 18:00 as the number 1080 (base 60); here times stay strings like in TOML."""


_RotaLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:int"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_RotaLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"),
    list("-+0123456789"),
)


class RotaError(ConfigError):
    """The rota file cannot be used; `problems` lists every issue, one line each, the file name first."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class Contact:
    """A person (or a shared mailbox) messages go to, with the channels that reach them."""

    contact_id: str
    name: str
    email: str | None = None
    webhook: str | None = None
    webhook_format: WebhookFormat = "slack"
    console: bool = False

    def channels(self) -> list[tuple[str, str]]:
        """(channel, address) pairs this contact can be reached on, in the order they are tried."""
        found: list[tuple[str, str]] = []
        if self.email:
            found.append(("email", self.email))
        if self.webhook:
            found.append((f"webhook-{self.webhook_format}", self.webhook))
        if self.console:
            found.append(("console", self.contact_id))
        return found


@dataclass(frozen=True)
class Shift:
    """Days (0 = Monday) on which the shift starts, and its wall-clock start and end in minutes after midnight."""

    days: tuple[int, ...]
    start: int
    end: int
    primary: str
    escalation: tuple[str, ...] = ()

    def spans(self) -> list[tuple[int, int]]:
        """Half-open [from, to) ranges in minutes of the week (Monday 00:00 = 0); a shift may wrap the week."""
        length = self.end - self.start if self.end > self.start else self.end + MINUTES_PER_DAY - self.start
        ranges: list[tuple[int, int]] = []
        for day in self.days:
            begin = day * MINUTES_PER_DAY + self.start
            finish = begin + length
            if finish <= MINUTES_PER_WEEK:
                ranges.append((begin, finish))
            else:
                ranges.append((begin, MINUTES_PER_WEEK))
                ranges.append((0, finish - MINUTES_PER_WEEK))
        return ranges

    def covers(self, minute_of_week: int) -> bool:
        return any(a <= minute_of_week < b for a, b in self.spans())

    def chain(self) -> tuple[str, ...]:
        """Contact ids by escalation level: level 0 is the primary."""
        return (self.primary, *self.escalation)

    def describe(self) -> str:
        days = ",".join(DAYS[d] for d in self.days)
        return f"{days} {_hhmm(self.start)}-{_hhmm(self.end)}"


@dataclass(frozen=True)
class Team:
    name: str
    la_codes: frozenset[str] | None  # None = any
    rules: frozenset[str] | None  # None = any
    severities: frozenset[str]
    shifts: tuple[Shift, ...]
    escalate_after_s: float | None = None

    def matches(self, la_code: str, rule_id: str, severity: str) -> bool:
        return (
            (self.la_codes is None or la_code in self.la_codes)
            and (self.rules is None or rule_id in self.rules)
            and severity in self.severities
        )

    def shift_at(self, minute_of_week: int) -> Shift | None:
        return next((s for s in self.shifts if s.covers(minute_of_week)), None)


@dataclass(frozen=True)
class Duty:
    """Who is on duty for an alert at an instant: the team, its shift and the escalation chain."""

    team: Team
    shift: Shift
    local_time: datetime

    @property
    def chain(self) -> tuple[str, ...]:
        return self.shift.chain()

    def contact_at(self, level: int) -> str | None:
        """The contact id for escalation level `level` (0 = primary), None once the chain is exhausted."""
        chain = self.chain
        return chain[level] if 0 <= level < len(chain) else None


@dataclass(frozen=True)
class Rota:
    timezone: str
    contacts: Mapping[str, Contact]
    teams: tuple[Team, ...]
    fallback_team: str
    source: str = "rota"
    inhibitions: tuple[InhibitRule, ...] = ()

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def team(self, name: str) -> Team | None:
        return next((t for t in self.teams if t.name == name), None)

    def minute_of_week(self, at: datetime) -> tuple[int, datetime]:
        """The wall-clock minute of the week at instant `at` in the rota's timezone, and that local time."""
        if at.tzinfo is None:
            raise ValueError("the instant must be timezone-aware")
        local = at.astimezone(self.zone)
        return local.weekday() * MINUTES_PER_DAY + local.hour * 60 + local.minute, local

    def route(self, la_code: str, rule_id: str, severity: str, at: datetime) -> Duty:
        """Who takes an alert raised at `at`. Always answers: the fallback team covers every minute."""
        minute, local = self.minute_of_week(at)
        for team in self.teams:
            if team.name != self.fallback_team and team.matches(la_code, rule_id, severity):
                shift = team.shift_at(minute)
                if shift is not None:
                    return Duty(team, shift, local)
        fallback = self.team(self.fallback_team)
        assert fallback is not None
        shift = fallback.shift_at(minute)
        assert shift is not None, "validated: the fallback team covers the whole week"
        return Duty(fallback, shift, local)

    def team_duty(self, team_name: str, at: datetime) -> Duty | None:
        """The shift of one team on duty at `at` (None if the team has nobody then)."""
        team = self.team(team_name)
        if team is None:
            return None
        minute, local = self.minute_of_week(at)
        shift = team.shift_at(minute)
        return None if shift is None else Duty(team, shift, local)


# -- reading and checking ---------------------------------------------------------------------------------------


def load_rota(path: str | Path, *, known_rules: Sequence[str] | None = None) -> Rota:
    """Read and check a `.toml`, `.yaml` or `.yml` rota file. Raises RotaError listing every problem."""
    source = str(path)
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RotaError(source, [f"{source}: no such file"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RotaError(source, [f"{source}: cannot be read ({exc})"]) from None
    return parse_rota(text, source=source, fmt=_format_of(file), known_rules=known_rules)


def _format_of(file: Path) -> Literal["toml", "yaml"]:
    suffix = file.suffix.lower()
    if suffix == ".toml":
        return "toml"
    if suffix in {".yaml", ".yml"}:
        return "yaml"
    raise RotaError(str(file), [f"{file}: unknown format {suffix or '(no suffix)'!r}; use .toml, .yaml or .yml"])


def parse_rota(
    text: str,
    *,
    source: str = "rota",
    fmt: Literal["toml", "yaml"] = "toml",
    known_rules: Sequence[str] | None = None,
) -> Rota:
    """Parse and check rota text. `known_rules` (default: the rule catalogue's ids) are the valid rule ids."""
    try:
        data: Any = tomllib.loads(text) if fmt == "toml" else yaml.load(text, Loader=_RotaLoader)  # noqa: S506 (a SafeLoader)
    except tomllib.TOMLDecodeError as exc:
        raise RotaError(source, [f"{source}: not valid TOML ({exc})"]) from None
    except yaml.YAMLError as exc:
        raise RotaError(source, [f"{source}: not valid YAML ({str(exc).splitlines()[0]})"]) from None
    if not isinstance(data, dict):
        raise RotaError(source, [f"{source}: the rota must be a mapping with `contacts` and `teams`"])
    if known_rules is None:
        from streams.rules.definitions import RULES_BY_ID

        known_rules = sorted(RULES_BY_ID)
    return _Checker(source, frozenset(known_rules)).rota(data)


class _Checker:
    """Collects every problem instead of stopping at the first."""

    def __init__(self, source: str, known_rules: frozenset[str]) -> None:
        self.source = source
        self.known_rules = known_rules
        self.problems: list[str] = []

    def problem(self, where: str, what: str) -> None:
        self.problems.append(f"{self.source}: {where}: {what}" if where else f"{self.source}: {what}")

    def unknown_keys(self, where: str, data: Mapping[str, Any], allowed: Sequence[str]) -> None:
        for key in data:
            if key not in allowed:
                self.problem(where, f"unknown key {key!r}; expected one of {', '.join(allowed)}")

    def rota(self, data: Mapping[str, Any]) -> Rota:
        self.unknown_keys("", data, ("timezone", "fallback_team", "contacts", "teams", "inhibit"))
        timezone = data.get("timezone", "Europe/London")
        if not isinstance(timezone, str):
            self.problem("timezone", "must be a timezone name such as Europe/London")
            timezone = "Europe/London"
        else:
            try:
                ZoneInfo(timezone)
            except (ZoneInfoNotFoundError, ValueError):
                self.problem("timezone", f"{timezone!r} is not a known timezone (e.g. Europe/London)")
                timezone = "Europe/London"
        contacts = self.contacts(data.get("contacts"))
        teams = self.teams(data.get("teams"), contacts)
        fallback = data.get("fallback_team")
        names = [t.name for t in teams]
        if fallback is None:
            self.problem("fallback_team", "is required: the team that takes alerts no other team is on duty for")
        elif not isinstance(fallback, str) or fallback not in names:
            self.problem("fallback_team", f"{fallback!r} is not one of the teams ({', '.join(names) or 'none'})")
        else:
            team = next(t for t in teams if t.name == fallback)
            gap = first_gap(team.shifts)
            if gap is not None:
                self.problem(
                    f"teams.{fallback}",
                    f"the fallback team must be on duty around the clock; nobody is on duty {gap}",
                )
            if team.severities != frozenset(SEVERITIES) or team.la_codes is not None or team.rules is not None:
                self.problem(f"teams.{fallback}", "the fallback team takes every alert: leave out la_codes, rules "
                             "and severities")  # fmt: skip
        inhibitions = self.inhibitions(data.get("inhibit"))
        if self.problems:
            raise RotaError(self.source, self.problems)
        return Rota(timezone, contacts, tuple(teams), str(fallback), self.source, tuple(inhibitions))

    def inhibitions(self, raw: Any) -> list[InhibitRule]:
        """`[[inhibit]]` tables: source and target rules (known, not overlapping), severities, equal fields, hours."""
        rules: list[InhibitRule] = []
        if raw is None:
            return rules
        if not isinstance(raw, list):
            self.problem("inhibit", "must be a list of tables ([[inhibit]] source_rules = ..., target_rules = ...)")
            return rules
        allowed = ("name", "source_rules", "source_severities", "target_rules", "target_severities", "equal", "hours")
        names: set[str] = set()
        for index, body in enumerate(raw):
            where = f"inhibit[{index}]"
            if not isinstance(body, dict):
                self.problem(where, "must be a table")
                continue
            self.unknown_keys(where, body, allowed)
            name = body.get("name", where)
            if "name" in body and (not isinstance(name, str) or not _TEAM_NAME.match(name)):
                self.problem(f"{where}.name", "letters, digits, spaces, '.', '_' or '-'")
                name = where
            elif name in names:
                self.problem(f"{where}.name", f"{name!r} is used twice")
            names.add(name)
            sides: dict[str, frozenset[str]] = {}
            for side in ("source", "target"):
                key = f"{where}.{side}_rules"
                value = body.get(f"{side}_rules")
                if value is None:
                    self.problem(key, "is required: a list of rule ids")
                    sides[side] = frozenset()
                    continue
                found = self.str_set(key, value, None, "a rule id")
                if found is None:
                    self.problem(key, '"*" is not allowed here: name the rules')
                    found = frozenset()
                for rule in sorted(found - self.known_rules):
                    self.problem(key, f"unknown rule {rule!r}; valid: {', '.join(sorted(self.known_rules))}")
                sides[side] = found
            shared = sides["source"] & sides["target"]
            if shared:
                self.problem(where, f"a rule cannot be both source and target: {', '.join(sorted(shared))}")
            severities: dict[str, frozenset[str]] = {}
            for side in ("source", "target"):
                key = f"{where}.{side}_severities"
                found = self.str_set(key, body.get(f"{side}_severities"), None, "a severity")
                if found is None:
                    found = frozenset(SEVERITIES)
                for sev in sorted(found - set(SEVERITIES)):
                    self.problem(key, f"{sev!r} is not one of {', '.join(SEVERITIES)}")
                severities[side] = found
            equal_raw = body.get("equal", ["subject"])
            equal: list[MatcherField] = []
            if not isinstance(equal_raw, list) or not equal_raw or not all(isinstance(e, str) for e in equal_raw):
                self.problem(f"{where}.equal", f"must be a non-empty list of {', '.join(EQUAL_FIELDS)}")
            else:
                for field in equal_raw:
                    match = next((f for f in EQUAL_FIELDS if f == field), None)
                    if match is None:
                        self.problem(f"{where}.equal", f"{field!r} is not one of {', '.join(EQUAL_FIELDS)}")
                    elif match not in equal:
                        equal.append(match)
            hours = body.get("hours")
            window = None
            if isinstance(hours, bool) or not isinstance(hours, int | float) or hours <= 0:
                self.problem(f"{where}.hours", "is required: a positive number of hours (how long a target is held)")
            elif timedelta(hours=hours) > MAX_INHIBIT:
                self.problem(f"{where}.hours", f"at most {int(MAX_INHIBIT.total_seconds() // 3600)} hours")
            else:
                window = timedelta(hours=hours)
            if window is not None and equal:
                inhibit = InhibitRule(
                    name, sides["source"], sides["target"], window, severities["source"], severities["target"],
                    tuple(equal),
                )  # fmt: skip
                rules.append(inhibit)
        return rules

    def contacts(self, raw: Any) -> dict[str, Contact]:
        contacts: dict[str, Contact] = {}
        if not isinstance(raw, dict) or not raw:
            self.problem("contacts", "must be a table of contacts by id ([contacts.alice] name = ..., email = ...)")
            return contacts
        allowed = ("name", "email", "webhook", "webhook_format", "console")
        for cid, body in raw.items():
            where = f"contacts.{cid}"
            if not isinstance(cid, str) or not _CONTACT_ID.match(cid):
                self.problem(where, "a contact id is letters, digits, '.', '_' or '-' (at most 64)")
                continue
            if not isinstance(body, dict):
                self.problem(where, "must be a table with name and at least one of email, webhook, console")
                continue
            self.unknown_keys(where, body, allowed)
            name = body.get("name", cid)
            if not isinstance(name, str) or not name.strip():
                self.problem(f"{where}.name", "must be a non-empty string")
                name = cid
            email = body.get("email")
            if email is not None and (not isinstance(email, str) or not _EMAIL.match(email)):
                self.problem(f"{where}.email", f"{email!r} is not an email address")
                email = None
            webhook = body.get("webhook")
            if webhook is not None and (not isinstance(webhook, str) or not re.match(r"^https?://[^\s/]+", webhook)):
                self.problem(f"{where}.webhook", "must be an http:// or https:// URL")
                webhook = None
            fmt = body.get("webhook_format", "slack")
            if fmt not in ("slack", "teams"):
                self.problem(f"{where}.webhook_format", f"{fmt!r} is not slack or teams")
                fmt = "slack"
            console = body.get("console", False)
            if not isinstance(console, bool):
                self.problem(f"{where}.console", "must be true or false")
                console = False
            if not (email or webhook or console) and "email" not in body and "webhook" not in body:
                self.problem(where, "has no channel: give at least one of email, webhook, console = true")
            contacts[cid] = Contact(cid, name, email, webhook, fmt, console)
        return contacts

    def teams(self, raw: Any, contacts: Mapping[str, Contact]) -> list[Team]:
        teams: list[Team] = []
        if not isinstance(raw, list) or not raw:
            self.problem("teams", "must be a list of teams ([[teams]] name = ..., with [[teams.shifts]])")
            return teams
        allowed = ("name", "la_codes", "rules", "severities", "escalate_after_minutes", "shifts")
        seen: set[str] = set()
        for index, body in enumerate(raw):
            where = f"teams[{index}]"
            if not isinstance(body, dict):
                self.problem(where, "must be a table")
                continue
            name = body.get("name")
            if not isinstance(name, str) or not _TEAM_NAME.match(name):
                self.problem(f"{where}.name", "is required: letters, digits, spaces, '.', '_' or '-'")
                continue
            where = f"teams.{name}"
            if name in seen:
                self.problem(where, "the team name is used twice")
            seen.add(name)
            self.unknown_keys(where, body, allowed)
            la_codes = self.str_set(f"{where}.la_codes", body.get("la_codes"), _LA_CODE, "a three-digit LA code")
            rules = self.str_set(f"{where}.rules", body.get("rules"), None, "a rule id")
            if rules is not None:
                for rule in sorted(rules - self.known_rules):
                    valid = ", ".join(sorted(self.known_rules))
                    self.problem(f"{where}.rules", f"unknown rule {rule!r}; valid: {valid}")
            severities = self.str_set(f"{where}.severities", body.get("severities"), None, "a severity")
            if severities is None:
                severities = frozenset(SEVERITIES)
            for sev in sorted(severities - set(SEVERITIES)):
                self.problem(f"{where}.severities", f"{sev!r} is not one of {', '.join(SEVERITIES)}")
            escalate = body.get("escalate_after_minutes")
            escalate_s: float | None = None
            if escalate is not None:
                if isinstance(escalate, bool) or not isinstance(escalate, int | float) or escalate <= 0:
                    self.problem(f"{where}.escalate_after_minutes", "must be a positive number of minutes")
                else:
                    escalate_s = float(escalate) * 60
            shifts = self.shifts(where, body.get("shifts"), contacts)
            teams.append(Team(name, la_codes, rules, severities, tuple(shifts), escalate_s))
        return teams

    def str_set(self, where: str, raw: Any, pattern: re.Pattern[str] | None, what: str) -> frozenset[str] | None:
        if raw is None or raw == ["*"] or raw == "*":
            return None
        if not isinstance(raw, list) or not raw or not all(isinstance(v, str) for v in raw):
            self.problem(where, f'must be a non-empty list of strings (each {what}), or ["*"] for any')
            return frozenset()
        if "*" in raw:
            self.problem(where, '"*" means any and cannot be combined with other values')
        if pattern is not None:
            for value in raw:
                if not pattern.match(value):
                    self.problem(where, f"{value!r} is not {what}")
        return frozenset(raw)

    def shifts(self, where: str, raw: Any, contacts: Mapping[str, Contact]) -> list[Shift]:
        shifts: list[Shift] = []
        if not isinstance(raw, list) or not raw:
            self.problem(f"{where}.shifts", "must list at least one shift ([[teams.shifts]] days, start, end, primary)")
            return shifts
        allowed = ("days", "start", "end", "primary", "escalation")
        for index, body in enumerate(raw):
            here = f"{where}.shifts[{index}]"
            if not isinstance(body, dict):
                self.problem(here, "must be a table")
                continue
            self.unknown_keys(here, body, allowed)
            days = self.days(f"{here}.days", body.get("days"))
            start = self.clock_time(f"{here}.start", body.get("start"))
            end = self.clock_time(f"{here}.end", body.get("end"))
            primary = body.get("primary")
            if not isinstance(primary, str):
                self.problem(f"{here}.primary", "is required: the contact id on duty")
                primary = ""
            elif primary not in contacts:
                self.problem(f"{here}.primary", f"{primary!r} is not a contact ({', '.join(contacts) or 'none'})")
            escalation_raw = body.get("escalation", [])
            if isinstance(escalation_raw, str):
                escalation_raw = [escalation_raw]
            if not isinstance(escalation_raw, list) or not all(isinstance(e, str) for e in escalation_raw):
                self.problem(f"{here}.escalation", "must be a list of contact ids")
                escalation_raw = []
            for contact in escalation_raw:
                if contact not in contacts:
                    self.problem(f"{here}.escalation", f"{contact!r} is not a contact")
            chain = [primary, *escalation_raw]
            if len(set(chain)) != len(chain):
                self.problem(f"{here}.escalation", "names a contact twice (the primary is level 0)")
            if days is None or start is None or end is None:
                continue
            if start == end:
                self.problem(here, 'start equals end; for a whole day use start = "00:00", end = "24:00"')
                continue
            if start == MINUTES_PER_DAY:
                self.problem(f"{here}.start", "24:00 is only allowed as an end")
                continue
            shift = Shift(days, start, end, primary, tuple(escalation_raw))
            for other_index, other in enumerate(shifts):
                overlap = _overlap(shift, other)
                if overlap is not None:
                    self.problem(
                        here,
                        f"overlaps {where}.shifts[{other_index}] ({other.describe()}) at {overlap}; "
                        "each minute must have one shift",
                    )
            shifts.append(shift)
        return shifts

    def days(self, where: str, raw: Any) -> tuple[int, ...] | None:
        if isinstance(raw, str):
            if raw in DAY_GROUPS:
                return DAY_GROUPS[raw]
            raw = [raw]
        if not isinstance(raw, list) or not raw:
            self.problem(where, f"must be daily, weekdays, weekends or a list of {', '.join(DAYS)}")
            return None
        days: list[int] = []
        for value in raw:
            if not isinstance(value, str) or value.lower()[:3] not in DAYS or len(value) < 3:
                self.problem(where, f"{value!r} is not a day; use {', '.join(DAYS)}")
                return None
            days.append(DAYS.index(value.lower()[:3]))
        if len(set(days)) != len(days):
            self.problem(where, "names a day twice")
        return tuple(sorted(set(days)))

    def clock_time(self, where: str, raw: Any) -> int | None:
        if isinstance(raw, time):  # TOML local times (start = 08:00:00) arrive as datetime.time
            return raw.hour * 60 + raw.minute
        if not isinstance(raw, str) or not _HHMM.match(raw):
            self.problem(where, f'must be a time "HH:MM" from "00:00" to "24:00"; got {raw!r}')
            return None
        hours, minutes = int(raw[:2]), int(raw[3:])
        if hours == 24 and minutes:
            self.problem(where, f'{raw!r} is past the end of the day ("24:00" at most)')
            return None
        return hours * 60 + minutes


def _overlap(a: Shift, b: Shift) -> str | None:
    for a0, a1 in a.spans():
        for b0, b1 in b.spans():
            start = max(a0, b0)
            if start < min(a1, b1):
                return _minute_name(start)
    return None


def first_gap(shifts: Sequence[Shift]) -> str | None:
    """Where a week of shifts first leaves nobody on duty ("from Sunday 23:00 to Monday 00:00"), or None."""
    covered = bytearray(MINUTES_PER_WEEK)
    for shift in shifts:
        for a, b in shift.spans():
            covered[a:b] = b"\x01" * (b - a)
    try:
        start = covered.index(0)
    except ValueError:
        return None
    end = start
    while end < MINUTES_PER_WEEK and not covered[end]:
        end += 1
    return f"from {_minute_name(start)} to {_minute_name(end % MINUTES_PER_WEEK)}"


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _minute_name(minute_of_week: int) -> str:
    day, minute = divmod(minute_of_week, MINUTES_PER_DAY)
    names = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
    return f"{names[day]} {_hhmm(minute)}"
