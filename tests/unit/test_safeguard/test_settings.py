import json

import pytest
from click.testing import CliRunner

from safeguard.cli import cli
from safeguard.kafka_clients import client_options
from safeguard.settings import KafkaSettings, Settings, load_settings, mask_url_passwords
from schemas.errors import ConfigError


def test_environment_is_read_with_prefix_and_nesting(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SAFEGUARD_KAFKA__BOOTSTRAP_SERVERS", "k1:9093,k2:9093")
    monkeypatch.setenv("SAFEGUARD_KAFKA__TOPIC_PARTITIONS", "12")
    settings = load_settings()
    assert settings.kafka.bootstrap_servers == "k1:9093,k2:9093"
    assert settings.kafka.topic_partitions == 12


def test_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SAFEGUARD_KAFKA__TOPIC_PARTITIONS", "lots")
    with pytest.raises(ConfigError, match="SAFEGUARD_KAFKA__TOPIC_PARTITIONS"):
        load_settings()


def test_secrets_are_masked_in_config_show(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SAFEGUARD_PSEUDONYM_KEY", "a-very-secret-partnership-key")
    monkeypatch.setenv("SAFEGUARD_KAFKA__SASL_PASSWORD", "kafka-password-123")
    result = CliRunner().invoke(cli, ["config", "show"])
    assert result.exit_code == 0, result.output
    assert "a-very-secret-partnership-key" not in result.output
    assert "kafka-password-123" not in result.output
    shown = json.loads(result.output)
    assert shown["pseudonym_key"] == "**********"


def test_url_passwords_are_masked_in_config_show(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SAFEGUARD_GRAFANA__URL", "http://admin:grafana-s3cret@grafana:3000")
    monkeypatch.setenv("SAFEGUARD_STREAMS__STORE_URL", "rocksdb://worker:rocks-s3cret@store/tables")
    monkeypatch.setenv("SAFEGUARD_NOTIFY__BASE_URL", "https://page:page%40s3cret@alerts.example:8470/ack")
    result = CliRunner().invoke(cli, ["config", "show"])
    assert result.exit_code == 0, result.output
    assert "s3cret" not in result.output
    shown = json.loads(result.output)
    assert shown["grafana"]["url"] == "http://admin:**********@grafana:3000"
    assert shown["streams"]["store_url"] == "rocksdb://worker:**********@store/tables"
    assert shown["notify"]["base_url"] == "https://page:**********@alerts.example:8470/ack"


def test_redacted_walks_every_value_and_leaves_the_settings_themselves_alone() -> None:
    settings = Settings(_env_file=None, grafana={"url": "http://admin:secret@grafana:3000"})
    assert settings.redacted()["grafana"]["url"] == "http://admin:**********@grafana:3000"
    assert settings.grafana.url == "http://admin:secret@grafana:3000", "only what is shown is masked"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("http://admin:secret@grafana:3000", "http://admin:**********@grafana:3000"),
        ("https://u:p%40ss@h/db?x=1", "https://u:**********@h/db?x=1"),
        ("redis://:pw@h:6379/0", "redis://:**********@h:6379/0"),
        ("http://a:p@ss@h/x", "http://a:**********@h/x"),  # an unencoded @ in the password
        ("http://u:pa/ss,w@h", "http://u:**********@h"),
        ("http://a:b@h1,http://c:d@h2", "http://a:**********@h1,http://c:**********@h2"),
        ("http://a:b@c:port/x", "http://a:**********@c:port/x"),  # urlsplit would refuse the port
        ("http://grafana:3000", "http://grafana:3000"),
        ("http://user@h/x", "http://user@h/x"),
        ("http://h/?next=a:b@c", "http://h/?next=a:b@c"),
        ("chdb://.safeguard/clickhouse", "chdb://.safeguard/clickhouse"),
    ],
)
def test_url_passwords_are_masked(text: str, shown: str) -> None:
    assert mask_url_passwords(text) == shown


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("SAFEGUARD_NOTIFY__SMTP_PASSWORD", "change-me-smtp", "SAFEGUARD_NOTIFY__SMTP_PASSWORD"),
        ("SAFEGUARD_KAFKA__SASL_PASSWORD", "Change-Me", "SAFEGUARD_KAFKA__SASL_PASSWORD"),
        ("SAFEGUARD_GRAFANA__DATASOURCE__PASSWORD", "change-me-analyst", "SAFEGUARD_GRAFANA__DATASOURCE__PASSWORD"),
        ("SAFEGUARD_NOTIFY__LINK_SECRET", "change-me-" + "x" * 30, "SAFEGUARD_NOTIFY__LINK_SECRET"),
        # a password written into the url moves to the password setting, and is refused there
        ("SAFEGUARD_CLICKHOUSE__URL", "https://sink:change-me-sink@ch:8443/db", "SAFEGUARD_CLICKHOUSE__PASSWORD"),
    ],
)
def test_a_secret_left_at_its_change_me_placeholder_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path, variable: str, value: str, named: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=f"{named}: still the change-me") as raised:
        load_settings()
    assert "change-me-" not in str(raised.value).replace("change-me...", ""), "the value is not repeated"


