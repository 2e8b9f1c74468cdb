"""The project's error tree. Every error the project raises on purpose derives from SafeguardError.

    SafeguardError
     ├── ContractError                 a message breaks the event contract (schemas/)
     │    ├── DecodeError              not UTF-8 JSON, or not a JSON object
     │    └── InvalidEvent             a field breaks a rule; carries the list of issues
     ├── ConfigError                   settings or a rules file are wrong (safeguard/)
     ├── LocalKafkaError               the local broker cannot be fetched, started or stopped
     ├── PseudonymKeyMissing           no pseudonymisation key in the settings (producers/)
     ├── PublishError                  Kafka did not accept messages (producers/)
     └── StoreError                    ClickHouse / chDB cannot be opened, migrated or written (sinks/)

Other packages subclass these in their own modules; catching SafeguardError catches them all.
"""

from __future__ import annotations

from dataclasses import dataclass


class SafeguardError(Exception):
    """Root of every error the project raises on purpose."""


@dataclass(frozen=True)
class Issue:
    """One broken rule: where (a dotted field path, empty for the whole message) and what."""

    field: str
    rule: str
    code: str = "invalid"

    def __str__(self) -> str:
        return f"field `{self.field}`: {self.rule}" if self.field else self.rule


_REASON_PRIORITY = (
    "raw_identifier",
    "too_large",
    "too_deep",
    "too_many_items",
    "too_many_fields",
    "too_long",
    "in_the_future",
    "too_old",
    "unknown_event_type",
    "wrong_topic",
    "key_mismatch",
)
"""Issue codes that name a dead letter's reason when present, most useful first ("dead letters by reason")."""


class ContractError(SafeguardError):
    """A message breaks the event contract. `reason_code` is a short, stable category."""

    reason_code = "contract"

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        super().__init__("; ".join(str(i) for i in issues))
        codes = {i.code for i in issues}
        for code in _REASON_PRIORITY:
            if code in codes:
                self.reason_code = code
                break

    @property
    def reason(self) -> str:
        return str(self)


class DecodeError(ContractError):
    """The bytes are not a UTF-8 JSON object."""

    reason_code = "undecodable"


class InvalidEvent(ContractError):
    """The JSON object breaks one or more field rules of the contract."""

    reason_code = "invalid"


class ConfigError(SafeguardError):
    """Settings or a configuration file are wrong; the message says which value and why."""


class LocalKafkaError(SafeguardError):
    """The local Kafka broker could not be fetched, started, reached or stopped."""


class PseudonymKeyMissing(SafeguardError):
    """No pseudonymisation key is configured (SAFEGUARD_PSEUDONYM_KEY)."""


class PublishError(SafeguardError):
    """Kafka did not accept one or more messages."""


class StoreError(SafeguardError):
    """The ClickHouse store (embedded chDB or a server) cannot be opened, migrated or written."""
