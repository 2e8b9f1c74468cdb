"""`safeguard sink`: run the Kafka → ClickHouse sink, migrate its tables, reconcile topics with tables.

With the embedded chDB store (the default) only one process may open the store directory: `sink run` owns
it while it runs; `sink migrate` and `sink reconcile` open it when the sink is stopped (they fail fast with a
clear message otherwise). A ClickHouse server has no such limit.
"""

from __future__ import annotations

import logging
import signal
import sys
import time
from types import FrameType
from typing import Any

import click

from safeguard.settings import Settings

pass_settings = click.make_pass_decorator(Settings)
log = logging.getLogger("safeguard.sink")


@click.group()
def sink() -> None:
    """The ClickHouse sink: every contract topic into tables (chDB locally, a server when configured)."""


@sink.command("migrate")
@pass_settings
def sink_migrate(settings: Settings) -> None:
    """Create or upgrade the sink's tables (versioned DDL) and apply retention changes. Idempotent."""
    from sinks.migrate import migrate
    from sinks.store import connect, database_name

    client = connect(settings)
    try:
        applied = migrate(client, settings)
    finally:
        client.close()
    where = f"{settings.clickhouse.url} (database {database_name(settings)})"
    click.echo(f"applied: {', '.join(applied)} to {where}" if applied else f"up to date: {where}")


@sink.command("rebuild-summaries")
@pass_settings
def sink_rebuild_summaries(settings: Settings) -> None:
    """Refill the dashboards' summary tables from the event tables (after deleting event rows with DELETE).

    The summaries stay current by themselves (materialized views); run this only after removing rows from the event
    tables other than by a purge tombstone, e.g. a subject erasure. With chDB run it while the sink is stopped."""
    from sinks.store import connect, database_name
    from sinks.summaries import rebuild

    client = connect(settings)
    try:
        rebuilt = rebuild(client, settings)
    finally:
        client.close()
    click.echo(f"rebuilt: {', '.join(rebuilt)} in {settings.clickhouse.url} (database {database_name(settings)})")


@sink.command("run")
@click.option("--until-caught-up", is_flag=True, help="stop once every partition is read to its current end")
@pass_settings
def sink_run(settings: Settings, until_caught_up: bool) -> None:
    """Consume every contract topic, batch, insert, and commit offsets after each successful insert.

    SIGTERM or Ctrl-C flushes the current batch, commits and stops. While the store is unavailable the sink
    retries with back-off and commits nothing, so nothing is lost."""
    from safeguard.kafka_clients import client_options
    from safeguard.kafka_local import resolve_bootstrap
    from sinks.service import ClickHouseStore, SinkService, kafka_consumer, tune_gc

    tune_gc()
    section = settings.clickhouse
    stopping = False

    def request_stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        log.info("stop requested (signal %d): flushing and committing", signum)
        if service is not None:
            service.stop()

    service: SinkService | None = None
    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    client = _open_store_when_available(settings, lambda: stopping)
    if client is None:
        return
    bootstrap = resolve_bootstrap(settings)
    options = client_options(settings.kafka, bootstrap)
    consumer = kafka_consumer(options, section)
    store = ClickHouseStore(section, client=client)
    service = SinkService(
        consumer,
        store,
        section,
        event_time=settings.event_time,
        reconnect=lambda: kafka_consumer(options, section),
        rejoin_timeout_s=max(60.0, 6 * section.session_timeout_ms / 1000),
    )
    if stopping:
        service.stop()
    click.echo(f"sink: Kafka at {bootstrap} → {section.url} (group {section.consumer_group})", err=True)
    stats = service.run(until_caught_up=until_caught_up)
    click.echo(
        f"sink stopped: {stats.messages} messages read, {stats.rows} rows stored "
        f"({stats.findings} data-quality findings), {stats.batches} batches, {stats.failed_attempts} failed insert "
        "attempts",
        err=True,
    )


