"""deploy/healthcheck.py against real local servers on loopback: the checks compose runs inside the containers."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from deploy.healthcheck import Unhealthy, check_notify, check_sink, check_worker, http_ok, tcp_open
from safeguard.settings import ClickHouseSettings, KafkaSettings, NotifySettings, Settings, StreamsSettings
from tests.unit.test_deploy.deploy_files import ROOT


class _Handler(BaseHTTPRequestHandler):
    routes: dict[str, tuple[int, str]] = {}

    def do_GET(self) -> None:
        status, body = self.routes.get(self.path, (404, "not found"))
        self.send_response(status)
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[int, dict[str, tuple[int, str]]]]:
    """An HTTP server on a free loopback port; tests fill in its routes."""
    routes: dict[str, tuple[int, str]] = {}
    handler = type("Handler", (_Handler,), {"routes": routes})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1], routes
    finally:
        httpd.shutdown()
        httpd.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_worker_is_healthy_when_faust_web_answers(server: tuple[int, dict[str, tuple[int, str]]]) -> None:
    port, routes = server
    routes["/"] = (200, '{"status": "OK"}')  # what Faust's production index answers
    check_worker(Settings(_env_file=None, streams=StreamsSettings(web_port=port)))


def test_worker_without_a_web_port_or_a_server_is_unhealthy() -> None:
    with pytest.raises(Unhealthy, match="WEB_PORT"):
        check_worker(Settings(_env_file=None))
    with pytest.raises(Unhealthy, match=r"127\.0\.0\.1"):
        check_worker(Settings(_env_file=None, streams=StreamsSettings(web_port=_closed_port())))


def test_notify_is_healthy_when_its_page_answers_healthz(server: tuple[int, dict[str, tuple[int, str]]]) -> None:
    port, routes = server
    settings = Settings(_env_file=None, notify=NotifySettings(bind_host="0.0.0.0", bind_port=port))
    with pytest.raises(Unhealthy, match="404"):
        check_notify(settings)
    routes["/healthz"] = (200, '{"ok": true}')  # what notify/web.py answers
    check_notify(settings)


def test_sink_needs_kafka_and_the_clickhouse_server(server: tuple[int, dict[str, tuple[int, str]]]) -> None:
    port, routes = server
    routes["/ping"] = (200, "Ok.\n")
    with socket.socket() as kafka:
        kafka.bind(("127.0.0.1", 0))
        kafka.listen()
        bootstrap = f"127.0.0.1:{_closed_port()},127.0.0.1:{kafka.getsockname()[1]}"  # one of them answers: enough
        settings = Settings(
            _env_file=None,
            kafka=KafkaSettings(bootstrap_servers=bootstrap),
            clickhouse=ClickHouseSettings(url=f"http://safeguard_sink@127.0.0.1:{port}/safeguard"),
        )
        check_sink(settings)
        routes["/ping"] = (503, "starting")
        with pytest.raises(Unhealthy, match="503"):
            check_sink(settings)


def test_sink_reports_what_is_down() -> None:
    dead = f"127.0.0.1:{_closed_port()}"
    with pytest.raises(Unhealthy, match="Kafka does not answer"):
        tcp_open(dead)
    with pytest.raises(Unhealthy, match="BOOTSTRAP_SERVERS"):
        check_sink(Settings(_env_file=None))
    with socket.socket() as kafka:
        kafka.bind(("127.0.0.1", 0))
        kafka.listen()
        chdb = Settings(_env_file=None, kafka=KafkaSettings(bootstrap_servers=f"127.0.0.1:{kafka.getsockname()[1]}"))
        with pytest.raises(Unhealthy, match="ClickHouse server"):
            check_sink(chdb)


def test_http_check_wants_2xx_and_the_expected_body(server: tuple[int, dict[str, tuple[int, str]]]) -> None:
    port, routes = server
    routes["/health"] = (200, "fine")
    http_ok(f"http://127.0.0.1:{port}/health")
    with pytest.raises(Unhealthy):
        http_ok(f"http://127.0.0.1:{port}/health", expect="OK")
    with pytest.raises(Unhealthy):
        http_ok(f"http://127.0.0.1:{port}/missing")
    with pytest.raises(Unhealthy, match="not an http"):
        http_ok("file:///etc/passwd")


def test_the_command_line_exit_codes(server: tuple[int, dict[str, tuple[int, str]]], tmp_path: Path) -> None:
    port, routes = server
    routes["/"] = (200, "ok")
    script = ROOT / "deploy" / "healthcheck.py"
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(script), *args], env=env, cwd=tmp_path, capture_output=True, text=True
        )

    assert run("http", f"http://127.0.0.1:{port}/").returncode == 0
    failed = run("http", f"http://127.0.0.1:{_closed_port()}/")
    assert failed.returncode == 1 and failed.stderr.startswith("unhealthy:")
    assert run("worker").returncode == 1  # no SAFEGUARD_STREAMS__WEB_PORT in this environment
    assert run("nonsense").returncode == 2
    env["SAFEGUARD_STREAMS__WEB_PORT"] = str(port)
    assert run("worker").returncode == 1  # the body must say OK
    routes["/"] = (200, '{"status": "OK"}')
    assert run("worker").returncode == 0
