"""`safeguard import cin FILE...`: a partnership's CIN census years as contract events (producers/history)."""

from __future__ import annotations

import re
import sys
from contextlib import ExitStack
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from producers.history import CinImport, CinOptions, DryRun, ImportSummary, ImportTarget, JsonlTarget, PublisherTarget
from producers.history.cin import ChildKey, NfaOutcome
from producers.history.report import describe_path
from producers.pseudonymise import Pseudonymiser
from producers.publisher import DeliveryReport, EventPublisher
from safeguard.clock import system_clock
from safeguard.settings import Settings
from schemas.errors import PublishError

pass_settings = click.make_pass_decorator(Settings)
_AGENCY_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,19}$")


def _connect(settings: Settings) -> EventPublisher:
    from safeguard.kafka_clients import client_options
    from safeguard.kafka_local import resolve_bootstrap

    return EventPublisher.connect(client_options(settings.kafka, resolve_bootstrap(settings)))


@click.group("import")
def import_group() -> None:
    """Import a partnership's history from its national returns, so the rules see it from day one."""


@import_group.command("cin")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="parse, validate and report; publish nothing")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="append the events to a JSONL file instead of publishing (events already in it are not written again)",
)
@click.option(
    "--agency-code", default="CIN", show_default=True, help="agency_code of the imported events (their provenance)"
)
@click.option(
    "--child-id-from",
    type=click.Choice(["la-child-id", "upn"]),
    default="la-child-id",
    show_default=True,
    help="the identifier the child's pseudonym is made from (the one the LA's live feed uses)",
)
@click.option(
    "--nfa-referrals",
    type=click.Choice(["referral", "nfa"]),
    default="referral",
    show_default=True,
    help="a referral flagged ReferralNFA: a referral as the DfE counts it, or decided nfa (no referral for the rules)",
)
@click.option("--show-rejections", default=20, show_default=True, help="how many rejected elements to list")
@pass_settings
def import_cin(
    settings: Settings,
    files: tuple[Path, ...],
    dry_run: bool,
    out: Path | None,
    agency_code: str,
    child_id_from: str,
    nfa_referrals: str,
    show_rejections: int,
) -> None:
    """Import CIN census XML FILES (any year from 2017-18 on, oldest first whatever the order given).

    Each CINdetails becomes a referral (contact.received and contact.decided), each ChildProtectionPlans a
    cp_plan.started and, once ended, a cp_plan.ended. LAchildID and UPN are pseudonymised here with
    SAFEGUARD_PSEUDONYM_KEY and go no further. Ids are deterministic: overlapping years and re-imports add
    nothing twice. Exits 1 when any element was rejected, 2 when Kafka did not accept messages.
    """
    if dry_run and out is not None:
        raise click.UsageError("choose one of --dry-run and --out FILE")
    if not _AGENCY_CODE.match(agency_code):
        raise click.UsageError("--agency-code: letters, digits, _ and -, at most 20 characters")
    secret = settings.pseudonym_key.get_secret_value() if settings.pseudonym_key else None
    importer = CinImport(
        pseudonymiser=Pseudonymiser.from_secret(secret),
        clock=system_clock,
        window=settings.event_time,
        options=CinOptions(
            agency_code=agency_code,
            child_key=_CHILD_KEYS[child_id_from],
            nfa_outcome=_NFA_OUTCOMES[nfa_referrals],
        ),
        la_code=settings.la_code,
    )
    err = Console(stderr=True)
    summary = ImportSummary()
    stopped: PublishError | None = None
    delivery: DeliveryReport | None = None
    with ExitStack() as stack:
        publisher = None if dry_run or out is not None else _connect(settings)
        target: ImportTarget = DryRun()
        if out is not None:
            jsonl = JsonlTarget(out)
            stack.callback(jsonl.close)
            target = jsonl
        elif publisher is not None:
            target = PublisherTarget(publisher)
        try:
            with _progress(err) as progress:
                task = progress.add_task(
                    "checking" if dry_run else "importing", total=sum(f.stat().st_size for f in files)
                )
                importer.run(list(files), target, summary, on_bytes=lambda n: progress.advance(task, n))
        except PublishError as exc:  # Kafka stopped answering: what follows would fare no better
            stopped = exc
        finally:
            if publisher is not None:
                delivery = publisher.close(timeout=10.0 if stopped else 30.0)
    _print_summary(summary, dry_run=dry_run, out=out, delivery=delivery)
    _print_details(err, summary, show_rejections)
    if stopped is not None:
        err.print(
            f"[red]stopped[/red]: {stopped}. Import the files again once Kafka answers: events already delivered "
            "keep their ids and are not counted twice downstream.",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(2)
    if publisher is not None:
        publisher.raise_for_failures()
    if summary.rejected:
        sys.exit(1)


_CHILD_KEYS: dict[str, ChildKey] = {"la-child-id": "la_child_id", "upn": "upn"}
_NFA_OUTCOMES: dict[str, NfaOutcome] = {"referral": "referral", "nfa": "nfa"}


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )


def _print_summary(summary: ImportSummary, *, dry_run: bool, out: Path | None, delivery: DeliveryReport | None) -> None:
    table = Table(
        title=f"CIN census import: {len(summary.files)} files, {summary.children:,} children",
        title_justify="left",
    )
    table.add_column("")
    table.add_column("count", justify="right")
    for report in summary.files:
        state = f"refused: {report.refused}" if report.refused else f"{report.children:,} children"
        table.add_row(f"{report.name} (year {report.year or '?'}, LA {report.la_code or '?'})", state)
    table.add_row("referrals (CINdetails)", f"{summary.referrals:,}")
    table.add_row("child protection plans", f"{summary.plans:,}")
    for event_type, n in sorted(summary.generated_by_type.items()):
        table.add_row(f"generated {event_type}", f"{n:,}")
    table.add_row("[bold]events generated[/bold]", f"{summary.generated:,}")
    table.add_row("duplicates within this import (overlapping years)", f"{summary.duplicates:,}")
    if summary.new is not None:
        table.add_row("[bold]new[/bold]", f"{summary.new:,}")
        table.add_row("already present", f"{summary.already_present or 0:,}")
    elif dry_run:
        table.add_row("new / already present", "not known (dry run)")
    else:
        table.add_row("sent to Kafka", f"{summary.sent:,}")
        table.add_row("new / already present", "not known (Kafka keeps no index; readers dedupe by event_id)")
    if delivery is not None:
        table.add_row("delivered to Kafka", f"{delivery.delivered:,}")
    for code, n in sorted(summary.rejected_by_code.items()):
        table.add_row(f"rejected ({code})", f"{n:,}")
    table.add_row("[bold]rejected elements[/bold]", f"{summary.rejected:,}")
    table.add_row("unknown elements or codes (skipped)", f"{sum(summary.unknown_elements.values()):,}")
    if dry_run:
        table.caption = "dry run: nothing was published"
    elif out is not None:
        table.caption = f"written to {out}"
    Console().print(table)


def _print_details(err: Console, summary: ImportSummary, show_rejections: int) -> None:
    for warning in summary.warnings:
        err.print(f"[yellow]warning[/yellow] {warning}", highlight=False, soft_wrap=True)
    for pattern, n in summary.unknown_elements.most_common():
        first = summary.unknown_first_seen[pattern]
        err.print(
            f"[yellow]unknown[/yellow] {describe_path(pattern)}: {n:,} times (first at {first}), skipped",
            highlight=False,
            soft_wrap=True,
        )
    for rejection in summary.rejections[:show_rejections]:
        err.print(f"[red]rejected[/red] {rejection}", highlight=False, soft_wrap=True)
    listed = min(show_rejections, len(summary.rejections))
    if summary.rejected > listed:
        err.print(f"... and {summary.rejected - listed:,} more rejected elements")
