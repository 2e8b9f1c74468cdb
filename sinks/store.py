"""Opening the ClickHouse store (embedded chDB at `chdb://<path>`, or a server over HTTP) and inserting rows.

chDB allows one process per data directory: whichever process opens the path holds a lock on `<path>/status`
until it exits. While `safeguard sink run` runs it owns the store; everything else (the report, tests,
`safeguard sink reconcile`) opens it after the sink has stopped, or in the sink's own process.
"""

from __future__ import annotations

import fcntl
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from safeguard.settings import ClickHouseSettings, Settings
from schemas.errors import StoreError
from sinks.columns import TableBatch
from sinks.mapping import TABLE_COLUMNS, TableRow

Client = Any
"""A clickhouse-connect client (clickhouse_connect.driver.client.Client); the library ships no type hints."""

CHDB_PREFIX = "chdb://"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def _section(settings: Settings | ClickHouseSettings) -> ClickHouseSettings:
    return settings.clickhouse if isinstance(settings, Settings) else settings


def chdb_path(url: str) -> Path | None:
    """The data directory of a `chdb://<path>` url (relative paths are taken from the working directory);
    None for a server url. `chdb://memory` is an in-memory engine and returns None as well."""
    if not url.startswith(CHDB_PREFIX):
        return None
    rest = url.removeprefix(CHDB_PREFIX)
    if rest in {"", "memory", ":memory:"} or rest.startswith("memory/"):
        return None
    return Path(rest).expanduser().resolve()


def database_name(settings: Settings | ClickHouseSettings) -> str:
    """The database the sink's tables live in: the url's path for a server url that names one, else `database`."""
    section = _section(settings)
    name = section.database
    if section.url.startswith(("http://", "https://")):
        name = urlsplit(section.url).path.strip("/") or name
    if not _IDENTIFIER.fullmatch(name):
        raise StoreError(f"{name!r} is not a usable database name (letters, digits and _, not starting with a digit)")
    return name


def connect(settings: Settings | ClickHouseSettings) -> Client:
    """A clickhouse-connect client for `settings.clickhouse.url`. Raises StoreError with the reason when the
    store cannot be opened (for chDB most often: another process holds the directory)."""
    import clickhouse_connect

    section = _section(settings)
    url = section.url
    try:
        if url.startswith(CHDB_PREFIX):
            path = chdb_path(url)
            if path is None:
                return clickhouse_connect.get_client(dsn="chdb://memory")
            path.mkdir(parents=True, exist_ok=True)
            try:
                return clickhouse_connect.get_client(interface="chdb", path=str(path))
            except Exception:
                # chDB prints "Cannot lock file" to stderr only; the exception just says it could not start.
                # (Not asked first: this process's own open engine on the path would also hold the lock.)
                if store_locked(path):
                    raise StoreError(_held(url)) from None
                raise
        parts = urlsplit(url)
        return clickhouse_connect.get_client(
            interface=parts.scheme,
            host=parts.hostname or "localhost",
            port=parts.port or (8443 if parts.scheme == "https" else 8123),
            username=unquote(parts.username) if parts.username else "default",
            password=section.password.get_secret_value() if section.password else "",
            connect_timeout=section.connect_timeout_s,
        )
    except StoreError:
        raise
    except Exception as exc:
        raise StoreError(_explain_open_error(url, exc)) from exc


def store_locked(path: Path) -> bool:
    """Whether a chDB engine holds the data directory: ClickHouse keeps an exclusive flock on `<path>/status`
    while it runs (also true while this very process has it open)."""
    status = path / "status"
    if not status.exists():
        return False
    with status.open("rb") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return False


def _held(url: str) -> str:
    return (
        f"the chDB store {url} is held by another process (chDB allows one process per directory; "
        "is `safeguard sink run` still running?): stop that process first, or read it through that process"
    )


def _explain_open_error(url: str, exc: Exception) -> str:
    text = str(exc)
    if "Cannot lock file" in text or "already running" in text:
        return _held(url)
    if "already initialized with path" in text:
        return f"this process already has another chDB store open; close its clients before opening {url}"
    return f"cannot open the ClickHouse store {url}: {text.splitlines()[0] if text else type(exc).__name__}"


def insert_rows(client: Client, database: str, rows: Iterable[TableRow], *, token: str | None = None) -> dict[str, int]:
    """Insert mapped rows, one INSERT per table; returns the rows inserted per table (see `insert_batch`)."""
    batch = TableBatch()
    batch.add_rows(rows)
    return insert_batch(client, database, batch, token=token)


def insert_batch(
    client: Client,
    database: str,
    batch: TableBatch,
    *,
    token: str | None = None,
    types: dict[str, list[str]] | None = None,
) -> dict[str, int]:
    """Insert a batch, one column-oriented INSERT per table; returns the rows inserted per table.

    `token` becomes each INSERT's `insert_deduplication_token` (suffixed by the table), so repeating the same
    batch after a failure is a no-op where the table keeps a deduplication window (every table of 0001 does).
    `types` (from `insert_types`) saves asking the store for the columns' types at every INSERT.
    """
    counts: dict[str, int] = {}
    for table, columns in batch.columns.items():
        settings = {"insert_deduplication_token": f"{token}:{table}"} if token else None
        client.insert(
            table,
            columns,
            database=database,
            column_names=list(TABLE_COLUMNS[table]),
            column_type_names=types[table] if types else None,
            column_oriented=True,
            settings=settings,
        )
        counts[table] = len(columns[0])
    return counts


_LOW_CARDINALITY = re.compile(r"LowCardinality\(((?:[^()]|\([^()]*\))*)\)")


def insert_types(client: Client, database: str, tables: Iterable[str]) -> dict[str, list[str]]:
    """The types the columns of `tables` are sent as: each table's own, `LowCardinality(T)` sent as `T`.

    ClickHouse converts a column of an INSERT to the table's type (`input_format_native_allow_types_conversion`,
    on by default) and builds the dictionaries in C++; clickhouse-connect would build them in Python, holding the
    GIL the consumer's thread needs (about 1 µs per row of a sink table).
    """
    types: dict[str, list[str]] = {}
    for table in tables:
        context = client.create_insert_context(table, list(TABLE_COLUMNS[table]), database=database)
        types[table] = [_LOW_CARDINALITY.sub(r"\1", t.name) for t in context.column_types]
    return types
