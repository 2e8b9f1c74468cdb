"""Running a panel's query outside Grafana: expand the plugin's macros, run it on a ClickHouse client, keep the
result as a small frame. Used by the static report, the tests and the benchmark.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from dashboards.macros import QueryContext, expand, leftover_variables
from dashboards.model import Panel
from schemas.errors import SafeguardError

Client = Any
"""A clickhouse-connect client (the library ships no type hints)."""

_NICE_SECONDS = (1, 5, 10, 15, 30, 60, 300, 600, 900, 1800, 3600, 10800, 21600, 43200, 86400, 604800, 2592000)
_NICE_INTERVALS = tuple(timedelta(seconds=s) for s in _NICE_SECONDS)


class PanelQueryError(SafeguardError):
    """A panel's query failed on the store; names the panel."""


@dataclass(frozen=True)
class Frame:
    """A query result: column names and rows, in the query's order."""

    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]

    def records(self) -> Iterator[dict[str, Any]]:
        for row in self.rows:
            yield dict(zip(self.columns, row, strict=True))

    def column(self, name: str) -> list[Any]:
        index = self.columns.index(name)
        return [row[index] for row in self.rows]


def auto_interval(time_from: datetime, time_to: datetime, max_points: int = 120) -> timedelta:
    """An interval like Grafana's automatic one: the smallest round step giving at most `max_points` buckets."""
    span = time_to - time_from
    for step in _NICE_INTERVALS:
        if span / step <= max_points:
            return step
    return _NICE_INTERVALS[-1]


def context(time_from: datetime, time_to: datetime, interval: timedelta | None = None) -> QueryContext:
    """The query context Grafana would send for a time range (with its automatic interval unless given)."""
    return QueryContext(time_from, time_to, interval or auto_interval(time_from, time_to))


def expanded_sql(panel: Panel, ctx: QueryContext, *, suppress: bool, reference: bool = False) -> str:
    """The SQL ClickHouse receives for `panel` in `ctx` (its `reference` over the event tables with `reference`);
    fails when a Grafana variable would be left in it."""
    sql = expand(panel.query(suppress=suppress, reference=reference), ctx)
    leftover = leftover_variables(sql)
    if leftover:
        raise PanelQueryError(f"panel {panel.key}: template variables left after expansion: {', '.join(leftover)}")
    return sql


def run_panel(
    client: Client, panel: Panel, ctx: QueryContext, *, suppress: bool = False, reference: bool = False
) -> Frame:
    """Run one panel's query on `client` (whose database is the sink's) and return its frame; with `reference`,
    its definition over the event tables instead (the same for a panel that reads no summary)."""
    sql = expanded_sql(panel, ctx, suppress=suppress, reference=reference)
    try:
        result = client.query(sql)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PanelQueryError(f"panel {panel.key} failed: {first}") from exc
    return Frame(tuple(result.column_names), tuple(tuple(r) for r in result.result_rows))
