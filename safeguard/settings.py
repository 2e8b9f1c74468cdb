"""The one settings object. Read once at the edge (the CLI), passed down; nothing else reads the environment.

Every value comes from an environment variable `SAFEGUARD_<NAME>` (nested: `SAFEGUARD_KAFKA__BOOTSTRAP_SERVERS`)
or a `.env` file in the working directory. Secrets are `SecretStr` and never printed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.settings import GatewaySettings as GatewaySettings  # the gateway's section, owned by gateway
from schemas.errors import ConfigError
from schemas.limits import EventTimeWindow
from streams.settings import StreamsSettings as StreamsSettings  # the worker's section, owned by streams


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
    dead_letter_retention: str = Field(
        default="P90D",
        description="retention of the dead-letter topic (it holds the rejected bytes): days, ISO 8601 days or weeks "
        "(P90D, P13W), or forever; set at creation and aligned by `safeguard kafka topics`",
    )

    @field_validator("dead_letter_retention")
    @classmethod
    def _kafka_retention(cls, value: str) -> str:
        kafka_retention_ms(value)
        return value

    @property
    def dead_letter_retention_ms(self) -> int:
        """The dead-letter topic's `retention.ms` (-1: forever)."""
        return kafka_retention_ms(self.dead_letter_retention)


class LocalKafkaSettings(_Section):
    """The local single-node KRaft broker fetched from Maven Central."""

    version: str = "3.9.1"
    cache_dir: Path = Field(default_factory=lambda: Path.home() / ".cache" / "safeguard" / "kafka")
    state_dir: Path = Path(".safeguard/kafka")
    heap: str = "512m"
    start_timeout_s: float = Field(default=120.0, gt=0)
    secure: bool = Field(
        default=False,
        description="SASL/SCRAM-SHA-512 and ACLs: every client logs in as a principal of kafka_access and may do "
        "only what that principal may (the integration tests use it; off = PLAINTEXT, anyone may do anything)",
    )


_PRINCIPAL = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class KafkaAccessSettings(_Section):
    """The Kafka principals, one per service, and their SCRAM passwords: created with their ACLs (safeguard.kafka_acls)
    by `safeguard kafka start` when local_kafka.secure is on, and by `safeguard kafka acls` on any cluster.

    Each service logs in with its own pair through kafka.sasl_username / kafka.sasl_password; a principal without a
    password here is given its ACLs but no SCRAM credential (the cluster's own identity system then provides it)."""

    admin_user: str = Field(default="safeguard-admin", pattern=_PRINCIPAL, description="super user: topics, ACLs")
    admin_password: SecretStr | None = None
    gateway_user: str = Field(default="safeguard-gateway", pattern=_PRINCIPAL, description="writes event topics")
    gateway_password: SecretStr | None = None
    agency_user: str = Field(
        default="safeguard-agency", pattern=_PRINCIPAL, description="a direct agency producer: writes event topics"
    )
    agency_password: SecretStr | None = None
    worker_user: str = Field(
        default="safeguard-worker",
        pattern=_PRINCIPAL,
        description="reads event topics; writes alerts, dead letters and its <app_id>- internal topics",
    )
    worker_password: SecretStr | None = None
    sink_user: str = Field(default="safeguard-sink", pattern=_PRINCIPAL, description="reads every contract topic")
    sink_password: SecretStr | None = None
    notifier_user: str = Field(
        default="safeguard-notifier", pattern=_PRINCIPAL, description="reads alerts, writes alert lifecycle"
    )
    notifier_password: SecretStr | None = None


_RETENTION = re.compile(r"^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?$")


def retention_parts(value: str) -> tuple[int, int, int] | None:
    """(years, months, days) of a retention: ISO 8601 `P7Y`/`P18M`/`P90D`, or whole days `365`; None = forever.

    `forever` (or `0`) means no TTL. Raises ValueError for anything else (time parts make no sense for retention).
    """
    text = value.strip().upper()
    if text in {"FOREVER", "0", "P0D"}:
        return None
    if text.isdigit():
        return (0, 0, int(text))
    match = _RETENTION.fullmatch(text)
    if not match or text == "P":
        raise ValueError(
            f"{value!r} is not a retention: use whole days (365), an ISO 8601 duration (P7Y, P90D) or forever"
        )
    years, months, weeks, days = (int(g) if g else 0 for g in match.groups())
    parts = (years, months, weeks * 7 + days)
    return None if parts == (0, 0, 0) else parts


