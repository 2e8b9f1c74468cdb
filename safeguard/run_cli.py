"""`safeguard run`: the main job on the local default — a local broker, the contract topics, a simulated year."""

from __future__ import annotations

import click

from safeguard.settings import Settings
from safeguard.simulate_cli import simulate

pass_settings = click.make_pass_decorator(Settings)


@click.command()
@click.option("--scenario", default="leeds-2019", show_default=True, help="simulated year to replay")
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--days", type=click.IntRange(min=1), help="only the first N days of the year")
@click.option("--speed", type=click.FloatRange(min=0, min_open=True), help="event-time seconds per wall second")
@click.option("--keep-broker", is_flag=True, help="leave a local broker this command started running afterwards")
@click.pass_context
def run(ctx: click.Context, scenario: str, seed: int, days: int | None, speed: float | None, keep_broker: bool) -> None:
    """Run the pipeline on the local default: with no Kafka configured, start the local broker; create the
    contract topics; replay a calibrated simulated year into them. A broker this command started is stopped
    at the end (also on Ctrl-C) unless --keep-broker."""
    from safeguard.kafka_clients import client_options
    from safeguard.kafka_local import LocalBroker, create_topics, resolve_bootstrap

    settings = ctx.find_object(Settings)
    assert settings is not None
    bootstrap = ""
    started: LocalBroker | None = None
    if settings.kafka.bootstrap_servers is None:
        broker = LocalBroker.from_settings(settings)
        if not broker.status().answering:
            click.echo("starting the local Kafka broker ...", err=True)
            broker.start(progress=lambda message: click.echo(message, err=True))
            started = broker
    try:
        bootstrap = resolve_bootstrap(settings)
        click.echo(f"Kafka at {bootstrap}", err=True)
        kafka = settings.kafka
        created = create_topics(client_options(kafka, bootstrap), kafka.topic_partitions, kafka.replication_factor)
        if created:
            click.echo(f"created topics: {', '.join(created)}", err=True)
        ctx.invoke(simulate, name=scenario, seed=seed, out=None, publish=True, speed=speed, days=days)
    finally:
        if started is not None and not keep_broker:
            click.echo("stopping the local Kafka broker ...", err=True)
            started.stop()
        elif started is not None:
            click.echo(f"the local broker keeps running at {bootstrap}; stop it with `safeguard kafka stop`", err=True)
