"""The dashboards as Grafana JSON, built with grafana-foundation-sdk (pinned to its Grafana 11.6 build), and the
Grafana provisioning files. Pure: the output depends on the code only, so the committed files can be compared
with what the code builds (a test fails when they differ).

Two variants of every dashboard are built: `operational` (figures as they are, for the operational team) and
`shared` (small numbers suppressed, for audiences beyond it; uid suffixed `-shared`). The SDK has no ClickHouse
query type, so `ClickHouseQuery` renders the plugin's query model (`editorType` sql, `rawSql`, `format`,
`queryType`; grafana/clickhouse-datasource `src/types/sql.ts`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from grafana_foundation_sdk.builders import barchart, common, dashboard, table, timeseries
from grafana_foundation_sdk.cog import builder, variants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as common_models
from grafana_foundation_sdk.models import dashboard as models

from dashboards.catalogue import DASHBOARDS, TZ
from dashboards.england import GRAFANA_UNITS, EnglandFigure
from dashboards.model import Dashboard, Panel
from dashboards.suppression import NO_SHARE, SUPPRESSED

PLUGIN_ID = "grafana-clickhouse-datasource"
DATASOURCE_UID = "safeguard-clickhouse"
"""The datasource every panel names; `safeguard dashboards push` and the provisioning file create it."""

Variant = Literal["operational", "shared"]
VARIANTS: tuple[Variant, ...] = ("operational", "shared")

_DEFAULT_TIME: dict[str, tuple[str, str, str]] = {
    # uid: (from, to, refresh); statutory measures default to the last and the current financial year
    "safeguard-alerts": ("now-30d", "now", "1m"),
    "safeguard-pipeline": ("now-6h", "now", "30s"),
}
_FINANCIAL_YEARS = ("now-1y/fy", "now/fy", "")
_FISCAL_YEAR_START_MONTH = 3  # April (Grafana counts months from 0)


class ClickHouseQuery(variants.Dataquery):
    """One target in the ClickHouse plugin's query model (raw SQL mode)."""

    def __init__(self, sql: str, fmt: int, ref_id: str = "A") -> None:
        self.sql, self.fmt, self.ref_id = sql, fmt, ref_id

    def to_json(self) -> dict[str, object]:
        return {
            "refId": self.ref_id,
            "datasource": {"type": PLUGIN_ID, "uid": DATASOURCE_UID},
            "editorType": "sql",
            "format": self.fmt,
            "queryType": "timeseries" if self.fmt == 0 else "table",
            "rawSql": self.sql,
        }


class _QueryBuilder(builder.Builder[variants.Dataquery]):
    def __init__(self, query: ClickHouseQuery) -> None:
        self._query = query

    def build(self) -> variants.Dataquery:
        return self._query


def _datasource() -> models.DataSourceRef:
    return models.DataSourceRef(type_val=PLUGIN_ID, uid=DATASOURCE_UID)


def _mappings(suppressed: bool) -> list[models.ValueMapping]:
    """NaN (a share of nothing) as a dash; in the shared variant NULL (a suppressed count) as "c"."""
    mappings: list[models.ValueMapping] = [
        models.SpecialValueMap(
            options=models.DashboardSpecialValueMapOptions(
                match=models.SpecialValueMatch.NA_N, result=models.ValueMappingResult(text=NO_SHARE, index=0)
            )
        )
    ]
    if suppressed:
        mappings.append(
            models.SpecialValueMap(
                options=models.DashboardSpecialValueMapOptions(
                    match=models.SpecialValueMatch.NULL, result=models.ValueMappingResult(text=SUPPRESSED, index=1)
                )
            )
        )
    return mappings


_Builder = timeseries.Panel | barchart.Panel | table.Panel


def england_note(figure: EnglandFigure) -> str:
    """One England figure with its year and source, in Markdown (Grafana renders a panel's description)."""
    publication = f"[{figure.publication}]({figure.url})" if figure.url else figure.publication
    note = f" {figure.note}" if figure.note else ""
    return f"**{figure.heading}: {figure.shown}** ({figure.label}). Source: {figure.publisher}, {publication}.{note}"


