"""`safeguard kafka ...`: the local broker. (Filled in by the local-Kafka work.)"""

from __future__ import annotations

import click


@click.group()
def kafka() -> None:
    """Start, stop and inspect the local Kafka broker."""
