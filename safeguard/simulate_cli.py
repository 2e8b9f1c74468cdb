"""`safeguard simulate`: the synthetic generator. (Filled in by the generator work.)"""

from __future__ import annotations

import click


@click.command()
def simulate() -> None:
    """Generate a calibrated synthetic year of events."""
    raise click.ClickException("not built yet")
