"""Silences and inhibition: which alerts are held back from messaging, and until when. Pure functions of
(silences, inhibition rules, other open alerts, now); no I/O, no clock of its own.

A held alert is never dropped: it is stored, shown on the acknowledgement page marked with what holds it, and
messaged (through its group, as if it had just arrived) when the hold ends while it is still open. An alert
acknowledged meanwhile is not messaged.

**Silences** (made by a person on the page or with `safeguard notify silence add`): matchers on `rule`,
`severity`, `la`, `team` and `subject` (the pseudonym), a start, an end, a reason and an author.

- Matching is **exact**: each matcher lists one or more values and an alert matches it when its value is one of
  them; an alert is silenced only when *every* matcher of the silence matches (values within a matcher are OR,
  matchers are AND). No regular expressions: a safeguarding silence should name exactly what it holds, and every
  value is checked when the silence is made (known rule ids, severities, three-digit LA codes, teams of the rota,
  64-hex pseudonyms), so a typo is refused instead of silently silencing nothing — or too much. A silence needs at
  least one matcher.
- A silence is active on the half-open interval `[starts_at, end)`, where `end` is its `ends_at` or the time it
  was expired early, whichever is first. It applies to alerts *taken on* while it is active; an alert already
  messaged is not recalled (acknowledge it instead).
- When several active silences match, the alert is held by the one that ends last (so it is held while any of
  them is active; when that one ends the alert is looked at again).

**Inhibition** (rules in the rota file, `[[inhibit]]`): an open *source* alert holds back *target* alerts that
share the `equal` fields (default: the subject), Alertmanager-style, for `hours` after the source was taken on:

- a target is held while a matching source is **open** (not acknowledged) and was taken on no more than
  `hours` before; it is released (messaged, if still open) when the source is acknowledged or the window ends,
  whichever comes first — failing open: a held alert is always messaged in the end unless someone acknowledged it;
- a source that is itself held (silenced or inhibited) inhibits nothing, so a silence never hides a child's
  other alerts by the back door, and two alerts can never hold each other;
- the held alert names the holding alert (its id and rule) and the inhibition rule.

Silences are looked at first (an explicit human decision is named before an automatic one).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from schemas.identifiers import find_identifiers

MatcherField = Literal["rule", "severity", "la", "team", "subject"]
MATCHER_FIELDS: tuple[MatcherField, ...] = ("rule", "severity", "la", "team", "subject")
EQUAL_FIELDS: tuple[MatcherField, ...] = ("subject", "la", "team")
"""The fields an inhibition rule may require source and target to share."""
SEVERITIES = ("info", "medium", "high", "critical")
MAX_SILENCE = timedelta(days=14)
"""The longest silence: longer ones hide too much for too long; make a new one when it ends."""
MAX_INHIBIT = timedelta(days=7)
MAX_REASON = 500

_LA = re.compile(r"^[0-9]{3}$")
_SUBJECT = re.compile(r"^[0-9a-f]{64}$")
_RULE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
SILENCE_ID = re.compile(r"^[0-9a-f]{12}$")

HoldKind = Literal["silence", "inhibition"]


@dataclass(frozen=True)
class AlertFacts:
    """What holds look at of one alert: its matcher values and when the notifier took it on."""

    alert_id: str
    rule: str
    severity: str
    la: str
    team: str
    subject: str
    taken_at: datetime

    def value(self, field: MatcherField) -> str:
        return str(getattr(self, field))


Matchers = tuple[tuple[MatcherField, frozenset[str]], ...]


def matchers_of(given: Mapping[str, Iterable[str]]) -> Matchers:
    """Matchers in the canonical order of MATCHER_FIELDS, empty value lists left out."""
    return tuple((f, frozenset(given[f])) for f in MATCHER_FIELDS if f in given and frozenset(given[f]))


def describe_matchers(matchers: Matchers) -> str:
    """`rule=repeat_missing severity=info|medium` (subjects shortened to their first 12 characters)."""
    parts = []
    for field, values in matchers:
        shown = sorted(v[:12] + "…" if field == "subject" and len(v) > 12 else v for v in values)
        parts.append(f"{field}={'|'.join(shown)}")
    return " ".join(parts)


@dataclass(frozen=True)
class Silence:
    silence_id: str
    matchers: Matchers
    starts_at: datetime
    ends_at: datetime
    reason: str
    author: str
    created_at: datetime
    expired_at: datetime | None = None  # when it was expired early
    expired_by: str | None = None

    @property
    def end(self) -> datetime:
        """When it stops holding: its end, or the moment it was expired early."""
        return self.ends_at if self.expired_at is None else min(self.ends_at, self.expired_at)

    def active_at(self, now: datetime) -> bool:
        return self.starts_at <= now < self.end

    def status(self, now: datetime) -> Literal["pending", "active", "expired", "ended"]:
        if self.expired_at is not None and self.expired_at < self.ends_at and now >= self.expired_at:
            return "expired"
        if now >= self.end:
            return "ended"
        return "active" if now >= self.starts_at else "pending"

    def matches(self, facts: AlertFacts) -> bool:
        """Every matcher matches (exactly, one of its values). A silence without matchers matches nothing."""
        return bool(self.matchers) and all(facts.value(field) in values for field, values in self.matchers)

    def teams(self) -> frozenset[str] | None:
        """The teams it is limited to, or None when it has no team matcher."""
        return next((values for field, values in self.matchers if field == "team"), None)

    def describe(self) -> str:
        return f"silence {self.silence_id} ({describe_matchers(self.matchers)}; {self.reason})"


def silence_for(silences: Iterable[Silence], facts: AlertFacts, now: datetime) -> Silence | None:
    """The active silence that holds this alert now: of those matching, the one ending last (then by id)."""
    found = [s for s in silences if s.active_at(now) and s.matches(facts)]
    return max(found, key=lambda s: (s.end, s.silence_id)) if found else None


def check_silence(
    matchers: Matchers,
    starts_at: datetime,
    ends_at: datetime,
    reason: str,
    author: str,
    now: datetime,
    *,
    known_rules: Iterable[str] | None = None,
    teams: Iterable[str] | None = None,
) -> list[str]:
    """Every problem with a silence about to be made (empty: it may be made). `known_rules`/`teams`: None = any
    well-formed value."""
    problems = check_matchers(matchers, known_rules=known_rules, teams=teams)
    if ends_at <= starts_at:
        problems.append("the end must be after the start")
    elif ends_at - starts_at > MAX_SILENCE:
        problems.append(f"a silence lasts at most {MAX_SILENCE.days} days; make a new one when it ends")
    if ends_at <= now:
        problems.append("the end is in the past")
    problems += check_reason(reason)
    if not author.strip():
        problems.append("the author is required")
    return problems


def check_matchers(
    matchers: Matchers, *, known_rules: Iterable[str] | None = None, teams: Iterable[str] | None = None
) -> list[str]:
    """Problems with a silence's matchers: none at all, or a value that is not a known one."""
    problems: list[str] = []
    if not matchers:
        problems.append("a silence needs at least one matcher (rule, severity, LA, team or subject)")
    rules = frozenset(known_rules) if known_rules is not None else None
    team_names = frozenset(teams) if teams is not None else None
    for field, values in matchers:
        for value in sorted(values):
            bad = _bad_value(field, value, rules, team_names)
            if bad:
                problems.append(bad)
    return problems


