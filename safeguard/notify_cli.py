"""`safeguard notify`: the notifier that routes alerts to on-duty managers, and its rota and account tools."""

from __future__ import annotations

import logging
import signal
import sys
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import click

from safeguard.settings import Settings

if TYPE_CHECKING:
    from notify.store import NotifyStore

pass_settings = click.make_pass_decorator(Settings)
log = logging.getLogger("safeguard.notify")


@click.group()
def notify() -> None:
    """Deliver alerts to the manager on duty (rota, email/webhook/console, acknowledgement page, escalation)."""


@notify.command("run")
@click.option("--rota", "rota_file", type=click.Path(dir_okay=False, path_type=Path), help="default: settings")
@click.option(
    "--channels", help="comma-separated subset of console,email,webhook (default: SAFEGUARD_NOTIFY__CHANNELS)"
)
@click.option("--port", type=int, help="port of the acknowledgement page (default: SAFEGUARD_NOTIFY__BIND_PORT)")
@click.option(
    "--evidence/--no-evidence",
    default=False,
    help="show each alert's evidence events (type, time, agency) on the page, read from the sink's store "
    "(SAFEGUARD_CLICKHOUSE__URL: a ClickHouse server; a chDB store is held by the sink's process)",
)
@pass_settings
def notify_run(
    settings: Settings, rota_file: Path | None, channels: str | None, port: int | None, evidence: bool
) -> None:
    """Consume safeguarding.alerts.v1, message the manager on duty, escalate, serve the acknowledgement page.

    Every change of an alert's state goes to safeguarding.alert-lifecycle.v1. State (open alerts,
    acknowledgements, timers, audit) is kept in SQLite under SAFEGUARD_NOTIFY__DATA_DIR, so a restart
    carries on where it stopped; with SAFEGUARD_NOTIFY__STORE_URL, in a PostgreSQL store that several
    instances share (docs/notifier.md, "High availability"). SIGTERM or Ctrl-C finishes deliveries in
    flight and stops. The rota file is read again when it changes (or on SIGHUP); a file with problems
    leaves the running rota in place."""
    from notify.rota import load_rota
    from notify.service import NotifierService, make_channels
    from safeguard.kafka_clients import client_options
    from safeguard.kafka_local import resolve_bootstrap

    section = settings.notify
    if port is not None:
        section = section.model_copy(update={"bind_port": port})
    rota_path = rota_file or section.rota_file
    rota = load_rota(rota_path)
    enabled = [c.strip() for c in channels.split(",") if c.strip()] if channels else None
    bootstrap = resolve_bootstrap(settings)
    source = None
    if evidence:
        from notify.evidence import StoreEvidence
        from sinks.store import connect, database_name

        source = StoreEvidence(lambda: connect(settings.clickhouse), database_name(settings.clickhouse))
    service = NotifierService(
        section, client_options(settings.kafka, bootstrap), rota, channels=make_channels(section, enabled),
        rota_path=rota_path, evidence=source,
    )  # fmt: skip

    def request_stop(signum: int, frame: FrameType | None) -> None:
        log.info("stop requested (signal %d)", signum)
        service.stop()

    def request_reload(signum: int, frame: FrameType | None) -> None:
        log.info("rota reload requested (signal %d)", signum)
        service.request_reload()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, request_reload)
    click.echo(
        f"notifier: Kafka at {bootstrap}, rota {rota.source} ({len(rota.teams)} teams), "
        f"acknowledgement page {section.base_url} (listening on {section.bind_host}:{section.bind_port})",
        err=True,
    )
    if not section.users:
        click.echo(
            "notifier: no users can log in yet: `safeguard notify hash-password` and SAFEGUARD_NOTIFY__USERS",
            err=True,
        )
    service.run()
    click.echo("notifier stopped", err=True)


