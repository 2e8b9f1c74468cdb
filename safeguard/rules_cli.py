"""`safeguard rules show|check`: the effective rule catalogue, each value with where it came from."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from safeguard.settings import Settings

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
