"""The `safeguard` command line: one group, one subcommand per job. Settings are read here, once."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from safeguard.logs import configure as configure_logging
from safeguard.settings import Settings, load_settings
from schemas.errors import SafeguardError


class _Group(click.Group):
    """Turns the project's own errors into a clear message and exit code 2, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SafeguardError as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(2)


pass_settings = click.make_pass_decorator(Settings)


@click.group(cls=_Group)
@click.version_option(package_name="safeguarding-pipeline")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Safeguarding events pipeline: agency events to Kafka, alerts to managers, measures to ClickHouse."""
    settings = load_settings()
    configure_logging(settings.log_level)
    ctx.obj = settings


@cli.group()
def config() -> None:
    """Inspect the effective settings."""


@config.command("show")
@pass_settings
def config_show(settings: Settings) -> None:
    """Print the effective settings, secrets masked."""
    click.echo(json.dumps(settings.redacted(), indent=2, default=str))


@cli.group()
def schemas() -> None:
    """The machine-readable contract (JSON Schema)."""


@schemas.command("export")
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), default=Path("schemas/json"), show_default=True
)
def schemas_export(out: Path) -> None:
    """Write one JSON Schema file per event type, the alert and the dead letter."""
    from schemas.jsonschema import render_all

    out.mkdir(parents=True, exist_ok=True)
    files = render_all()
    for name, text in files.items():
        (out / name).write_text(text, encoding="utf-8")
    click.echo(f"wrote {len(files)} schema files to {out}")


def _register() -> None:
    from safeguard.dashboards_cli import dashboards, report
    from safeguard.gateway_cli import gateway
    from safeguard.import_cli import import_group
    from safeguard.kafka_cli import kafka
    from safeguard.notify_cli import notify
    from safeguard.produce_cli import pseudonymise, publish
    from safeguard.rules_cli import rules
    from safeguard.run_cli import run
    from safeguard.simulate_cli import simulate
    from safeguard.sink_cli import sink

    for command in (kafka, publish, pseudonymise, simulate, import_group, rules, run, sink, dashboards, report, notify):
        cli.add_command(command)
    cli.add_command(gateway)


_register()


def main() -> None:
    cli(prog_name="safeguard")