@notify.command("check-rota")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def notify_check_rota(file: Path) -> None:
    """Check a rota file (TOML or YAML); print its teams and shifts, or every problem (exit 2)."""
    from notify.rota import load_rota

    rota = load_rota(file)
    click.echo(f"{file}: ok — timezone {rota.timezone}, fallback team {rota.fallback_team}")
    for team in rota.teams:
        match = ", ".join(
            part
            for part in (
                "la " + ",".join(sorted(team.la_codes)) if team.la_codes else "any la",
                "rules " + ",".join(sorted(team.rules)) if team.rules else "any rule",
                "severities " + ",".join(sorted(team.severities)),
            )
        )
        click.echo(f"  team {team.name}: {match}")
        for shift in team.shifts:
            click.echo(f"    {shift.describe():<40} {' → '.join(shift.chain())}")


@notify.command("who-is-on-duty")
@click.option(
    "--at", "at_text", help="ISO time; without an offset it is local time in the rota's timezone (default now)"
)
@click.option("--la-code", default=None, help="default: SAFEGUARD_LA_CODE")
@click.option("--rule", "rule_id", default="high_risk_missing", show_default=True)
@click.option(
    "--severity", default="high", show_default=True, type=click.Choice(["info", "medium", "high", "critical"])
)
@click.option("--rota", "rota_file", type=click.Path(dir_okay=False, path_type=Path))
@pass_settings
def notify_who(
    settings: Settings, at_text: str | None, la_code: str | None, rule_id: str, severity: str, rota_file: Path | None
) -> None:
    """Who an alert would go to at a given time: team, shift, primary and escalation contacts."""
    from notify.rota import load_rota
    from safeguard.clock import system_clock

    rota = load_rota(rota_file or settings.notify.rota_file)
    if at_text:
        try:
            at = datetime.fromisoformat(at_text)
        except ValueError:
            raise click.BadParameter(
                f"{at_text!r} is not an ISO time such as 2025-03-30T07:30", param_hint="--at"
            ) from None
        if at.tzinfo is None:
            at = at.replace(tzinfo=ZoneInfo(rota.timezone))
    else:
        at = system_clock()
    duty = rota.route(la_code or settings.la_code, rule_id, severity, at)
    local = duty.local_time
    click.echo(f"at {local.isoformat()} ({local.tzname()}): team {duty.team.name}, shift {duty.shift.describe()}")
    for level, cid in enumerate(duty.chain):
        contact = rota.contacts[cid]
        ways = ", ".join(ch for ch, _ in contact.channels())
        click.echo(f"  {'primary' if level == 0 else f'level {level}'}: {contact.name} ({cid}; {ways})")


@notify.command("hash-password")
@click.option("--user", help="also print the SAFEGUARD_NOTIFY__USERS entry for this user name")
@click.option("--team", help="the user's team (with --user)")
def notify_hash_password(user: str | None, team: str | None) -> None:
    """Read a password (prompted, not echoed; or one line on stdin) and print its scrypt hash."""
    import json

    from notify.security import hash_password

    if sys.stdin.isatty():
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\n")
    if len(password) < 12:
        raise click.UsageError("use a password of at least 12 characters")
    hashed = hash_password(password)
    if user:
        entry = {user: {"password_hash": hashed, "team": team or "TEAM"}}
        click.echo(f"SAFEGUARD_NOTIFY__USERS='{json.dumps(entry)}'")
    else:
        click.echo(hashed)


@notify.command("new-secret")
def notify_new_secret() -> None:
    """Print a random link secret for SAFEGUARD_NOTIFY__LINK_SECRET."""
    import secrets

    click.echo(secrets.token_urlsafe(48))


@notify.command("audit")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--user", help="only this user's actions")
@click.option("--full", is_flag=True, help="every alert id of an entry, not the first three")
@pass_settings
def notify_audit(settings: Settings, limit: int, user: str | None, full: bool) -> None:
    """Print the audit trail (who logged in, saw and acknowledged what), newest first."""
    from notify.service import data_path, open_store, store_exists

    if not store_exists(settings.notify):
        raise click.ClickException(f"no notifier state at {data_path(settings.notify)}")
    store = open_store(settings.notify)
    try:
        for entry in store.audit_trail(limit, user):
            shown = entry.alert_ids if full or len(entry.alert_ids) <= 3 else (*entry.alert_ids[:3], "...")
            ids = f" {len(entry.alert_ids)} alerts {','.join(shown)}" if entry.alert_ids else ""
            click.echo(f"{entry.at.isoformat()} {entry.actor:<16} {entry.action:<20}{ids} {entry.detail}".rstrip())
    finally:
        store.close()