def _description(panel: Panel) -> str:
    return "\n\n".join([panel.description, *(england_note(f) for f in panel.england.values())])


def _england_properties(figure: EnglandFigure) -> list[models.DynamicConfigValue]:
    """The England column headed with its year, in its unit, its source on hover and one click away."""
    properties = [
        models.DynamicConfigValue(id_val="displayName", value=figure.heading),
        models.DynamicConfigValue(id_val="unit", value=GRAFANA_UNITS[figure.unit]),
        models.DynamicConfigValue(id_val="description", value=f"{figure.label}. Source: {figure.source}."),
    ]
    if figure.url:
        link = {"title": figure.source, "url": figure.url, "targetBlank": True}
        properties.append(models.DynamicConfigValue(id_val="links", value=[link]))
    return properties


class _Layout:
    """Places panels left to right in Grafana's 24-column grid, wrapping when the next does not fit (the SDK's
    own placement does not wrap a full-width panel that follows a half-width one)."""

    def __init__(self) -> None:
        self.x = self.y = self.line_height = 0

    def row(self) -> models.GridPos:
        self._wrap()
        pos = models.GridPos(h=1, w=24, x=0, y=self.y)
        self.y += 1
        return pos

    def place(self, width: int, height: int) -> models.GridPos:
        if self.x + width > 24:
            self._wrap()
        pos = models.GridPos(h=height, w=width, x=self.x, y=self.y)
        self.x += width
        self.line_height = max(self.line_height, height)
        return pos

    def _wrap(self) -> None:
        if self.x:
            self.y += self.line_height
        self.x = self.line_height = 0


def _panel(panel: Panel, panel_id: int, suppressed: bool, position: models.GridPos) -> _Builder:
    built: _Builder
    if panel.kind in ("timeseries", "bars"):
        series = timeseries.Panel().legend(
            common.VizLegendOptions()
            .show_legend(True)
            .display_mode(common_models.LegendDisplayMode.LIST)
            .placement(common_models.LegendPlacement.BOTTOM)
        )
        if panel.kind == "bars":
            series = (
                series.draw_style(common_models.GraphDrawStyle.BARS)
                .fill_opacity(80)
                .stacking(common.StackingConfig().mode(common_models.StackingMode.NORMAL))
            )
        else:
            series = series.draw_style(common_models.GraphDrawStyle.LINE).show_points(
                common_models.VisibilityMode.ALWAYS
            )
        if panel.has_series:
            # long frames (time, series, value): name each series by its label, not "<value> <label>"
            series = series.display_name("${__field.labels.series}")
        built = series
    elif panel.kind == "barchart":
        built = (
            barchart.Panel()
            .x_field(panel.category)
            .orientation(common_models.VizOrientation.HORIZONTAL)
            .show_value(common_models.VisibilityMode.ALWAYS)
        )
    else:
        built = table.Panel()
    built = (
        built.id(panel_id)
        .title(panel.title)
        .description(_description(panel))
        .datasource(_datasource())
        .with_target(_QueryBuilder(ClickHouseQuery(panel.query(suppress=suppressed), panel.format)))
        .unit(panel.unit)
        .mappings(_mappings(suppressed))
        .grid_pos(position)
    )
    for column, unit in sorted(panel.units.items()):
        built = built.override_by_name(column, [models.DynamicConfigValue(id_val="unit", value=unit)])
    for column, figure in sorted(panel.england_columns.items()):
        built = built.override_by_name(column, _england_properties(figure))
    return built