def test_real_secrets_and_change_me_in_settings_that_are_no_secret_are_accepted(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SAFEGUARD_NOTIFY__SMTP_PASSWORD", "a-real-one-7Qz")
    monkeypatch.setenv("SAFEGUARD_GRAFANA__FOLDER", "change-me-later")
    settings = load_settings()
    assert settings.grafana.folder == "change-me-later"


def test_a_placeholder_in_a_dot_env_file_is_refused_too(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("SAFEGUARD_PSEUDONYM_KEY=change-me-pseudonym-key\n")
    result = CliRunner().invoke(cli, ["config", "show"])
    assert result.exit_code == 2
    assert "SAFEGUARD_PSEUDONYM_KEY: still the change-me" in result.output
    assert "Traceback" not in result.output


def test_external_cluster_with_sasl_scram_and_tls_is_a_settings_change() -> None:
    kafka = KafkaSettings(
        bootstrap_servers="broker.partnership.example:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="safeguard-producer",
        sasl_password="s3cret",  # type: ignore[arg-type]
        ssl_cafile="/etc/ssl/partnership-ca.pem",  # type: ignore[arg-type]
    )
    options = client_options(kafka, kafka.bootstrap_servers or "")
    assert options["bootstrap_servers"] == ["broker.partnership.example:9093"]
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "safeguard-producer"
    assert options["sasl_plain_password"] == "s3cret"
    assert options["ssl_cafile"] == "/etc/ssl/partnership-ca.pem"
    plain = client_options(KafkaSettings(), "127.0.0.1:9092")
    assert "sasl_mechanism" not in plain and plain["security_protocol"] == "PLAINTEXT"


def test_settings_are_frozen() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    with pytest.raises(Exception, match="frozen"):
        settings.la_code = "856"  # type: ignore[misc]


def test_faust_is_told_everything_explicitly_and_reads_no_environment() -> None:
    from streams.app import faust_options

    options = faust_options(Settings(_env_file=None), "127.0.0.1:9092,127.0.0.1:9093")  # type: ignore[call-arg]
    assert options["env"] == {}
    assert options["broker"] == ["kafka://127.0.0.1:9092", "kafka://127.0.0.1:9093"]


def test_the_workers_producer_linger_comes_from_settings() -> None:
    import faust

    from streams.app import faust_options
    from streams.settings import StreamsSettings

    default = faust.App("t", **faust_options(Settings(_env_file=None), "127.0.0.1:9092"))  # type: ignore[call-arg]
    assert default.conf.producer_linger == 0.0, "alerts are sent at once by default"
    streams = StreamsSettings(producer_linger_s=0.01)
    lingering = faust.App("t", **faust_options(Settings(_env_file=None, streams=streams), "127.0.0.1:9092"))  # type: ignore[call-arg]
    assert lingering.conf.producer_linger == 0.01


def test_stray_faust_environment_does_not_override_the_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    import faust

    from streams.app import faust_options

    monkeypatch.setenv("BROKER_URL", "kafka://evil:1")
    monkeypatch.setenv("APP_DATADIR", "/tmp/evil")
    app = faust.App("t", **faust_options(Settings(_env_file=None), "127.0.0.1:9092"))  # type: ignore[call-arg]
    assert [str(u) for u in app.conf.broker] == ["kafka://127.0.0.1:9092"]
    assert "evil" not in str(app.conf.datadir)


@pytest.mark.parametrize(
    ("value", "ms"),
    [("P90D", 90 * 86_400_000), ("90", 90 * 86_400_000), ("P13W", 91 * 86_400_000), ("p1w2d", 9 * 86_400_000),
     ("forever", -1), ("0", -1)],
)  # fmt: skip
def test_dead_letter_retention_is_days_or_weeks_or_forever(value: str, ms: int) -> None:
    assert KafkaSettings(dead_letter_retention=value).dead_letter_retention_ms == ms


def test_dead_letter_retention_defaults_to_the_dead_letter_tables(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.kafka.dead_letter_retention == settings.clickhouse.retention_dead_letters == "P90D"
    assert settings.kafka.dead_letter_retention_ms == 90 * 86_400_000


@pytest.mark.parametrize("value", ["P1Y", "P18M", "PT12H", "a while", "-3"])
def test_a_dead_letter_retention_kafka_cannot_keep_exactly_names_the_variable(
    value: str, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SAFEGUARD_KAFKA__DEAD_LETTER_RETENTION", value)
    with pytest.raises(ConfigError, match="SAFEGUARD_KAFKA__DEAD_LETTER_RETENTION"):
        load_settings()