# -- silences ---------------------------------------------------------------------------------------------------


@notify.group("silence")
def notify_silence() -> None:
    """Silences: hold back messages about matching alerts for a while (shown on the page, audited)."""


def _values(given: tuple[str, ...]) -> list[str]:
    """Repeated options and comma-separated values, in order, each once."""
    return list(dict.fromkeys(v.strip() for text in given for v in text.split(",") if v.strip()))


def _instant(text: str, zone: ZoneInfo, option: str) -> datetime:
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO time such as 2025-03-30T07:30", param_hint=option) from None
    return at.replace(tzinfo=zone) if at.tzinfo is None else at


def _duration(text: str) -> float:
    import re

    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([mhd])\s*", text)
    if not match:
        raise click.BadParameter(f"{text!r} is not a duration such as 90m, 2h or 1d", param_hint="--duration")
    return float(match.group(1)) * {"m": 60, "h": 3600, "d": 86400}[match.group(2)]


def _open_store(settings: Settings, *, create: bool = False) -> NotifyStore:
    from notify.service import data_path, open_store, store_exists

    if not create and not store_exists(settings.notify):
        raise click.ClickException(f"no notifier state at {data_path(settings.notify)}")
    return open_store(settings.notify)


@notify_silence.command("add")
@click.option("--rule", multiple=True, help="rule id(s); repeat or comma-separate")
@click.option("--severity", multiple=True, help="info, medium, high, critical; repeat or comma-separate")
@click.option("--la-code", "la", multiple=True, help="three-digit LA code(s)")
@click.option("--team", multiple=True, help="team name(s) of the rota")
@click.option("--subject", multiple=True, help="pseudonym(s) of a child or household (64 hex characters)")
@click.option(
    "--start", "start_text", help="ISO time; without an offset, local time in the rota's timezone (default now)"
)
@click.option("--end", "end_text", help="ISO time (or give --duration)")
@click.option("--duration", "duration_text", help="instead of --end: 90m, 2h, 1d")
@click.option("--reason", required=True, help="why (no names, addresses or NHS numbers)")
@click.option("--author", required=True, help="who makes it (recorded in the audit trail)")
@click.option("--rota", "rota_file", type=click.Path(dir_okay=False, path_type=Path), help="default: settings")
@pass_settings
def notify_silence_add(
    settings: Settings, rule: tuple[str, ...], severity: tuple[str, ...], la: tuple[str, ...], team: tuple[str, ...],
    subject: tuple[str, ...], start_text: str | None, end_text: str | None, duration_text: str | None, reason: str,
    author: str, rota_file: Path | None,
) -> None:  # fmt: skip
    """Make a silence: alerts taken on between its start and end that match every given matcher (exactly, one of
    its values) are recorded and shown but not messaged; still open when it ends, they are messaged then."""
    import secrets
    from datetime import timedelta

    from notify.holds import Silence, check_silence, describe_matchers, matchers_of
    from notify.rota import load_rota
    from safeguard.clock import system_clock
    from streams.rules.definitions import RULES_BY_ID

    rota = load_rota(rota_file or settings.notify.rota_file)
    zone = ZoneInfo(rota.timezone)
    now = system_clock()
    start = _instant(start_text, zone, "--start") if start_text else now
    if (end_text is None) == (duration_text is None):
        raise click.UsageError("give exactly one of --end and --duration")
    end = _instant(end_text, zone, "--end") if end_text else start + timedelta(seconds=_duration(duration_text or ""))
    given = {"rule": _values(rule), "severity": _values(severity), "la": _values(la), "team": _values(team),
             "subject": [s.lower() for s in _values(subject)]}  # fmt: skip
    matchers = matchers_of(given)
    problems = check_silence(
        matchers, start, end, reason.strip(), author.strip(), now, known_rules=RULES_BY_ID,
        teams=[t.name for t in rota.teams],
    )  # fmt: skip
    if problems:
        raise click.UsageError("no silence was made:\n  " + "\n  ".join(problems))
    silence = Silence(secrets.token_hex(6), matchers, start, end, reason.strip(), author.strip(), now)
    store = _open_store(settings, create=True)
    try:
        store.create_silence(silence, "cli")
    finally:
        store.close()
    local = {k: v.astimezone(zone).isoformat(timespec="minutes") for k, v in (("from", start), ("to", end))}
    click.echo(f"silence {silence.silence_id}: {describe_matchers(matchers)} from {local['from']} to {local['to']}")


