"""Rota operations as pure functions of (rota, changes, now): overrides and swaps, the coverage check, and who
takes over a team's duty. No I/O, no clock of its own; the store keeps the changes, the engine acts on them.

**Overrides** (`kind = "override"`): from `starts_at` to `ends_at`, `contact` stands in at escalation `level` (0 =
the primary) of whatever shift of `team` is on duty — a manager off sick, a handover moved. **Swaps**
(`kind = "swap"`): from `starts_at` to `ends_at`, `contact` and `other` trade places wherever either appears in the
team's chain — two managers exchanging a night. Changes apply in the order they were made (a later one wins), on the
half-open interval `[starts_at, end)`, where `end` is `ends_at` or the moment the change was cancelled. A contact
never appears twice in a chain: an override that names someone already in it moves them. Changes alter who is on
duty within a team's shifts; hours the rota file gives a team no shift stay with the fallback team (cover for them
belongs in the rota file, which can be reloaded without a restart).

An alert keeps the chain it was routed with (its escalation does not change under it); changes apply to alerts
taken on while they are active, to reminders and to hand-overs.

**Coverage.** `coverage` looks at every quarter hour of the next `days` days and reports, per team, hours when the
team has nobody on duty (`no_primary`: its alerts go to the fallback team), when the shift on duty has no escalation
contact (`no_escalation`: an unacknowledged alert has nowhere to go), or when a contact on duty has no enabled
channel (`unreachable`). Consecutive hours with the same problem are one `Gap`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from notify.holds import check_reason
from notify.rota import Rota

ChangeKind = Literal["override", "swap"]
GapKind = Literal["no_primary", "no_escalation", "unreachable"]
CHANGE_ID = re.compile(r"^[0-9a-f]{12}$")
MAX_CHANGE = timedelta(days=62)
"""The longest override or swap: longer ones belong in the rota file."""
STEP = timedelta(minutes=15)


@dataclass(frozen=True)
class RotaChange:
    change_id: str
    kind: ChangeKind
    team: str
    contact: str
    starts_at: datetime
    ends_at: datetime
    reason: str
    author: str
    created_at: datetime
    level: int = 0  # overrides: the escalation level taken (0 = primary)
    other: str | None = None  # swaps: the contact `contact` trades places with
    cancelled_at: datetime | None = None
    cancelled_by: str | None = None

    @property
    def end(self) -> datetime:
        return self.ends_at if self.cancelled_at is None else min(self.ends_at, self.cancelled_at)

    def active_at(self, at: datetime) -> bool:
        return self.starts_at <= at < self.end

    def status(self, now: datetime) -> Literal["pending", "active", "cancelled", "ended"]:
        if self.cancelled_at is not None and self.cancelled_at < self.ends_at and now >= self.cancelled_at:
            return "cancelled"
        if now >= self.end:
            return "ended"
        return "active" if now >= self.starts_at else "pending"

    def describe(self) -> str:
        if self.kind == "swap":
            return f"swap {self.change_id}: {self.contact} <-> {self.other} in team {self.team}"
        role = "primary" if self.level == 0 else f"escalation level {self.level}"
        return f"override {self.change_id}: {self.contact} as {role} of team {self.team}"


def check_change(change: RotaChange, rota: Rota, now: datetime) -> list[str]:
    """Every problem with an override or swap about to be made (empty: it may be made)."""
    problems: list[str] = []
    team = rota.team(change.team)
    if team is None:
        problems.append(f"{change.team!r} is not a team of the rota ({', '.join(t.name for t in rota.teams)})")
    for who in (change.contact, *((change.other or "",) if change.kind == "swap" else ())):
        if who not in rota.contacts:
            problems.append(f"{who!r} is not a contact of the rota")
    if change.kind == "swap" and change.other == change.contact:
        problems.append("a swap needs two different contacts")
    if change.kind == "override" and not 0 <= change.level <= 9:
        problems.append("the level is 0 (primary) to 9")
    if change.ends_at <= change.starts_at:
        problems.append("the end must be after the start")
    elif change.ends_at - change.starts_at > MAX_CHANGE:
        problems.append(f"a change lasts at most {MAX_CHANGE.days} days; change the rota file for longer")
    if change.ends_at <= now:
        problems.append("the end is in the past")
    problems += check_reason(change.reason)
    if not change.author.strip():
        problems.append("the author is required")
    return problems


def apply_changes(chain: Sequence[str], team: str, changes: Iterable[RotaChange], at: datetime) -> tuple[str, ...]:
    """The team's escalation chain at `at` after the changes active then (in the order given: oldest first)."""
    result = list(chain)
    for change in changes:
        if change.team != team or not change.active_at(at):
            continue
        if change.kind == "swap" and change.other is not None:
            a, b = change.contact, change.other
            result = [b if c == a else a if c == b else c for c in result]
        elif change.kind == "override":
            if change.contact in result:
                result.remove(change.contact)
            level = min(change.level, len(result))
            if level < len(result):
                result[level] = change.contact
            else:
                result.append(change.contact)
    return tuple(result)