def check_reason(reason: str) -> list[str]:
    """A reason is required, short, and identifies nobody (the project's shared identifier guard)."""
    if not reason.strip():
        return ["give a reason"]
    if len(reason) > MAX_REASON:
        return [f"the reason is longer than {MAX_REASON} characters"]
    kinds = list(dict.fromkeys(m.kind for m in find_identifiers(reason, context="text")))
    if kinds:
        return [f"the reason looks like it holds {' and '.join(kinds)}; it must not identify anyone"]
    return []


def _bad_value(field: MatcherField, value: str, rules: frozenset[str] | None, teams: frozenset[str] | None) -> str:
    if field == "rule" and (not _RULE.match(value) or (rules is not None and value not in rules)):
        return f"unknown rule {value!r}" + (f"; valid: {', '.join(sorted(rules))}" if rules else "")
    if field == "severity" and value not in SEVERITIES:
        return f"{value!r} is not a severity ({', '.join(SEVERITIES)})"
    if field == "la" and not _LA.match(value):
        return f"{value!r} is not a three-digit LA code"
    if field == "team" and (not value.strip() or (teams is not None and value not in teams)):
        return f"{value!r} is not a team" + (f" ({', '.join(sorted(teams))})" if teams else "")
    if field == "subject" and not _SUBJECT.match(value):
        return f"{value[:20]!r} is not a pseudonym (64 lower-case hex characters)"
    return ""