@notify_silence.command("list")
@click.option("--all", "show_all", is_flag=True, help="also silences that ended in the last 7 days")
@click.option("--rota", "rota_file", type=click.Path(dir_okay=False, path_type=Path), help="for its timezone")
@pass_settings
def notify_silence_list(settings: Settings, show_all: bool, rota_file: Path | None) -> None:
    """List silences not yet over (active and pending), oldest start first."""
    from notify.holds import describe_matchers
    from notify.rota import load_rota
    from safeguard.clock import system_clock

    zone = ZoneInfo(load_rota(rota_file or settings.notify.rota_file).timezone)
    now = system_clock()
    store = _open_store(settings)
    try:
        silences = store.silences(now, ended_within_s=7 * 86400 if show_all else 0.0)
    finally:
        store.close()
    if not silences:
        click.echo("no silences")
    for s in silences:
        span = f"{s.starts_at.astimezone(zone):%Y-%m-%d %H:%M} → {s.end.astimezone(zone):%Y-%m-%d %H:%M %Z}"
        status = s.status(now) + (f" by {s.expired_by}" if s.status(now) == "expired" else "")
        click.echo(f"{s.silence_id}  {status:<8} {span}  {describe_matchers(s.matchers)}  ({s.author}: {s.reason})")


@notify_silence.command("expire")
@click.argument("silence_id")
@click.option("--author", required=True, help="who expires it (recorded in the audit trail)")
@pass_settings
def notify_silence_expire(settings: Settings, silence_id: str, author: str) -> None:
    """End a silence now; the alerts it holds that are still open are messaged at the notifier's next tick."""
    from safeguard.clock import system_clock

    store = _open_store(settings)
    try:
        outcome = store.expire_silence(silence_id, author.strip() or "cli", system_clock(), "cli")
    finally:
        store.close()
    if outcome == "not_found":
        raise click.ClickException(f"no silence {silence_id}")
    if outcome == "ended":
        raise click.ClickException(f"silence {silence_id} is already over")
    click.echo(f"silence {silence_id} expired")


# -- resolution -------------------------------------------------------------------------------------------------


@notify.command("resolve")
@click.argument("alert_id")
@click.option(
    "--outcome",
    required=True,
    type=click.Choice(["contact_made", "strategy_discussion", "no_further_action", "duplicate"]),
    help="how the alert was dealt with",
)
@click.option("--note", required=True, help="what was done (no names, addresses or NHS numbers)")
@click.option("--author", required=True, help="who resolves it (recorded in the audit trail and the lifecycle event)")
@pass_settings
def notify_resolve(settings: Settings, alert_id: str, outcome: str, note: str, author: str) -> None:
    """Resolve an alert with an outcome and a note (acknowledging it too if nobody had). Audited; published as an
    alert.lifecycle event `resolved` by the running notifier."""
    from notify.core import OUTCOMES, outcome_of
    from notify.web import identifier_kinds
    from safeguard.clock import system_clock

    chosen = outcome_of(outcome)
    assert chosen is not None  # click.Choice
    text = " ".join(note.split())
    if not text or not author.strip():
        raise click.UsageError("give a note and an author")
    kinds = identifier_kinds(text)
    if kinds:
        raise click.UsageError(f"the note looks like it holds {' and '.join(kinds)}; it must not identify anyone")
    store = _open_store(settings)
    try:
        result = store.resolve(alert_id.strip().lower(), author.strip(), None, chosen, text[:1000], system_clock(),
                               "cli")  # fmt: skip
    finally:
        store.close()
    if result == "not_found":
        raise click.ClickException(f"no alert {alert_id}")
    if result == "already":
        raise click.ClickException(f"alert {alert_id} is already resolved")
    click.echo(f"alert {alert_id} resolved: {OUTCOMES[chosen]}")


