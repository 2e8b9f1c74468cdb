"""`safeguard import cin|903|ssd`: a partnership's national returns as contract events (producers/history)."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from producers.history import CinImport, CinOptions, DryRun, ImportSummary, ImportTarget, JsonlTarget, PublisherTarget
from producers.history.cin import ChildKey, NfaOutcome
from producers.history.lac import LacChildKey, LacOptions, lac_tables
from producers.history.report import describe_path
from producers.history.ssd import SsdOptions, ssd_tables
from producers.history.tabular import TableFile, TableImport
from producers.pseudonymise import Pseudonymiser
from producers.publisher import DeliveryReport, EventPublisher
from safeguard.clock import system_clock
from safeguard.settings import Settings
from schemas.errors import PublishError
from schemas.quality import CHECKS_BY_ID
from schemas.types import RiskLevel

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
    nothing twice. Data-quality checks (national rules 8925, 8840, 8935, 8940, 8905/8910, 8866) flag events;
    findings go to safeguarding.quality-findings.v1. Exits 1 when any element was rejected or a flagged event not
    imported, 2 when Kafka did not accept messages.
    """
    if dry_run and out is not None:
        raise click.UsageError("choose one of --dry-run and --out FILE")
    _agency_code(agency_code)
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
    _import(
        settings,
        "CIN census import",
        files,
        lambda target, summary, on_bytes: importer.run(list(files), target, summary, on_bytes=on_bytes),
        dry_run=dry_run,
        out=out,
        show_rejections=show_rejections,
    )


Run = Callable[[ImportTarget, ImportSummary, Callable[[int], None]], object]
"""Runs an import into a target, filling the summary, reporting bytes read."""


def _import(
    settings: Settings,
    title: str,
    files: Sequence[Path],
    run: Run,
    *,
    dry_run: bool,
    out: Path | None,
    show_rejections: int,
) -> None:
    """What every import command does around its importer: the target, the progress bar, the summary, the
    exit code (0 all taken, 1 anything rejected, 2 Kafka did not accept messages)."""
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
                run(target, summary, lambda n: progress.advance(task, n))
        except PublishError as exc:  # Kafka stopped answering: what follows would fare no better
            stopped = exc
        finally:
            if publisher is not None:
                delivery = publisher.close(timeout=10.0 if stopped else 30.0)
    _print_summary(title, summary, dry_run=dry_run, out=out, delivery=delivery)
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
    if summary.rejected or summary.held:
        sys.exit(1)


_OUT_HELP = "append the events to a JSONL file instead of publishing (events already in it are not written again)"
_RISK_LEVELS: tuple[RiskLevel, ...] = ("no_apparent_risk", "low", "medium")


def _agency_code(agency_code: str) -> str:
    if not _AGENCY_CODE.match(agency_code):
        raise click.UsageError("--agency-code: letters, digits, _ and -, at most 20 characters")
    return agency_code


def _la_code(settings: Settings, la_code: str | None) -> str:
    code = la_code or settings.la_code
    if not (len(code) == 3 and code.isdigit()):
        raise click.UsageError("--la-code: the DfE local authority code, three digits")
    return code


def _tables_import(settings: Settings, la_code: str | None, agency_code: str) -> TableImport:
    secret = settings.pseudonym_key.get_secret_value() if settings.pseudonym_key else None
    return TableImport(
        pseudonymiser=Pseudonymiser.from_secret(secret),
        clock=system_clock,
        la_code=_la_code(settings, la_code),
        agency_code=_agency_code(agency_code),
        window=settings.event_time,
    )


def _run_tables(importer: TableImport, tables: list[TableFile]) -> Run:
    return lambda target, summary, on_bytes: importer.run(tables, target, summary, on_bytes=on_bytes)


_existing_file = click.Path(exists=True, dir_okay=False, path_type=Path)


