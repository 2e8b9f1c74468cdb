"""The local-broker machinery without a broker: rendering, ids, tool checks, state files and stopping by pid."""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from safeguard.kafka_cli import kafka
from safeguard.kafka_local import (
    JAVA_MISSING,
    MVN_MISSING,
    STATE_FILE,
    BrokerState,
    LocalBroker,
    MissingToolError,
    check_version,
    choose_ports,
    ensure_jars,
    free_ports,
    heap_options,
    is_cluster_id,
    is_our_broker,
    log_excerpt,
    new_cluster_id,
    parse_java_major,
    port_is_free,
    render_log4j_properties,
    render_pom,
    render_server_properties,
    require_java,
    resolve_bootstrap,
    retention_text,
)
from safeguard.settings import KafkaSettings, LocalKafkaSettings, Settings
from schemas.errors import LocalKafkaError

# ------------------------------------------------------------------------------------------------ rendering


def _props(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return {key: value for key, value in pairs}


def test_server_properties_are_single_node_kraft_on_loopback(tmp_path: Path) -> None:
    text = render_server_properties(
        broker_port=19092, controller_port=19093, log_dir=tmp_path / "data", num_partitions=6
    )
    props = _props(text)
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == f"{props['node.id']}@127.0.0.1:19093"
    assert "controller.quorum.bootstrap.servers" not in props  # static quorum: format without --standalone
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["controller.listener.names"] == "CONTROLLER"
    assert props["log.dirs"] == str(tmp_path / "data")
    assert props["num.partitions"] == "6"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["auto.create.topics.enable"] == "false"
    for key in (
        "default.replication.factor",
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
    ):
        assert props[key] == "1", key
    assert "0.0.0.0" not in text
    assert "localhost" not in text


def test_server_properties_follow_the_partition_setting(tmp_path: Path) -> None:
    text = render_server_properties(broker_port=1, controller_port=2, log_dir=tmp_path, num_partitions=12)
    assert _props(text)["num.partitions"] == "12"


def test_log4j_properties_log_to_the_console_quietly() -> None:
    props = _props(render_log4j_properties())
    assert props["log4j.rootLogger"].startswith("WARN")
    assert props["log4j.appender.stdout"] == "org.apache.log4j.ConsoleAppender"
    assert props["log4j.logger.kafka.server.KafkaRaftServer"] == "INFO"


def test_pom_pins_the_broker_and_adds_the_logging_backend() -> None:
    pom = render_pom("3.9.1")
    assert "<artifactId>kafka_2.13</artifactId><version>3.9.1</version>" in pom
    assert "<artifactId>slf4j-reload4j</artifactId><version>1.7.36</version>" in pom
    assert "<artifactId>reload4j</artifactId><version>1.2.25</version>" in pom


# ------------------------------------------------------------------------------------------------ ids and parsing


def test_cluster_ids_have_kafkas_format() -> None:
    for _ in range(200):
        cluster_id = new_cluster_id()
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", cluster_id)
        assert not cluster_id.startswith("-")
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16
        assert is_cluster_id(cluster_id)


def test_cluster_id_rerolls_a_leading_dash_and_reserved_uuids() -> None:
    draws = iter([b"\xf8" + bytes(15), bytes(16), bytes(15) + b"\x01", b"\x01" * 16])
    cluster_id = new_cluster_id(lambda n: next(draws))
    assert cluster_id == base64.urlsafe_b64encode(b"\x01" * 16).decode().rstrip("=")


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("4L6g3nShT-eMCtK--X86sw", True),  # the apache/kafka compose example
        ("-L6g3nShT-eMCtK--X86sw", False),
        ("AAAAAAAAAAAAAAAAAAAAAA", False),  # the reserved zero UUID
        ("4L6g3nShT-eMCtK--X86s", False),
        ("4L6g3nShT+eMCtK--X86sw", False),
    ],
)
def test_is_cluster_id(text: str, valid: bool) -> None:
    assert is_cluster_id(text) is valid


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15\nOpenJDK Runtime Environment', 17),
        ('openjdk version "21" 2023-09-19', 21),
        ('java version "1.8.0_292"', 8),
        ('openjdk version "11.0.2" 2019-01-15', 11),
        ("no version here", None),
    ],
)
def test_parse_java_major(output: str, major: int | None) -> None:
    assert parse_java_major(output) == major