def chain_at(rota: Rota, team: str, changes: Iterable[RotaChange], at: datetime) -> tuple[str, ...]:
    """Who is on duty for `team` at `at` (primary first), changes applied; empty when the team has no shift then."""
    duty = rota.team_duty(team, at)
    return () if duty is None else apply_changes(duty.chain, team, changes, at)


@dataclass(frozen=True)
class Gap:
    """A stretch of time when a team's cover falls short."""

    team: str
    kind: GapKind
    starts_at: datetime
    ends_at: datetime
    detail: str

    def describe(self, rota: Rota) -> str:
        zone = rota.zone
        start = self.starts_at.astimezone(zone).strftime("%a %d %b %H:%M")
        end = self.ends_at.astimezone(zone).strftime("%a %d %b %H:%M %Z")
        return f"team {self.team}: {self.detail} from {start} to {end}"


def coverage(
    rota: Rota, changes: Sequence[RotaChange], start: datetime, *, days: int = 14,
    channels: Iterable[str] | None = None, teams: Iterable[str] | None = None,
) -> list[Gap]:  # fmt: skip
    """Every gap in cover from `start` (rounded down to the hour) for `days` days. `channels`: the enabled channel
    names (email, webhook-slack, webhook-teams, console); None = every channel a contact has. `teams`: only these."""
    enabled = frozenset(channels) if channels is not None else None
    wanted = frozenset(teams) if teams is not None else None
    looked_at = [t for t in rota.teams if wanted is None or t.name in wanted]
    begin = start.replace(minute=0, second=0, microsecond=0)
    end = begin + timedelta(days=days)
    gaps: list[Gap] = []
    open_gaps: dict[tuple[str, GapKind, str], datetime] = {}
    at = begin
    while at < end:
        found: set[tuple[str, GapKind, str]] = set()
        for team in looked_at:
            chain = chain_at(rota, team.name, changes, at)
            if not chain:
                found.add((team.name, "no_primary", f"nobody on duty (its alerts go to {rota.fallback_team})"))
                continue
            if len(chain) == 1:
                found.add((team.name, "no_escalation", f"no escalation contact after {chain[0]}"))
            for contact_id in chain:
                contact = rota.contacts.get(contact_id)
                ways = [c for c, _ in contact.channels()] if contact is not None else []
                if not any(enabled is None or c in enabled for c in ways):
                    what = f"{contact_id} is on duty and no enabled channel reaches them"
                    found.add((team.name, "unreachable", what))
        for key in list(open_gaps):
            if key not in found:
                gaps.append(Gap(key[0], key[1], open_gaps.pop(key), at, key[2]))
        for key in found:
            open_gaps.setdefault(key, at)
        at += STEP
    gaps += [Gap(k[0], k[1], since, end, k[2]) for k, since in open_gaps.items()]
    return sorted(gaps, key=lambda g: (g.team, g.starts_at, g.kind, g.detail))


def summary(rota: Rota, gaps: Sequence[Gap], *, days: int = 14) -> list[str]:
    """One line per team and kind of gap: hours affected and the first stretch (for logs at start and daily)."""
    lines: list[str] = []
    by_key: dict[tuple[str, GapKind], list[Gap]] = {}
    for gap in gaps:
        by_key.setdefault((gap.team, gap.kind), []).append(gap)
    for (_, kind), found in sorted(by_key.items()):
        hours = sum((g.ends_at - g.starts_at).total_seconds() for g in found) / 3600
        first = found[0]
        more = f" ({len(found)} stretches, {hours:.0f} h of the next {days * 24} h)" if len(found) > 1 else ""
        lines.append(f"rota coverage: {first.describe(rota)}{more} [{kind}]")
    return lines


def handover_due(previous: str | None, current: tuple[str, ...]) -> str | None:
    """The incoming primary when duty passed to someone new (None at the first look, or when nothing changed, or
    when the team has nobody on duty now)."""
    if not current or previous is None or previous == current[0]:
        return None
    return current[0]
