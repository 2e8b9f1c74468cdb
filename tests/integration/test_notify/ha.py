"""Two (or more) notifier instances in processes of their own on one PostgreSQL store, the session's Kafka broker and
the test SMTP server: start, SIGKILL, restart by pid (test_ha_kill.py and bench/notify_failover.py)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path
from typing import Any

import httpx

from notify.service import Topics
from tests.unit.test_notify.helpers import ROTA_TOML

ROOT = Path(__file__).resolve().parents[3]
START = datetime(2025, 6, 2, 10, 0, tzinfo=UTC)  # a Monday, 11:00 in London: the front-door day shift
LINK_SECRET = "ha-test-link-secret-" + "y" * 32
ALERT_ID = re.compile(r"alert id: ([0-9a-f]{32})")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Instance:
    name: str
    port: int
    config: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> float:
        """SIGKILL, by pid; returns the moment (time.monotonic) it was sent."""
        assert self.process is not None
        at = time.monotonic()
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        return at

    def stop(self) -> None:
        if self.alive:
            assert self.process is not None
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)


@dataclass
class Cluster:
    """The instances' common settings; `start(name)` runs one more (or again)."""

    bootstrap: str
    store_url: str | None  # None: each instance on its own SQLite file (the single-instance default)
    store_password: str | None
    smtp_host: str
    smtp_port: int
    password_hash: str
    workdir: Path
    topics: Topics
    extra: dict[str, Any] = field(default_factory=dict)
    rota_text: str = ROTA_TOML
    instances: dict[str, Instance] = field(default_factory=dict)
    group: str = field(default_factory=lambda: f"notify-ha-{uuid.uuid4().hex[:8]}")

    def __post_init__(self) -> None:
        self.rota = self.workdir / "rota.toml"
        self.rota.write_text(self.rota_text, encoding="utf-8")
        self.offset_s = (START - datetime.now(UTC)).total_seconds()

    def start(self, name: str) -> Instance:
        port = free_port()
        settings = {
            "store_url": self.store_url,
            "store_password": self.store_password,
            "instance_name": name,
            "link_secret": LINK_SECRET,
            "smtp_host": self.smtp_host,
            "smtp_port": self.smtp_port,
            "channels": ["email", "console", "webhook"],
            "base_url": f"http://127.0.0.1:{port}",
            "bind_port": port,
            "data_dir": str(self.workdir / name),
            "users": {"dana": {"password_hash": self.password_hash, "team": "front-door"}},
            "consumer_group": self.group,
            "group_wait_s": 0.2,
            "retry_initial_s": 0.2,
            "retry_max_s": 1.0,
            "escalate_after_s": 3600.0,
            "renotify_after_s": 0,
            "claim_lease_s": 3.0,
            "session_timeout_ms": 6000,
            **self.extra,
        }
        config = self.workdir / f"{name}.json"
        config.write_text(json.dumps({
            "settings": settings, "bootstrap": self.bootstrap, "rota": str(self.rota),
            "topics": {"alerts": self.topics.alerts, "lifecycle": self.topics.lifecycle},
            "clock_offset_s": self.offset_s,
        }), encoding="utf-8")  # fmt: skip
        log = self.workdir / f"{name}.log"
        instance = Instance(name, port, config, log)
        with open(log, "ab") as out:
            instance.process = subprocess.Popen(
                [sys.executable, "-m", "tests.integration.test_notify.ha_instance", str(config)],
                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        self.instances[name] = instance
        self.wait_ready(instance)
        return instance

    def wait_ready(self, instance: Instance, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not instance.alive:
                raise AssertionError(f"{instance.name} exited: {instance.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{instance.base}/login", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"{instance.name} did not start: {instance.log.read_text()[-3000:]}")

    def stop_all(self) -> None:
        for instance in self.instances.values():
            instance.stop()


def delivered(messages: list[Message]) -> Counter[str]:
    """How many messages named each alert id."""
    seen: Counter[str] = Counter()
    for message in messages:
        body = message.get_payload(decode=True)
        text = body.decode() if isinstance(body, bytes) else str(message.get_payload())
        seen.update(set(ALERT_ID.findall(text)))
    return seen


def links(messages: list[Message]) -> list[str]:
    out: list[str] = []
    for message in messages:
        body = message.get_payload(decode=True)
        text = body.decode() if isinstance(body, bytes) else str(message.get_payload())
        out += re.findall(r"http://127\.0\.0\.1:\d+(/l/[A-Za-z0-9_.\-]+)", text)
    return out


def login(client: httpx.Client, base: str, password: str) -> str:
    """Log in as dana; returns the session cookie's value."""
    form = client.get(f"{base}/login").text
    csrf = re.search(r'name="csrf" value="([^"]*)"', form)
    assert csrf
    response = client.post(
        f"{base}/login", data={"csrf": csrf.group(1), "next": "/alerts", "username": "dana", "password": password}
    )
    assert response.status_code in (200, 303), response.text[:500]
    token = client.cookies.get("sg_session")
    assert token, "no session cookie"
    return str(token)
