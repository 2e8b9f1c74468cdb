"""`safeguard dashboards push` through grafana-client against a small stand-in for Grafana's HTTP API on loopback.

The stand-in implements only the endpoints the push uses (datasource by uid, folders, POST /api/dashboards/db),
keeps what it receives and answers as Grafana does (404 for what it does not have). It checks the push talks
HTTP the way Grafana expects: this is no substitute for a real Grafana, which the containers tier can provide.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from click.testing import CliRunner

from dashboards.catalogue import DASHBOARDS
from dashboards.grafana import DATASOURCE_UID, PLUGIN_ID, build_dashboard
from safeguard.cli import cli

pytestmark = pytest.mark.integration
TOKEN = "glsa_test_token_0123456789"


@dataclass
class FakeGrafana:
    datasources: dict[str, dict[str, Any]] = field(default_factory=dict)
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    auth: set[str] = field(default_factory=set)
    url: str = ""


def _handler(state: FakeGrafana) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _reply(self, status: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> dict[str, Any]:
            length = int(self.headers.get("Content-Length") or 0)
            loaded: dict[str, Any] = json.loads(self.rfile.read(length) or b"{}")
            return loaded

        def _record(self) -> None:
            state.requests.append((self.command, self.path))
            state.auth.add(self.headers.get("Authorization", ""))

        def do_GET(self) -> None:
            self._record()
            if self.path.startswith("/api/datasources/uid/"):
                uid = self.path.rsplit("/", 1)[1]
                if uid in state.datasources:
                    return self._reply(200, state.datasources[uid])
                return self._reply(404, {"message": "Data source not found"})
            if self.path.startswith("/api/folders/"):
                uid = self.path.rsplit("/", 1)[1]
                if uid in state.folders:
                    return self._reply(200, state.folders[uid])
                return self._reply(404, {"message": "folder not found"})
            return self._reply(404, {"message": "not found"})

        def do_POST(self) -> None:
            self._record()
            body = self._body()
            if self.path == "/api/datasources":
                state.datasources[body["uid"]] = body
                return self._reply(200, {"id": 1, "message": "Datasource added", "datasource": body})
            if self.path == "/api/folders":
                state.folders[body["uid"]] = body
                return self._reply(200, {"id": 2, **body})
            if self.path == "/api/dashboards/db":
                board = body["dashboard"]
                state.dashboards[board["uid"]] = body
                return self._reply(200, {"status": "success", "uid": board["uid"], "url": f"/d/{board['uid']}/x"})
            return self._reply(404, {"message": "not found"})

        def do_PUT(self) -> None:
            self._record()
            body = self._body()
            if self.path.startswith("/api/datasources/uid/"):
                state.datasources[self.path.rsplit("/", 1)[1]] = body
                return self._reply(200, {"message": "Datasource updated", "datasource": body})
            return self._reply(404, {"message": "not found"})

    return Handler


@pytest.fixture
def grafana() -> Iterator[FakeGrafana]:
    state = FakeGrafana()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def _push(grafana: FakeGrafana, *args: str, **env: str) -> str:
    settings = {
        "SAFEGUARD_GRAFANA__API_TOKEN": TOKEN,
        "SAFEGUARD_GRAFANA__DATASOURCE__HOST": "clickhouse.internal",
        "SAFEGUARD_GRAFANA__DATASOURCE__USERNAME": "safeguard_analyst",
        "SAFEGUARD_GRAFANA__DATASOURCE__PASSWORD": "analyst-secret",
        **env,
    }
    result = CliRunner().invoke(cli, ["dashboards", "push", "--url", grafana.url, *args], env=settings)
    assert result.exit_code == 0, result.output
    return result.output


def test_push_creates_the_datasource_folder_and_dashboards_then_updates_them(grafana: FakeGrafana) -> None:
    output = _push(grafana)
    assert "datasource created; 6 operational dashboards in folder safeguard-safeguarding" in output
    assert grafana.auth == {f"Bearer {TOKEN}"}
    ds = grafana.datasources[DATASOURCE_UID]
    assert ds["type"] == PLUGIN_ID
    assert ds["jsonData"] == {
        "host": "clickhouse.internal",
        "port": 8123,
        "protocol": "http",
        "secure": False,
        "username": "safeguard_analyst",
        "defaultDatabase": "safeguard",
    }
    assert ds["secureJsonData"] == {"password": "analyst-secret"}
    assert grafana.folders == {"safeguard-safeguarding": {"title": "Safeguarding", "uid": "safeguard-safeguarding"}}
    assert set(grafana.dashboards) == {d.uid for d in DASHBOARDS}
    for spec in DASHBOARDS:
        sent = grafana.dashboards[spec.uid]
        assert sent["overwrite"] is True and sent["folderUid"] == "safeguard-safeguarding"
        assert sent["dashboard"] == build_dashboard(spec, "operational")
    assert f"{grafana.url}/d/safeguard-front-door/x" in output

    grafana.requests.clear()
    output = _push(grafana)
    assert "datasource updated" in output
    assert ("PUT", f"/api/datasources/uid/{DATASOURCE_UID}") in grafana.requests
    assert ("POST", "/api/folders") not in grafana.requests
    assert sum(1 for r in grafana.requests if r == ("POST", "/api/dashboards/db")) == len(DASHBOARDS)


def test_the_suppression_switch_pushes_the_shared_dashboards(grafana: FakeGrafana) -> None:
    output = _push(grafana, SAFEGUARD_GRAFANA__SUPPRESS_SMALL_NUMBERS="true")
    assert "6 shared dashboards in folder safeguard-safeguarding-shared" in output
    assert set(grafana.dashboards) == {f"{d.uid}-shared" for d in DASHBOARDS}
    assert all(
        "BETWEEN 1 AND 5" in p["targets"][0]["rawSql"]
        for body in grafana.dashboards.values()
        for p in body["dashboard"]["panels"]
        if p["type"] != "row"
        and "pipeline" not in body["dashboard"]["uid"]
        and p["title"] != "Median time to acknowledge"
    )
    _push(grafana, "--variant", "operational", SAFEGUARD_GRAFANA__SUPPRESS_SMALL_NUMBERS="true")
    assert {d.uid for d in DASHBOARDS} <= set(grafana.dashboards)


def test_basic_auth_when_there_is_no_token(grafana: FakeGrafana) -> None:
    _push(
        grafana,
        SAFEGUARD_GRAFANA__API_TOKEN="",
        SAFEGUARD_GRAFANA__USERNAME="admin",
        SAFEGUARD_GRAFANA__PASSWORD="pw",
    )
    assert grafana.auth == {"Basic YWRtaW46cHc="}


def test_an_unreachable_grafana_is_a_clear_error() -> None:
    result = CliRunner().invoke(cli, ["dashboards", "push", "--url", "http://127.0.0.1:9"], env={})
    assert result.exit_code == 2
    assert "error: reading datasource safeguard-clickhouse failed" in result.output
