"""`safeguard rules show|check|backtest`: the effective rule catalogue, each value with where it came from, and
a proposed catalogue replayed over history beside the current one."""

from __future__ import annotations

import sys
import time
import webbrowser
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from safeguard.settings import Settings
from schemas.alerts import AlertRaised
from schemas.errors import StoreError
from schemas.events import AgencyEvent
from streams.backtest import Backtest, BacktestError, LineError, Period

pass_settings = click.make_pass_decorator(Settings)


@click.group()
def rules() -> None:
    """The rule catalogue (rules.md) and a partnership's overrides."""


@rules.command("show")
@click.option(
    "--file",
    "rules_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="a rules file to apply instead of SAFEGUARD_STREAMS__RULES_FILE",
)
@pass_settings
def show(settings: Settings, rules_file: Path | None) -> None:
    """Print every rule's effective settings and whether each is the default or comes from the rules file."""
    from streams.rules import RULES_BY_ID, Catalogue, describe_catalogue, load_catalogue

    path = rules_file or settings.streams.rules_file
    catalogue = load_catalogue(path) if path else Catalogue.default()
    table = Table(title=f"Effective rule catalogue ({'defaults + ' + str(path) if path else 'defaults'})")
    for column in ("rule", "setting", "value", "source"):
        table.add_column(column)
    previous = None
    for row in describe_catalogue(catalogue):
        rule = RULES_BY_ID.get(row.rule_id)
        label = row.rule_id if rule is None else f"{row.rule_id} v{rule.version}"
        source = f"[bold]{row.source}[/bold]" if row.source != "default" else row.source
        table.add_row(label if row.rule_id != previous else "", row.setting, row.value, source)
        previous = row.rule_id
    Console().print(table)


