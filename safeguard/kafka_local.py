"""The local single-node Kafka broker: jars from Maven Central, KRaft combined mode, loopback only.

Why not Docker: a developer (and CI) needs only Java 17 and Maven to run the whole pipeline, and the
same machinery serves `safeguard kafka start` and the integration-test fixture, so both behave alike.

PLAINTEXT by default. With `local_kafka.secure` the broker requires SASL on both listeners and runs KRaft's
StandardAuthorizer with nothing allowed by default; `start` then creates each service principal's SCRAM-SHA-512
credential and ACLs (`safeguard.kafka_acls`) as the admin, the only super user (`BrokerSecurity`).

Layout:
    <cache_dir>/<version>/pom.xml, libs/*.jar, COMPLETE     fetched once per machine
    <state_dir>/server.properties (owner-only), log4j.properties,   one broker per state dir
                cluster.id, data/, broker.log, broker.json,
                ports.json                                  the ports of the last start, reused by the next
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from safeguard.clock import Clock, system_clock
from safeguard.settings import KafkaAccessSettings, KafkaSettings, LocalKafkaSettings, Settings
from schemas.errors import LocalKafkaError
from schemas.topics import DEAD_LETTER, DEFAULT_PARTITIONS, TOPICS, TopicSpec

Progress = Callable[[str], None]

JAVA_MISSING = "Java 17 is needed: install openjdk-17-jre-headless"
MVN_MISSING = "Maven is needed to fetch the broker jars from Maven Central: install maven"
MIN_JAVA = 17
MAIN_CLASS = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies"
# The broker POM declares reload4j `compileOnly`, so without these two the broker runs but never logs.
LOGGING_JARS: tuple[tuple[str, str, str], ...] = (
    ("org.slf4j", "slf4j-reload4j", "1.7.36"),
    ("ch.qos.reload4j", "reload4j", "1.2.25"),
)
STATE_FILE = "broker.json"
LOG_FILE = "broker.log"
PORTS_FILE = "ports.json"
_COMPLETE = "COMPLETE"
_NODE_ID = 1
_MVN_TIMEOUT_S = 900.0
_FORMAT_TIMEOUT_S = 120.0
_STOP_TIMEOUT_S = 30.0
_PROBE_TIMEOUT_MS = 3_000

log = logging.getLogger(__name__)

# Brokers started by this process, so that we can reap them (no zombies) when we stop them ourselves.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class MissingToolError(LocalKafkaError):
    """Java or Maven is absent or too old: the environment, not the code, needs fixing (tests skip on this)."""


# ---------------------------------------------------------------------------------------------------------------
# Pure parts: rendering, identifiers, parsing


def render_pom(version: str) -> str:
    """A throw-away POM whose only job is to let Maven resolve the broker's runtime classpath."""
    deps = [("org.apache.kafka", "kafka_2.13", version), *LOGGING_JARS]
    body = "\n".join(
        f"    <dependency><groupId>{g}</groupId><artifactId>{a}</artifactId><version>{v}</version></dependency>"
        for g, a, v in deps
    )
    return (
        '<project xmlns="http://maven.apache.org/POM/4.0.0">\n'
        "  <modelVersion>4.0.0</modelVersion>\n"
        "  <groupId>local.safeguard</groupId><artifactId>kafka-libs</artifactId><version>1</version>\n"
        "  <packaging>pom</packaging>\n"
        f"  <dependencies>\n{body}\n  </dependencies>\n"
        "</project>\n"
    )


@dataclass(frozen=True)
class BrokerSecurity:
    """SASL and ACLs for the local broker: the admin principal is the only super user.

    Clients authenticate with SCRAM-SHA-512 (credentials held in the cluster metadata, set through the admin API).
    The admin also logs in with PLAIN, whose only user is the admin itself (from the JAAS line): KRaft cannot use
    SCRAM on the controller listener (its credentials live in the metadata the controller serves), and PLAIN lets
    the broker, the controller and `safeguard kafka start` authenticate before any SCRAM credential exists.
    """

    admin_user: str
    admin_password: SecretStr

    def admin_options(self, bootstrap: str) -> dict[str, Any]:
        """kafka-python options of the admin (PLAIN works before any SCRAM credential exists)."""
        return {
            **_plain_options(bootstrap),
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "PLAIN",
            "sasl_plain_username": self.admin_user,
            "sasl_plain_password": self.admin_password.get_secret_value(),
        }

    @classmethod
    def from_access(cls, access: KafkaAccessSettings) -> BrokerSecurity:
        """The security of a local broker started with `local_kafka.secure`: the admin needs a password."""
        if access.admin_password is None or not access.admin_password.get_secret_value():
            raise LocalKafkaError(
                "the local broker is secure (SAFEGUARD_LOCAL_KAFKA__SECURE) but has no admin password: "
                "set SAFEGUARD_KAFKA_ACCESS__ADMIN_PASSWORD (and a password for each service that logs in)"
            )
        return cls(access.admin_user, access.admin_password)


