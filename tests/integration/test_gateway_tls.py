"""mTLS: the gateway served by uvicorn over TLS; a client certificate signed by the configured CA authenticates as
the principal listing its subject, and no certificate (nor an unlisted one) gets in. Certificates are made here
with the openssl command line. Kafka is a fake producer: this test is about the HTTPS edge."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from gateway.app import Gateway, create_app
from gateway.dedupe import AcceptedIndex
from gateway.kafka import GatewayPublisher
from gateway.principals import Principals
from gateway.server import uvicorn_config
from gateway.settings import GatewaySettings
from tests.tiers import unavailable
from tests.unit.test_gateway.helpers import NOW, FakeProducer, missing_reported, principal

pytestmark = pytest.mark.integration


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _certificates(d: Path) -> None:
    """A CA; a server certificate for 127.0.0.1; client certificates `records` (listed) and `stranger` (not)."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=partnership-ca", cwd=d)  # fmt: skip
    (d / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    for name, subject, extra in (
        ("server", "/CN=127.0.0.1", ["-extfile", "san.cnf"]),
        ("records", "/CN=records.wyp.example/O=WYP", []),
        ("stranger", "/CN=someone.example", []),
    ):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", subject, cwd=d)  # fmt: skip
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.pem", "-days", "2", *extra, cwd=d)  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def tls_gateway(tmp_path: Path) -> Iterator[tuple[str, Path, FakeProducer]]:
    if shutil.which("openssl") is None:
        unavailable("the openssl command is not installed")
    _certificates(tmp_path)
    wyp, _ = principal("wyp", cert_subjects=("CN=records.wyp.example, O=WYP",))
    settings = GatewaySettings(
        bind_port=_free_port(),
        tls_certfile=tmp_path / "server.pem",
        tls_keyfile=tmp_path / "server.key",
        tls_client_cafile=tmp_path / "ca.pem",
    )
    producer = FakeProducer()
    gw = Gateway(
        settings=settings,
        principals=lambda: Principals([wyp]),
        publisher=GatewayPublisher(producer),
        index=AcceptedIndex(tmp_path / "accepted.sqlite", max_entries=1000),
        clock=lambda: NOW,
    )
    server = uvicorn.Server(uvicorn_config(create_app(gw), settings, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield f"https://127.0.0.1:{settings.bind_port}", tmp_path, producer
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def test_a_listed_client_certificate_authenticates_and_others_do_not(
    tls_gateway: tuple[str, Path, FakeProducer],
) -> None:
    url, certs, producer = tls_gateway
    ca = str(certs / "ca.pem")

    def post(cert: str | None) -> httpx.Response:
        context = ssl.create_default_context(cafile=ca)
        if cert:
            context.load_cert_chain(certs / f"{cert}.pem", certs / f"{cert}.key")
        with httpx.Client(verify=context, timeout=10) as client:
            return client.post(f"{url}/v1/events", json=missing_reported())

    accepted = post("records")
    assert accepted.status_code == 201, accepted.text
    assert producer.sent[0]["headers"] == [("safeguard-principal", b"wyp")]
    stranger = post("stranger")
    assert stranger.status_code == 401
    assert stranger.json()["reason"] == "the client certificate belongs to no principal"
    nobody = post(None)
    assert nobody.status_code == 401
    assert "no credentials" in nobody.json()["reason"]
    assert len(producer.sent) == 1
