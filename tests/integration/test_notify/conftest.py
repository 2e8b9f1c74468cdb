"""Real servers for the notifier's tests: an SMTP server (aiosmtpd) and an HTTP webhook endpoint, both started
by the test on free loopback ports and stopped at the end; a running NotifierService against the session broker."""

from __future__ import annotations

import email
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from notify.rota import Rota
from notify.service import NotifierService, Topics
from safeguard.kafka_clients import client_options
from safeguard.settings import KafkaSettings, NotifySettings, NotifyUser


class JumpClock:
    """Time that runs like the wall clock from a fixed start (so routing does not depend on when the test runs),
    and that the test can jump forward (escalation, link and session expiry)."""

    def __init__(self, start: datetime = datetime(2025, 6, 2, 10, 0, tzinfo=UTC)) -> None:  # Monday 11:00 BST
        self.offset = start - datetime.now(UTC)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], Any], timeout_s: float = 30.0, what: str = "condition") -> Any:
    """Poll until `condition()` is truthy (no timing assertion: a generous limit that only catches hangs)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class Mailbox:
    """What the SMTP server accepted."""

    messages: list[Message] = field(default_factory=list)
    recipients: list[list[str]] = field(default_factory=list)
    refuse: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def to(self, address: str) -> list[Message]:
        with self.lock:
            return [m for m, rcpt in zip(self.messages, self.recipients, strict=True) if address in rcpt]

    def count(self) -> int:
        with self.lock:
            return len(self.messages)


class _Handler:
    def __init__(self, box: Mailbox) -> None:
        self.box = box

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.box.refuse:
            return "451 try again later"
        message = email.message_from_bytes(envelope.content)
        with self.box.lock:
            self.box.messages.append(message)
            self.box.recipients.append(list(envelope.rcpt_tos))
        return "250 OK"


@dataclass
class SmtpServer:
    host: str
    port: int
    box: Mailbox


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    from aiosmtpd.controller import Controller

    box = Mailbox()
    port = free_port()
    controller = Controller(_Handler(box), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield SmtpServer("127.0.0.1", port, box)
    finally:
        controller.stop()


@dataclass
class WebhookEndpoint:
    url: str
    bodies: list[bytes] = field(default_factory=list)
    status: int = 200


@pytest.fixture
def webhook_endpoint() -> Iterator[WebhookEndpoint]:
    port = free_port()
    endpoint = WebhookEndpoint(f"http://127.0.0.1:{port}/hooks/team")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            if endpoint.status == 200:
                endpoint.bodies.append(body)
            self.send_response(endpoint.status)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield endpoint
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="session")
def password_hash() -> str:
    from notify.security import hash_password

    return hash_password(PASSWORD, n=2**12)


def notify_settings(tmp_path: Path, smtp: SmtpServer, password_hash: str, **extra: Any) -> NotifySettings:
    port = free_port()
    values: dict[str, Any] = {
        "smtp_host": smtp.host,
        "smtp_port": smtp.port,
        "base_url": f"http://127.0.0.1:{port}",
        "bind_port": port,
        "link_secret": "test-link-secret-" + "x" * 32,
        "data_dir": tmp_path / "notify",
        "users": {
            "dana": NotifyUser(password_hash=password_hash, team="front-door"),  # type: ignore[arg-type]
            "niall": NotifyUser(password_hash=password_hash, team="edt"),  # type: ignore[arg-type]
        },
        "consumer_group": f"notify-test-{uuid.uuid4().hex[:8]}",
        "retry_initial_s": 0.2,
        "retry_max_s": 1.0,
    }
    values.update(extra)
    return NotifySettings(**values)


def create_topics(bootstrap: str) -> Topics:
    from kafka.admin import KafkaAdminClient, NewTopic

    suffix = uuid.uuid4().hex[:8]
    topics = Topics(alerts=f"test.notify-alerts.{suffix}", lifecycle=f"test.notify-lifecycle.{suffix}")
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(topics.alerts, 3, 1), NewTopic(topics.lifecycle, 3, 1)])
        # Creation is asynchronous: a consumer that joins before the broker serves the new topic's metadata is
        # assigned nothing and finds the partitions only at its next metadata refresh (minutes later). Seen once in
        # CI as "No partition metadata for topic test.notify-alerts.…" and no email within 30 s.
        wait_for(
            lambda: all(
                len(described.get("partitions") or []) == 3
                and all(p.get("leader_id", -1) >= 0 for p in described["partitions"])
                for described in admin.describe_topics([topics.alerts, topics.lifecycle])
            ),
            what="the new topics' partitions to have leaders",
        )
    finally:
        admin.close()
    return topics


@dataclass
class RunningService:
    service: NotifierService
    thread: threading.Thread
    clock: JumpClock
    topics: Topics

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.service.port}"

    def stop(self) -> None:
        self.service.stop()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive(), "the notifier did not stop"
        assert self.service.error is None, self.service.error


def start_service(
    settings: NotifySettings, bootstrap: str, rota: Rota, topics: Topics, clock: JumpClock, **kwargs: Any
) -> RunningService:
    options = client_options(KafkaSettings(bootstrap_servers=bootstrap), bootstrap)
    service = NotifierService(settings, options, rota, clock=clock, topics=topics, **kwargs)
    thread = threading.Thread(target=service.run, name="notifier", daemon=True)
    thread.start()
    assert service.ready.wait(60), "the notifier did not start"
    assert service.error is None, service.error
    return RunningService(service, thread, clock, topics)


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One real PostgreSQL server for the session (tests/integration/postgres_server.py); a database per test."""
    from tests.integration.postgres_server import postgres_server

    with postgres_server() as server:
        yield server