# -- rota operations: overrides, swaps, coverage ------------------------------------------------------------------


@notify.group("override")
def notify_override() -> None:
    """Overrides and swaps of the rota for a while (audited; the page's Rota tab shows them too)."""


def _span(start_text: str | None, end_text: str | None, duration_text: str | None, zone: ZoneInfo,
          now: datetime) -> tuple[datetime, datetime]:  # fmt: skip
    from datetime import timedelta

    start = _instant(start_text, zone, "--start") if start_text else now
    if (end_text is None) == (duration_text is None):
        raise click.UsageError("give exactly one of --end and --duration")
    end = _instant(end_text, zone, "--end") if end_text else start + timedelta(seconds=_duration(duration_text or ""))
    return start, end


def _make_change(settings: Settings, rota_file: Path | None, **given: object) -> None:
    import secrets

    from notify.cover import RotaChange, check_change
    from notify.rota import load_rota
    from safeguard.clock import system_clock

    rota = load_rota(rota_file or settings.notify.rota_file)
    zone = ZoneInfo(rota.timezone)
    now = system_clock()
    start, end = _span(given.pop("start_text"), given.pop("end_text"), given.pop("duration_text"), zone, now)  # type: ignore[arg-type]
    change = RotaChange(
        change_id=secrets.token_hex(6), starts_at=start, ends_at=end, created_at=now,
        reason=str(given.pop("reason")).strip(), author=str(given.pop("author")).strip(), **given,  # type: ignore[arg-type]
    )  # fmt: skip
    problems = check_change(change, rota, now)
    if problems:
        raise click.UsageError("nothing was changed:\n  " + "\n  ".join(problems))
    store = _open_store(settings, create=True)
    try:
        store.create_change(change, "cli")
    finally:
        store.close()
    local = [t.astimezone(zone).isoformat(timespec="minutes") for t in (start, end)]
    click.echo(f"{change.describe()} from {local[0]} to {local[1]}")


_span_options = [
    click.option("--start", "start_text", help="ISO time; no offset: the rota's local time (default now)"),
    click.option("--end", "end_text", help="ISO time (or give --duration)"),
    click.option("--duration", "duration_text", help="instead of --end: 90m, 12h, 2d"),
    click.option("--reason", required=True, help="why (no names, addresses or NHS numbers)"),
    click.option("--author", required=True, help="who makes it (recorded in the audit trail)"),
    click.option("--rota", "rota_file", type=click.Path(dir_okay=False, path_type=Path), help="default: settings"),
]


def _with_span(fn: Any) -> Any:
    for option in reversed(_span_options):
        fn = option(fn)
    return fn


@notify_override.command("add")
@click.option("--team", required=True, help="the team whose duty changes")
@click.option("--contact", required=True, help="the contact id who stands in")
@click.option("--level", type=click.IntRange(0, 9), default=0, show_default=True, help="0 = primary, 1.. = escalation")
@_with_span
@pass_settings
def notify_override_add(
    settings: Settings, team: str, contact: str, level: int, start_text: str | None, end_text: str | None,
    duration_text: str | None, reason: str, author: str, rota_file: Path | None,
) -> None:  # fmt: skip
    """Make an override: CONTACT stands in at LEVEL of TEAM's chain while it lasts (alerts taken on meanwhile go
    to them; a hand-over message lists the open alerts when duty passes)."""
    _make_change(settings, rota_file, kind="override", team=team, contact=contact, level=level, start_text=start_text,
                 end_text=end_text, duration_text=duration_text, reason=reason, author=author)  # fmt: skip