# -- inhibition ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InhibitRule:
    """While an open alert matching the source side exists, alerts matching the target side that share the
    `equal` fields are held, for `window` after the source was taken on."""

    name: str
    source_rules: frozenset[str]
    target_rules: frozenset[str]
    window: timedelta
    source_severities: frozenset[str] = frozenset(SEVERITIES)
    target_severities: frozenset[str] = frozenset(SEVERITIES)
    equal: tuple[MatcherField, ...] = ("subject",)

    def is_source(self, facts: AlertFacts) -> bool:
        return facts.rule in self.source_rules and facts.severity in self.source_severities

    def is_target(self, facts: AlertFacts) -> bool:
        return facts.rule in self.target_rules and facts.severity in self.target_severities


@dataclass(frozen=True)
class OpenAlert:
    """A possible source: another alert, whether it is still open (not acknowledged) and whether it is held."""

    facts: AlertFacts
    open: bool = True
    held: bool = False


def inhibitor(
    rules: Sequence[InhibitRule], target: AlertFacts, others: Iterable[OpenAlert], now: datetime
) -> tuple[InhibitRule, AlertFacts, datetime] | None:
    """(rule, source alert, end of its window) of the inhibition holding `target` now; of several, the one whose
    window ends last. A source must be open, not held itself, taken on at or before `now` and less than the rule's
    window ago, and share the rule's `equal` fields with the target."""
    found: list[tuple[InhibitRule, AlertFacts, datetime]] = []
    candidates = [o.facts for o in others if o.open and not o.held and o.facts.alert_id != target.alert_id]
    for rule in rules:
        if not rule.is_target(target):
            continue
        for source in candidates:
            until = source.taken_at + rule.window
            if (
                rule.is_source(source)
                and source.taken_at <= now < until
                and all(source.value(f) == target.value(f) for f in rule.equal)
            ):
                found.append((rule, source, until))
    return max(found, key=lambda f: (f[2], f[1].alert_id)) if found else None


def sources_wanted(rules: Sequence[InhibitRule], facts: AlertFacts) -> frozenset[str]:
    """The source rule ids that could hold this alert back (empty: no rule targets it; nothing to look up)."""
    return frozenset(r for rule in rules if rule.is_target(facts) for r in rule.source_rules)


def longest_window(rules: Sequence[InhibitRule]) -> timedelta:
    return max((r.window for r in rules), default=timedelta(0))


@dataclass(frozen=True)
class Hold:
    """Why an alert is held and until when it is looked at again (`by`: the silence id or the source alert id)."""

    kind: HoldKind
    by: str
    until: datetime
    note: str


def hold_for(
    facts: AlertFacts,
    silences: Iterable[Silence],
    rules: Sequence[InhibitRule],
    others: Iterable[OpenAlert],
    now: datetime,
) -> Hold | None:
    """Whether the alert is to be held now, by a silence first, else by an inhibition; None: message it."""
    silence = silence_for(silences, facts, now)
    if silence is not None:
        return Hold("silence", silence.silence_id, silence.end, f"silenced by {silence.describe()}")
    found = inhibitor(rules, facts, others, now)
    if found is not None:
        rule, source, until = found
        note = (
            f"held back by {source.rule} alert {source.alert_id} while it is open "
            f"(inhibition rule {rule.name}, at most until {until.isoformat(timespec='minutes')})"
        )
        return Hold("inhibition", source.alert_id, until, note)
    return None
