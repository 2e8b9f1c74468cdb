"""`safeguard kafka ...`: the local broker (start, stop, status) and the contract topics on any Kafka."""

from __future__ import annotations

import logging
import sys

import click

from safeguard.settings import Settings

# Our own decorator, not safeguard.cli's: importing safeguard.cli here would be circular (it registers this group).
pass_settings = click.make_pass_decorator(Settings)


def _progress(message: str) -> None:
    click.echo(message, err=True)


@click.group()
@pass_settings
def kafka(settings: Settings) -> None:
    """Start, stop and inspect the local Kafka broker; create the contract topics."""
    if settings.log_level != "DEBUG":
        # kafka-python logs every connection at INFO; on a terminal that buries the one line the user needs.
        logging.getLogger("kafka").setLevel(logging.WARNING)


@kafka.command("start")
@pass_settings
def start(settings: Settings) -> None:
    """Start the local single-node broker (fetching its jars once) and print its bootstrap address.

    A restart listens on the ports of the previous start, so running services keep reaching it; a port another
    process took meanwhile is replaced by a new one, and the new address is printed with a warning."""
    from safeguard.kafka_local import LocalBroker

    state = LocalBroker.from_settings(settings).start(progress=_progress)
    click.echo(state.bootstrap)


@kafka.command("stop")
@pass_settings
def stop(settings: Settings) -> None:
    """Stop the local broker started by `safeguard kafka start` (its data and ports stay for the next start)."""
    from safeguard.kafka_local import LocalBroker

    state = LocalBroker.from_settings(settings).stop()
    if state is None:
        click.echo("the local broker is not running")
    else:
        click.echo(f"stopped the local broker (pid {state.pid}, {state.bootstrap})")


@kafka.command("status")
@pass_settings
def status(settings: Settings) -> None:
    """Say whether the local broker runs and answers; exit 0 when it runs, 1 when it does not."""
    from safeguard.kafka_local import LocalBroker

    broker = LocalBroker.from_settings(settings)
    current = broker.status()
    if current.state is None:
        click.echo(f"stopped (state dir {broker.state_dir})")
        sys.exit(1)
    answers = "answering" if current.answering else "NOT answering (see " + str(broker.log_file) + ")"
    click.echo(
        f"running: pid {current.state.pid}, bootstrap {current.state.bootstrap}, {answers}, "
        f"Kafka {current.state.version}, started {current.state.started_at}"
    )


@kafka.command("topics")
@pass_settings
def topics(settings: Settings) -> None:
    """Create any missing contract topics on the configured (or local) Kafka and list them.

    Also aligns the dead-letter topic's retention with SAFEGUARD_KAFKA__DEAD_LETTER_RETENTION (it holds rejected
    bytes, so it is not kept forever like the event topics)."""
    from safeguard.kafka_clients import client_options
    from safeguard.kafka_local import create_topics, describe_topics, resolve_bootstrap, retention_text

    bootstrap = resolve_bootstrap(settings)
    options = client_options(settings.kafka, bootstrap)
    created = set(
        create_topics(
            options,
            settings.kafka.topic_partitions,
            settings.kafka.replication_factor,
            dead_letter_retention_ms=settings.kafka.dead_letter_retention_ms,
            progress=_progress,
        )
    )
    click.echo(f"contract topics on {bootstrap}:")
    for info in describe_topics(options):
        retention = retention_text(info.retention_ms)
        note = "  (created)" if info.name in created else ""
        click.echo(
            f"  {info.name:<40} partitions={info.partitions:<3} cleanup.policy={info.cleanup_policy or '?':<8} "
            f"retention={retention}{note}"
        )


@kafka.command("acls")
@click.option("--print", "print_only", is_flag=True, help="print the ACLs (and kafka-acls.sh lines); change nothing")
@pass_settings
def acls(settings: Settings, print_only: bool) -> None:
    """Give each service principal its ACLs (safeguard.kafka_acls) and set the SCRAM-SHA-512 credential of each
    principal with a password in SAFEGUARD_KAFKA_ACCESS__*, on the configured (or local) Kafka.

    Log in as a super user (SAFEGUARD_KAFKA__SASL_USERNAME/PASSWORD of the admin). Idempotent: run it again after a
    password changes (that is how one is rotated). --print shows the catalogue for a cluster whose operators
    apply ACLs themselves."""
    from safeguard.kafka_acls import acl_commands, apply_on, table

    if print_only:
        for principal, resource, operations in table(settings):
            click.echo(f"{principal:<28} {resource:<48} {operations}")
        click.echo("")
        for line in acl_commands(settings):
            click.echo(line)
        return
    from safeguard.kafka_clients import client_options
    from safeguard.kafka_local import resolve_bootstrap

    bootstrap = resolve_bootstrap(settings)
    apply_on(client_options(settings.kafka, bootstrap), settings, _progress)