@import_group.command("903")
@click.option("--header", "headers", multiple=True, required=True, type=_existing_file, help="the Header table (CSV)")
@click.option("--missing", multiple=True, required=True, type=_existing_file, help="the Missing table (CSV)")
@click.option(
    "--episodes", multiple=True, type=_existing_file, help="the Episodes table: each episode is checked against care"
)
@click.option("--dry-run", is_flag=True, help="parse, validate and report; publish nothing")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help=_OUT_HELP)
@click.option("--la-code", help="the return's local authority (the 903 CSVs do not say) [default: SAFEGUARD_LA_CODE]")
@click.option(
    "--agency-code", default="SSDA903", show_default=True, help="agency_code of the imported events (their provenance)"
)
@click.option(
    "--child-id-from",
    type=click.Choice(["child", "upn"]),
    default="child",
    show_default=True,
    help="the identifier the child's pseudonym is made from: CHILD, or the Header's UPN",
)
@click.option(
    "--risk-level",
    type=click.Choice(_RISK_LEVELS),
    default="low",
    show_default=True,
    help="the police risk grading the contract requires and the 903 does not hold",
)
@click.option("--show-rejections", default=20, show_default=True, help="how many rejected rows to list")
@pass_settings
def import_903(
    settings: Settings,
    headers: tuple[Path, ...],
    missing: tuple[Path, ...],
    episodes: tuple[Path, ...],
    dry_run: bool,
    out: Path | None,
    la_code: str | None,
    agency_code: str,
    child_id_from: str,
    risk_level: str,
    show_rejections: int,
) -> None:
    """Import SSDA903 CSVs (dd/mm/yyyy): each row of the Missing table is a missing episode of a looked-after
    child, missing.reported and, once it has an end, missing.found (M missing, A away).

    Each option can be given once per year's return. CHILD (and UPN) are pseudonymised here with
    SAFEGUARD_PSEUDONYM_KEY and go no further. Ids are deterministic: overlapping years and re-imports add
    nothing twice. Data-quality checks flag events (rules 567, 574, 1006). Exits 1 when any row was rejected or a
    flagged event not imported, 2 when Kafka did not accept messages.
    """
    if dry_run and out is not None:
        raise click.UsageError("choose one of --dry-run and --out FILE")
    importer = _tables_import(settings, la_code, agency_code)
    options = LacOptions(
        agency_code=importer.agency_code,
        child_key=_LAC_CHILD_KEYS[child_id_from],
        risk_level=_risk_level(risk_level),
    )
    tables = lac_tables(headers=headers, missing=missing, episodes=episodes, options=options)
    files = [table.path for table in tables]
    run = _run_tables(importer, tables)
    _import(settings, "SSDA903 import", files, run, dry_run=dry_run, out=out, show_rejections=show_rejections)


@import_group.command("ssd")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="parse, validate and report; publish nothing")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help=_OUT_HELP)
@click.option("--la-code", help="the extract's local authority [default: SAFEGUARD_LA_CODE]")
@click.option(
    "--agency-code", default="SSD", show_default=True, help="agency_code of the imported events (their provenance)"
)
@click.option(
    "--nfa-referrals",
    type=click.Choice(["referral", "nfa"]),
    default="referral",
    show_default=True,
    help="a referral flagged cine_referral_nfa: a referral as the DfE counts it, or decided nfa",
)
@click.option(
    "--risk-level",
    type=click.Choice(_RISK_LEVELS),
    default="low",
    show_default=True,
    help="the police risk grading the contract requires and the SSD does not hold",
)
@click.option("--show-rejections", default=20, show_default=True, help="how many rejected rows to list")
@pass_settings
def import_ssd(
    settings: Settings,
    directory: Path,
    dry_run: bool,
    out: Path | None,
    la_code: str | None,
    agency_code: str,
    nfa_referrals: str,
    risk_level: str,
    show_rejections: int,
) -> None:
    """Import the Standard Safeguarding Dataset tables in DIRECTORY, as CSV: ssd_contacts.csv (contacts and
    their decisions), ssd_cin_episodes.csv (referrals), ssd_cp_plans.csv (plans), ssd_missing.csv (missing
    episodes and return interviews). A table not there is skipped with a warning.

    Person ids are pseudonymised here with SAFEGUARD_PSEUDONYM_KEY and go no further. Ids are deterministic,
    and the same as the census's and the 903's for the same referral, plan or episode. Exits 1 when any row
    was rejected or a flagged event not imported, 2 when Kafka did not accept messages.
    """
    if dry_run and out is not None:
        raise click.UsageError("choose one of --dry-run and --out FILE")
    importer = _tables_import(settings, la_code, agency_code)
    options = SsdOptions(
        agency_code=importer.agency_code,
        nfa_outcome=_NFA_OUTCOMES[nfa_referrals],
        risk_level=_risk_level(risk_level),
    )
    found = ssd_tables(directory, options)
    if not found.tables:
        raise click.UsageError(
            f"no SSD table in {directory}: expected ssd_contacts.csv, ssd_cin_episodes.csv, ssd_cp_plans.csv "
            "or ssd_missing.csv"
        )
    err = Console(stderr=True)
    for name in found.absent:
        err.print(f"[yellow]warning[/yellow] no {name}.csv in {directory}: skipped", highlight=False)
    for name in found.not_read:
        err.print(f"[yellow]warning[/yellow] {name} is not an SSD table this import reads: skipped", highlight=False)
    files = [table.path for table in found.tables]
    run = _run_tables(importer, found.tables)
    _import(settings, "SSD import", files, run, dry_run=dry_run, out=out, show_rejections=show_rejections)