def _open_store_when_available(settings: Settings, stopping: Any) -> Any:
    """Open the store and make sure its schema is current (migrating chDB; on a server only checking, since the
    schema owner migrates), waiting with back-off while it is unavailable or behind (a server still starting,
    a chDB directory held by another process). None when asked to stop first."""
    from schemas.errors import StoreError
    from sinks.migrate import migrate, pending
    from sinks.store import CHDB_PREFIX, connect

    delay = settings.clickhouse.retry_initial_s
    while not stopping():
        client = None
        try:
            client = connect(settings)
            if settings.clickhouse.url.startswith(CHDB_PREFIX):
                applied = migrate(client, settings)  # the embedded store has one user: the sink keeps it current
                if applied:
                    log.info("migrated the store: %s", ", ".join(applied))
            else:
                # A server: the schema owner migrates (`safeguard sink migrate`); the sink's account only inserts.
                missing = pending(client, settings)
                if missing:
                    raise StoreError(
                        f"the store's schema is not up to date ({', '.join(missing)}): run `safeguard sink migrate` "
                        "with the schema owner's account"
                    )
            return client
        except StoreError as exc:
            if client is not None:
                client.close()
            log.warning("store unavailable, retrying in %.1fs: %s", delay, exc)
            deadline = time.monotonic() + delay
            while time.monotonic() < deadline and not stopping():
                time.sleep(0.1)
            delay = min(delay * 2, settings.clickhouse.retry_max_s)
    return None


@sink.command("reconcile")
@pass_settings
def sink_reconcile(settings: Settings) -> None:
    """Compare each topic partition with the tables and say what is missing. Exit 1 when something is.

    Reads the store, so with chDB run it while the sink is stopped."""
    from kafka import KafkaConsumer
    from kafka.structs import TopicPartition

    from safeguard.clock import system_clock
    from safeguard.kafka_clients import client_options
    from safeguard.kafka_local import resolve_bootstrap
    from sinks.migrate import table_retention
    from sinks.reconcile import read_range, reconcile, topic_offsets
    from sinks.store import connect, database_name

    options = client_options(settings.kafka, resolve_bootstrap(settings))
    client = connect(settings)
    reader = KafkaConsumer(**options, group_id=None, enable_auto_commit=False)
    group = KafkaConsumer(**options, group_id=settings.clickhouse.consumer_group, enable_auto_commit=False)
    try:
        offsets = topic_offsets(reader)
        committed = {tp: group.committed(TopicPartition(*tp)) for tp in offsets}
        result = reconcile(
            client,
            database_name(settings),
            offsets,
            committed,
            lambda topic, partition, start, end: read_range(reader, topic, partition, start, end),
            retention=table_retention(settings.clickhouse),
            now=system_clock(),
        )
    finally:
        reader.close()
        group.close()
        client.close()

    click.echo(f"{'topic':<40} {'messages':>9} {'stored':>9} {'missing':>8}")
    for topic, (messages, stored, missing) in result.by_topic().items():
        click.echo(f"{topic:<40} {messages:>9} {stored:>9} {missing:>8}")
    for p in result.partitions:
        if p.expired:
            click.echo(f"{p.topic}[{p.partition}]: {p.expired} messages are past their retention (not missing)")
        if p.duplicates:
            click.echo(f"{p.topic}[{p.partition}]: {p.duplicates} messages repeat an id stored once (not missing)")
        if p.stored_elsewhere:
            click.echo(
                f"{p.topic}[{p.partition}]: {p.stored_elsewhere} messages carry an id whose one row was stored from "
                "another partition or topic (the same event published twice; not missing)"
            )
        if p.missing:
            shown = ", ".join(str(o) for o in p.missing_offsets) + (
                " ..." if p.missing > len(p.missing_offsets) else ""
            )
            lag = f"; {p.not_yet_read} not yet read by the sink group" if p.not_yet_read else ""
            click.echo(f"MISSING {p.topic}[{p.partition}]: {p.missing} messages without a row, offsets {shown}{lag}")
    if result.missing:
        click.secho(f"{result.missing} messages have no row in the tables", fg="red", err=True)
        sys.exit(1)
    click.echo("every message on the topics has its row")