def _jaas_quoted(value: str) -> str:
    """A JAAS option value: double-quoted, with backslash and quote escaped (Kafka's JaasConfig tokenizer)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _properties_escaped(value: str) -> str:
    """A value for a Java .properties file (read as ISO-8859-1): backslashes doubled, control and non-ASCII
    characters as \\uXXXX, so a password survives whatever it contains."""
    out = []
    for char in value.replace("\\", "\\\\"):
        out.append(char if 0x20 <= ord(char) < 0x7F else "".join(f"\\u{unit:04x}" for unit in _utf16(char)))
    return "".join(out)


def _utf16(char: str) -> list[int]:
    data = char.encode("utf-16-be")
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


def _plain_jaas(security: BrokerSecurity) -> str:
    user, password = security.admin_user, security.admin_password.get_secret_value()
    return (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        f"username={_jaas_quoted(user)} password={_jaas_quoted(password)} user_{user}={_jaas_quoted(password)};"
    )


def render_server_properties(
    *,
    broker_port: int,
    controller_port: int,
    log_dir: Path,
    num_partitions: int,
    security: BrokerSecurity | None = None,
) -> str:
    """KRaft combined broker+controller on 127.0.0.1 with replication factor 1 everywhere (one node, no replicas).

    A static `controller.quorum.voters` means storage is formatted without `--standalone`. Topics are never
    auto-created: every topic comes from the contract registry, so a typo fails loudly instead of making a topic.
    With `security`, the client listener is SASL_PLAINTEXT (SCRAM-SHA-512 for the services, PLAIN for the admin),
    the controller listener SASL_PLAINTEXT with PLAIN, and the StandardAuthorizer denies whatever no ACL allows.
    """
    client = "PLAINTEXT" if security is None else "SASL_PLAINTEXT"
    controller_protocol = "PLAINTEXT" if security is None else "SASL_PLAINTEXT"
    props = {
        "process.roles": "broker,controller",
        "node.id": str(_NODE_ID),
        "controller.quorum.voters": f"{_NODE_ID}@127.0.0.1:{controller_port}",
        "listeners": f"{client}://127.0.0.1:{broker_port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"{client}://127.0.0.1:{broker_port}",
        "inter.broker.listener.name": client,
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": f"CONTROLLER:{controller_protocol},{client}:{client}",
        "log.dirs": str(log_dir),
        "num.partitions": str(num_partitions),
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "1",
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "false",
        # The compacted alerts topic needs the cleaner; 32 MiB of dedupe buffer instead of 128 keeps the heap small.
        "log.cleaner.dedupe.buffer.size": str(32 * 1024 * 1024),
    }
    if security is not None:
        jaas = _plain_jaas(security)
        props |= {
            "sasl.enabled.mechanisms": "SCRAM-SHA-512,PLAIN",
            "sasl.mechanism.inter.broker.protocol": "PLAIN",
            "sasl.mechanism.controller.protocol": "PLAIN",
            "listener.name.sasl_plaintext.sasl.enabled.mechanisms": "SCRAM-SHA-512,PLAIN",
            "listener.name.sasl_plaintext.plain.sasl.jaas.config": jaas,
            "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            ),
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.controller.plain.sasl.jaas.config": jaas,
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": f"User:{security.admin_user}",
            "allow.everyone.if.no.acl.found": "false",
        }
    return "".join(f"{key}={_properties_escaped(value)}\n" for key, value in props.items())


def render_log4j_properties() -> str:
    """Console logging (to broker.log) at WARN, keeping the one INFO line that says the server started."""
    return (
        "log4j.rootLogger=WARN, stdout\n"
        "log4j.appender.stdout=org.apache.log4j.ConsoleAppender\n"
        "log4j.appender.stdout.layout=org.apache.log4j.PatternLayout\n"
        "log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
        "log4j.logger.kafka.server.KafkaRaftServer=INFO\n"
    )


_CLUSTER_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{21}$")
_RESERVED_UUIDS = (bytes(16), bytes(15) + b"\x01")


def new_cluster_id(random_bytes: Callable[[int], bytes] = os.urandom) -> str:
    """A Kafka cluster id: 22-char URL-safe base64 of 16 random bytes, re-rolled like Kafka's own `Uuid.randomUuid`.

    Kafka re-rolls ids starting with '-' (they look like command-line options) and the reserved zero/one UUIDs.
    """
    while True:
        raw = random_bytes(16)
        text = base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")
        if raw not in _RESERVED_UUIDS and is_cluster_id(text):
            return text


def is_cluster_id(text: str) -> bool:
    """Whether `text` has the shape StorageTool accepts and Kafka itself would generate."""
    if not _CLUSTER_ID.match(text):
        return False
    raw = base64.urlsafe_b64decode(text + "==")
    return len(raw) == 16 and raw not in _RESERVED_UUIDS


def parse_java_major(version_output: str) -> int | None:
    """The major version from `java -version` output: '"17.0.15"' -> 17, legacy '"1.8.0_292"' -> 8."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if match is None:
        return None
    major = int(match.group(1))
    if major == 1 and match.group(2) is not None:
        return int(match.group(2))
    return major


