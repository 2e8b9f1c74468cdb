"""The store on a real chDB in tmp_path: migrations, inserting mapped rows, idempotency (FINAL, dedup tokens), TTLs.

chDB allows one engine per process; each test closes its client so the next test can open another path.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from safeguard.settings import ClickHouseSettings, Settings
from schemas.alerts import AlertRaised
from schemas.codec import validate_event
from schemas.errors import StoreError
from sinks.mapping import TABLE_COLUMNS, row_for_alert, rows_for_event
from sinks.migrate import load_migrations, migrate, pending
from sinks.store import connect, insert_rows
from sinks.summaries import summary_tables
from tests.unit.test_schemas import examples as ex

pytestmark = pytest.mark.integration
AT = datetime(2025, 3, 2, 8, 0, tzinfo=UTC)


def _settings(path: Path, **extra: Any) -> Settings:
    return Settings(_env_file=None, clickhouse=ClickHouseSettings(url=f"chdb://{path}", **extra))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[Any, Settings]]:
    settings = _settings(tmp_path / "store")
    client = connect(settings)
    try:
        yield client, settings
    finally:
        client.close()


def _count(client: Any, table: str) -> int:
    return int(client.command(f"SELECT count() FROM safeguard.{table} FINAL"))


def test_migrate_creates_every_table_once(store: tuple[Any, Settings]) -> None:
    client, settings = store
    applied = migrate(client, settings)
    assert applied == [m.name for m in load_migrations()], "every migration, in order"
    assert applied[:4] == [
        "0001_initial",
        "0002_dead_letter_originals",
        "0003_dashboard_summaries",
        "0004_quality_findings",
    ]
    assert migrate(client, settings) == []
    tables = {r[0] for r in client.query("SELECT name FROM system.tables WHERE database = 'safeguard'").result_rows}
    views = {t for t in tables if t.endswith("_mv")}
    assert set(TABLE_COLUMNS) | {"schema_migrations", "schema_retention"} | set(summary_tables()) == tables - views
    assert {next(t for t in summary_tables() if v.startswith(t)) for v in views} == set(summary_tables())
    for table, columns in TABLE_COLUMNS.items():
        described = [r[0] for r in client.query(f"DESCRIBE TABLE safeguard.{table}").result_rows]
        assert described == list(columns)
    key = client.query(
        "SELECT partition_key, sorting_key FROM system.tables WHERE database = 'safeguard' AND name = 'contacts'"
    ).result_rows[0]
    assert key == ("toYYYYMM(occurred_at)", "la_code, event_id")


def test_retention_change_is_applied_by_migrate(tmp_path: Path) -> None:
    path = tmp_path / "s"
    client = connect(_settings(path))
    try:
        migrate(client, _settings(path))
        changed = migrate(client, _settings(path, retention_dead_letters="P30D", retention_alerts="P2Y"))
        assert sorted(changed) == [
            "ttl:alert_acknowledgements",
            "ttl:alert_lifecycle",
            "ttl:alerts",
            "ttl:data_quality_findings",
            "ttl:dead_letters",
            "ttl:quality_findings",
        ]
        create = "SELECT create_table_query FROM system.tables WHERE database = 'safeguard' AND name = {t:String}"
        assert "toIntervalDay(30)" in client.command(create, parameters={"t": "dead_letters"})
        assert "toIntervalYear(2)" in client.command(create, parameters={"t": "alerts"})
        assert migrate(client, _settings(path, retention_dead_letters="P30D", retention_alerts="P2Y")) == []
        assert sorted(migrate(client, _settings(path, retention_dead_letters="P30D"))) == [
            "ttl:alert_acknowledgements",
            "ttl:alert_lifecycle",
            "ttl:alerts",
        ]
        assert "TTL" not in client.command(create, parameters={"t": "alerts"})
    finally:
        client.close()


def test_rows_past_their_retention_are_deleted(tmp_path: Path) -> None:
    """Why events default to `forever`: a TTL shorter than the data's age keeps nothing (at the latest after
    the next merge; often the insert itself drops them)."""
    settings = _settings(tmp_path / "s", retention_events="P1Y")
    client = connect(settings)
    try:
        migrate(client, settings)
        insert_rows(client, "safeguard", rows_for_event(validate_event(ex.minimal("cp_plan.started"))))
        insert_rows(client, "safeguard", rows_for_event(validate_event(ex.minimal("cp_plan.ended"))))
        client.command("OPTIMIZE TABLE safeguard.cp_plans FINAL")
        assert _count(client, "cp_plans") == 0
    finally:
        client.close()


def test_every_example_round_trips_and_reinserting_doubles_nothing(store: tuple[Any, Settings]) -> None:
    client, settings = store
    migrate(client, settings)
    rows = [r for _, obj in ex.all_examples() for r in rows_for_event(validate_event(obj), ingested_at=AT)]
    rows.append(row_for_alert(AlertRaised.model_validate(ex.alert()), ingested_at=AT))
    insert_rows(client, "safeguard", rows, token="batch-1")
    insert_rows(client, "safeguard", rows, token="batch-2")  # a different token: ReplacingMergeTree + FINAL dedupe
    distinct_events = len({obj["event_id"] for _, obj in ex.all_examples()})
    assert (
        sum(_count(client, t) for t in ("contacts", "contact_decisions", "missing_episodes", "cp_plans"))
        + _count(client, "domestic_incidents")
        == distinct_events
    )
    assert _count(client, "domestic_incident_children") == 2
    assert _count(client, "alerts") == 1
    got = client.query(
        "SELECT child_id, present, school_urn FROM safeguard.domestic_incident_children FINAL ORDER BY present DESC"
    ).result_rows
    assert got == [(ex.CHILD, True, "107985"), (ex.OTHER_CHILD, False, None)]
    occurred = client.command("SELECT toString(occurred_at) FROM safeguard.cp_plans FINAL LIMIT 1")
    assert occurred == "2025-03-01 21:15:00.000"
    concerns = client.command(
        "SELECT arrayStringConcat(concerns, ',') FROM safeguard.contacts FINAL WHERE route = 'mash'"
    )
    assert concerns == "domestic_abuse,emotional_abuse"


def test_same_dedup_token_is_dropped_by_the_store(store: tuple[Any, Settings]) -> None:
    """chDB honours insert_deduplication_token on non-replicated MergeTree with a deduplication window."""
    client, settings = store
    migrate(client, settings)
    rows = rows_for_event(validate_event(ex.full("contact.received")), ingested_at=AT)
    insert_rows(client, "safeguard", rows, token="t:0:0-0")
    insert_rows(client, "safeguard", rows, token="t:0:0-0")
    assert int(client.command("SELECT count() FROM safeguard.contacts")) == 1  # without FINAL: the block was dropped
    insert_rows(client, "safeguard", rows, token="t:0:1-1")
    assert int(client.command("SELECT count() FROM safeguard.contacts")) == 2
    assert _count(client, "contacts") == 1


def test_purge_tombstone_hides_the_event(store: tuple[Any, Settings]) -> None:
    client, settings = store
    migrate(client, settings)
    obj = ex.full("missing.found")
    insert_rows(client, "safeguard", rows_for_event(validate_event(obj), ingested_at=AT))
    later = datetime(2025, 3, 3, tzinfo=UTC)
    insert_rows(client, "safeguard", rows_for_event(validate_event({**obj, "purge": True}), ingested_at=later))
    assert _count(client, "missing_episodes") == 0


def test_a_second_process_is_refused_with_a_clear_error(store: tuple[Any, Settings], tmp_path: Path) -> None:
    import subprocess
    import sys

    client, settings = store
    migrate(client, settings)
    code = (
        "from safeguard.settings import Settings, ClickHouseSettings\n"
        "from sinks.store import connect\n"
        f"connect(Settings(_env_file=None, clickhouse=ClickHouseSettings(url='chdb://{tmp_path / 'store'}')))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "held by another process" in proc.stderr, proc.stderr
    assert StoreError.__name__ in proc.stderr


def test_pending_tells_what_migrate_would_apply_with_reads_only(store: tuple[Any, Settings]) -> None:
    """A sink on a server checks the schema instead of migrating it (its account only inserts)."""
    client, settings = store
    assert pending(client, settings) == [m.name for m in load_migrations()]
    migrate(client, settings)
    assert pending(client, settings) == []
    assert pending(client, _settings(Path("unused"), retention_events="P25Y"))[:2] == [
        "ttl:contacts",
        "ttl:contact_decisions",
    ]


def test_a_store_from_before_0005_gains_published_by_and_its_summaries_keep_counting(
    store: tuple[Any, Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Migration 0005 on a store that already holds events (and 0006, numbered after it): old rows read NULL, new
    rows carry their principal, and the dashboards' summaries (materialized views on the event tables) count both."""
    client, settings = store
    everything = load_migrations()
    monkeypatch.setattr(
        "sinks.migrate.load_migrations", lambda: [m for m in everything if m.name != "0005_published_by"]
    )
    assert "0005_published_by" not in migrate(client, settings)
    monkeypatch.undo()

    def fresh(event_type: str, n: int) -> Any:
        return validate_event({**ex.full(event_type), "event_id": f"5e0a8d3c-1b2f-4c6d-9e7f-{n:012d}"})

    before = [fresh("contact.received", 1), fresh("domestic_incident.recorded", 2)]
    for table, row in (r for e in before for r in rows_for_event(e, ingested_at=AT)):
        columns = [c for c in TABLE_COLUMNS[table] if c != "published_by"]  # the table as it was
        client.insert(table, [[row[c] for c in columns]], database="safeguard", column_names=columns)

    assert pending(client, settings) == ["0005_published_by"]
    assert migrate(client, settings) == ["0005_published_by"]
    after = [fresh("contact.received", 3), fresh("domestic_incident.recorded", 4)]
    insert_rows(client, "safeguard", [r for e in after for r in rows_for_event(e, ingested_at=AT, published_by="wyp")])

    def principals(table: str) -> list[tuple[str, str | None]]:
        return client.query(f"SELECT event_id, published_by FROM safeguard.{table} FINAL ORDER BY event_id").result_rows

    old, new = before[0].event_id, after[0].event_id
    assert principals("contacts") == [(old, None), (new, "wyp")]
    old, new = before[1].event_id, after[1].event_id
    assert principals("domestic_incidents") == [(old, None), (new, "wyp")]
    assert principals("domestic_incident_children") == [(old, None), (old, None), (new, "wyp"), (new, "wyp")]
    for summary in ("contacts_by_month", "domestic_incidents_by_month"):
        events = client.command(f"SELECT sum(length(event_ids)) FROM safeguard.{summary} FINAL")
        assert events == 2, summary
    incidents = client.command("SELECT sum(length(incidents.1)) FROM safeguard.household_incidents FINAL")
    assert incidents == 2