def test_heap_options() -> None:
    assert heap_options("512m") == ["-Xms256m", "-Xmx512m"]
    assert heap_options("1g") == ["-Xms256m", "-Xmx1g"]
    assert heap_options("200m") == ["-Xms200m", "-Xmx200m"]
    with pytest.raises(LocalKafkaError, match="bad local broker heap"):
        heap_options("lots")
    with pytest.raises(LocalKafkaError, match="too small"):
        heap_options("64m")


def test_only_3x_versions_are_supported() -> None:
    check_version("3.9.1")
    with pytest.raises(LocalKafkaError, match="not supported"):
        check_version("4.0.0")


def test_log_excerpt_keeps_the_cause_and_drops_stack_frames(tmp_path: Path) -> None:
    log = tmp_path / "broker.log"
    log.write_text(
        "[2026-01-01 00:00:00,000] ERROR Exiting Kafka due to fatal exception during startup. (kafka.Kafka$)\n"
        "java.lang.RuntimeException: Unable to start acceptor\n"
        + "\tat kafka.network.Acceptor.start(SocketServer.scala:627)\n"
        * 50
        + "\t... 16 more\n"
        "Caused by: java.net.BindException: Address already in use\n",
        encoding="utf-8",
    )
    excerpt = log_excerpt(log, lines=5)
    assert "Exiting Kafka" in excerpt
    assert "Address already in use" in excerpt
    assert "SocketServer.scala" not in excerpt
    assert "more" not in excerpt
    assert log_excerpt(tmp_path / "missing.log") == "    (no broker log)"


def test_free_ports_are_distinct_and_bindable() -> None:
    import socket

    ports = free_ports(2)
    assert len(set(ports)) == 2
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_a_first_start_takes_new_free_ports() -> None:
    assert choose_ports(None, is_free=lambda port: True, pick=lambda n: (40001, 40002)[:n]) == ((40001, 40002), [])


def test_a_restart_reuses_the_previous_ports_when_they_are_free() -> None:
    def pick(n: int) -> tuple[int, ...]:
        raise AssertionError("no new port is needed")

    assert choose_ports((40001, 40002), is_free=lambda port: True, pick=pick) == ((40001, 40002), [])


def test_only_a_taken_port_is_replaced() -> None:
    fresh = (40002, 40009, 40010)  # the kernel may offer the still-free controller port again: not picked twice
    assert choose_ports((40001, 40002), is_free=lambda p: p != 40001, pick=lambda n: fresh[:n]) == (
        (40009, 40002),
        [40001],
    )
    assert choose_ports((40001, 40002), is_free=lambda p: p != 40002, pick=lambda n: (40001, 40011)[:n]) == (
        (40001, 40011),
        [40002],
    )
    assert choose_ports((40001, 40002), is_free=lambda p: False, pick=lambda n: (40020, 40021)[:n]) == (
        (40020, 40021),
        [40001, 40002],
    )


def test_a_listening_port_is_taken_and_a_closed_one_is_free() -> None:
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = int(listener.getsockname()[1])
        assert not port_is_free(port)
    assert port_is_free(port)


def test_previous_ports_come_from_the_state_dir(local: LocalKafkaSettings) -> None:
    broker = LocalBroker(local)
    assert broker.previous_ports() is None
    broker.state_dir.mkdir(parents=True)
    broker.ports_file.write_text('{"broker_port": 40001, "controller_port": 40002}\n', encoding="utf-8")
    assert broker.previous_ports() == (40001, 40002)
    for bad in ("not json", '{"broker_port": 40001}', '{"broker_port": 5, "controller_port": 5}'):
        broker.ports_file.write_text(bad, encoding="utf-8")
        assert broker.previous_ports() is None


