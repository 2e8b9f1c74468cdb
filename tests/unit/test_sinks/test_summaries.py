"""The dashboards' summaries migration (0003) read as text: every summary has its view and its backfill, the two
select the same, and every summary follows the retention settings (no store needed)."""

from __future__ import annotations

import re

from safeguard.settings import ClickHouseSettings
from sinks.migrate import load_migrations, render, statements, table_ttls
from sinks.summaries import SUMMARIES_MIGRATION, backfills, summary_tables

_VIEW = re.compile(r"CREATE MATERIALIZED VIEW IF NOT EXISTS `db`\.(\w+) TO `db`\.(\w+) AS\s+(SELECT\s.*)", re.S)
_INSERT = re.compile(r"INSERT INTO `db`\.(\w+)\s+(SELECT\s.*)", re.S)


def _summaries() -> list[str]:
    [migration] = [m for m in load_migrations() if m.name == SUMMARIES_MIGRATION]
    return statements(render(migration.template, "db", ClickHouseSettings()))


def test_every_view_has_a_backfill_selecting_the_same() -> None:
    views = [m.groups() for s in _summaries() if (m := _VIEW.fullmatch(s))]
    inserts = [m.groups() for s in _summaries() if (m := _INSERT.fullmatch(s))]
    assert views and len(views) == len(inserts)
    for (view, target, select), (table, backfill) in zip(views, inserts, strict=True):
        assert view.startswith(target) and view.endswith("_mv")
        assert table == target, "each view is followed by the backfill of its summary"
        assert backfill == select, f"{view}: the backfill must select what the view selects"


def test_every_summary_is_created_and_rebuilt() -> None:
    created = [m.group(1) for s in _summaries() if (m := re.match(r"CREATE TABLE IF NOT EXISTS `db`\.(\w+)", s))]
    assert summary_tables("db") == created
    inserted = [m.group(1) for m in map(_INSERT.match, _summaries()) if m]
    assert [t for t, _ in backfills("db", ClickHouseSettings())] == inserted
    for statement in _summaries():
        if statement.startswith("CREATE TABLE"):
            assert "ENGINE = AggregatingMergeTree" in statement
            assert "la_code LowCardinality(String)" in statement


def test_every_summary_follows_the_retention_settings() -> None:
    [migration] = [m for m in load_migrations() if m.name == SUMMARIES_MIGRATION]
    section = ClickHouseSettings(retention_events="P25Y", retention_alerts="P2Y")
    ttls = table_ttls(migration.template, "db", section)
    assert set(ttls) == set(summary_tables("db"))
    assert ttls["contacts_by_month"] == "TTL toDateTime(month) + INTERVAL 25 YEAR"
    assert ttls["household_incidents"] == "TTL toDateTime(newest_at) + INTERVAL 25 YEAR"
    assert ttls["alert_acknowledgements"] == "TTL toDateTime(newest_at) + INTERVAL 2 YEAR"