_DAY_MS = 24 * 3600 * 1000


def kafka_retention_ms(value: str) -> int:
    """A Kafka `retention.ms` from a retention in days or weeks (`90`, `P90D`, `P13W`), or -1 for forever.

    Years and months are refused: Kafka retention is an exact duration, and a year is not a fixed number of days."""
    parts = retention_parts(value)
    if parts is None:
        return -1
    years, months, days = parts
    if years or months:
        raise ValueError(f"{value!r}: a Kafka retention is exact, so give it in days or weeks (P90D, P13W) or forever")
    return days * _DAY_MS


class ClickHouseSettings(_Section):
    """Where the sink writes (the embedded chDB store by default) and how it batches and retains rows."""

    url: str = Field(
        default="chdb://.safeguard/clickhouse",
        description="chdb://<path> (embedded, one process per path) or http(s)://user@host:port/db for a server",
    )
    password: SecretStr | None = Field(default=None, description="server password (a password in the url moves here)")
    database: str = Field(default="safeguard", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    consumer_group: str = "safeguard-sink"
    session_timeout_ms: int = Field(
        default=10_000, ge=6000, description="how soon a crashed sink's partitions go to another (or its restart)"
    )
    instance_id: str | None = Field(
        default=None, description="static group membership: a restarted sink with the same id rejoins at once"
    )
    batch_rows: int = Field(default=20_000, ge=1, description="insert when this many messages are buffered ...")
    batch_seconds: float = Field(default=2.0, gt=0, description="... or when the oldest buffered message is this old")
    retry_initial_s: float = Field(default=0.5, gt=0, description="first back-off when the store is unavailable")
    retry_max_s: float = Field(default=30.0, gt=0, description="longest back-off between insert attempts")
    # Events and alerts are kept until the partnership sets its retention policy (e.g. P25Y): a TTL shorter
    # than the data's age deletes rows on insert, and the measures compare years.
    retention_events: str = Field(
        default="forever", description="agency event rows, by occurred_at: ISO 8601 (P25Y), days, or forever"
    )
    retention_alerts: str = Field(default="forever", description="alerts and their lifecycle")
    retention_dead_letters: str = Field(
        default="P90D", description="dead letters and data-quality findings (they hold the rejected bytes)"
    )
    connect_timeout_s: float = Field(default=10.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _password_out_of_url(cls, data: Any) -> Any:
        """Keep a password written into the url out of the url, so it is masked like any secret."""
        if isinstance(data, dict) and isinstance(data.get("url"), str):
            parts = urlsplit(data["url"])
            if parts.scheme in {"http", "https"} and parts.password is not None:
                host = parts.hostname or ""
                netloc = f"{parts.username}@{host}" if parts.username else host
                if parts.port is not None:
                    netloc += f":{parts.port}"
                data = {**data, "url": urlunsplit(parts._replace(netloc=netloc))}
                data.setdefault("password", unquote(parts.password))
        return data

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if not value.startswith(("chdb://", "http://", "https://")):
            raise ValueError("must start with chdb:// (embedded store) or http(s):// (a ClickHouse server)")
        return value

    @field_validator("retention_events", "retention_alerts", "retention_dead_letters")
    @classmethod
    def _retention(cls, value: str) -> str:
        retention_parts(value)
        return value


class GrafanaDatasourceSettings(_Section):
    """How Grafana reaches ClickHouse: the datasource `safeguard dashboards push` creates (plugin
    grafana-clickhouse-datasource). Seen from the Grafana server, so the host is often a service name."""

    name: str = "Safeguarding ClickHouse"
    host: str = "localhost"
    port: int = Field(default=8123, ge=1, le=65535)
    protocol: Literal["http", "native"] = "http"
    secure: bool = False
    username: str = Field(default="default", description="a read-only ClickHouse user for dashboards")
    password: SecretStr | None = None
    database: str | None = Field(default=None, description="unset = clickhouse.database")


class GrafanaSettings(_Section):
    """The Grafana that `safeguard dashboards push` updates, and who the dashboards and the report are for."""

    url: str = Field(default="http://localhost:3000", description="Grafana base url")
    api_token: SecretStr | None = Field(default=None, description="service-account token (preferred)")
    username: str | None = Field(default=None, description="basic auth, when there is no token")
    password: SecretStr | None = None
    folder: str = Field(default="Safeguarding", description="folder the dashboards are pushed into")
    timeout_s: float = Field(default=10.0, gt=0)
    suppress_small_numbers: bool = Field(
        default=False,
        description="show counts of 1-5 as 'c' (push the shared dashboards, suppress the report) for audiences "
        "beyond the operational team",
    )
    datasource: GrafanaDatasourceSettings = GrafanaDatasourceSettings()


class NotifyUser(_Section):
    """A manager who may log in to the acknowledgement page: a password hash and the team whose alerts they see."""

    password_hash: SecretStr = Field(description="from `safeguard notify hash-password` (scrypt)")
    team: str = Field(min_length=1, description="a team name of the rota")

    @field_validator("password_hash")
    @classmethod
    def _scrypt_hash(cls, value: SecretStr) -> SecretStr:
        parts = value.get_secret_value().split("$")
        if len(parts) != 6 or parts[0] != "scrypt":
            raise ValueError("must be a hash made by `safeguard notify hash-password`, not a password")
        return value


class NotifySettings(_Section):
    """The notifier (`safeguard notify run`): rota, channels, the acknowledgement page, grouping and escalation."""

    rota_file: Path = Field(default=Path("examples/rota.toml"), description="the rota (TOML or YAML)")
    channels: list[Literal["console", "email", "webhook"]] = Field(
        default=["console", "email", "webhook"], description="channels the notifier may use; contacts name theirs"
    )
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=1025, ge=1, le=65535)
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = "safeguarding-alerts@localhost"
    smtp_starttls: bool = False
    smtp_timeout_s: float = Field(default=10.0, gt=0)
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    base_url: str = Field(default="http://127.0.0.1:8470", description="where managers reach the acknowledgement page")
    bind_host: str = Field(default="127.0.0.1", description="address the page listens on")
    bind_port: int = Field(default=8470, ge=0, le=65535)
    link_secret: SecretStr | None = Field(
        default=None, description="HMAC key of message links (>= 32 chars); unset = one kept in data_dir"
    )
    link_ttl_s: float = Field(default=24 * 3600.0, gt=0, description="how long a message's link works")
    session_ttl_s: float = Field(default=8 * 3600.0, gt=0, description="a login lasts this long")
    escalate_after_s: float = Field(default=900.0, gt=0, description="high/critical unacknowledged this long escalate")
    renotify_after_s: float = Field(
        default=4 * 3600.0, ge=0, description="high/critical acknowledged, not resolved this long: remind (0 = never)"
    )
    group_wait_s: float = Field(default=0.5, ge=0, description="a group with a high/critical alert waits this long")
    group_window_s: float = Field(default=60.0, ge=0, description="a group of medium/info alerts waits this long")
    repeat_interval_s: float = Field(default=24 * 3600.0, ge=0, description="medium/info repeats not re-messaged")
    retry_initial_s: float = Field(default=1.0, gt=0)
    retry_max_s: float = Field(default=300.0, gt=0)
    send_concurrency: int = Field(default=8, ge=1, le=256)
    data_dir: Path = Path(".safeguard/notify")
    users: dict[str, NotifyUser] = Field(default_factory=dict, description="name -> {password_hash, team}")
    consumer_group: str = "safeguard-notify"
    # High availability (docs/notifier.md): several instances share one PostgreSQL store; unset = SQLite in data_dir.
    store_url: str | None = Field(
        default=None,
        description="shared store: postgresql://user@host:port/db (no password here); unset = SQLite in data_dir",
    )
    store_password: SecretStr | None = Field(default=None, description="the PostgreSQL user's password")
    instance_name: str = Field(default="", description="this instance's name in claims and logs (default host name)")
    claim_lease_s: float = Field(
        default=5.0, ge=1.0, description="a killed instance's deliveries and coordinator role are taken over after this"
    )
    session_timeout_ms: int = Field(
        default=6000, ge=6000, description="how soon a killed instance's alert partitions go to another instance"
    )

    @field_validator("store_url")
    @classmethod
    def _store_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("must be a postgresql:// URL (unset: SQLite in data_dir)")
        from urllib.parse import urlsplit

        if urlsplit(value).password is not None:
            raise ValueError("must not hold the password: set SAFEGUARD_NOTIFY__STORE_PASSWORD")
        return value

    @field_validator("link_secret")
    @classmethod
    def _long_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters (e.g. from `safeguard notify new-secret`)")
        return value


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
    kafka_access: KafkaAccessSettings = KafkaAccessSettings()
    streams: StreamsSettings = StreamsSettings()
    clickhouse: ClickHouseSettings = ClickHouseSettings()
    grafana: GrafanaSettings = GrafanaSettings()
    notify: NotifySettings = NotifySettings()
    gateway: GatewaySettings = GatewaySettings()
    event_time: EventTimeWindow = Field(
        default_factory=EventTimeWindow,
        description="the contract's event-time window, applied by publish, the worker and the sink alike",
    )
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
        """The effective settings as plain data with every secret masked (for `safeguard config show`): the
        `SecretStr` fields, and the password of any URL with one in it, in whatever setting it is."""
        masked: dict[str, Any] = _mask_url_passwords(self.model_dump(mode="json"))
        return masked


_MASK = "**********"
_URL_PASSWORD = re.compile(
    r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/?#@\s]*):(?P<password>\S*?)@(?=[^@/?#\s]*(?:[/?#\s]|$))"
)
"""`scheme://user:` then the password up to the `@` before the host (the last `@` before the path, so a password
with an unencoded `@`, `/` or `,` is masked whole), anywhere in a string (several URLs in one setting too)."""


def mask_url_passwords(text: str) -> str:
    """Every `scheme://user:password@host` in `text` with the password masked; anything else unchanged."""
    return _URL_PASSWORD.sub(lambda match: f"{match.group('head')}:{_MASK}@", text)


def _mask_url_passwords(value: Any) -> Any:
    """Walk dumped settings: every URL inside every string (lists and mappings included) loses its password."""
    if isinstance(value, dict):
        return {key: _mask_url_passwords(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_mask_url_passwords(item) for item in value]
    if isinstance(value, str) and "://" in value:
        return mask_url_passwords(value)
    return value


def load_settings(**overrides: Any) -> Settings:
    """Read the settings from the environment and `.env` once; a bad value becomes a ConfigError naming it."""
    from pydantic import ValidationError

    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for err in exc.errors(include_url=False):
            name = "SAFEGUARD_" + "__".join(str(p).upper() for p in err["loc"])
            lines.append(f"{name}: {err['msg']}")
        raise ConfigError("invalid settings:\n  " + "\n  ".join(lines)) from None
    placeholders = placeholder_secrets(settings)
    if placeholders:
        raise ConfigError(
            "invalid settings:\n  "
            + "\n  ".join(
                f"{name}: still the {PLACEHOLDER_PREFIX}... placeholder of .env.example" for name in placeholders
            )
            + "\nset a real secret (or unset it where it is optional)"
        )
    return settings


PLACEHOLDER_PREFIX = "change-me"
"""How every secret of .env.example starts: a secret that still does is refused (`load_settings`)."""


def placeholder_secrets(section: BaseModel, prefix: str = "SAFEGUARD_") -> list[str]:
    """The variables of every secret (a `SecretStr`, in any section) still set to a `change-me` placeholder."""
    found: list[str] = []
    for name, value in section:
        variable = f"{prefix}{name.upper()}"
        if isinstance(value, BaseModel):
            found += placeholder_secrets(value, f"{variable}__")
        elif isinstance(value, dict):  # e.g. notify.users: one variable holds them all
            if any(
                placeholder_secrets(item, f"{variable}__") for item in value.values() if isinstance(item, BaseModel)
            ):
                found.append(variable)
        elif isinstance(value, SecretStr) and value.get_secret_value().strip().lower().startswith(PLACEHOLDER_PREFIX):
            found.append(variable)
    return found
