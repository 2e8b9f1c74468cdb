"""The dashboards as Grafana JSON: built with grafana-foundation-sdk, shaped for the ClickHouse plugin, and the
committed generated files equal to what the code builds."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from dashboards.catalogue import DASHBOARDS, PANELS
from dashboards.grafana import DATASOURCE_UID, PLUGIN_ID, VARIANTS, build_dashboard, provisioning_files
from dashboards.macros import MACROS, QueryContext, expand, leftover_variables
from dashboards.suppression import NO_SHARE
from safeguard.dashboards_cli import generated_files, stale_files

ROOT = Path(__file__).resolve().parents[3] / "dashboards"
MACRO_NAMES = set(MACROS)


def test_the_pinned_sdk_is_the_grafana_11_6_build() -> None:
    from importlib.metadata import version

    assert version("grafana-foundation-sdk").endswith("!11.6.0")


def test_committed_generated_files_are_what_the_code_builds() -> None:
    """Run `safeguard dashboards build` after changing dashboards/ and commit the result."""
    files = generated_files()
    differing = [
        str(p) for p, text in files.items() if not (ROOT / p).is_file() or (ROOT / p).read_text("utf-8") != text
    ]
    assert not differing, f"stale generated files (run `safeguard dashboards build`): {differing}"
    assert stale_files(ROOT, files) == []


def test_uids_keys_and_ids_are_unique() -> None:
    assert len(PANELS) == sum(len(d.panels) for d in DASHBOARDS)
    uids = [build_dashboard(d, v)["uid"] for d in DASHBOARDS for v in VARIANTS]
    assert len(set(uids)) == len(uids) == 12
    assert all(re.fullmatch(r"[a-z0-9-]{1,40}", uid) for uid in uids)
    for spec in DASHBOARDS:
        ids = [p["id"] for p in build_dashboard(spec, "operational")["panels"]]
        assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_panel_queries_the_clickhouse_datasource_in_raw_sql(variant: str) -> None:
    for spec in DASHBOARDS:
        board = build_dashboard(spec, variant)  # type: ignore[arg-type]
        assert board["timezone"] == "Europe/London"
        assert board["fiscalYearStartMonth"] == 3
        panels = [p for p in board["panels"] if p["type"] != "row"]
        assert [p["title"] for p in panels] == [p.title for p in spec.panels]
        for built, panel in zip(panels, spec.panels, strict=True):
            [target] = built["targets"]
            assert target["datasource"] == {"type": PLUGIN_ID, "uid": DATASOURCE_UID}
            assert built["datasource"] == target["datasource"]
            assert target["editorType"] == "sql"
            assert target["format"] == (0 if panel.kind in ("timeseries", "bars") else 1)
            assert target["queryType"] == ("timeseries" if target["format"] == 0 else "table")
            assert target["rawSql"] == panel.query(suppress=variant == "shared")
            mappings = built["fieldConfig"]["defaults"]["mappings"]
            texts = {m["options"]["match"]: m["options"]["result"]["text"] for m in mappings}
            assert texts == ({"nan": NO_SHARE, "null": "c"} if variant == "shared" else {"nan": NO_SHARE})


def test_panels_only_use_macros_the_plugin_knows_and_expand_completely() -> None:
    ctx = QueryContext(datetime(2019, 4, 1, tzinfo=UTC), datetime(2020, 4, 1, tzinfo=UTC))
    for panel in PANELS.values():
        for suppress in (False, True):
            sql = panel.query(suppress=suppress)
            used = set(re.findall(r"\$__(\w+)", sql))
            assert used <= MACRO_NAMES, (panel.key, used - MACRO_NAMES)
            assert "$__timeFilter" in sql or "$__toTime" in sql, f"{panel.key} ignores the time range"
            assert leftover_variables(expand(sql, ctx)) == []


def test_bar_charts_name_their_category_column() -> None:
    for panel in PANELS.values():
        if panel.kind == "barchart":
            assert re.search(rf"\b{panel.category}\b", panel.sql.split("FROM", 1)[0]), panel.key
            board = build_dashboard(next(d for d in DASHBOARDS if panel in d.panels), "operational")
            built = next(p for p in board["panels"] if p.get("title") == panel.title)
            assert built["options"]["xField"] == panel.category


def test_grid_fits_24_columns() -> None:
    for spec in DASHBOARDS:
        for panel in build_dashboard(spec, "operational")["panels"]:
            pos = panel["gridPos"]
            assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24


def test_provisioning_files() -> None:
    files = provisioning_files()
    datasources: dict[str, Any] = yaml.safe_load(files["datasources/clickhouse.yaml"])
    [ds] = datasources["datasources"]
    assert ds["uid"] == DATASOURCE_UID and ds["type"] == PLUGIN_ID
    assert ds["jsonData"]["username"] == "safeguard_analyst"  # the plugin reads the user from jsonData
    assert ds["jsonData"]["defaultDatabase"] == "safeguard"  # panels name tables without a database
    assert ds["secureJsonData"] == {"password": "${CLICKHOUSE_ANALYST_PASSWORD}"}  # from the environment only
    providers: dict[str, Any] = yaml.safe_load(files["dashboards/safeguarding.yaml"])
    [provider] = providers["providers"]
    assert provider["options"] == {
        "path": "/var/lib/grafana/dashboards/safeguarding",
        "foldersFromFilesStructure": True,
    }


def test_generated_json_is_plain_dashboard_objects() -> None:
    for path, text in generated_files().items():
        if path.suffix == ".json":
            board = json.loads(text)
            assert "dashboard" not in board and board["uid"] in path.name
            assert board.get("id") is None


@pytest.mark.parametrize("variant", VARIANTS)
def test_england_figures_sit_beside_the_local_measure_with_source_and_year(variant: str) -> None:
    """A panel comparing a local measure with England heads the England column with the year, gives it the
    figure's unit, its source on hover and a link to the publication, and cites it in the panel description."""
    compared = [p for p in PANELS.values() if p.england]
    assert compared, "no panel shows an England figure"
    for panel in compared:
        board = build_dashboard(next(d for d in DASHBOARDS if panel in d.panels), variant)  # type: ignore[arg-type]
        built = next(p for p in board["panels"] if p.get("title") == panel.title)
        overrides = {o["matcher"]["options"]: o["properties"] for o in built["fieldConfig"]["overrides"]}
        for column, figure in panel.england.items():
            properties = {p["id"]: p["value"] for p in overrides[f"{column}_england"]}
            assert properties["displayName"] == f"England {figure.period}"
            assert properties["unit"] == panel.unit_of(column)
            assert figure.source in properties["description"]
            assert properties["links"] == [{"title": figure.source, "url": figure.url, "targetBlank": True}]
            assert f"**England {figure.period}: {figure.shown}**" in built["description"]
            assert f"[{figure.publication}]({figure.url})" in built["description"]
            assert f"{figure.value!r} AS {column}_england" in built["targets"][0]["rawSql"]