def test_a_taken_previous_port_is_said_clearly(local: LocalKafkaSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    import safeguard.kafka_local as kafka_local

    broker = LocalBroker(local)
    broker.state_dir.mkdir(parents=True)
    broker.ports_file.write_text('{"broker_port": 40001, "controller_port": 40002}\n', encoding="utf-8")
    monkeypatch.setattr(kafka_local, "port_is_free", lambda port: port != 40001)
    monkeypatch.setattr(kafka_local, "free_ports", lambda n=2: (40005, 40006)[:n])
    said: list[str] = []
    assert broker._choose_ports(said.append) == (40005, 40002)
    assert said == [
        "port 40001 of the previous start is taken by another process; the local broker now listens on "
        "127.0.0.1:40005 (controller port 40002): restart anything still configured with 127.0.0.1:40001"
    ]


@pytest.mark.parametrize(
    ("ms", "text"),
    [(-1, "forever"), (None, "?"), (86_400_000, "1 day"), (90 * 86_400_000, "90 days"), (3_600_000, "3600000 ms")],
)
def test_retention_is_shown_in_days(ms: int | None, text: str) -> None:
    assert retention_text(ms) == text


class _RefusingAdmin:
    """An admin client whose cluster refuses config changes (no AlterConfigs ACL)."""

    def __init__(self) -> None:
        self.altered: list[object] = []

    def describe_configs(self, resources: list[object], config_filter: str = "") -> dict[str, object]:
        return {"topic": {"safeguarding.dead-letter.v1": {"retention.ms": {"value": "-1"}}}}

    def alter_configs(self, resources: list[object], **options: object) -> dict[str, object]:
        self.altered.extend(resources)
        assert options.get("incremental") is True, "only retention.ms changes: IncrementalAlterConfigs"
        return {"topic": {"safeguarding.dead-letter.v1": "TopicAuthorizationFailedError: denied"}}


def test_a_refused_retention_change_says_what_to_do() -> None:
    from safeguard.kafka_local import _align_retention

    admin = _RefusingAdmin()
    with pytest.raises(LocalKafkaError) as caught:
        _align_retention(admin, "safeguarding.dead-letter.v1", 90 * 86_400_000, None)
    message = str(caught.value)
    assert "retention.ms of safeguarding.dead-letter.v1 to 7776000000 (90 days)" in message
    assert "TopicAuthorizationFailedError" in message
    assert "AlterConfigs" in message and "SAFEGUARD_KAFKA__DEAD_LETTER_RETENTION" in message
    assert len(admin.altered) == 1


# ------------------------------------------------------------------------------------------------ tools and jars


def _script(bin_dir: Path, name: str, body: str, interpreter: str = "/bin/sh") -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / name
    path.write_text(f"#!{interpreter}\n" + body, encoding="utf-8")
    path.chmod(0o755)


def _java(bin_dir: Path, version: str = "17.0.15") -> None:
    _script(bin_dir, "java", f"echo 'openjdk version \"{version}\" 2025-04-15' >&2\n")


_FAKE_MVN_OK = """
import pathlib, sys
out = pathlib.Path(next(a for a in sys.argv if a.startswith("-DoutputDirectory=")).split("=", 1)[1])
with (out.parent / "mvn-runs").open("a") as runs:
    runs.write("run\\n")
out.mkdir(parents=True)
for name in ("kafka_2.13-3.9.1.jar", "kafka-clients-3.9.1.jar", "reload4j-1.2.25.jar"):
    (out / name).touch()
"""


@pytest.fixture
def local(tmp_path: Path) -> LocalKafkaSettings:
    return LocalKafkaSettings(cache_dir=tmp_path / "cache", state_dir=tmp_path / "state")


def test_missing_java_is_named_with_the_package_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, local: LocalKafkaSettings
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(MissingToolError) as raised:
        require_java()
    assert str(raised.value) == JAVA_MISSING
    with pytest.raises(MissingToolError) as raised:
        ensure_jars(local)
    assert str(raised.value) == JAVA_MISSING


def test_old_java_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _java(tmp_path / "bin", "1.8.0_292")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    with pytest.raises(MissingToolError, match=re.escape(JAVA_MISSING) + r".*is Java 8"):
        require_java()


def test_missing_maven_is_named_with_the_package_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, local: LocalKafkaSettings
) -> None:
    _java(tmp_path / "bin")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    with pytest.raises(MissingToolError) as raised:
        ensure_jars(local)
    assert str(raised.value) == MVN_MISSING