def heap_options(heap: str) -> list[str]:
    """-Xms/-Xmx for a heap like '512m': start at 256m (or the whole heap if smaller) so a small box is not grabbed."""
    match = re.fullmatch(r"(\d+)([kKmMgG]?)", heap.strip())
    if match is None:
        raise LocalKafkaError(f"bad local broker heap {heap!r}: use a JVM size like 512m or 1g")
    scale = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[match.group(2).lower()]
    size = int(match.group(1)) * scale
    if size < 128 << 20:
        raise LocalKafkaError(f"local broker heap {heap!r} is too small: Kafka needs at least 128m")
    initial = heap if size <= 256 << 20 else "256m"
    return [f"-Xms{initial}", f"-Xmx{heap}"]


def check_version(version: str) -> None:
    """Only 3.x uses the log4j 1 (reload4j) layout this module ships; 4.x needs log4j2 and other logging jars."""
    if not re.fullmatch(r"3\.\d+\.\d+", version):
        raise LocalKafkaError(
            f"local Kafka version {version!r} is not supported: use a 3.x release such as 3.9.1 "
            "(SAFEGUARD_LOCAL_KAFKA__VERSION)"
        )


def free_ports(count: int = 2) -> tuple[int, ...]:
    """`count` distinct free loopback ports, held open together while choosing so they cannot collide."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return tuple(int(s.getsockname()[1]) for s in socks)
    finally:
        for sock in socks:
            sock.close()


def port_is_free(port: int) -> bool:
    """Whether a listener could bind 127.0.0.1:`port` now. SO_REUSEADDR as the JVM sets it: connections of a
    stopped broker lingering in TIME_WAIT do not make its port taken, another listener does."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def choose_ports(
    previous: tuple[int, int] | None,
    is_free: Callable[[int], bool] = port_is_free,
    pick: Callable[[int], tuple[int, ...]] = free_ports,
) -> tuple[tuple[int, int], list[int]]:
    """(broker port, controller port) for a start, and the previous ports that were taken.

    A restart keeps each previous port that is still free, so clients and running services configured with the
    old bootstrap address reach the restarted broker; only a taken port is replaced by a new free one."""
    if previous is None:
        broker, controller = pick(2)
        return (broker, controller), []
    taken = [port for port in previous if not is_free(port)]
    if not taken:
        return previous, []
    kept = [port for port in previous if port not in taken]
    fresh = [port for port in pick(len(taken) + len(kept)) if port not in kept][: len(taken)]
    replacement = iter(fresh)
    broker, controller = (port if port not in taken else next(replacement) for port in previous)
    return (broker, controller), taken


def tail(text: str, lines: int = 30) -> str:
    """The last lines of a tool's output, for an error message that shows what went wrong."""
    kept = text.strip().splitlines()[-lines:]
    return "\n".join("    " + line for line in kept)


_STACK_FRAME = re.compile(r"^\s+(at |\.\.\. \d+ more)")


def log_excerpt(path: Path, lines: int = 30) -> str:
    """The end of the broker log without Java stack frames, indented, for an error message."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            data = fh.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return "    (no broker log)"
    # Java stack frames push the one line that says what went wrong ("Address already in use") out of view.
    kept = "\n".join(line for line in data.splitlines() if not _STACK_FRAME.match(line))
    return tail(kept, lines) or "    (broker log is empty)"


# ---------------------------------------------------------------------------------------------------------------
# Tools and jars


def require_java() -> str:
    """The path of a Java 17+ `java`; MissingToolError if absent or too old (Kafka 3.9 runs on 11, but 4.x needs 17)."""
    java = shutil.which("java")
    if java is None:
        raise MissingToolError(JAVA_MISSING)
    try:
        done = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise MissingToolError(f"{JAVA_MISSING} ({java} -version failed: {exc})") from None
    output = done.stderr + done.stdout
    major = parse_java_major(output)
    if major is None:
        raise MissingToolError(f"{JAVA_MISSING} (cannot read the version of {java}:\n{tail(output, 5)})")
    if major < MIN_JAVA:
        raise MissingToolError(f"{JAVA_MISSING} ({java} is Java {major})")
    return java


def require_mvn() -> str:
    """The path of `mvn`; MissingToolError if absent."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise MissingToolError(MVN_MISSING)
    return mvn


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock, so two processes never fetch the same jars or start the same broker at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _jars_ready(version_dir: Path) -> bool:
    return (version_dir / _COMPLETE).is_file() and any((version_dir / "libs").glob("kafka_2.13-*.jar"))


