"""`safeguard dashboards build|push` (Grafana dashboards as code) and `safeguard report` (the static HTML report)."""

from __future__ import annotations

import webbrowser
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from safeguard.settings import Settings
from schemas.errors import StoreError

pass_settings = click.make_pass_decorator(Settings)

DEFAULT_ROOT = Path("dashboards")


def generated_files() -> dict[Path, str]:
    """Every file `dashboards build` writes, relative to the dashboards folder."""
    from dashboards.grafana import dashboard_files, provisioning_files

    files = {Path("json") / name: text for name, text in dashboard_files().items()}
    files.update({Path("provisioning") / name: text for name, text in provisioning_files().items()})
    return files


def stale_files(root: Path, files: dict[Path, str]) -> list[Path]:
    """Generated dashboard JSON under `root` that the code no longer builds (a renamed or removed dashboard)."""
    json_root = root / "json"
    if not json_root.is_dir():
        return []
    wanted = {root / p for p in files}
    return sorted(p for p in json_root.rglob("*.json") if p not in wanted)


@click.group()
def dashboards() -> None:
    """Grafana dashboards as code: build the JSON and provisioning files, push them to a Grafana."""


@dashboards.command("build")
@click.option(
    "--out",
    "root",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_ROOT,
    show_default=True,
    help="the dashboards folder: writes json/<variant>/*.json and provisioning/",
)
@click.option("--check", is_flag=True, help="write nothing; exit 1 when the files differ from what the code builds")
def build(root: Path, check: bool) -> None:
    """Write the generated dashboards (operational and shared variants) and Grafana's provisioning files."""
    files = generated_files()
    changed = [p for p, text in files.items() if not (root / p).is_file() or (root / p).read_text("utf-8") != text]
    stale = stale_files(root, files)
    if check:
        for path in changed:
            click.echo(f"differs: {root / path}")
        for path in stale:
            click.echo(f"not built by the code: {path}")
        if changed or stale:
            raise SystemExit(1)
        click.echo(f"{len(files)} generated files are up to date")
        return
    for path, text in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    for path in stale:
        path.unlink()
    click.echo(f"wrote {len(files)} files under {root} ({len(changed)} changed, {len(stale)} stale removed)")


@dashboards.command("push")
@click.option("--url", help="Grafana base url (default: SAFEGUARD_GRAFANA__URL)")
@click.option(
    "--variant",
    type=click.Choice(["operational", "shared"]),
    help="default: shared when SAFEGUARD_GRAFANA__SUPPRESS_SMALL_NUMBERS is true, else operational",
)
@pass_settings
def push_command(settings: Settings, url: str | None, variant: str | None) -> None:
    """Create or update the ClickHouse datasource and every dashboard in a running Grafana (grafana-client)."""
    from dashboards.push import connect, push
    from sinks.store import database_name

    chosen = variant or ("shared" if settings.grafana.suppress_small_numbers else "operational")
    api = connect(settings.grafana, url)
    result = push(api, settings.grafana, database_name(settings), "shared" if chosen == "shared" else "operational")
    click.echo(
        f"datasource {result.datasource}; {len(result.dashboards)} {chosen} dashboards in folder {result.folder_uid}"
    )
    for link in result.urls:
        click.echo(f"  {(url or settings.grafana.url).rstrip('/')}{link}")


def _financial_year(day: date) -> int:
    return day.year if day.month >= 4 else day.year - 1


def _midnight(day: date) -> datetime:
    from dashboards.report import LOCAL

    return datetime(day.year, day.month, day.day, tzinfo=LOCAL)


def report_period(
    newest: datetime | None, start: date | None, end: date | None, year: int | None
) -> tuple[datetime, datetime]:
    """The report's time range: `--from/--to` (local dates, `--to` inclusive), else a financial year
    (`--financial-year`, else the one holding the newest event in the store)."""
    if start is not None or end is not None:
        if start is None or end is None:
            raise click.UsageError("give both --from and --to")
        if end < start:
            raise click.UsageError("--to is before --from")
        return _midnight(start), _midnight(end + timedelta(days=1))
    if year is None:
        from dashboards.report import LOCAL
        from safeguard.clock import system_clock

        year = _financial_year((newest or system_clock()).astimezone(LOCAL).date())
    return _midnight(date(year, 4, 1)), _midnight(date(year + 1, 4, 1))


@click.command()
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("report.html"), show_default=True)
@click.option("--open", "open_browser", is_flag=True, help="open the page in the default browser")
@click.option("--from", "start", type=click.DateTime(["%Y-%m-%d"]), help="first day (local date)")
@click.option("--to", "end", type=click.DateTime(["%Y-%m-%d"]), help="last day, inclusive (local date)")
@click.option("--financial-year", "year", type=int, help="e.g. 2019 for April 2019 to March 2020")
@click.option(
    "--suppress/--no-suppress",
    default=None,
    help="show counts of 1-5 as 'c' (default: SAFEGUARD_GRAFANA__SUPPRESS_SMALL_NUMBERS)",
)
@pass_settings
def report(
    settings: Settings,
    out: Path,
    open_browser: bool,
    start: datetime | None,
    end: datetime | None,
    year: int | None,
    suppress: bool | None,
) -> None:
    """Render every dashboard panel from the store to one static HTML page (for people without Grafana).

    Reads the store in settings.clickhouse; an embedded chDB store must not be held by a running sink.
    """
    from dashboards.query import context
    from dashboards.report import collect, render
    from safeguard.clock import system_clock
    from sinks.store import connect, database_name

    suppressed = settings.grafana.suppress_small_numbers if suppress is None else suppress
    client = connect(settings)
    try:
        database = database_name(settings)
        found = client.query(
            "SELECT count() FROM system.tables WHERE database = {db:String} AND name = 'contacts'",
            parameters={"db": database},
        ).result_rows
        if not found or not found[0][0]:
            raise StoreError(
                f"the store {settings.clickhouse.url} has no tables in database {database}: "
                "run `safeguard sink migrate` (or the sink) first"
            )
        client.database = database
        newest = _newest_event(client)
        time_from, time_to = report_period(newest, start.date() if start else None, end.date() if end else None, year)
        ctx = context(time_from, time_to)
        results = collect(client, ctx, suppress=suppressed)
    finally:
        client.close()
    page = render(
        results,
        title=f"Safeguarding partnership report (LA {settings.la_code})",
        time_from=time_from,
        time_to=time_to,
        generated_at=system_clock(),
        suppressed=suppressed,
        source=_describe_store(settings),
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    failed = [p.panel.key for r in results for p in r.panels if p.error]
    click.echo(f"wrote {out} ({sum(len(r.panels) for r in results)} panels{', suppressed' if suppressed else ''})")
    for key in failed:
        click.secho(f"  panel {key} failed; the page says why", fg="yellow", err=True)
    if open_browser:
        webbrowser.open(out.resolve().as_uri())


def _newest_event(client: Any) -> datetime | None:
    """The newest contact time in the store (None when empty or the tables are missing)."""
    from datetime import UTC

    try:
        rows = client.query("SELECT max(occurred_at) FROM contacts").result_rows
    except Exception:
        return None
    value = rows[0][0] if rows else None
    if isinstance(value, datetime) and value.year > 1970:
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return None


def _describe_store(settings: Settings) -> str:
    from urllib.parse import urlsplit

    url = settings.clickhouse.url
    if url.startswith("chdb://"):
        return f"the embedded store {url}"
    parts = urlsplit(url)
    return f"ClickHouse at {parts.hostname}"