@rules.command("check")
@click.argument("rules_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def check(rules_file: Path) -> None:
    """Validate a rules file (TOML or YAML); every problem is listed with its rule and key."""
    from streams.rules import load_catalogue

    catalogue = load_catalogue(rules_file)
    changed = ", ".join(sorted(catalogue.overridden)) or "nothing (all defaults)"
    click.echo(f"{rules_file}: valid; overrides {changed}")


@rules.command("backtest")
@click.option(
    "--rules",
    "rules_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="the proposed rules file (TOML or YAML, as `rules check` reads)",
)
@click.option(
    "--current",
    "current_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="the rules file to compare with (default: SAFEGUARD_STREAMS__RULES_FILE, else rules.md's defaults)",
)
@click.option("--from", "start", type=click.DateTime(["%Y-%m-%d"]), help="first day of alerts (local date)")
@click.option("--to", "end", type=click.DateTime(["%Y-%m-%d"]), help="last day of alerts, inclusive (local date)")
@click.option(
    "--source",
    default="store",
    show_default=True,
    help="`store` (the sink's ClickHouse tables, SAFEGUARD_CLICKHOUSE__URL) or a JSONL file of contract events",
)
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("backtest.html"), show_default=True
)
@click.option(
    "--partitions",
    type=click.IntRange(min=1),
    help="partitions per contract topic, for the deadline clocks (default: SAFEGUARD_KAFKA__TOPIC_PARTITIONS)",
)
@click.option(
    "--max-rows", type=click.IntRange(min=0), default=1_000, show_default=True, help="alerts listed per table"
)
@click.option("--open", "open_browser", is_flag=True, help="open the page in the default browser")
@pass_settings
def backtest(
    settings: Settings,
    rules_file: Path,
    current_file: Path | None,
    start: datetime | None,
    end: datetime | None,
    source: str,
    out: Path,
    partitions: int | None,
    max_rows: int,
    open_browser: bool,
) -> None:
    """Replay history under a proposed rules file beside the current catalogue; write an HTML report of the
    alerts per rule, month and severity under each, and the alerts gained, lost and changed with their evidence.

    Exits 2 when the rules file, the source or the period cannot be used, 1 when lines of a JSONL source were
    rejected (the report is still written, without them).
    """
    from dashboards.backtest_report import render_backtest
    from safeguard.clock import system_clock
    from streams.backtest import in_event_time_order, run_backtest
    from streams.rules import Catalogue, load_catalogue

    if start is not None and end is not None and end < start:
        raise click.UsageError("--to is before --from")
    proposed = load_catalogue(rules_file)
    current_path = current_file or settings.streams.rules_file
    current = load_catalogue(current_path) if current_path else Catalogue.default()
    err = Console(stderr=True)
    history = _read_history(settings, source, err)
    _print_rejections(history.rejected, err)
    events = in_event_time_order(history.events)
    period = _period(events, start, end)
    count = partitions or settings.kafka.topic_partitions
    began = time.perf_counter()
    with _progress(err) as progress:
        task = progress.add_task("replaying", total=sum(1 for e in events if e.occurred_at < period.end))
        result = run_backtest(
            events,
            current,
            proposed,
            period=period,
            partitions=count,
            raised_at=max(system_clock(), events[-1].occurred_at),  # the worker's clock: never behind an event
            progress=lambda done: progress.update(task, completed=done),
        )
    took = time.perf_counter() - began
    page = render_backtest(
        result,
        title=f"Rule backtest: {rules_file.name}",
        current_name=str(current_path) if current_path else "rules.md defaults",
        proposed_name=str(rules_file),
        source=history.description,
        generated_at=system_clock(),
        max_rows=max_rows,
    )
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise BacktestError(f"cannot write the report to {out}: {exc.strerror or exc}") from None
    _print_backtest(result, took)
    click.echo(f"wrote {out}")
    if open_browser:
        webbrowser.open(out.resolve().as_uri())
    if history.rejected:
        sys.exit(1)


_SHOW_REJECTIONS = 10


@dataclass(frozen=True)
class _History:
    events: list[AgencyEvent]
    description: str
    rejected: list[LineError]


def _read_history(settings: Settings, source: str, err: Console) -> _History:
    """The events of `--source`: the store's tables, or a JSONL file (bad lines set aside with their reasons)."""
    from sinks.readback import event_tables_present, read_events
    from sinks.store import connect, database_name
    from streams.backtest import decode_jsonl

    if source == "store":
        client = connect(settings)
        try:
            database = database_name(settings)
            if not event_tables_present(client, database):
                raise StoreError(
                    f"the store {settings.clickhouse.url} has no event tables in database {database}: "
                    "run `safeguard sink migrate` (or the sink) first, or give --source FILE.jsonl"
                )
            with err.status("reading events from the store"):
                events = list(read_events(client, database))
        finally:
            client.close()
        return _History(events, f"the store ({database})", [])
    path = Path(source)
    if not path.is_file():
        raise click.BadParameter(f"{source!r} is neither `store` nor a file", param_hint="--source")
    events, rejected = [], []
    try:
        with path.open("rb") as lines, _progress(err) as progress:
            task = progress.add_task(f"reading {path.name}", total=path.stat().st_size)
            for item in decode_jsonl(lines):
                if isinstance(item, LineError):
                    rejected.append(item)
                else:
                    events.append(item)
                if len(events) % 2_000 == 0:
                    progress.update(task, completed=lines.tell())
    except OSError as exc:
        raise BacktestError(f"cannot read {source}: {exc.strerror or exc}") from None
    return _History(events, path.name, rejected)


def _print_rejections(rejected: list[LineError], err: Console) -> None:
    """The first rejected lines with their reasons (the replay goes on without them)."""
    for problem in rejected[:_SHOW_REJECTIONS]:
        err.print(f"[red]rejected[/red] line {problem.line}: {problem.reason}", highlight=False, soft_wrap=True)
    if len(rejected) > _SHOW_REJECTIONS:
        err.print(f"... and {len(rejected) - _SHOW_REJECTIONS} more rejected lines", highlight=False)


def _period(events: list[AgencyEvent], start: datetime | None, end: datetime | None) -> Period:
    """--from/--to as local dates (--to inclusive); by default the local days of the first and the newest event."""
    from dashboards.report import LOCAL

    if not events:
        raise BacktestError("the source holds no events")

    def midnight(day: date) -> datetime:
        return datetime(day.year, day.month, day.day, tzinfo=LOCAL)

    first = start.date() if start else events[0].occurred_at.astimezone(LOCAL).date()
    last = end.date() if end else events[-1].occurred_at.astimezone(LOCAL).date()
    return Period(midnight(first), midnight(last + timedelta(days=1)))


def _progress(err: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )


def _print_backtest(result: Backtest, took: float) -> None:
    cmp = result.comparison
    table = Table(
        title=f"{result.replayed:,} events replayed in {took:.1f} s; alerts from {result.period.start:%Y-%m-%d} "
        f"to {result.period.end - timedelta(days=1):%Y-%m-%d}",
        title_justify="left",
    )
    for column in ("rule", "current", "proposed", "same", "changed", "gained", "lost"):
        if column == "rule":
            table.add_column(column, no_wrap=True, min_width=28)
        else:
            table.add_column(column, justify="right")
    groups: dict[str, list[Sequence[AlertRaised]]] = {
        "current": [result.current],
        "proposed": [result.proposed],
        "same": [cmp.same],
        "changed": [[c.current for c in cmp.changed]],
        "gained": [cmp.gained],
        "lost": [cmp.lost],
    }
    counts = {name: Counter(a.rule_id for alerts in lists for a in alerts) for name, lists in groups.items()}
    rule_ids = sorted(set().union(*(c.keys() for c in counts.values())))
    for rule_id in rule_ids:
        table.add_row(rule_id, *(f"{counts[name][rule_id]:,}" for name in groups))
    table.add_row("[bold]all[/bold]", *(f"{sum(counts[name].values()):,}" for name in groups))
    Console().print(table)
