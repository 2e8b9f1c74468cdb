"""`safeguard notify`: the notifier that routes alerts to on-duty managers, and its rota and account tools."""

from __future__ import annotations

import logging
import signal
import sys
from datetime import datetime
from pathlib import Path
from types import FrameType
from zoneinfo import ZoneInfo

import click

from safeguard.settings import Settings

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
@pass_settings
def notify_run(settings: Settings, rota_file: Path | None, channels: str | None, port: int | None) -> None:
    """Consume safeguarding.alerts.v1, message the manager on duty, escalate, serve the acknowledgement page.

    Every change of an alert's state goes to safeguarding.alert-lifecycle.v1. State (open alerts,
    acknowledgements, timers, audit) is kept in SQLite under SAFEGUARD_NOTIFY__DATA_DIR, so a restart
    carries on where it stopped. SIGTERM or Ctrl-C finishes deliveries in flight and stops."""
    from notify.rota import load_rota
    from notify.service import NotifierService, make_channels
    from safeguard.kafka_clients import client_options
    from safeguard.kafka_local import resolve_bootstrap

    section = settings.notify
    if port is not None:
        section = section.model_copy(update={"bind_port": port})
    rota = load_rota(rota_file or section.rota_file)
    enabled = [c.strip() for c in channels.split(",") if c.strip()] if channels else None
    bootstrap = resolve_bootstrap(settings)
    service = NotifierService(
        section, client_options(settings.kafka, bootstrap), rota, channels=make_channels(section, enabled)
    )

    def request_stop(signum: int, frame: FrameType | None) -> None:
        log.info("stop requested (signal %d)", signum)
        service.stop()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
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
    from notify.service import data_path
    from notify.store import NotifyStore

    path = data_path(settings.notify)
    if not path.exists():
        raise click.ClickException(f"no notifier state at {path}")
    store = NotifyStore(path)
    try:
        for entry in store.audit_trail(limit, user):
            shown = entry.alert_ids if full or len(entry.alert_ids) <= 3 else (*entry.alert_ids[:3], "...")
            ids = f" {len(entry.alert_ids)} alerts {','.join(shown)}" if entry.alert_ids else ""
            click.echo(f"{entry.at.isoformat()} {entry.actor:<16} {entry.action:<20}{ids} {entry.detail}".rstrip())
    finally:
        store.close()
