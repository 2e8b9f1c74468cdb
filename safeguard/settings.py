"""The one settings object. Read once at the edge (the CLI), passed down; nothing else reads the environment.

Every value comes from an environment variable `SAFEGUARD_<NAME>` (nested: `SAFEGUARD_KAFKA__BOOTSTRAP_SERVERS`)
or a `.env` file in the working directory. Secrets are `SecretStr` and never printed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.errors import ConfigError


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KafkaSettings(_Section):
    """Which Kafka to use. No bootstrap servers means the local broker (`safeguard kafka start`)."""

    bootstrap_servers: str | None = Field(
        default=None, description="host:port[,host:port]; unset = the local broker started by `safeguard kafka start`"
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    client_id: str = "safeguard"
    topic_partitions: int = Field(default=6, ge=1, le=1000, description="partitions of each contract topic at creation")
    replication_factor: int = Field(default=1, ge=1)
    request_timeout_ms: int = Field(default=30_000, ge=1000)


class LocalKafkaSettings(_Section):
    """The local single-node KRaft broker fetched from Maven Central."""

    version: str = "3.9.1"
    cache_dir: Path = Field(default_factory=lambda: Path.home() / ".cache" / "safeguard" / "kafka")
    state_dir: Path = Path(".safeguard/kafka")
    heap: str = "512m"
    start_timeout_s: float = Field(default=120.0, gt=0)


class StreamsSettings(_Section):
    """The Faust worker."""

    app_id: str = "safeguard-streams"
    store_url: str = Field(default="memory://", description="table store; state is recovered from changelog topics")
    data_dir: Path = Path(".safeguard/streams")
    rules_file: Path | None = Field(default=None, description="the partnership's rule overrides (TOML or YAML)")
    web_port: int | None = Field(default=None, description="Faust web port; unset = no web server")
    batch_size: int = Field(default=1000, ge=1, description="records applied per batch before acks and state writes")
    batch_within_s: float = Field(default=0.05, gt=0, description="longest wait to fill a batch, in seconds")


class Settings(BaseSettings):
    """Everything configurable. Build it with `load_settings()` at the edge and pass it (or a section) down."""

    model_config = SettingsConfigDict(
        env_prefix="SAFEGUARD_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
        frozen=True,
    )

    kafka: KafkaSettings = KafkaSettings()
    local_kafka: LocalKafkaSettings = LocalKafkaSettings()
    streams: StreamsSettings = StreamsSettings()
    pseudonym_key: SecretStr | None = Field(
        default=None, description="key of the keyed HMAC-SHA256 that turns source identifiers into pseudonyms"
    )
    la_code: str = Field(default="383", description="DfE code of the partnership's local authority")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("la_code")
    @classmethod
    def _three_digits(cls, value: str) -> str:
        if len(value) != 3 or not value.isdigit():
            raise ValueError("must be the three-digit DfE local authority code, e.g. 383 for Leeds")
        return value

    def redacted(self) -> dict[str, Any]:
        """The effective settings as plain data with every secret masked (for `safeguard config show`)."""
        return self.model_dump(mode="json")


def load_settings(**overrides: Any) -> Settings:
    """Read the settings from the environment and `.env` once; a bad value becomes a ConfigError naming it."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for err in exc.errors(include_url=False):
            name = "SAFEGUARD_" + "__".join(str(p).upper() for p in err["loc"])
            lines.append(f"{name}: {err['msg']}")
        raise ConfigError("invalid settings:\n  " + "\n  ".join(lines)) from None
