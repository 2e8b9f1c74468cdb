"""A local broker with SASL/SCRAM-SHA-512 and ACLs (`local_kafka.secure`), and each service's login to it.

Import the fixture into a test module: `from tests.integration.secure_broker import secure_broker`. The passwords
are random per run; the admin's has a quote, a backslash and a non-ASCII letter, so the escaping of the broker's
JAAS lines is exercised by every run.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from safeguard.kafka_acls import SCRAM_MECHANISM
from safeguard.kafka_clients import client_options
from safeguard.kafka_local import BrokerState, LocalBroker, MissingToolError, ensure_jars
from safeguard.settings import KafkaAccessSettings, KafkaSettings, LocalKafkaSettings, Settings
from tests.tiers import unavailable

ROLES = ("gateway", "agency", "worker", "sink", "notifier")


@dataclass(frozen=True)
class SecureBroker:
    """The running broker, the settings it was started with, and how each service logs in."""

    broker: LocalBroker
    state: BrokerState
    settings: Settings

    @property
    def bootstrap(self) -> str:
        return self.state.bootstrap

    def user(self, role: str) -> str:
        return str(getattr(self.settings.kafka_access, f"{role}_user"))

    def password(self, role: str) -> str:
        secret = getattr(self.settings.kafka_access, f"{role}_password")
        assert isinstance(secret, SecretStr)
        return secret.get_secret_value()

    def kafka_settings(self, role: str, password: str | None = None) -> KafkaSettings:
        """The Kafka section a service of `role` runs with (its own principal), as an operator would set it."""
        return KafkaSettings(
            bootstrap_servers=self.bootstrap,
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism=SCRAM_MECHANISM,
            sasl_username=self.user(role),
            sasl_password=SecretStr(self.password(role) if password is None else password),
            client_id=f"test-{role}",
            request_timeout_ms=10_000,
        )

    def options(self, role: str, password: str | None = None) -> dict[str, Any]:
        """kafka-python options of a client of `role`, built by the code every service uses."""
        return client_options(self.kafka_settings(role, password), self.bootstrap)

    def env(self, role: str) -> dict[str, str]:
        """The environment variables a service process of `role` is started with."""
        return {
            "SAFEGUARD_KAFKA__BOOTSTRAP_SERVERS": self.bootstrap,
            "SAFEGUARD_KAFKA__SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "SAFEGUARD_KAFKA__SASL_MECHANISM": SCRAM_MECHANISM,
            "SAFEGUARD_KAFKA__SASL_USERNAME": self.user(role),
            "SAFEGUARD_KAFKA__SASL_PASSWORD": self.password(role),
        }

    def admin_options(self) -> dict[str, Any]:
        return self.broker.admin_options(self.state)

    def secrets(self) -> list[str]:
        access = self.settings.kafka_access
        assert access.admin_password is not None
        return [access.admin_password.get_secret_value(), *(self.password(role) for role in ROLES)]


def secure_settings(state_dir: Path, cache_dir: Path | None = None) -> Settings:
    """Settings of a secure local broker on `state_dir`, every principal with a random password."""
    local = LocalKafkaSettings(state_dir=state_dir, secure=True)
    if cache_dir is not None:
        local = local.model_copy(update={"cache_dir": cache_dir})
    passwords = {f"{role}_password": SecretStr(secrets.token_urlsafe(18)) for role in ROLES}
    admin = SecretStr(f'adm"in\\{secrets.token_urlsafe(12)}-é')
    access = KafkaAccessSettings(admin_password=admin, **passwords)
    # model_construct: the defaults for the rest, without reading the environment (a module-scoped fixture runs
    # before the per-test environment cleanup).
    return Settings.model_construct(local_kafka=local, kafka_access=access)


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    """A secure broker of the module's own with the contract topics, users and ACLs; stopped by its pid."""
    settings = secure_settings(tmp_path_factory.mktemp("kafka-secure"))
    try:
        ensure_jars(settings.local_kafka)
    except MissingToolError as exc:
        unavailable(str(exc))
    broker = LocalBroker.from_settings(settings)
    state = broker.start()
    try:
        yield SecureBroker(broker, state, settings)
    finally:
        broker.stop()