def test_maven_failure_shows_the_tail_of_its_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, local: LocalKafkaSettings
) -> None:
    _java(tmp_path / "bin")
    _script(tmp_path / "bin", "mvn", "echo '[ERROR] Could not resolve org.apache.kafka:kafka_2.13:3.9.1'\nexit 1\n")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    with pytest.raises(LocalKafkaError, match=r"exit 1\):\n.*Could not resolve org\.apache\.kafka"):
        ensure_jars(local)
    version_dir = local.cache_dir / local.version
    assert not (version_dir / "COMPLETE").exists()
    assert not (version_dir / "libs").exists()


def test_jars_are_fetched_once_and_an_interrupted_fetch_is_redone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, local: LocalKafkaSettings
) -> None:
    _java(tmp_path / "bin")
    _script(tmp_path / "bin", "mvn", _FAKE_MVN_OK, interpreter=sys.executable)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    version_dir = local.cache_dir / local.version
    # A previous fetch died half-way: jars but no marker.
    (version_dir / "libs").mkdir(parents=True)
    (version_dir / "libs" / "kafka_2.13-3.9.1.jar").touch()
    messages: list[str] = []

    libs = ensure_jars(local, messages.append)

    assert libs == version_dir.resolve() / "libs"
    assert (version_dir / "COMPLETE").is_file()
    assert (version_dir / "pom.xml").read_text() == render_pom(local.version)
    assert sorted(p.name for p in libs.iterdir()) == [
        "kafka-clients-3.9.1.jar",
        "kafka_2.13-3.9.1.jar",
        "reload4j-1.2.25.jar",
    ]
    assert "Maven Central" in messages[0]
    assert messages[-1] == "fetched 3 jars"
    assert ensure_jars(local) == libs
    assert (version_dir / "mvn-runs").read_text().count("run") == 1


# ------------------------------------------------------------------------------------------------ state and stop


def _state(broker: LocalBroker, pid: int) -> BrokerState:
    return BrokerState(
        pid=pid,
        bootstrap="127.0.0.1:39092",
        broker_port=39092,
        controller_port=39093,
        started_at="2026-01-01T00:00:00+00:00",
        version="3.9.1",
        state_dir=str(broker.state_dir),
    )


def _write_state(broker: LocalBroker, pid: int) -> BrokerState:
    state = _state(broker, pid)
    broker.state_dir.mkdir(parents=True, exist_ok=True)
    broker.state_file.write_text(state.to_json(), encoding="utf-8")
    return state


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _fake_broker(broker: LocalBroker, *, ignore_term: bool = False) -> subprocess.Popen[str]:
    """A process whose command line looks like our broker's (kafka.Kafka + a file in the state dir)."""
    code = "import signal, sys, time\n"
    if ignore_term:
        code += "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    code += "print('ready', flush=True)\ntime.sleep(120)\n"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "kafka.Kafka", str(broker.state_dir / "server.properties")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_state_round_trips_through_json(local: LocalKafkaSettings) -> None:
    state = _state(LocalBroker(local), 1234)
    assert BrokerState.from_json(state.to_json()) == state


def test_a_stale_state_file_with_a_dead_pid_is_cleaned_up(local: LocalKafkaSettings) -> None:
    broker = LocalBroker(local)
    _write_state(broker, _dead_pid())
    assert broker.read_state() is None
    assert not broker.state_file.exists()
    status = broker.status()
    assert not status.running
    assert not status.answering


def test_a_reused_pid_is_not_mistaken_for_the_broker_and_never_signalled(local: LocalKafkaSettings) -> None:
    import os

    broker = LocalBroker(local)
    _write_state(broker, os.getpid())  # alive, but not a kafka.Kafka java process
    assert not is_our_broker(os.getpid(), broker.state_dir)
    assert broker.stop() is None  # and we are still here
    assert not broker.state_file.exists()


