"""`safeguard run`: the main job on the local default. (Filled in once the broker and generator exist.)"""

from __future__ import annotations

import click


@click.command()
def run() -> None:
    """Run the pipeline on the local default."""
    raise click.ClickException("not built yet")
