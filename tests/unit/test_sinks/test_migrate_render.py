"""Migration files and their rendering from the settings (no store needed)."""

from __future__ import annotations

import re

import pytest

from safeguard.settings import ClickHouseSettings, retention_parts
from sinks.mapping import TABLE_COLUMNS
from sinks.migrate import load_migrations, render, statements, table_ttls, ttl_clause


@pytest.mark.parametrize(
    ("text", "parts"),
    [("P7Y", (7, 0, 0)), ("P90D", (0, 0, 90)), ("P1Y6M", (1, 6, 0)), ("P2W", (0, 0, 14)), ("365", (0, 0, 365))],
)
def test_retention_parts(text: str, parts: tuple[int, int, int]) -> None:
    assert retention_parts(text) == parts


@pytest.mark.parametrize("text", ["forever", "0", "P0D"])
def test_forever_means_no_ttl(text: str) -> None:
    assert retention_parts(text) is None
    assert ttl_clause(text, "occurred_at") == ""


@pytest.mark.parametrize("text", ["PT5H", "7 years", "P", "-3", ""])
def test_bad_retention_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        retention_parts(text)
    with pytest.raises(ValueError, match="retention"):
        ClickHouseSettings(retention_events=text)


def test_ttl_clause() -> None:
    assert ttl_clause("P1Y6M", "triggered_at") == "TTL toDateTime(triggered_at) + INTERVAL 1 YEAR + INTERVAL 6 MONTH"


def test_initial_migration_renders_every_table_with_settings() -> None:
    initial, *later = load_migrations()
    assert initial.name == "0001_initial"
    created_later = [t for m in later for t in re.findall(r"CREATE TABLE IF NOT EXISTS \{\{db\}\}\.(\w+)", m.template)]
    assert len(created_later) == len(set(created_later)), "each table is created by one migration"
    later_tables = set(created_later) & set(TABLE_COLUMNS)
    assert later_tables == {"quality_findings"}, "a table the sink writes added later has its own migration (0004)"
    section = ClickHouseSettings(retention_events="P3Y", retention_alerts="forever", retention_dead_letters="30")
    sql = render(initial.template, "analytics", section)
    parts = statements(sql)
    for migration in later:
        assert not any("{{" in part for part in statements(render(migration.template, "analytics", section)))
    parts_later = [p for m in later for p in statements(render(m.template, "analytics", section))]
    assert not any("{{" in part for part in parts)
    assert len(parts) == len(TABLE_COLUMNS) - len(later_tables)
    for table in set(TABLE_COLUMNS) - later_tables:
        [stmt] = [s for s in parts if f"`analytics`.{table}\n" in s]
        assert "ReplacingMergeTree(ingested_at" in stmt
        assert "PARTITION BY toYYYYMM(" in stmt
    for table in later_tables:
        [stmt] = [s for s in parts_later if f"`analytics`.{table}\n" in s]
        assert "ReplacingMergeTree(ingested_at" in stmt and "PARTITION BY toYYYYMM(" in stmt
        assert "TTL toDateTime(found_at) + INTERVAL 30 DAY" in stmt, "findings are kept as dead letters are"
    contacts = next(s for s in parts if "`analytics`.contacts\n" in s)
    assert "TTL toDateTime(occurred_at) + INTERVAL 3 YEAR" in contacts
    assert "ORDER BY (la_code, event_id)" in contacts
    alerts = next(s for s in parts if "`analytics`.alerts\n" in s)
    assert "TTL" not in alerts
    assert table_ttls(initial.template, "analytics", section)["dead_letters"] == (
        "TTL toDateTime(dead_lettered_at) + INTERVAL 30 DAY"
    )


def test_password_in_url_is_moved_to_a_secret() -> None:
    section = ClickHouseSettings(url="https://sink:s3cr%40t@ch.example:8443/analytics")
    assert section.url == "https://sink@ch.example:8443/analytics"
    assert section.password is not None and section.password.get_secret_value() == "s3cr@t"
    assert "s3cr" not in str(section.model_dump(mode="json"))


def test_unknown_url_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="chdb://"):
        ClickHouseSettings(url="postgres://x")
