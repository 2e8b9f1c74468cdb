"""The ACL catalogue and the secure local broker's configuration, without a broker (tests/integration/
test_kafka_acls.py proves them against a real one)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from safeguard.kafka_acls import acl_commands, grants, principals, table
from safeguard.kafka_local import BrokerSecurity, LocalBroker, render_server_properties
from safeguard.settings import KafkaAccessSettings, KafkaSettings, LocalKafkaSettings, Settings, load_settings
from schemas.errors import ConfigError, LocalKafkaError
from schemas.topics import ALERT_LIFECYCLE, ALERTS, DEAD_LETTER, EVENT_TOPICS, TOPICS

EVENTS = {spec.name for spec in EVENT_TOPICS}


def _settings(**access: str) -> Settings:
    return Settings.model_construct(kafka_access=KafkaAccessSettings(**{k: SecretStr(v) for k, v in access.items()}))


def _rights(settings: Settings, role: str) -> dict[tuple[str, str, str], set[str]]:
    out: dict[tuple[str, str, str], set[str]] = {}
    for grant in grants(settings):
        if grant.role == role:
            out.setdefault((grant.resource, grant.name, grant.pattern), set()).update(grant.operations)
    return out


def _topics_with(rights: dict[tuple[str, str, str], set[str]], operation: str) -> set[str]:
    return {name for (kind, name, _), ops in rights.items() if kind == "topic" and operation in ops}


@pytest.mark.parametrize("role", ["gateway", "agency"])
def test_producers_only_write_and_never_read(role: str) -> None:
    rights = _rights(_settings(), role)
    assert _topics_with(rights, "WRITE") >= EVENTS
    assert not _topics_with(rights, "WRITE") & {ALERTS.name, ALERT_LIFECYCLE.name, DEAD_LETTER.name}
    assert not _topics_with(rights, "READ"), "a producer reads nothing"
    assert not any(kind == "group" for kind, _, _ in rights), "a producer joins no group"
    assert all(pattern == "literal" for _, _, pattern in rights)


def test_the_sink_only_reads_every_topic_in_its_group() -> None:
    settings = _settings()
    rights = _rights(settings, "sink")
    assert _topics_with(rights, "READ") == {spec.name for spec in TOPICS}
    assert all(ops <= {"READ", "DESCRIBE"} for ops in rights.values()), "read only"
    assert {name for kind, name, _ in rights if kind == "group"} == {settings.clickhouse.consumer_group}


def test_the_worker_reads_events_writes_alerts_and_owns_only_its_prefix() -> None:
    settings = _settings()
    rights = _rights(settings, "worker")
    written = _topics_with(rights, "WRITE")
    assert _topics_with(rights, "READ") >= EVENTS
    assert {ALERTS.name, DEAD_LETTER.name} <= written
    assert not written & (EVENTS | {ALERT_LIFECYCLE.name}), "it never writes another service's topics"
    app_id = settings.streams.app_id
    assert rights[("topic", f"{app_id}-", "prefixed")] >= {"READ", "WRITE", "CREATE"}
    assert {(kind, name) for kind, name, _ in rights if kind == "group"} == {("group", app_id)}
    created = {name for (_, name, pattern), ops in rights.items() if "CREATE" in ops}
    assert created == {f"{app_id}-"}, "it creates topics only under its app id"


def test_the_notifier_reads_alerts_and_writes_the_lifecycle() -> None:
    settings = _settings()
    rights = _rights(settings, "notifier")
    assert _topics_with(rights, "READ") == {ALERTS.name}
    assert _topics_with(rights, "WRITE") == {ALERT_LIFECYCLE.name}
    assert {name for kind, name, _ in rights if kind == "group"} == {settings.notify.consumer_group}


def test_nobody_but_the_admin_gets_a_cluster_right_and_the_admin_is_not_in_the_catalogue() -> None:
    settings = _settings()
    assert {grant.resource for grant in grants(settings)} == {"topic", "group"}
    assert settings.kafka_access.admin_user not in {grant.principal for grant in grants(settings)}


def test_renamed_principals_and_groups_follow_the_settings() -> None:
    settings = Settings.model_construct(
        kafka_access=KafkaAccessSettings(worker_user="partnership-worker"),
        streams=Settings.model_fields["streams"].default.model_copy(update={"app_id": "leeds-streams"}),
    )
    worker = [g for g in grants(settings) if g.role == "worker"]
    assert {g.principal for g in worker} == {"partnership-worker"}
    assert ("topic", "leeds-streams-", "prefixed") in {(g.resource, g.name, g.pattern) for g in worker}


def test_acl_commands_and_the_table_cover_every_grant() -> None:
    settings = _settings()
    lines = acl_commands(settings)
    assert len(lines) == len(grants(settings)) == len(table(settings))
    prefixed = [line for line in lines if "--resource-pattern-type prefixed" in line]
    assert len(prefixed) == 1 and "--topic safeguard-streams-" in prefixed[0]
    assert all("--allow-principal User:safeguard-" in line for line in lines)
    assert any("--operation DescribeConfigs" in line for line in lines)


def test_principals_carry_their_passwords_masked() -> None:
    found = {p.role: p for p in principals(_settings(worker_password="w-secret-1").kafka_access)}
    assert set(found) == {"gateway", "agency", "worker", "sink", "notifier"}
    assert found["worker"].password is not None and "w-secret-1" not in repr(found["worker"])
    assert found["sink"].password is None


def test_a_principal_name_must_be_plain() -> None:
    with pytest.raises(ValueError):
        KafkaAccessSettings(worker_user='x" user_evil="y')


def test_placeholder_kafka_passwords_are_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SAFEGUARD_KAFKA_ACCESS__WORKER_PASSWORD", "change-me-kafka-worker")
    with pytest.raises(ConfigError, match="SAFEGUARD_KAFKA_ACCESS__WORKER_PASSWORD: still the change-me"):
        load_settings()


# ------------------------------------------------------------------------------------------- the secure broker


def _props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line)


def test_secure_server_properties_deny_by_default_with_the_admin_as_only_super_user(tmp_path: Path) -> None:
    security = BrokerSecurity("safeguard-admin", SecretStr("pw"))
    props = _props(
        render_server_properties(
            broker_port=1, controller_port=2, log_dir=tmp_path, num_partitions=6, security=security
        )
    )
    assert props["listeners"] == "SASL_PLAINTEXT://127.0.0.1:1,CONTROLLER://127.0.0.1:2"
    assert props["listener.security.protocol.map"] == "CONTROLLER:SASL_PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT"
    assert props["authorizer.class.name"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["super.users"] == "User:safeguard-admin"
    assert props["listener.name.controller.sasl.enabled.mechanisms"] == "PLAIN"
    assert "SCRAM-SHA-512" in props["listener.name.sasl_plaintext.sasl.enabled.mechanisms"]


def test_the_plaintext_broker_is_unchanged_without_security(tmp_path: Path) -> None:
    props = _props(render_server_properties(broker_port=1, controller_port=2, log_dir=tmp_path, num_partitions=6))
    assert props["listener.security.protocol.map"] == "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
    assert not any(key.startswith(("sasl.", "listener.name.", "authorizer", "super.")) for key in props)


def test_passwords_are_escaped_for_jaas_and_java_properties(tmp_path: Path) -> None:
    security = BrokerSecurity("safeguard-admin", SecretStr('a"b\\c-é'))
    text = render_server_properties(
        broker_port=1, controller_port=2, log_dir=tmp_path, num_partitions=6, security=security
    )
    jaas = _props(text)["listener.name.controller.plain.sasl.jaas.config"]
    # JAAS: \" and \\ inside the quotes; .properties: every backslash doubled again, é as \u00e9.
    assert 'password="a\\\\"b\\\\\\\\c-\\u00e9"' in jaas
    assert "é" not in text


def test_a_secure_local_broker_needs_an_admin_password(tmp_path: Path) -> None:
    local = LocalKafkaSettings(state_dir=tmp_path, secure=True)
    broker = LocalBroker(local, settings=Settings.model_construct(local_kafka=local))
    with pytest.raises(LocalKafkaError, match="SAFEGUARD_KAFKA_ACCESS__ADMIN_PASSWORD"):
        _ = broker.security


def test_the_worker_logs_in_with_the_kafka_section() -> None:
    """Faust gets SASL credentials with Kafka's mechanism name (SCRAM-SHA-512), as aiokafka expects."""
    from faust.types.auth import SASLMechanism

    from streams.app import faust_options

    kafka = KafkaSettings(
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="safeguard-worker",
        sasl_password=SecretStr("w-secret"),
    )
    credentials = faust_options(Settings.model_construct(kafka=kafka), "127.0.0.1:9092")["broker_credentials"]
    assert credentials.mechanism is SASLMechanism.SCRAM_SHA_512
    assert credentials.username == "safeguard-worker"
    assert "w-secret" not in repr(credentials)
