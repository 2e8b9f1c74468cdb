"""`safeguard publish FILE` (validate, publish, dead-letter) and `safeguard pseudonymise` (the HMAC toolkit)."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from producers.ingest import Accepted, FileFormat, Ingestor, IngestSummary, detect_format
from producers.pseudonymise import Pseudonymiser
from producers.publisher import EventPublisher
from safeguard.clock import system_clock
from safeguard.settings import Settings
from schemas.errors import PublishError

pass_settings = click.make_pass_decorator(Settings)


def _pseudonymiser(settings: Settings) -> Pseudonymiser:
    secret = settings.pseudonym_key.get_secret_value() if settings.pseudonym_key else None
    return Pseudonymiser.from_secret(secret)


def _connect(settings: Settings) -> EventPublisher:
    from safeguard.kafka_clients import client_options
    from safeguard.kafka_local import resolve_bootstrap

    return EventPublisher.connect(client_options(settings.kafka, resolve_bootstrap(settings)))


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), help="default: from the file extension")
@click.option("--dry-run", is_flag=True, help="validate only; publish nothing")
@click.option(
    "--pseudonymise",
    "pseudonymise_fields",
    default="",
    metavar="FIELDS",
    help="comma-separated fields holding raw identifiers to pseudonymise before validation, e.g. child_id,household_id",
)
@click.option("--show-rejections", default=10, show_default=True, help="how many rejected lines to list")
@pass_settings
def publish(
    settings: Settings,
    file: Path,
    fmt: FileFormat | None,
    dry_run: bool,
    pseudonymise_fields: str,
    show_rejections: int,
) -> None:
    """Validate every line of a JSONL or CSV FILE; publish valid events and dead-letter the rest with the reason.

    Exits 1 when any line was rejected, 2 when Kafka did not accept messages.
    """
    try:
        file_format = fmt or detect_format(file)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    fields = frozenset(f.strip() for f in pseudonymise_fields.split(",") if f.strip())
    ingestor = Ingestor(
        clock=system_clock,
        pseudonymiser=_pseudonymiser(settings) if fields else None,
        pseudonymise_fields=fields,
        window=settings.event_time,
    )
    summary = IngestSummary()
    rejections: list[str] = []
    err = Console(stderr=True)
    publisher = None if dry_run else _connect(settings)
    stopped: tuple[int, PublishError] | None = None
    last_line = 0
    try:
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeRemainingColumn(),
            console=err,
            transient=True,
            disable=not err.is_terminal,
        ) as progress:
            task = progress.add_task(f"{'checking' if dry_run else 'publishing'} {file.name}", total=_count_lines(file))
            try:
                for outcome in ingestor.ingest(file, file_format, summary):
                    last_line = outcome.line
                    if isinstance(outcome, Accepted):
                        if publisher is not None:
                            publisher.publish(outcome.event)
                    else:
                        if publisher is not None:
                            publisher.publish_dead_letter(outcome.dead_letter)
                        if len(rejections) < show_rejections:
                            rejections.append(f"line {outcome.line}: {outcome.dead_letter.error}")
                    progress.update(task, completed=outcome.line)
            except PublishError as exc:  # Kafka stopped answering: the lines after this one would fare no better
                stopped = (last_line, exc)
    finally:
        report = publisher.close(timeout=10.0 if stopped else 30.0) if publisher is not None else None
    _print_summary(file, summary, report.delivered if report else None, dry_run)
    if stopped is not None:
        err.print(
            f"[red]stopped at line {stopped[0]}[/red]: {stopped[1]}. Nothing after that line was sent; "
            "publish the file again once Kafka answers (events already delivered are not counted twice: "
            "readers dedupe by event_id).",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(2)
    for line in rejections:
        err.print(f"[red]rejected[/red] {line}", highlight=False, soft_wrap=True)
    if summary.rejected > len(rejections):
        err.print(f"... and {summary.rejected - len(rejections)} more rejected lines (see the dead-letter topic)")
    if publisher is not None:
        publisher.raise_for_failures()
    if summary.rejected:
        sys.exit(1)


def _count_lines(file: Path) -> int:
    """Lines in the file, for the progress bar (a fast pass over the bytes)."""
    with file.open("rb") as fh:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b"")) or 1


def _print_summary(file: Path, summary: IngestSummary, delivered: int | None, dry_run: bool) -> None:
    table = Table(title=f"{file.name}: {summary.read} records read", show_header=True, title_justify="left")
    table.add_column("outcome")
    table.add_column("count", justify="right")
    for event_type, n in sorted(summary.accepted_by_type.items()):
        table.add_row(f"accepted {event_type}", str(n))
    for reason, n in sorted(summary.rejected_by_reason.items()):
        table.add_row(f"dead-lettered ({reason})", str(n))
    table.add_row("[bold]accepted[/bold]", str(summary.accepted))
    table.add_row("[bold]dead-lettered[/bold]" if not dry_run else "[bold]rejected[/bold]", str(summary.rejected))
    if delivered is not None:
        table.add_row("delivered to Kafka", str(delivered))
    if dry_run:
        table.caption = "dry run: nothing was published"
    Console().print(table)


@click.command()
@click.argument("values", nargs=-1)
@click.option("--csv", "csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="a CSV file")
@click.option("--columns", default="", help="with --csv: comma-separated columns to pseudonymise")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="with --csv: output file (default stdout)")
@pass_settings
def pseudonymise(
    settings: Settings, values: tuple[str, ...], csv_file: Path | None, columns: str, out: Path | None
) -> None:
    """Print the pseudonym of each VALUE (or of each line on standard input), or rewrite CSV columns.

    The key is SAFEGUARD_PSEUDONYM_KEY. Run this inside the agency boundary: its input is raw identifiers.
    """
    hasher = _pseudonymiser(settings)
    if csv_file is not None:
        wanted = [c.strip() for c in columns.split(",") if c.strip()]
        if not wanted:
            raise click.UsageError("--csv needs --columns, e.g. --columns child_id,household_id")
        _pseudonymise_csv(hasher, csv_file, wanted, out)
        return
    source = values or tuple(line.rstrip("\n") for line in sys.stdin if line.strip())
    for value in source:
        click.echo(hasher.pseudonym(value))


def _pseudonymise_csv(hasher: Pseudonymiser, path: Path, columns: list[str], out: Path | None) -> None:
    with path.open(newline="", encoding="utf-8") as src:
        reader = csv.DictReader(src)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise click.UsageError(f"{path.name} has no column {', '.join(missing)}; columns: {reader.fieldnames}")
        sink = out.open("w", newline="", encoding="utf-8") if out else sys.stdout
        try:
            writer = csv.DictWriter(sink, fieldnames=list(reader.fieldnames or []))
            writer.writeheader()
            for row in reader:
                writer.writerow({k: (hasher.pseudonym(v) if k in columns and v.strip() else v) for k, v in row.items()})
        finally:
            if out:
                sink.close()
