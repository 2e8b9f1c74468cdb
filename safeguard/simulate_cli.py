"""`safeguard simulate`: a calibrated synthetic year of events, to a JSONL file or (paced) into Kafka."""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table

from producers.publisher import DeliveryReport, EventPublisher
from producers.simulate import SCENARIOS, Scenario, calibration_rows, figures, generate, replay, to_jsonl
from producers.simulate.census import write_simulated_census
from producers.simulate.timeline import local_epoch, to_datetime
from safeguard.settings import Settings
from schemas.errors import PublishError
from schemas.events import AgencyEvent, Envelope

pass_settings = click.make_pass_decorator(Settings)
log = logging.getLogger(__name__)


def _connect(settings: Settings) -> EventPublisher:
    """A publisher on the configured Kafka, else the local broker (imported late: only --publish needs it)."""
    from safeguard.kafka_clients import client_options
    from safeguard.kafka_local import resolve_bootstrap

    return EventPublisher.connect(client_options(settings.kafka, resolve_bootstrap(settings)))


@click.command()
@click.option("--scenario", "name", type=click.Choice(sorted(SCENARIOS)), default="leeds-2019", show_default=True)
@click.option("--seed", type=int, default=7, show_default=True, help="same seed, same events (ids included)")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="write JSONL, one event per line")
@click.option("--publish", is_flag=True, help="publish to Kafka (SAFEGUARD_KAFKA__*, else the local broker)")
@click.option(
    "--speed",
    type=click.FloatRange(min=0, min_open=True),
    help="with --publish: event-time seconds per wall second, e.g. 86400 = a day a second (default: flat out)",
)
@click.option("--days", type=click.IntRange(min=1), help="only the first N days of the year (quick demos)")
@click.option(
    "--cin-out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="also write the year's referrals and plans as a CIN census XML file (for `safeguard import cin`)",
)
@pass_settings
def simulate(
    settings: Settings,
    name: str,
    seed: int,
    out: Path | None,
    publish: bool,
    speed: float | None,
    days: int | None,
    cin_out: Path | None,
) -> None:
    """Generate a calibrated synthetic year (invented people, demo pseudonyms) and write or publish it."""
    if out is not None and publish:
        raise click.UsageError("choose one of --out FILE and --publish")
    if cin_out is not None and publish:
        raise click.UsageError("--cin-out writes files; use it without --publish")
    if speed is not None and not publish:
        raise click.UsageError("--speed paces publishing; use it with --publish")
    scenario = SCENARIOS[name]
    if publish:
        publish_year(settings, name, seed, days, speed)
        return
    events = _generate(scenario, seed, days, Console(stderr=True))
    if out is not None:
        to_jsonl(events, out)
        click.echo(f"wrote {out}", err=True)
    if cin_out is not None:
        children = write_simulated_census(events, scenario, cin_out)
        click.echo(f"wrote {cin_out} (CIN census, {len(children):,} children)", err=True)
    _print_summary(scenario, events, days)


PublishProgress = Callable[[int, int, datetime], None]
"""(events sent, events to send, event time of the last one sent): how `safeguard run` follows publishing."""


def publish_year(
    settings: Settings,
    name: str,
    seed: int,
    days: int | None,
    speed: float | None,
    on_progress: PublishProgress | None = None,
    *,
    out: Console | None = None,
    err: Console | None = None,
) -> None:
    """Generate a scenario and publish it, then print what Kafka acknowledged (exit 2 when it stopped answering).

    Without `on_progress` a progress bar shows on a terminal's stderr. With it the caller shows progress, and
    passes the consoles it draws on (`out`, `err`): another rich Console would write straight past its live view.
    """
    out = out or Console()
    err = err or Console(stderr=True)
    scenario = SCENARIOS[name]
    publisher = _connect(settings)  # before generating: no Kafka should fail at once, not after a year's work
    stopped: PublishError | None = None
    events = _generate(scenario, seed, days, err)
    try:
        _replay(scenario, events, publisher, speed, on_progress)
    except PublishError as exc:  # Kafka stopped taking messages: the events after this one would fare no better
        stopped = exc
    finally:
        report, unflushed = _close(publisher, timeout=10.0 if stopped else 30.0)
    _print_delivery(report, out)
    if stopped is not None or unflushed is not None or report.pending:
        _kafka_stopped_answering(report, len(events), stopped or unflushed, err)
    publisher.raise_for_failures()


