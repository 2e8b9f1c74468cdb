"""Grafana as docker-compose.yml runs it (grafana/grafana pinned, the ClickHouse plugin preinstalled with
GF_PLUGINS_PREINSTALL_SYNC, the repository's provisioning and generated dashboards mounted), over the ClickHouse
server holding a simulated Leeds year:

- the provisioned datasource is healthy: the plugin is installed and reaches ClickHouse as the read-only analyst;
- every generated dashboard is provisioned, and every panel's query runs through Grafana's query API without
  error (the plugin expands the macros) and, for tables, returns the rows the project's own expander gives;
- `safeguard dashboards push` (grafana-client) into a bare Grafana, then every dashboard read back from the API
  equals what the code builds.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, time
from typing import Any

import pytest
from testcontainers.core.network import Network

from dashboards.catalogue import DASHBOARDS
from dashboards.grafana import DATASOURCE_UID, PLUGIN_ID, build_dashboard
from dashboards.push import push
from dashboards.query import context, run_panel
from producers.simulate import LEEDS_2019
from safeguard.settings import GrafanaDatasourceSettings, GrafanaSettings
from tests.containers.engine import require_docker
from tests.containers.stack import DATABASE, SECRETS, ClickHouseNode, GrafanaNode, compose_environment, grafana_node
from tests.integration.test_dashboards.store import LoadedYear, load_year
from tests.unit.test_deploy.deploy_files import ROOT

require_docker()
pytestmark = [pytest.mark.containers, pytest.mark.slow]

FORMAT_TABLE = 1


@pytest.fixture(scope="module")
def year(clickhouse: ClickHouseNode) -> LoadedYear:
    """The Leeds year in the server's safeguarding database, loaded as the schema owner."""
    client = clickhouse.migrator()
    try:
        return load_year(client, DATABASE, LEEDS_2019)
    finally:
        client.close()


@pytest.fixture(scope="module")
def provisioned(network: Network, clickhouse: ClickHouseNode, year: LoadedYear) -> Iterator[GrafanaNode]:
    with grafana_node(network, provisioned=True) as node:
        yield node


@pytest.fixture(scope="module")
def bare(network: Network, clickhouse: ClickHouseNode) -> Iterator[GrafanaNode]:
    with grafana_node(network, provisioned=False) as node:
        yield node


def _year_range() -> tuple[datetime, datetime]:
    first, last = LEEDS_2019.first_day, LEEDS_2019.last_day
    return datetime.combine(first, time(), UTC), datetime.combine(last, time(23, 59, 59), UTC)


def _generated_uids() -> set[str]:
    return {json.loads(p.read_text())["uid"] for p in (ROOT / "dashboards" / "json").rglob("*.json")}


def test_the_plugin_is_installed_and_the_provisioned_datasource_is_healthy(provisioned: GrafanaNode) -> None:
    api = provisioned.api()
    plugin = api.client.GET(f"/plugins/{PLUGIN_ID}/settings")
    pinned = compose_environment("grafana")["GF_PLUGINS_PREINSTALL_SYNC"].split("@")[1]
    assert plugin["info"]["version"] == pinned, "the plugin version compose pins is the one installed"
    datasource = api.datasource.get_datasource_by_uid(DATASOURCE_UID)
    assert datasource["type"] == PLUGIN_ID
    assert datasource["jsonData"]["host"] == "clickhouse"
    assert datasource["jsonData"]["username"] == "safeguard_analyst"
    health = api.datasource.health(DATASOURCE_UID)
    assert health["status"] == "OK", health


def test_every_generated_dashboard_is_provisioned(provisioned: GrafanaNode) -> None:
    found = {d["uid"] for d in provisioned.api().search.search_dashboards(type_="dash-db", limit=5000)}
    expected = _generated_uids()
    assert expected, "dashboards/json holds the generated dashboards (safeguard dashboards build)"
    assert expected <= found, f"not provisioned: {sorted(expected - found)}"


def _panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel of a dashboard JSON, also those inside (collapsed) rows."""
    for panel in board.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def _rows(result: dict[str, Any]) -> int:
    return sum(len((frame.get("data", {}).get("values") or [[]])[0]) for frame in result.get("frames", []))


def test_every_panel_runs_through_grafana_as_the_analyst(
    provisioned: GrafanaNode, clickhouse: ClickHouseNode, year: LoadedYear
) -> None:
    api = provisioned.api()
    time_from, time_to = _year_range()
    ctx = context(time_from, time_to)
    analyst = clickhouse.analyst()
    failures: list[str] = []
    checked = 0
    try:
        for spec in DASHBOARDS:
            board = api.dashboard.get_dashboard(spec.uid)["dashboard"]
            panels = {p.title: p for p in spec.panels}
            for panel_json in _panels(board):
                for target in panel_json.get("targets", []):
                    query = {
                        **target,
                        "intervalMs": int(ctx.interval.total_seconds() * 1000),
                        "maxDataPoints": 120,
                    }
                    body = {
                        "from": str(int(time_from.timestamp() * 1000)),
                        "to": str(int(time_to.timestamp() * 1000)),
                        "queries": [query],
                    }
                    try:
                        answer = api.client.POST("/ds/query", json=body)
                    except Exception as exc:
                        failures.append(f"{spec.uid} / {panel_json.get('title')}: {exc}")
                        continue
                    result = answer["results"][target["refId"]]
                    if result.get("error"):
                        failures.append(f"{spec.uid} / {panel_json.get('title')}: {result['error']}")
                        continue
                    checked += 1
                    panel = panels.get(panel_json.get("title", ""))
                    if panel is not None and target.get("format") == FORMAT_TABLE:
                        expected = run_panel(analyst, panel, ctx)
                        assert _rows(result) == len(expected.rows), f"{spec.uid} / {panel.title}: row counts differ"
    finally:
        analyst.close()
    assert not failures, "panels failing in Grafana:\n" + "\n".join(failures)
    assert checked >= len(DASHBOARDS), "every dashboard has panels that ran"


def test_push_with_grafana_client_and_read_back(bare: GrafanaNode) -> None:
    settings = GrafanaSettings(
        url=bare.url,
        username=bare.user,
        password=bare.password,
        datasource=GrafanaDatasourceSettings(
            host="clickhouse", username="safeguard_analyst", password=SECRETS["CLICKHOUSE_ANALYST_PASSWORD"]
        ),
    )
    from dashboards.push import connect

    api = connect(settings)
    first = push(api, settings, DATABASE, "operational")
    assert first.datasource == "created"
    again = push(api, settings, DATABASE, "operational")
    assert again.datasource == "updated" and again.dashboards == first.dashboards, "pushing again replaces"
    for spec in DASHBOARDS:
        stored = api.dashboard.get_dashboard(spec.uid)
        assert stored["meta"]["folderUid"] == first.folder_uid
        built = build_dashboard(spec, "operational")
        got = stored["dashboard"]
        assert got["title"] == built["title"]
        assert [p.get("title") for p in _panels(got)] == [p.get("title") for p in _panels(built)]
        assert [t.get("rawSql") for p in _panels(got) for t in p.get("targets", [])] == [
            t.get("rawSql") for p in _panels(built) for t in p.get("targets", [])
        ]
    health = api.datasource.health(DATASOURCE_UID)
    assert health["status"] == "OK", health