def ensure_jars(local: LocalKafkaSettings, progress: Progress | None = None) -> Path:
    """The directory of broker jars for `local.version`, fetched from Maven Central on first use.

    The marker file is written only after a complete copy, so an interrupted fetch is simply redone.
    """
    check_version(local.version)
    require_java()
    version_dir = local.cache_dir.expanduser().resolve() / local.version
    libs = version_dir / "libs"
    if _jars_ready(version_dir):
        return libs
    mvn = require_mvn()
    with _locked(version_dir / ".lock"):
        if _jars_ready(version_dir):  # another process fetched them while we waited
            return libs
        (version_dir / _COMPLETE).unlink(missing_ok=True)
        pom = version_dir / "pom.xml"
        pom.write_text(render_pom(local.version), encoding="utf-8")
        partial = version_dir / "libs.partial"
        shutil.rmtree(partial, ignore_errors=True)
        if progress:
            progress(f"fetching Kafka {local.version} broker jars from Maven Central into {libs} (once per machine)")
        command = [
            mvn,
            "-q",
            "-B",
            "-f",
            str(pom),
            DEPENDENCY_PLUGIN,
            "-DincludeScope=runtime",
            f"-DoutputDirectory={partial}",
        ]
        try:
            done = subprocess.run(
                command,
                cwd=version_dir,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=_MVN_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise LocalKafkaError(f"Maven did not fetch the broker jars within {_MVN_TIMEOUT_S:.0f} s") from None
        except OSError as exc:
            raise LocalKafkaError(f"cannot run {mvn}: {exc}") from None
        jars = sorted(partial.glob("*.jar"))
        if done.returncode != 0 or not any(j.name.startswith("kafka_2.13-") for j in jars):
            shutil.rmtree(partial, ignore_errors=True)
            raise LocalKafkaError(
                f"Maven could not fetch the Kafka {local.version} broker jars (exit {done.returncode}):\n"
                f"{tail(done.stdout or '(no output)')}"
            )
        shutil.rmtree(libs, ignore_errors=True)
        partial.rename(libs)
        (version_dir / _COMPLETE).write_text(f"{len(jars)} jars\n", encoding="utf-8")
    if progress:
        progress(f"fetched {len(jars)} jars")
    return libs


# ---------------------------------------------------------------------------------------------------------------
# Processes


def _read_cmdline(pid: int) -> list[str] | None:
    """The process's argv from /proc, or None when it is gone (or a zombie, whose cmdline is empty)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    if not raw:
        return None
    return [part.decode("utf-8", "replace") for part in raw.rstrip(b"\0").split(b"\0")]


def _reap(pid: int) -> None:
    """Collect the exit status of a broker we started ourselves, so it does not linger as a zombie."""
    child = _CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        del _CHILDREN[pid]


def is_our_broker(pid: int, state_dir: Path) -> bool:
    """Whether `pid` is still the broker java process started for this state dir (pids get reused)."""
    _reap(pid)
    argv = _read_cmdline(pid)
    if argv is None:
        return False
    return MAIN_CLASS in argv and str(state_dir / "server.properties") in argv


def probe(bootstrap: str, timeout_ms: int = _PROBE_TIMEOUT_MS, options: dict[str, Any] | None = None) -> bool:
    """Whether a broker at `bootstrap` answers a metadata request (what clients need, not just a port); PLAINTEXT,
    or with the connection `options` of a client (the admin's, for a secure broker)."""
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_ms / 1000):
            pass
    except (OSError, ValueError):
        return False
    from kafka.admin import KafkaAdminClient

    try:
        admin = KafkaAdminClient(
            **{
                **(options or {}),
                "bootstrap_servers": bootstrap.split(","),
                "client_id": "safeguard-probe",
                "bootstrap_timeout_ms": timeout_ms,
                "request_timeout_ms": max(timeout_ms, 1000),
            }
        )
    except Exception:
        return False
    try:
        admin.list_topics()
        return True
    except Exception:
        return False
    finally:
        admin.close()


@dataclass(frozen=True)
class BrokerState:
    """What `safeguard kafka start` recorded: enough to find, reach and stop the broker later."""

    pid: int
    bootstrap: str
    broker_port: int
    controller_port: int
    started_at: str
    version: str
    state_dir: str
    secure: bool = False
    """Started with SASL and ACLs (`local_kafka.secure`): clients must log in."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> BrokerState:
        data = json.loads(text)
        return cls(
            pid=int(data["pid"]),
            bootstrap=str(data["bootstrap"]),
            broker_port=int(data["broker_port"]),
            controller_port=int(data["controller_port"]),
            started_at=str(data["started_at"]),
            version=str(data["version"]),
            state_dir=str(data["state_dir"]),
            secure=bool(data.get("secure", False)),
        )


@dataclass(frozen=True)
class BrokerStatus:
    """The answer to `safeguard kafka status`."""

    running: bool
    answering: bool
    state: BrokerState | None


class LocalBroker:
    """One local broker, identified by its state dir. Safe to construct freely: nothing happens until a method runs."""

    def __init__(
        self,
        local: LocalKafkaSettings,
        *,
        partitions: int = DEFAULT_PARTITIONS,
        dead_letter_retention_ms: int | None = None,
        clock: Clock = system_clock,
        settings: Settings | None = None,
    ) -> None:
        """`settings` name the principals, their passwords and the groups of the ACLs (`safeguard.kafka_acls`)
        when `local.secure` is on; the defaults otherwise."""
        self.local = local
        self.partitions = partitions
        self.dead_letter_retention_ms = dead_letter_retention_ms
        self.clock = clock
        self.state_dir = local.state_dir.expanduser().resolve()
        self.settings = settings if settings is not None else Settings.model_construct()  # the defaults, no env

    @classmethod
    def from_settings(cls, settings: Settings, clock: Clock = system_clock) -> LocalBroker:
        """The broker of the project settings, creating topics with `kafka.topic_partitions` partitions and the
        dead-letter topic with (and aligned to) `kafka.dead_letter_retention`."""
        return cls(
            settings.local_kafka,
            partitions=settings.kafka.topic_partitions,
            dead_letter_retention_ms=settings.kafka.dead_letter_retention_ms,
            clock=clock,
            settings=settings,
        )

    @property
    def security(self) -> BrokerSecurity | None:
        """SASL and ACLs when `local_kafka.secure` is on (LocalKafkaError without an admin password), else None."""
        return BrokerSecurity.from_access(self.settings.kafka_access) if self.local.secure else None

    def admin_options(self, state: BrokerState) -> dict[str, Any]:
        """kafka-python options of an admin client of this broker: PLAINTEXT, or the super user's SASL login."""
        if not state.secure:
            return _plain_options(state.bootstrap)
        return BrokerSecurity.from_access(self.settings.kafka_access).admin_options(state.bootstrap)

    @property
    def state_file(self) -> Path:
        return self.state_dir / STATE_FILE

    @property
    def log_file(self) -> Path:
        return self.state_dir / LOG_FILE

    @property
    def ports_file(self) -> Path:
        return self.state_dir / PORTS_FILE

    def previous_ports(self) -> tuple[int, int] | None:
        """(broker port, controller port) of the last start of this state dir, None if never started (or unreadable)."""
        try:
            data = json.loads(self.ports_file.read_text(encoding="utf-8"))
            ports = (int(data["broker_port"]), int(data["controller_port"]))
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None
        if len(set(ports)) != 2 or not all(0 < port < 65536 for port in ports):
            return None
        return ports

    def _choose_ports(self, progress: Progress | None) -> tuple[int, int]:
        previous = self.previous_ports()
        (broker_port, controller_port), taken = choose_ports(previous, port_is_free, free_ports)
        if previous is not None and taken:
            old_bootstrap = f"127.0.0.1:{previous[0]}"
            ports = ("port " if len(taken) == 1 else "ports ") + " and ".join(str(p) for p in taken)
            message = (
                f"{ports} of the previous start {'is' if len(taken) == 1 else 'are'} taken by another process; "
                f"the local broker now listens on 127.0.0.1:{broker_port} (controller port {controller_port})"
            )
            if previous[0] != broker_port:
                message += f": restart anything still configured with {old_bootstrap}"
            if progress:
                progress(message)
            else:
                log.warning("%s", message)
        return broker_port, controller_port

    def read_state(self) -> BrokerState | None:
        """The recorded broker if its process is still alive; a stale or unreadable state file is removed."""
        try:
            state = BrokerState.from_json(self.state_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            self.state_file.unlink(missing_ok=True)
            return None
        if not is_our_broker(state.pid, self.state_dir):
            self.state_file.unlink(missing_ok=True)
            return None
        return state

    def status(self) -> BrokerStatus:
        """Running (the recorded pid is our java process) and answering (it serves metadata)."""
        state = self.read_state()
        if state is None:
            return BrokerStatus(running=False, answering=False, state=None)
        return BrokerStatus(running=True, answering=self._probe(state), state=state)

    def _probe(self, state: BrokerState) -> bool:
        return probe(state.bootstrap, options=self.admin_options(state) if state.secure else None)

    def start(self, progress: Progress | None = None) -> BrokerState:
        """Start the broker (or return the one already running), wait until it answers, create the contract topics."""
        with _locked(self.state_dir / ".lock"):
            state = self.read_state()
            if state is not None:
                if progress:
                    progress(f"the local broker is already running (pid {state.pid})")
                self._wait_until_answering(state, None)
            else:
                state = self._launch(progress)
        options = self.admin_options(state)
        create_topics(
            options,
            self.partitions,
            1,
            dead_letter_retention_ms=self.dead_letter_retention_ms,
            progress=progress,
        )
        if state.secure:
            from safeguard.kafka_acls import apply

            with _admin(options) as admin:
                apply(admin, self.settings, progress)
        return state

    def _launch(self, progress: Progress | None) -> BrokerState:
        security = self.security  # before anything starts: a secure broker needs its admin password
        libs = ensure_jars(self.local, progress)
        java = require_java()
        heap = heap_options(self.local.heap)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        broker_port, controller_port = self._choose_ports(progress)
        _write_atomically(
            self.ports_file, json.dumps({"broker_port": broker_port, "controller_port": controller_port}) + "\n"
        )
        server_props = self.state_dir / "server.properties"
        log4j_props = self.state_dir / "log4j.properties"
        # Owner-only: with security on it holds the admin password (in the JAAS lines).
        server_props.touch(mode=0o600, exist_ok=True)
        server_props.chmod(0o600)
        server_props.write_text(
            render_server_properties(
                broker_port=broker_port,
                controller_port=controller_port,
                log_dir=self.state_dir / "data",
                num_partitions=self.partitions,
                security=security,
            ),
            encoding="utf-8",
        )
        log4j_props.write_text(render_log4j_properties(), encoding="utf-8")
        classpath = f"{libs}/*"
        log4j_opt = f"-Dlog4j.configuration=file:{log4j_props}"
        self._format_storage(java, classpath, log4j_opt, server_props)

        if progress:
            progress(f"starting Kafka {self.local.version} on 127.0.0.1:{broker_port} (log: {self.log_file})")
        command = [
            java,
            *heap,
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            log4j_opt,
            "-cp",
            classpath,
            MAIN_CLASS,
            str(server_props),
        ]
        with self.log_file.open("wb") as log:
            proc = subprocess.Popen(
                command,
                cwd=self.state_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _CHILDREN[proc.pid] = proc
        state = BrokerState(
            pid=proc.pid,
            bootstrap=f"127.0.0.1:{broker_port}",
            broker_port=broker_port,
            controller_port=controller_port,
            started_at=self.clock().isoformat(),
            version=self.local.version,
            state_dir=str(self.state_dir),
            secure=security is not None,
        )
        _write_atomically(self.state_file, state.to_json())
        try:
            self._wait_until_answering(state, proc)
        except BaseException:
            self._terminate(proc.pid, _STOP_TIMEOUT_S)
            self.state_file.unlink(missing_ok=True)
            raise
        if progress:
            login = " (SASL/SCRAM-SHA-512, ACLs on)" if state.secure else ""
            progress(f"Kafka answers at {state.bootstrap}{login} (pid {state.pid})")
        return state

    def _cluster_id(self) -> str:
        """The id this state dir was (or will be) formatted with, kept so a re-format is a no-op."""
        path = self.state_dir / "cluster.id"
        with contextlib.suppress(FileNotFoundError):
            existing = path.read_text(encoding="utf-8").strip()
            if is_cluster_id(existing):
                return existing
        cluster_id = new_cluster_id()
        path.write_text(cluster_id + "\n", encoding="utf-8")
        return cluster_id

    def _format_storage(self, java: str, classpath: str, log4j_opt: str, server_props: Path) -> None:
        command = [
            java,
            log4j_opt,
            "-cp",
            classpath,
            STORAGE_TOOL,
            "format",
            "-t",
            self._cluster_id(),
            "-c",
            str(server_props),
            "--ignore-formatted",
        ]
        try:
            done = subprocess.run(
                command,
                cwd=self.state_dir,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=_FORMAT_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise LocalKafkaError(f"formatting the broker storage took over {_FORMAT_TIMEOUT_S:.0f} s") from None
        if done.returncode != 0:
            raise LocalKafkaError(
                f"formatting the broker storage in {self.state_dir / 'data'} failed (exit {done.returncode}):\n"
                f"{tail(done.stdout)}"
            )

    def _wait_until_answering(self, state: BrokerState, proc: subprocess.Popen[bytes] | None) -> None:
        deadline = time.monotonic() + self.local.start_timeout_s
        while True:
            if proc is not None and proc.poll() is not None:
                _CHILDREN.pop(proc.pid, None)
                raise LocalKafkaError(
                    f"the Kafka broker exited with code {proc.returncode} while starting; "
                    f"the end of {self.log_file}:\n{log_excerpt(self.log_file)}"
                )
            if proc is None and not is_our_broker(state.pid, self.state_dir):
                self.state_file.unlink(missing_ok=True)
                raise LocalKafkaError(f"the Kafka broker (pid {state.pid}) exited:\n{log_excerpt(self.log_file)}")
            if self._probe(state):
                return
            if time.monotonic() >= deadline:
                raise LocalKafkaError(
                    f"the Kafka broker (pid {state.pid}) did not answer at {state.bootstrap} within "
                    f"{self.local.start_timeout_s:.0f} s; the end of {self.log_file}:\n{log_excerpt(self.log_file)}"
                )
            time.sleep(0.5)

    def stop(self, timeout_s: float = _STOP_TIMEOUT_S) -> BrokerState | None:
        """SIGTERM the recorded broker (only if that pid is still our java process), SIGKILL after `timeout_s`.

        Returns the state of the broker that was stopped, or None when none was running.
        """
        with _locked(self.state_dir / ".lock"):
            state = self.read_state()
            if state is None:
                return None
            self._terminate(state.pid, timeout_s)
            self.state_file.unlink(missing_ok=True)
            return state

    def _terminate(self, pid: int, timeout_s: float) -> None:
        """A clean shutdown first (a SIGKILLed broker recovers its logs slowly on the next start)."""
        if not is_our_broker(pid, self.state_dir):
            return
        _signal(pid, signal.SIGTERM)
        if _wait_gone(pid, self.state_dir, timeout_s):
            return
        _signal(pid, signal.SIGKILL)
        if not _wait_gone(pid, self.state_dir, 10.0):
            raise LocalKafkaError(f"the Kafka broker (pid {pid}) survived SIGKILL")


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError as exc:
        raise LocalKafkaError(f"not allowed to signal the Kafka broker (pid {pid}): {exc}") from None


def _wait_gone(pid: int, state_dir: Path, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    child = _CHILDREN.get(pid)
    if child is not None:
        try:
            child.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return False
        _CHILDREN.pop(pid, None)
        return True
    while is_our_broker(pid, state_dir):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)
    return True


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


# ---------------------------------------------------------------------------------------------------------------
# Topics and bootstrap


def _plain_options(bootstrap: str) -> dict[str, Any]:
    return {"bootstrap_servers": bootstrap.split(","), "client_id": "safeguard-local", "request_timeout_ms": 30_000}


@dataclass(frozen=True)
class TopicInfo:
    """A contract topic as the cluster has it (for `safeguard kafka topics` and the tests)."""

    name: str
    partitions: int
    cleanup_policy: str | None
    retention_ms: int | None


@contextlib.contextmanager
def admin_client(client_options: dict[str, Any]) -> Iterator[Any]:
    """A KafkaAdminClient for the `with` block; unreachable Kafka or a refused request is a LocalKafkaError."""
    with _admin(client_options) as admin:
        yield admin


@contextlib.contextmanager
def _admin(client_options: dict[str, Any]) -> Iterator[Any]:
    from kafka.admin import KafkaAdminClient
    from kafka.errors import KafkaError

    options = {"bootstrap_timeout_ms": 15_000, **client_options}
    where = ",".join(options.get("bootstrap_servers", []))
    try:
        admin = KafkaAdminClient(**options)
    except KafkaError as exc:
        raise LocalKafkaError(f"cannot reach Kafka at {where}: {exc}") from None
    try:
        yield admin
    except KafkaError as exc:
        raise LocalKafkaError(f"Kafka at {where} refused an admin request: {exc}") from None
    finally:
        admin.close()


def _partition_counts(admin: Any, names: list[str]) -> dict[str, int]:
    described: list[dict[str, Any]] = admin.describe_topics(names)
    return {str(t["name"]): len(t.get("partitions") or []) for t in described if t.get("error_code", 0) == 0}


DEFAULT_DEAD_LETTER_RETENTION_MS: int = KafkaSettings().dead_letter_retention_ms
"""The dead-letter topic's retention when the caller does not pass the setting (the setting's default, 90 days)."""


def retention_text(retention_ms: int | None) -> str:
    """`retention.ms` for people: forever, N days, or milliseconds when it is not whole days."""
    if retention_ms is None:
        return "?"
    if retention_ms < 0:
        return "forever"
    days, rest = divmod(retention_ms, 24 * 3600 * 1000)
    if rest or not days:
        return f"{retention_ms} ms"
    return f"{days} day" + ("s" if days != 1 else "")


def create_topics(
    client_options: dict[str, Any],
    partitions: int,
    replication_factor: int,
    specs: Sequence[TopicSpec] = TOPICS,
    *,
    dead_letter_retention_ms: int | None = None,
    progress: Progress | None = None,
) -> list[str]:
    """Create every contract topic (or each of `specs`) that is missing; returns the names created.

    An existing topic with another partition count is an error, not a warning: stateful processing joins topics
    by key and needs them co-partitioned, and Kafka can never shrink a topic.

    The dead-letter topic holds rejected bytes, so it is not kept forever like the event topics: it is created
    with `dead_letter_retention_ms` (`KafkaSettings.dead_letter_retention`; the setting's default when None), and
    when the setting is passed an existing dead-letter topic is aligned to it (an incremental config change that
    touches nothing else), so a deployed cluster follows a changed setting at the next start.
    """
    from kafka.errors import TopicAlreadyExistsError, for_code

    def retention(spec: TopicSpec) -> int:
        if spec.name != DEAD_LETTER.name:
            return spec.retention_ms
        return DEFAULT_DEAD_LETTER_RETENTION_MS if dead_letter_retention_ms is None else dead_letter_retention_ms

    with _admin(client_options) as admin:
        existing = set(admin.list_topics())
        missing = [spec for spec in specs if spec.name not in existing]
        created: list[str] = []
        if missing:
            request = {
                spec.name: {
                    "num_partitions": partitions,
                    "replication_factor": replication_factor,
                    "configs": {"cleanup.policy": spec.cleanup_policy, "retention.ms": str(retention(spec))},
                }
                for spec in missing
            }
            response = admin.create_topics(request, raise_errors=False)
            failures = []
            for topic in response.get("topics", []):
                error = for_code(topic.get("error_code", 0))
                if topic.get("error_code", 0) == 0:
                    created.append(str(topic["name"]))
                elif error is not TopicAlreadyExistsError:  # created by someone else meanwhile: fine
                    failures.append(f"{topic['name']}: {error.__name__} {topic.get('error_message') or ''}".strip())
            if failures:
                raise LocalKafkaError("Kafka did not create the contract topics:\n  " + "\n  ".join(failures))
            admin.wait_for_topics([spec.name for spec in missing], timeout_ms=30_000)
        if (
            dead_letter_retention_ms is not None
            and DEAD_LETTER.name in existing
            and any(spec.name == DEAD_LETTER.name for spec in specs)
        ):
            _align_retention(admin, DEAD_LETTER.name, dead_letter_retention_ms, progress)
        counts = _partition_counts(admin, [spec.name for spec in specs])
    wrong = [f"{name} has {counts[name]}" for name in sorted(counts) if counts[name] != partitions]
    if wrong:
        raise LocalKafkaError(
            f"contract topics must have {partitions} partitions (stateful processing is co-partitioned by key), "
            f"but {', '.join(wrong)}: delete and recreate them, or set SAFEGUARD_KAFKA__TOPIC_PARTITIONS to match"
        )
    not_visible = [spec.name for spec in specs if spec.name not in counts]
    if not_visible:
        raise LocalKafkaError(f"contract topics not visible after creation: {', '.join(not_visible)}")
    return created


def _topic_config(admin: Any, topic: str, key: str) -> str | None:
    from kafka.admin import ConfigResource, ConfigResourceType

    resource = ConfigResource(ConfigResourceType.TOPIC, topic, [key])
    described: dict[str, Any] = admin.describe_configs([resource], config_filter="all").get("topic", {})
    entry = described.get(topic, {}).get(key)
    value = entry.get("value") if isinstance(entry, dict) else None
    return None if value is None else str(value)


def _align_retention(admin: Any, topic: str, retention_ms: int, progress: Progress | None) -> None:
    """Set an existing topic's `retention.ms` when it differs (IncrementalAlterConfigs: other configs stay)."""
    from kafka.admin import AlterConfigOp, ConfigResource, ConfigResourceType

    current = _topic_config(admin, topic, "retention.ms")
    if current is not None and int(current) == retention_ms:
        return
    resource = ConfigResource(ConfigResourceType.TOPIC, topic, {"retention.ms": (AlterConfigOp.SET, str(retention_ms))})
    result = admin.alter_configs([resource], raise_on_unknown=False, incremental=True).get("topic", {}).get(topic)
    if result != "OK":
        raise LocalKafkaError(
            f"Kafka refused to set retention.ms of {topic} to {retention_ms} ({retention_text(retention_ms)}): "
            f"{result}. Grant the pipeline's principal AlterConfigs on the topic, set it with kafka-configs.sh, "
            f"or set SAFEGUARD_KAFKA__DEAD_LETTER_RETENTION to the topic's current retention"
        )
    old = retention_text(int(current)) if current is not None else "unknown"
    message = f"{topic}: retention changed from {old} to {retention_text(retention_ms)}"
    if progress:
        progress(message)
    else:
        log.info("%s", message)


def describe_topics(client_options: dict[str, Any]) -> list[TopicInfo]:
    """The contract topics that exist, with partition count, cleanup.policy and retention.ms as the cluster has them."""
    from kafka.admin import ConfigResource, ConfigResourceType

    names = [spec.name for spec in TOPICS]
    with _admin(client_options) as admin:
        present = set(admin.list_topics())
        names = [n for n in names if n in present]
        if not names:
            return []
        counts = _partition_counts(admin, names)
        resources = [ConfigResource(ConfigResourceType.TOPIC, n, ["cleanup.policy", "retention.ms"]) for n in names]
        configs: dict[str, dict[str, Any]] = admin.describe_configs(resources, config_filter="all").get("topic", {})
    infos = []
    for name in names:
        values = {
            key: (entry.get("value") if isinstance(entry, dict) else None)
            for key, entry in configs.get(name, {}).items()
        }
        retention = values.get("retention.ms")
        infos.append(
            TopicInfo(
                name=name,
                partitions=counts.get(name, 0),
                cleanup_policy=values.get("cleanup.policy"),
                retention_ms=int(retention) if retention is not None else None,
            )
        )
    return infos


def resolve_bootstrap(settings: Settings) -> str:
    """The configured Kafka, else the running local broker; never a guess like localhost:9092."""
    if settings.kafka.bootstrap_servers:
        return settings.kafka.bootstrap_servers
    state = LocalBroker(settings.local_kafka).read_state()
    if state is not None:
        return state.bootstrap
    raise LocalKafkaError(
        "no Kafka configured (SAFEGUARD_KAFKA__BOOTSTRAP_SERVERS) and the local broker is not running: "
        "run `safeguard kafka start`"
    )


__all__ = [
    "DEFAULT_DEAD_LETTER_RETENTION_MS",
    "JAVA_MISSING",
    "MVN_MISSING",
    "BrokerSecurity",
    "BrokerState",
    "BrokerStatus",
    "LocalBroker",
    "MissingToolError",
    "TopicInfo",
    "admin_client",
    "check_version",
    "choose_ports",
    "create_topics",
    "describe_topics",
    "ensure_jars",
    "free_ports",
    "heap_options",
    "is_cluster_id",
    "is_our_broker",
    "log_excerpt",
    "new_cluster_id",
    "parse_java_major",
    "port_is_free",
    "probe",
    "render_log4j_properties",
    "render_pom",
    "render_server_properties",
    "require_java",
    "require_mvn",
    "resolve_bootstrap",
    "retention_text",
]