@notify_override.command("swap")
@click.option("--team", required=True, help="the team whose duty changes")
@click.option("--contact", required=True, help="a contact id of the rota")
@click.option("--with", "other", required=True, help="the contact id they trade places with")
@_with_span
@pass_settings
def notify_override_swap(
    settings: Settings, team: str, contact: str, other: str, start_text: str | None, end_text: str | None,
    duration_text: str | None, reason: str, author: str, rota_file: Path | None,
) -> None:  # fmt: skip
    """Make a swap: CONTACT and the other trade places wherever either is in TEAM's chain while it lasts."""
    _make_change(settings, rota_file, kind="swap", team=team, contact=contact, other=other, start_text=start_text,
                 end_text=end_text, duration_text=duration_text, reason=reason, author=author)  # fmt: skip


@notify_override.command("list")
@click.option("--all", "show_all", is_flag=True, help="also changes that ended in the last 7 days")
@click.option("--rota", "rota_file", type=click.Path(dir_okay=False, path_type=Path), help="for its timezone")
@pass_settings
def notify_override_list(settings: Settings, show_all: bool, rota_file: Path | None) -> None:
    """List overrides and swaps not yet over (active and pending), by start."""
    from notify.rota import load_rota
    from safeguard.clock import system_clock

    zone = ZoneInfo(load_rota(rota_file or settings.notify.rota_file).timezone)
    now = system_clock()
    store = _open_store(settings)
    try:
        changes = store.changes(now, ended_within_s=7 * 86400 if show_all else 0.0)
    finally:
        store.close()
    if not changes:
        click.echo("no overrides or swaps")
    for c in changes:
        span = f"{c.starts_at.astimezone(zone):%Y-%m-%d %H:%M} → {c.end.astimezone(zone):%Y-%m-%d %H:%M %Z}"
        status = c.status(now) + (f" by {c.cancelled_by}" if c.status(now) == "cancelled" else "")
        click.echo(f"{c.describe()}  {status:<9} {span}  ({c.author}: {c.reason})")


@notify_override.command("cancel")
@click.argument("change_id")
@click.option("--author", required=True, help="who cancels it (recorded in the audit trail)")
@pass_settings
def notify_override_cancel(settings: Settings, change_id: str, author: str) -> None:
    """End an override or swap now."""
    from safeguard.clock import system_clock

    store = _open_store(settings)
    try:
        outcome = store.cancel_change(change_id, author.strip() or "cli", system_clock(), "cli")
    finally:
        store.close()
    if outcome == "not_found":
        raise click.ClickException(f"no override or swap {change_id}")
    if outcome == "ended":
        raise click.ClickException(f"{change_id} is already over")
    click.echo(f"{change_id} cancelled")


@notify.command("coverage")
@click.option("--days", type=click.IntRange(1, 62), default=14, show_default=True)
@click.option("--channels", help="comma-separated enabled channels (default: SAFEGUARD_NOTIFY__CHANNELS)")
@click.option("--fail-on-gaps", is_flag=True, help="exit 1 when a gap is found")
@click.option("--rota", "rota_file", type=click.Path(dir_okay=False, path_type=Path), help="default: settings")
@pass_settings
def notify_coverage(settings: Settings, days: int, channels: str | None, fail_on_gaps: bool,
                    rota_file: Path | None) -> None:  # fmt: skip
    """Gaps in cover over the next DAYS days, overrides and swaps applied: hours a team has nobody on duty, no
    escalation contact, or a contact on duty no enabled channel reaches. The notifier checks this at start and
    daily."""
    from notify.cover import coverage
    from notify.rota import load_rota
    from notify.service import open_store, store_exists
    from safeguard.clock import system_clock

    rota = load_rota(rota_file or settings.notify.rota_file)
    wanted = [c.strip() for c in channels.split(",")] if channels else list(settings.notify.channels)
    enabled = {n for c in wanted for n in ({"webhook": ("webhook-slack", "webhook-teams")}.get(c, (c,)))}
    now = system_clock()
    changes = []
    if store_exists(settings.notify):
        store = open_store(settings.notify)
        try:
            changes = store.active_changes(now)
        finally:
            store.close()
    gaps = coverage(rota, changes, now, days=days, channels=enabled)
    if not gaps:
        click.echo(f"every team covered for the next {days} days ({len(changes)} overrides and swaps applied)")
        return
    for gap in gaps:
        click.echo(f"{gap.kind:<14} {gap.describe(rota)}")
    if fail_on_gaps:
        raise SystemExit(1)
