"""Serving the app with uvicorn: HTTP or HTTPS, optionally with client certificates (mTLS).

uvicorn verifies a client certificate against `tls_client_cafile` but does not tell the app whose it is, so
`PeerCertH11Protocol` puts the verified certificate's subject into the ASGI scope as the TLS extension's
`client_cert_subject` (RFC 4514 order as the certificate lists it), which the app maps to a principal.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from gateway.settings import GatewaySettings

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]


def subject_of(cert: dict[str, Any]) -> str | None:
    """`CN=x,O=y` from the subject of `ssl.SSLSocket.getpeercert()`."""
    parts = [f"{name}={value}" for rdn in cert.get("subject", ()) for name, value in rdn]
    short = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU", "countryName": "C"}
    text = [f"{short.get(p.split('=', 1)[0], p.split('=', 1)[0])}={p.split('=', 1)[1]}" for p in parts]
    return ",".join(text) or None


class PeerCertH11Protocol(H11Protocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is None:
            return
        inner: ASGIApp = self.app

        async def with_subject(scope: Scope, receive: Any, send: Any) -> None:
            # Read per request: the peer certificate is known once the handshake is complete, which with TLS 1.3
            # can be after the connection was made.
            cert = ssl_object.getpeercert()
            subject = subject_of(cert) if cert else None
            if subject:
                extensions = scope.setdefault("extensions", {})
                extensions["tls"] = {**extensions.get("tls", {}), "client_cert_subject": subject}
            await inner(scope, receive, send)

        self.app = with_subject


def uvicorn_config(app: Any, settings: GatewaySettings, *, log_level: str = "info") -> uvicorn.Config:
    options: dict[str, Any] = {}
    if settings.tls_certfile is not None:
        options["ssl_certfile"] = str(settings.tls_certfile)
        options["ssl_keyfile"] = str(settings.tls_keyfile) if settings.tls_keyfile else None
        if settings.tls_client_cafile is not None:
            options["ssl_ca_certs"] = str(settings.tls_client_cafile)
            options["ssl_cert_reqs"] = ssl.CERT_REQUIRED if settings.tls_client_cert_required else ssl.CERT_OPTIONAL
    return uvicorn.Config(
        app,
        host=settings.bind_host,
        port=settings.bind_port,
        http=PeerCertH11Protocol,
        access_log=False,  # the app logs every request itself, structured and without payloads
        log_level=log_level.lower(),
        timeout_keep_alive=5,
        timeout_graceful_shutdown=10,
        limit_concurrency=1000,
        **options,
    )