def _generate(scenario: Scenario, seed: int, days: int | None, err: Console) -> list[AgencyEvent]:
    began = time.perf_counter()
    events = generate(scenario, seed, days=days)
    took = time.perf_counter() - began
    err.print(
        f"{scenario.title}, seed {seed}: {len(events):,} events generated in {took:.1f} s",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    return events


def _close(publisher: EventPublisher, timeout: float) -> tuple[DeliveryReport, Exception | None]:
    """Flush and close; a flush Kafka does not answer in time is returned, not raised (what it held is unanswered)."""
    try:
        return publisher.close(timeout=timeout), None
    except Exception as exc:
        log.debug("closing the publisher failed", exc_info=True)
        return publisher.report, exc


def _kafka_stopped_answering(report: DeliveryReport, total: int, cause: Exception | None, err: Console) -> None:
    """One line on stderr (how far it got, why), exit 2: a broker that went away mid-run is not a traceback."""
    detail = str(cause) if cause is not None else "deliveries unanswered"
    if cause is not None and not isinstance(cause, PublishError) and not detail.startswith(type(cause).__name__):
        detail = f"{type(cause).__name__}: {detail}"  # kafka-python's errors already start with their name
    err.print(
        f"error: Kafka stopped answering: {report.delivered:,} of {total:,} events delivered "
        f"({report.failed:,} failed, {report.pending:,} unanswered, {total - report.sent:,} not sent) ({detail}); "
        "run the same simulation again once Kafka answers (same seed, same event ids: readers dedupe by event_id)",
        style="red",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    sys.exit(2)


def _replay(
    scenario: Scenario,
    events: list[AgencyEvent],
    publisher: EventPublisher,
    speed: float | None,
    on_progress: PublishProgress | None = None,
) -> None:
    """Publish in event-time order with a progress bar; the backload of older plan starts goes out unpaced."""
    paced_from = to_datetime(local_epoch(scenario.first_day))
    if on_progress is not None:
        total = len(events)

        def told(done: int, event: Envelope) -> None:
            on_progress(done, total, event.occurred_at)

        replay(events, publisher, speed, on_progress=told, paced_from=paced_from)
        return
    err = Console(stderr=True)
    with Progress(
        TextColumn("[bold]publishing"),
        BarColumn(),
        TextColumn("{task.completed:,}/{task.total:,} · event time {task.fields[at]}"),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    ) as progress:
        task = progress.add_task("publish", total=len(events), at="")

        def shown(done: int, event: Envelope) -> None:
            progress.update(task, completed=done, at=event.occurred_at.strftime("%Y-%m-%d %H:%M"))

        replay(events, publisher, speed, on_progress=shown, paced_from=paced_from)


def _print_summary(scenario: Scenario, events: list[AgencyEvent], days: int | None) -> None:
    counts = Counter(event.event_type for event in events)
    table = Table(title=f"{scenario.title}: events by type", title_justify="left")
    table.add_column("event type")
    table.add_column("count", justify="right")
    for event_type, count in sorted(counts.items()):
        table.add_row(event_type, f"{count:,}")
    table.add_row("[bold]total[/bold]", f"{len(events):,}")
    console = Console()
    console.print(table)
    if days is None:  # the published figures describe a whole year
        calibration = Table(title=f"{scenario.title}: calibration", title_justify="left")
        calibration.add_column("figure")
        calibration.add_column("simulated", justify="right")
        calibration.add_column("published / target", justify="right")
        for row in calibration_rows(figures(events, scenario), scenario):
            calibration.add_row(*row)
        console.print(calibration)


def _print_delivery(report: DeliveryReport, out: Console) -> None:
    table = Table(title="delivered to Kafka", title_justify="left")
    table.add_column("topic")
    table.add_column("delivered", justify="right")
    for topic, count in sorted(report.delivered_by_topic.items()):
        table.add_row(topic, f"{count:,}")
    table.add_row("[bold]total[/bold]", f"{report.delivered:,} of {report.sent:,}")
    if report.failed:
        table.add_row("[red]failed[/red]", f"{report.failed:,}")
    out.print(table)
