"""`safeguard publish` and `safeguard pseudonymise`. (Being written.)"""

from __future__ import annotations

import click


@click.command()
def publish() -> None:
    """Validate and publish a JSONL or CSV file of events."""
    raise click.ClickException("not built yet")


@click.command()
def pseudonymise() -> None:
    """Turn source identifiers into pseudonyms."""
    raise click.ClickException("not built yet")