def build_dashboard(spec: Dashboard, variant: Variant) -> dict[str, Any]:
    """One dashboard as the JSON object Grafana stores (what provisioning reads and the API receives)."""
    suppressed = variant == "shared"
    time_from, time_to, refresh = _DEFAULT_TIME.get(spec.uid, _FINANCIAL_YEARS)
    description = spec.description + (
        " Counts of 1 to 5 are shown as 'c' (suppressed for sharing beyond the operational team)."
        if suppressed
        else " Operational: unsuppressed figures, for the operational team only."
    )
    board = (
        dashboard.Dashboard(spec.title + (" (shared)" if suppressed else ""))
        .uid(spec.uid + ("-shared" if suppressed else ""))
        .description(description)
        .tags(["safeguarding", *spec.tags, "suppressed" if suppressed else "operational"])
        .timezone(TZ)
        .fiscal_year_start_month(_FISCAL_YEAR_START_MONTH)
        .time(time_from, time_to)
        .editable()
        .tooltip(models.DashboardCursorSync.CROSSHAIR)
    )
    if refresh:
        board = board.refresh(refresh)
    panel_id = 0
    layout = _Layout()
    for row in spec.rows:
        panel_id += 1
        board = board.with_row(dashboard.Row(row.title).id(panel_id).grid_pos(layout.row()))
        for panel in row.panels:
            panel_id += 1
            board = board.with_panel(_panel(panel, panel_id, suppressed, layout.place(panel.width, panel.height)))
    encoded: dict[str, Any] = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    return encoded


def dashboard_files() -> dict[str, str]:
    """Every generated dashboard file, by path relative to `dashboards/json/`: `<variant>/<uid>.json`."""
    files: dict[str, str] = {}
    for variant in VARIANTS:
        for spec in DASHBOARDS:
            board = build_dashboard(spec, variant)
            files[f"{variant}/{board['uid']}.json"] = json.dumps(board, indent=2, ensure_ascii=False) + "\n"
    return files


@dataclass(frozen=True)
class ProvisionedDatasource:
    """The datasource of the provisioned (docker-compose) deployment; other deployments use `push`."""

    host: str = "clickhouse"
    port: int = 8123
    protocol: str = "http"
    username: str = "safeguard_analyst"
    database: str = "safeguard"
    password_env: str = "CLICKHOUSE_ANALYST_PASSWORD"  # noqa: S105 - the name of a variable, not a password


DASHBOARDS_MOUNT = "/var/lib/grafana/dashboards/safeguarding"
"""Where the Grafana container sees `dashboards/json/` (docker-compose.yml mounts it there)."""


def datasource_model(
    *,
    name: str,
    host: str,
    port: int,
    protocol: str,
    secure: bool,
    username: str,
    database: str,
    password: str | None,
) -> dict[str, Any]:
    """The datasource object for Grafana's API and provisioning. `username` goes in jsonData: the plugin's
    backend reads it from there (pkg/plugin/settings.go), only secrets from secureJsonData."""
    model: dict[str, Any] = {
        "name": name,
        "uid": DATASOURCE_UID,
        "type": PLUGIN_ID,
        "access": "proxy",
        "isDefault": True,
        "jsonData": {
            "host": host,
            "port": port,
            "protocol": protocol,
            "secure": secure,
            "username": username,
            "defaultDatabase": database,
        },
    }
    if password is not None:
        model["secureJsonData"] = {"password": password}
    return model


def provisioning_files(datasource: ProvisionedDatasource | None = None) -> dict[str, str]:
    """Grafana's file provisioning, by path relative to `dashboards/provisioning/`: the datasource (password
    from the Grafana container's environment, never a file) and a dashboards provider with one folder per
    variant (`foldersFromFilesStructure`)."""
    ds = datasource or ProvisionedDatasource()
    model = datasource_model(
        name="Safeguarding ClickHouse",
        host=ds.host,
        port=ds.port,
        protocol=ds.protocol,
        secure=False,
        username=ds.username,
        database=ds.database,
        password=f"${{{ds.password_env}}}",
    )
    model["editable"] = False
    header = "# Generated by `safeguard dashboards build` (dashboards/grafana.py); do not edit by hand.\n"
    datasources = header + _yaml({"apiVersion": 1, "datasources": [model]})
    providers = header + _yaml(
        {
            "apiVersion": 1,
            "providers": [
                {
                    "name": "safeguarding",
                    "orgId": 1,
                    "type": "file",
                    "disableDeletion": True,
                    "allowUiUpdates": False,
                    "updateIntervalSeconds": 60,
                    "options": {"path": DASHBOARDS_MOUNT, "foldersFromFilesStructure": True},
                }
            ],
        }
    )
    return {"datasources/clickhouse.yaml": datasources, "dashboards/safeguarding.yaml": providers}


def _yaml(data: object) -> str:
    import yaml

    return str(yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True))
