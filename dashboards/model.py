"""What a dashboard is, independent of Grafana: panels as data (title, chart kind, SQL, which columns are counts).

The Grafana JSON (dashboards/grafana.py), the static report (dashboards/report.py), the tests and the benchmark
all read these same objects, so the SQL a manager sees in Grafana is the SQL that was tested.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from dashboards.england import EnglandFigure
from dashboards.suppression import Rate, suppress_sql

PanelKind = Literal["timeseries", "bars", "barchart", "table"]
"""`timeseries` lines over time, `bars` stacked bars over time, `barchart` one bar per category, `table`."""

READ_SETTINGS = "SETTINGS do_not_merge_across_partitions_select_final = 1"
"""Appended to every panel query. `FINAL` then deduplicates each month partition on its own instead of merging
all of a table's parts at read time (measured 20x faster, bench/results/panel_queries.json). It is exact because
every copy of an event lands in the same partition: the sink partitions by the month of the event's own time
(`occurred_at`, `triggered_at`, ...), which a re-delivery never changes (docs/sink.md)."""

ENGLAND_SUFFIX = "_england"
"""A column holding a published England figure is the local column's name with this suffix."""

FORMAT_TIME_SERIES = 0
FORMAT_TABLE = 1
"""The plugin's `format` (grafana-plugin-sdk-go sqlutil.FormatQueryOption): 0 time series, 1 table."""


@dataclass(frozen=True)
class Panel:
    """One panel: its query in the plugin's SQL dialect (macros unexpanded) and how to show the result.

    Time-series panels return `time`, then at most one label column (`series`), then value columns: the
    plugin turns that long shape into one series per label. `counts` are the columns holding numbers of
    children, episodes, plans, ...: small-number suppression applies to them, and to `rates` made of them.

    A panel whose `sql` reads the summary tables (sinks/migrations/0003_dashboard_summaries.sql) keeps its
    definition over the event tables as `reference`: the same columns and rows, computed the slow way. The
    integration tests check the two agree; the benchmark measures both.
    """

    key: str
    title: str
    description: str
    kind: PanelKind
    sql: str
    order_by: str
    counts: tuple[str, ...] = ()
    rates: tuple[Rate, ...] = ()
    unit: str = "short"
    width: int = 12
    height: int = 8
    units: dict[str, str] = field(default_factory=dict)
    """Per-column units where they differ from `unit` (e.g. a percent column in a table of counts)."""
    category: str = ""
    """For a `barchart`: the column naming the bars."""
    england: dict[str, EnglandFigure] = field(default_factory=dict)
    """Local columns compared with a published England figure: each figure is a constant column in the SQL,
    `<column>_england`, right after the local one (never suppressed: it counts no local child)."""
    reference: str = ""
    """The query `sql` must agree with, over the event tables; empty when `sql` reads the event tables itself."""

    @property
    def has_series(self) -> bool:
        """A long time-series frame (time, series, values): one line or bar stack per `series` value."""
        return " AS series" in self.sql

    @property
    def format(self) -> int:
        return FORMAT_TIME_SERIES if self.kind in ("timeseries", "bars") else FORMAT_TABLE

    def query(self, *, suppress: bool, reference: bool = False) -> str:
        """The panel's rawSql: the query and its ORDER BY, wrapped for suppression when `suppress`. With
        `reference`, the same built from `reference` (the panel's own SQL when it has none)."""
        sql = self.reference if reference and self.reference else self.sql
        plain = f"{sql.strip()}\nORDER BY {self.order_by}"
        wrapped = suppress_sql(plain, self.counts, self.rates, self.order_by) if suppress else plain
        return f"{wrapped}\n{READ_SETTINGS}"

    def unit_of(self, column: str) -> str:
        return self.units.get(column, self.unit)

    @property
    def england_columns(self) -> dict[str, EnglandFigure]:
        """The England figures by the name of the column that holds them."""
        return {england_column(column): figure for column, figure in self.england.items()}


def england_column(column: str) -> str:
    """The column holding the England figure compared with the local `column`."""
    return column + ENGLAND_SUFFIX


@dataclass(frozen=True)
class Row:
    """A titled group of panels."""

    title: str
    panels: tuple[Panel, ...]


@dataclass(frozen=True)
class Dashboard:
    """One dashboard: a stable uid (the suppressed variant appends `-shared`), rows of panels."""

    uid: str
    title: str
    description: str
    rows: tuple[Row, ...]
    tags: tuple[str, ...] = ()

    @property
    def panels(self) -> tuple[Panel, ...]:
        return tuple(p for row in self.rows for p in row.panels)
