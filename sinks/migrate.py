"""Versioned DDL migrations: `sinks/migrations/NNNN_name.sql`, applied in order, recorded in `schema_migrations`.

A migration file is a template: `{{db}}` is the database and `{{ttl:<class>:<column>}}` the TTL clause for a
retention class (`events`, `alerts`, `dead_letters`) from the settings. Retentions change without a new
migration: after the files, `migrate` compares each table's rendered TTL with the one it last applied and
runs `ALTER TABLE ... MODIFY TTL` (or `REMOVE TTL`) for those that differ.

SQL here is built from identifiers only (the database name is checked by `database_name`); values go as data.
"""

from __future__ import annotations

import calendar
import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from safeguard.clock import Clock, system_clock
from safeguard.settings import ClickHouseSettings, Settings, retention_parts
from schemas.errors import StoreError
from sinks.store import Client, database_name

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_PLACEHOLDER = re.compile(r"\{\{(db|ttl:(events|alerts|dead_letters):([a-z_]+))\}\}")
_TTL = re.compile(r"\{\{ttl:(events|alerts|dead_letters):([a-z_]+)\}\}")
_CREATE_TABLE = re.compile(r"CREATE TABLE IF NOT EXISTS \{\{db\}\}\.([a-z_]+)")


@dataclass(frozen=True)
class Migration:
    name: str
    template: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.template.encode("utf-8")).hexdigest()


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migration files in version order. A file not named NNNN_name.sql, or a repeated version, is an error."""
    migrations = []
    seen: dict[str, str] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.fullmatch(path.name)
        if not match:
            raise StoreError(f"migration file {path.name} is not named NNNN_lowercase_name.sql")
        if match.group(1) in seen:
            raise StoreError(f"migrations {seen[match.group(1)]} and {path.name} share version {match.group(1)}")
        seen[match.group(1)] = path.name
        migrations.append(Migration(path.stem, path.read_text(encoding="utf-8")))
    return migrations


def ttl_clause(retention: str, column: str) -> str:
    """`TTL toDateTime(<column>) + INTERVAL ...` for a retention setting; empty for `forever`."""
    parts = retention_parts(retention)
    if parts is None:
        return ""
    units = [f"INTERVAL {n} {unit}" for n, unit in zip(parts, ("YEAR", "MONTH", "DAY"), strict=True) if n]
    return f"TTL toDateTime({column}) + " + " + ".join(units)


def _retention(section: ClickHouseSettings, kind: str) -> str:
    return {
        "events": section.retention_events,
        "alerts": section.retention_alerts,
        "dead_letters": section.retention_dead_letters,
    }[kind]


def render(template: str, database: str, section: ClickHouseSettings) -> str:
    """A migration with its placeholders filled in from the settings."""

    def fill(match: re.Match[str]) -> str:
        if match.group(1) == "db":
            return f"`{database}`"
        return ttl_clause(_retention(section, match.group(2)), match.group(3))

    return _PLACEHOLDER.sub(fill, template)


def statements(sql: str) -> list[str]:
    """The statements of a rendered file: `--` comment lines dropped, split at `;` ending a line."""
    body = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    return [s.strip() for s in re.split(r";\s*(?:\n|$)", body) if s.strip()]


def table_ttls(template: str, database: str, section: ClickHouseSettings) -> dict[str, str]:
    """The TTL clause each table of a migration gets (tables without a TTL placeholder are left out)."""
    ttls: dict[str, str] = {}
    for chunk in re.split(r"(?=CREATE TABLE IF NOT EXISTS )", template):
        table = _CREATE_TABLE.match(chunk)
        ttl = _TTL.search(chunk.split(";", 1)[0]) if table else None
        if table and ttl:
            ttls[table.group(1)] = ttl_clause(_retention(section, ttl.group(1)), ttl.group(2))
    return ttls


def table_retention(section: ClickHouseSettings) -> dict[str, tuple[str, tuple[int, int, int]]]:
    """table → (TTL column, (years, months, days)) for every table with a retention other than forever."""
    out: dict[str, tuple[str, tuple[int, int, int]]] = {}
    for migration in load_migrations():
        for chunk in re.split(r"(?=CREATE TABLE IF NOT EXISTS )", migration.template):
            table = _CREATE_TABLE.match(chunk)
            ttl = _TTL.search(chunk.split(";", 1)[0]) if table else None
            if table and ttl:
                parts = retention_parts(_retention(section, ttl.group(1)))
                if parts is None:
                    out.pop(table.group(1), None)
                else:
                    out[table.group(1)] = (ttl.group(2), parts)
    return out


def expired(when: datetime, parts: tuple[int, int, int], now: datetime) -> bool:
    """Whether a row dated `when` is past a (years, months, days) retention at `now` (ClickHouse's calendar)."""
    years, months, days = parts
    month_index = when.month - 1 + months + 12 * years
    year, month = when.year + month_index // 12, month_index % 12 + 1
    day = min(when.day, calendar.monthrange(year, month)[1])
    try:
        until = when.replace(year=year, month=month, day=day) + timedelta(days=days)
    except (OverflowError, ValueError):
        return False
    return until <= now


def migrate(client: Client, settings: Settings | ClickHouseSettings, clock: Clock = system_clock) -> list[str]:
    """Apply the pending migrations and retention changes; return what was applied (`0001_initial`,
    `ttl:contacts`, ...). Idempotent: a second call applies and returns nothing."""
    section = settings.clickhouse if isinstance(settings, Settings) else settings
    database = database_name(section)
    migrations = load_migrations()
    try:
        client.command(f"CREATE DATABASE IF NOT EXISTS `{database}`")
        client.command(
            f"CREATE TABLE IF NOT EXISTS `{database}`.schema_migrations "
            "(name String, checksum String, applied_at DateTime64(3, 'UTC')) "
            "ENGINE = ReplacingMergeTree(applied_at) ORDER BY name"
        )
        client.command(
            f"CREATE TABLE IF NOT EXISTS `{database}`.schema_retention "
            "(table_name String, ttl String, applied_at DateTime64(3, 'UTC')) "
            "ENGINE = ReplacingMergeTree(applied_at) ORDER BY table_name"
        )
        done = dict(client.query(f"SELECT name, checksum FROM `{database}`.schema_migrations FINAL").result_rows)  # noqa: S608
        ttls_done = dict(client.query(f"SELECT table_name, ttl FROM `{database}`.schema_retention FINAL").result_rows)  # noqa: S608
    except Exception as exc:
        raise StoreError(f"cannot read the migration state of database {database}: {exc}") from exc

    applied: list[str] = []
    expected_ttls: dict[str, str] = {}
    for migration in migrations:
        expected_ttls.update(table_ttls(migration.template, database, section))
        if migration.name in done:
            if done[migration.name] != migration.checksum:
                raise StoreError(
                    f"migration {migration.name} was changed after it was applied; add a new migration instead"
                )
            continue
        for statement in statements(render(migration.template, database, section)):
            try:
                client.command(statement)
            except Exception as exc:
                raise StoreError(f"migration {migration.name} failed: {exc}") from exc
        _record(client, database, "schema_migrations", [migration.name, migration.checksum, clock()])
        ttls_done.update(table_ttls(migration.template, database, section))
        for table, ttl in table_ttls(migration.template, database, section).items():
            _record(client, database, "schema_retention", [table, ttl, clock()])
        applied.append(migration.name)

    for table, ttl in expected_ttls.items():
        if ttls_done.get(table) == ttl:
            continue
        alter = f"ALTER TABLE `{database}`.{table} " + (f"MODIFY {ttl}" if ttl else "REMOVE TTL")
        try:
            # Expired rows go at the next merge; rewriting every part now would stall a large store.
            client.command(alter, settings={"materialize_ttl_after_modify": 0})
        except Exception as exc:
            raise StoreError(f"changing the retention of {table} failed: {exc}") from exc
        _record(client, database, "schema_retention", [table, ttl, clock()])
        applied.append(f"ttl:{table}")
    return applied


def pending(client: Client, settings: Settings | ClickHouseSettings) -> list[str]:
    """What `migrate` would apply, found with reads only: for a sink whose account may not run DDL (a server
    where a schema owner migrates). Empty when the store is up to date."""
    section = settings.clickhouse if isinstance(settings, Settings) else settings
    database = database_name(section)
    migrations = load_migrations()
    try:
        tables = {
            str(r[0])
            for r in client.query(
                "SELECT name FROM system.tables WHERE database = {db:String}", parameters={"db": database}
            ).result_rows
        }
        done: dict[str, str] = {}
        ttls_done: dict[str, str] = {}
        read_done = f"SELECT name, checksum FROM `{database}`.schema_migrations FINAL"  # noqa: S608
        read_ttls = f"SELECT table_name, ttl FROM `{database}`.schema_retention FINAL"  # noqa: S608
        if "schema_migrations" in tables:
            done = dict(client.query(read_done).result_rows)
        if "schema_retention" in tables:
            ttls_done = dict(client.query(read_ttls).result_rows)
    except Exception as exc:
        raise StoreError(f"cannot read the migration state of database {database}: {exc}") from exc
    out: list[str] = []
    expected: dict[str, str] = {}
    for migration in migrations:
        ttls = table_ttls(migration.template, database, section)
        if done.get(migration.name) != migration.checksum:
            out.append(migration.name)
            ttls_done.update(ttls)  # applying the migration sets these
        expected.update(ttls)
    return out + [f"ttl:{t}" for t, ttl in expected.items() if ttls_done.get(t) != ttl]


def _record(client: Client, database: str, table: str, row: list[object]) -> None:
    columns = (
        ["name", "checksum", "applied_at"] if table == "schema_migrations" else ["table_name", "ttl", "applied_at"]
    )
    client.insert(table, [row], database=database, column_names=columns)


def applied_migrations(client: Client, database: str) -> list[tuple[str, datetime]]:
    """The migrations recorded in a store, oldest first."""
    query = f"SELECT name, applied_at FROM `{database}`.schema_migrations FINAL ORDER BY name"  # noqa: S608
    rows = client.query(query).result_rows
    return [(str(name), at) for name, at in rows]