def test_an_unreadable_state_file_is_removed(local: LocalKafkaSettings) -> None:
    broker = LocalBroker(local)
    broker.state_dir.mkdir(parents=True)
    broker.state_file.write_text("{not json", encoding="utf-8")
    assert broker.read_state() is None
    assert not broker.state_file.exists()


def test_stop_terminates_the_recorded_pid(local: LocalKafkaSettings) -> None:
    broker = LocalBroker(local)
    proc = _fake_broker(broker)
    try:
        state = _write_state(broker, proc.pid)
        assert broker.read_state() == state
        assert broker.stop(timeout_s=10) == state
        assert proc.wait(timeout=5) == -15
        assert not (broker.state_dir / STATE_FILE).exists()
    finally:
        proc.kill()
        proc.wait()


def test_stop_kills_a_broker_that_ignores_sigterm(local: LocalKafkaSettings) -> None:
    broker = LocalBroker(local)
    proc = _fake_broker(broker, ignore_term=True)
    try:
        _write_state(broker, proc.pid)
        assert broker.stop(timeout_s=0.5) is not None
        assert proc.wait(timeout=5) == -9
    finally:
        proc.kill()
        proc.wait()


def test_a_broker_of_another_state_dir_is_not_ours(local: LocalKafkaSettings) -> None:
    mine = LocalBroker(local)
    # A sibling whose path starts with ours must not count as ours either.
    other = LocalBroker(LocalKafkaSettings(cache_dir=local.cache_dir, state_dir=Path(f"{local.state_dir}-other")))
    proc = _fake_broker(other)
    try:
        assert is_our_broker(proc.pid, other.state_dir)
        assert not is_our_broker(proc.pid, mine.state_dir)
    finally:
        proc.kill()
        proc.wait()


# ------------------------------------------------------------------------------------------------ bootstrap and CLI


def test_resolve_bootstrap_prefers_the_settings(local: LocalKafkaSettings) -> None:
    settings = Settings(_env_file=None, kafka=KafkaSettings(bootstrap_servers="kafka:9092"), local_kafka=local)
    assert resolve_bootstrap(settings) == "kafka:9092"


def test_resolve_bootstrap_uses_the_running_local_broker(local: LocalKafkaSettings) -> None:
    broker = LocalBroker(local)
    proc = _fake_broker(broker)
    try:
        _write_state(broker, proc.pid)
        assert resolve_bootstrap(Settings(_env_file=None, local_kafka=local)) == "127.0.0.1:39092"
    finally:
        proc.kill()
        proc.wait()


def test_resolve_bootstrap_without_kafka_says_what_to_do(local: LocalKafkaSettings) -> None:
    with pytest.raises(LocalKafkaError) as raised:
        resolve_bootstrap(Settings(_env_file=None, local_kafka=local))
    assert str(raised.value) == (
        "no Kafka configured (SAFEGUARD_KAFKA__BOOTSTRAP_SERVERS) and the local broker is not running: "
        "run `safeguard kafka start`"
    )


def test_cli_status_exits_1_when_stopped(local: LocalKafkaSettings) -> None:
    result = CliRunner().invoke(kafka, ["status"], obj=Settings(_env_file=None, local_kafka=local))
    assert result.exit_code == 1
    assert result.output.startswith("stopped")


def test_cli_stop_when_not_running(local: LocalKafkaSettings) -> None:
    result = CliRunner().invoke(kafka, ["stop"], obj=Settings(_env_file=None, local_kafka=local))
    assert result.exit_code == 0
    assert "not running" in result.output


def test_cli_topics_without_kafka_is_a_clean_error(local: LocalKafkaSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    from safeguard.cli import cli

    monkeypatch.setenv("SAFEGUARD_LOCAL_KAFKA__STATE_DIR", str(local.state_dir))
    result = CliRunner().invoke(cli, ["kafka", "topics"])
    assert result.exit_code == 2
    assert "run `safeguard kafka start`" in result.output
    assert "Traceback" not in result.output
