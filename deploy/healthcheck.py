"""Container healthchecks for the application services (docker-compose.yml runs them; exit 0 = healthy).

    python /opt/safeguard/healthcheck.py worker        the Faust worker's web server answers on 127.0.0.1
    python /opt/safeguard/healthcheck.py sink          Kafka and the ClickHouse server the sink writes to answer
    python /opt/safeguard/healthcheck.py notify        the notifier's acknowledgement page answers /healthz
    python /opt/safeguard/healthcheck.py http URL      any HTTP endpoint answers 2xx (the notifier's ack page)

The addresses come from the same settings object the services use (`SAFEGUARD_*`), so a check never disagrees with
the service about where things are. Standard library plus the project's settings; no secrets are printed.
"""

from __future__ import annotations

import socket
import sys
import urllib.request
from collections.abc import Callable
from urllib.parse import urlsplit

from safeguard.settings import Settings, load_settings

TIMEOUT_S = 5.0


class Unhealthy(Exception):
    """What is wrong, in one line."""


def http_ok(url: str, expect: str | None = None) -> None:
    """GET `url`; healthy when it answers 2xx (and its body contains `expect`, when given)."""
    if urlsplit(url).scheme not in {"http", "https"}:
        raise Unhealthy(f"not an http(s) url: {url}")
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:  # noqa: S310 - scheme checked above
            body = response.read(4096).decode("utf-8", errors="replace")
            status = response.status
    except OSError as exc:
        raise Unhealthy(f"{url}: {exc}") from None
    if not 200 <= status < 300:
        raise Unhealthy(f"{url} answered {status}")
    if expect is not None and expect not in body:
        raise Unhealthy(f"{url} answered without {expect!r}")


def tcp_open(bootstrap: str) -> None:
    """Healthy when any of the comma-separated host:port addresses accepts a TCP connection."""
    errors = []
    for address in bootstrap.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=TIMEOUT_S):
                return
        except (OSError, ValueError) as exc:
            errors.append(f"{address}: {exc}")
    raise Unhealthy("Kafka does not answer: " + "; ".join(errors))


def check_worker(settings: Settings) -> None:
    port = settings.streams.web_port
    if port is None:
        raise Unhealthy("SAFEGUARD_STREAMS__WEB_PORT is not set, so the worker has no web server to ask")
    http_ok(f"http://127.0.0.1:{port}/", expect="OK")


def check_sink(settings: Settings) -> None:
    if not settings.kafka.bootstrap_servers:
        raise Unhealthy("SAFEGUARD_KAFKA__BOOTSTRAP_SERVERS is not set")
    tcp_open(settings.kafka.bootstrap_servers)
    url = urlsplit(settings.clickhouse.url)
    if url.scheme not in {"http", "https"}:
        raise Unhealthy(f"the sink in a container writes to a ClickHouse server, not {url.scheme}://")
    port = url.port or (8443 if url.scheme == "https" else 8123)
    http_ok(f"{url.scheme}://{url.hostname}:{port}/ping", expect="Ok")


def check_notify(settings: Settings) -> None:
    http_ok(f"http://127.0.0.1:{settings.notify.bind_port}/healthz", expect="true")


def main(argv: list[str]) -> int:
    checks: dict[str, Callable[[], None]] = {
        "worker": lambda: check_worker(load_settings()),
        "sink": lambda: check_sink(load_settings()),
        "notify": lambda: check_notify(load_settings()),
        "http": lambda: http_ok(argv[1]),
    }
    if not argv or argv[0] not in checks or (argv[0] == "http") != (len(argv) == 2):
        print("usage: healthcheck.py worker | sink | notify | http URL", file=sys.stderr)
        return 2
    try:
        checks[argv[0]]()
    except Unhealthy as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # a broken setting, say: unhealthy with the reason, never a traceback loop
        print(f"unhealthy: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
