"""The dashboards' summary tables (sinks/migrations/0003_dashboard_summaries.sql) and rebuilding them.

Materialized views keep the summaries up to date at every insert, and the migration backfills what was stored
before it. Deleting event rows any other way than with a tombstone (`DELETE FROM ...` for a subject erasure,
docs/operations.md) leaves their events in the summaries: `rebuild` empties each summary and runs the migration's
backfill again, so the summaries hold exactly what the event tables hold.
"""

from __future__ import annotations

import re

from safeguard.settings import ClickHouseSettings, Settings
from schemas.errors import StoreError
from sinks.migrate import load_migrations, render, statements
from sinks.store import Client, database_name

SUMMARIES_MIGRATION = "0003_dashboard_summaries"
_INSERT = re.compile(r"INSERT INTO `[^`]+`\.([a-z_]+)\s")


def backfills(database: str, section: ClickHouseSettings) -> list[tuple[str, str]]:
    """(summary table, INSERT ... SELECT filling it from the event tables), in the migration's order; a summary
    fed by two event tables has two."""
    [migration] = [m for m in load_migrations() if m.name == SUMMARIES_MIGRATION]
    found = []
    for statement in statements(render(migration.template, database, section)):
        match = _INSERT.match(statement)
        if match:
            found.append((match.group(1), statement))
    return found


def summary_tables(database: str = "safeguard", section: ClickHouseSettings | None = None) -> list[str]:
    """The summary tables, in the migration's order."""
    return list(dict.fromkeys(table for table, _ in backfills(database, section or ClickHouseSettings())))


def rebuild(client: Client, settings: Settings | ClickHouseSettings) -> list[str]:
    """Empty every summary and fill it again from the event tables; returns the tables rebuilt.

    The views keep adding what is inserted meanwhile, and a summary holds event ids, so rows inserted while it
    runs are counted once. Until it has finished, the panels reading the summaries show partial figures."""
    section = settings.clickhouse if isinstance(settings, Settings) else settings
    database = database_name(section)
    done: list[str] = []
    for table, insert in backfills(database, section):
        try:
            if table not in done:
                client.command(f"TRUNCATE TABLE `{database}`.{table}")
                done.append(table)
            client.command(insert)
        except Exception as exc:
            raise StoreError(f"rebuilding the summary {table} failed: {exc}") from exc
    for table in done:  # one part per partition again: FINAL reads of several parts are slow (see the migration)
        try:
            client.command(f"OPTIMIZE TABLE `{database}`.{table} FINAL")
        except Exception as exc:
            raise StoreError(f"merging the summary {table} failed: {exc}") from exc
    return done
