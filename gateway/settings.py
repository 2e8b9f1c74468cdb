"""The gateway's section of the settings (`SAFEGUARD_GATEWAY__*`), owned here and composed by `safeguard.settings`.

Imports nothing of the project, so the composition root can import it without importing FastAPI.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class GatewaySettings(BaseModel):
    """The ingestion gateway (`safeguard gateway run`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bind_host: str = Field(default="127.0.0.1", description="address the gateway listens on")
    bind_port: int = Field(default=8480, ge=0, le=65535)
    principals_file: Path = Field(
        default=Path(".safeguard/gateway/principals.toml"),
        description="the agencies allowed to post: scope and hashed API keys (`safeguard gateway add-agency`); "
        "re-read when it changes, so a rotated or revoked key takes effect without a restart",
    )
    data_dir: Path = Field(default=Path(".safeguard/gateway"), description="the accepted-event index (SQLite)")
    dedupe_max_entries: int = Field(
        default=5_000_000,
        ge=1000,
        description="event ids remembered to answer `duplicate`; the oldest are forgotten past this many",
    )
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024, description="largest request body accepted")
    max_batch_events: int = Field(default=1000, ge=1, le=100_000, description="most events in one batch request")
    rate_events_per_s: float = Field(default=2000.0, gt=0, description="sustained events per second per principal")
    rate_burst_events: int = Field(
        default=5000, ge=1, description="events a principal may post at once above the rate (at least one batch)"
    )
    ack_timeout_s: float = Field(
        default=10.0, gt=0, description="how long a request waits for Kafka's acknowledgement before answering 503"
    )
    retry_after_s: int = Field(default=5, ge=1, description="the Retry-After of a 503 or 429")
    body_timeout_s: float = Field(default=30.0, gt=0, description="longest time a client may take to send its body")
    pseudonymise: bool = Field(
        default=False,
        description="offer the pseudonymising variant (`?pseudonymise=child_id,...`): the gateway hashes raw "
        "identifiers with the partnership key (SAFEGUARD_PSEUDONYM_KEY) before anything is validated or logged",
    )
    tls_certfile: Path | None = Field(default=None, description="serve HTTPS with this certificate (PEM)")
    tls_keyfile: Path | None = None
    tls_client_cafile: Path | None = Field(
        default=None,
        description="mTLS: client certificates signed by this CA may authenticate by their subject "
        "(a principal's `cert_subjects`)",
    )
    tls_client_cert_required: bool = Field(
        default=False, description="refuse TLS connections without a client certificate (API keys then come on top)"
    )
    trust_forwarded_for: bool = Field(
        default=False, description="log X-Forwarded-For as the client address (behind a trusted proxy only)"
    )