def _risk_level(text: str) -> RiskLevel:
    return next(level for level in _RISK_LEVELS if level == text)


_CHILD_KEYS: dict[str, ChildKey] = {"la-child-id": "la_child_id", "upn": "upn"}
_NFA_OUTCOMES: dict[str, NfaOutcome] = {"referral": "referral", "nfa": "nfa"}
_LAC_CHILD_KEYS: dict[str, LacChildKey] = {"child": "child", "upn": "upn"}


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


def _print_summary(
    title: str, summary: ImportSummary, *, dry_run: bool, out: Path | None, delivery: DeliveryReport | None
) -> None:
    tabular = any(report.table for report in summary.files)
    what = f"{summary.rows:,} rows" if tabular else f"{summary.children:,} children"
    table = Table(title=f"{title}: {len(summary.files)} files, {what}", title_justify="left")
    table.add_column("")
    table.add_column("count", justify="right")
    for report in summary.files:
        if report.table:
            name, read = f"{report.name} ({report.table}, LA {report.la_code or '?'})", f"{report.rows:,} rows"
        else:
            name, read = (
                f"{report.name} (year {report.year or '?'}, LA {report.la_code or '?'})",
                f"{report.children:,} children",
            )
        table.add_row(name, f"refused: {report.refused}" if report.refused else read)
    if tabular:
        table.add_row("children with events", f"{summary.children:,}")
    counted = (
        ("contacts", summary.contacts),
        ("referrals", summary.referrals),
        ("child protection plans", summary.plans),
        ("missing episodes", summary.episodes),
    )
    for label, n in counted:
        if n or (not tabular and label in ("referrals", "child protection plans")):
            table.add_row(f"{label} (CINdetails)" if label == "referrals" and not tabular else label, f"{n:,}")
    for event_type, n in sorted(summary.generated_by_type.items()):
        table.add_row(f"generated {event_type}", f"{n:,}")
    table.add_row("[bold]events generated[/bold]", f"{summary.generated:,}")
    overlaps = "overlapping years or tables" if tabular else "overlapping years"
    table.add_row(f"duplicates within this import ({overlaps})", f"{summary.duplicates:,}")
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
    table.add_row(
        "[bold]rejected elements[/bold]" if not tabular else "[bold]rejected rows or cells[/bold]",
        f"{summary.rejected:,}",
    )
    table.add_row(
        "unknown elements or codes (skipped)" if not tabular else "unknown columns or codes (skipped)",
        f"{sum(summary.unknown_elements.values()):,}",
    )
    for rule_id, n in sorted(summary.flagged_by_rule.items()):
        table.add_row(f"flagged {rule_id} ({CHECKS_BY_ID[rule_id].name})", f"{n:,}")
    table.add_row("[bold]flagged by data-quality checks[/bold]", f"{summary.flagged_total:,}")
    table.add_row("flagged and not imported", f"{summary.held:,}")
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
    for what, n in summary.notes.most_common():
        first = summary.notes_first_seen[what]
        err.print(f"[yellow]note[/yellow] {what}: {n:,} times (first at {first})", highlight=False, soft_wrap=True)
    for flagged in summary.flagged[:show_rejections]:
        err.print(f"[yellow]flagged[/yellow] {flagged}", highlight=False, soft_wrap=True)
    if summary.flagged_total > min(show_rejections, len(summary.flagged)):
        err.print(f"... and {summary.flagged_total - min(show_rejections, len(summary.flagged)):,} more flagged events")
    for rejection in summary.rejections[:show_rejections]:
        err.print(f"[red]rejected[/red] {rejection}", highlight=False, soft_wrap=True)
    listed = min(show_rejections, len(summary.rejections))
    if summary.rejected > listed:
        err.print(f"... and {summary.rejected - listed:,} more rejected elements")
