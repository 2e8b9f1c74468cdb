"""Connection options for kafka-python clients, from the settings (plaintext locally; SASL/SCRAM and TLS deployed)."""

from __future__ import annotations

from typing import Any

from safeguard.settings import KafkaSettings


def client_options(kafka: KafkaSettings, bootstrap_servers: str) -> dict[str, Any]:
    """The keyword arguments every kafka-python client (producer, consumer, admin) needs to connect."""
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap_servers.split(","),
        "client_id": kafka.client_id,
        "security_protocol": kafka.security_protocol,
        "request_timeout_ms": kafka.request_timeout_ms,
    }
    if kafka.security_protocol.startswith("SASL"):
        options["sasl_mechanism"] = kafka.sasl_mechanism or "SCRAM-SHA-512"
        options["sasl_plain_username"] = kafka.sasl_username
        options["sasl_plain_password"] = kafka.sasl_password.get_secret_value() if kafka.sasl_password else None
    if kafka.security_protocol.endswith("SSL"):
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            value = getattr(kafka, name)
            if value is not None:
                options[name] = str(value)
    return options
