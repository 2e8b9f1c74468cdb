"""Shared helpers of the benchmarks: the machine, results, a local broker, simulated events, the worker process.

Benchmarks may read the wall clock and the environment (they describe the machine they run on); the project
code they measure may not. Every benchmark starts its own broker on a temporary state dir and stops it by its
pid (LocalBroker.stop) in a `finally`, so a failed run leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import pstats
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from producers.publisher import EventPublisher
from producers.simulate import LEEDS_2019, generate
from safeguard.kafka_clients import client_options
from safeguard.kafka_local import LocalBroker
from safeguard.settings import KafkaSettings, LocalKafkaSettings
from schemas.codec import encode
from schemas.events import AgencyEvent, DomesticIncidentRecorded
from schemas.topics import DEFAULT_PARTITIONS, EVENT_TOPICS, message_key, topic_for

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
EVENT_TOPIC_NAMES = [spec.name for spec in EVENT_TOPICS]
SHARED_MACHINE_NOTE = (
    "Measured on a shared 2-core VM: other engineers' test runs (their own Kafka brokers, pytest, chDB) may run at "
    "the same time, and the broker, the worker and the benchmark driver share the same 2 cores. Load averages and "
    "the worker's own CPU time are recorded so contention can be judged; CPU time per event is the steadier figure."
)

Record = tuple[str, bytes, bytes]
"""(topic, key, value) as published."""


def say(message: str) -> None:
    """Progress on stdout, time-stamped."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- the machine ---------------------------------------------------------------------------------------------


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _mem_total_gib() -> float:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / (1 << 20), 1)
    return 0.0


def _java_version() -> str:
    try:
        done = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    first = (done.stderr or done.stdout).strip().splitlines()
    return first[0] if first else "unknown"


def _package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": _mem_total_gib(),
        "python": platform.python_version(),
        "kafka": LocalKafkaSettings().version,
        "java": _java_version(),
        "os": platform.platform(),
        "faust_streaming": _package_version("faust-streaming"),
        "aiokafka": _package_version("aiokafka"),
        "pydantic": _package_version("pydantic"),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# --- results -------------------------------------------------------------------------------------------------


def write_result(
    name: str,
    *,
    metric: str,
    value: float,
    unit: str,
    baseline: str,
    baseline_value: float,
    target: str,
    met: bool,
    parameters: dict[str, Any],
    notes: Sequence[str],
    details: dict[str, Any] | None = None,
) -> Path:
    """bench/results/<name>.json, then the markdown table of every result."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {
        "name": name,
        "metric": metric,
        "value": value,
        "unit": unit,
        "baseline": baseline,
        "baseline_value": baseline_value,
        "ratio": round(value / baseline_value, 4) if baseline_value else None,
        "target": target,
        "met": met,
        "machine": machine(),
        "parameters": parameters,
        "notes": [*notes, SHARED_MACHINE_NOTE],
        "details": details or {},
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    render_table()
    say(f"wrote {path.relative_to(ROOT)}: {metric} = {value} {unit} (target {target}: {'met' if met else 'NOT met'})")
    return path


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def render_table() -> Path:
    """bench/results/README.md: one row per result file, and the machine of the newest one."""
    rows = []
    newest: dict[str, Any] | None = None
    for path in sorted(RESULTS.glob("*.json")):
        result = json.loads(path.read_text(encoding="utf-8"))
        rows.append(result)
        if newest is None or result.get("measured_at", "") > newest.get("measured_at", ""):
            newest = result
    lines = [
        "# Benchmark results",
        "",
        "Written by the scripts in `bench/` (`.venv/bin/python -m bench.<name>`); each row is one "
        "`bench/results/<name>.json`, which also holds the parameters, the notes and the detailed figures.",
        "",
        "| benchmark | metric | value | target | met | baseline | baseline value | ratio | measured at |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        g = r.get
        lines.append(
            f"| `{g('name', '?')}` | {g('metric', '')} | {_fmt(g('value', ''))} {g('unit', '')} | {g('target', '')} "
            f"| {_fmt(g('met', ''))} | {g('baseline', '')} | {_fmt(g('baseline_value', ''))} | {_fmt(g('ratio', ''))} "
            f"| {g('measured_at', '')} |"
        )
    if newest is not None:
        m = newest.get("machine", {})
        described = ", ".join(
            f"{label} {m[key]}"
            for key, label in (
                ("cpu_model", "CPU"),
                ("cores", "cores:"),
                ("ram_gib", "RAM GiB:"),
                ("os", "OS"),
                ("python", "Python"),
                ("kafka", "Kafka"),
                ("java", "Java:"),
                ("faust_streaming", "faust-streaming"),
                ("aiokafka", "aiokafka"),
                ("pydantic", "pydantic"),
            )
            if key in m
        )
        lines += ["", f"Machine (newest result): {described}.", "", SHARED_MACHINE_NOTE]
        for r in rows:
            notes = r.get("notes") or []
            notes = [notes] if isinstance(notes, str) else notes
            if notes:
                lines += ["", f"## `{r['name']}`", ""]
                lines += [f"- {note}" for note in notes if note != SHARED_MACHINE_NOTE]
    path = RESULTS / "README.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --- a local broker ------------------------------------------------------------------------------------------


@contextlib.contextmanager
def local_broker(partitions: int = DEFAULT_PARTITIONS, heap: str = "768m") -> Iterator[str]:
    """A Kafka broker of this benchmark's own on a temporary state dir; stopped by its pid and removed at the end."""
    state_dir = Path(tempfile.mkdtemp(prefix="bench-kafka-"))
    broker = LocalBroker(LocalKafkaSettings(state_dir=state_dir, heap=heap), partitions=partitions)
    try:
        state = broker.start(progress=say)
        say(f"broker pid {state.pid} at {state.bootstrap}")
        yield state.bootstrap
    finally:
        stopped = broker.stop()
        if stopped is not None:
            say(f"stopped broker pid {stopped.pid}")
        shutil.rmtree(state_dir, ignore_errors=True)


# --- simulated events ----------------------------------------------------------------------------------------

_YEAR = timedelta(days=364)  # whole weeks, so weekday and weekend patterns stay where the simulator put them
_PSEUDONYM_FIELDS = ("child_id", "household_id", "victim_id", "perpetrator_id")


@dataclass
class Relabeller:
    """Makes partnership `la` of a multi-partnership history: its own people (salted pseudonyms), shifted in time."""

    la: int
    years: int = 0
    _cache: dict[str, str] = field(default_factory=dict)

    def pseudonym(self, original: str) -> str:
        found = self._cache.get(original)
        if found is None:
            found = self._cache[original] = hashlib.sha256(f"bench-la-{self.la}:{original}".encode()).hexdigest()
        return found

    def __call__(self, event: AgencyEvent) -> AgencyEvent:
        update: dict[str, Any] = {}
        if self.years:
            shift = _YEAR * self.years
            update["occurred_at"] = event.occurred_at + shift
            update["recorded_at"] = event.recorded_at + shift
            previous = getattr(event, "previous_plan_ended_at", None)
            if previous is not None:
                update["previous_plan_ended_at"] = previous + shift
        if self.la:
            for name in _PSEUDONYM_FIELDS:
                value = getattr(event, name, None)
                if value is not None:
                    update[name] = self.pseudonym(value)
            if isinstance(event, DomesticIncidentRecorded):
                update["children"] = [
                    child.model_copy(update={"child_id": self.pseudonym(child.child_id)}) for child in event.children
                ]
        return event.model_copy(update=update) if update else event


def partnership_year(la: int, year: int, *, seed: int = 7) -> list[AgencyEvent]:
    """One simulated Leeds-sized year of partnership `la`, `year` years after 2019.

    Year 0 of partnership 0 is exactly `generate(LEEDS_2019, seed)`. Later years of the same partnership draw
    from another seed but keep its people (the simulator numbers children per partnership), so histories
    continue across years; other partnerships have their own people (salted pseudonyms).
    """
    events = generate(LEEDS_2019, seed=seed + 1000 * la + year)
    relabel = Relabeller(la, year)
    return [relabel(event) for event in events] if (la or year) else events


def history(partnerships: int, year: int, *, seed: int = 7) -> list[AgencyEvent]:
    """`partnerships` simulated years side by side, merged in `occurred_at` order (as they would be published)."""
    merged: list[AgencyEvent] = []
    for la in range(partnerships):
        merged += partnership_year(la, year, seed=seed)
    merged.sort(key=lambda event: event.occurred_at.timestamp())
    return merged


def to_records(events: Iterable[AgencyEvent]) -> list[Record]:
    """The events as published: topic, key and value by the contract."""
    return [(topic_for(e.event_type).name, message_key(e).encode("utf-8"), encode(e)) for e in events]


def publish(bootstrap: str, records: Sequence[Record]) -> float:
    """Publish with the project's EventPublisher (acks=all, idempotent); returns the seconds it took."""
    started = time.perf_counter()
    with EventPublisher.connect(client_options(KafkaSettings(), bootstrap)) as publisher:
        for i, (topic, key, value) in enumerate(records, 1):
            publisher.send(topic, key, value)
            if i % 50_000 == 0:
                say(f"  published {i:,}/{len(records):,}")
        report = publisher.flush()
    if report.failed or report.delivered != len(records):
        raise RuntimeError(f"publishing failed: {report}")
    return time.perf_counter() - started


# --- offsets -------------------------------------------------------------------------------------------------


class Offsets:
    """End offsets of topics and a group's committed offsets, over one admin client and one consumer."""

    def __init__(self, bootstrap: str, topics: Sequence[str] = tuple(EVENT_TOPIC_NAMES)) -> None:
        from kafka import KafkaConsumer
        from kafka.admin import KafkaAdminClient
        from kafka.structs import TopicPartition

        self.topics = list(topics)
        self._consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
        self._admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="bench-offsets")
        self.partitions = [
            TopicPartition(t, p) for t in self.topics for p in sorted(self._consumer.partitions_for_topic(t) or [])
        ]

    def ends(self) -> dict[Any, int]:
        return dict(self._consumer.end_offsets(self.partitions))

    def total(self) -> int:
        return sum(self.ends().values())

    def committed(self, group: str, ends: dict[Any, int]) -> int:
        """Records of `topics` the group has committed (each partition capped at its end offset)."""
        offsets = self._admin.list_group_offsets(group).get(group, {})
        done = 0
        for tp, end in ends.items():
            meta = offsets.get(tp)
            if meta is not None and meta.offset is not None and meta.offset > 0:
                done += min(meta.offset, end)
        return done

    def close(self) -> None:
        self._consumer.close()
        self._admin.close()


# --- the worker process --------------------------------------------------------------------------------------

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int | None = None) -> int:
    """Resident set size of a process (this one by default), from /proc."""
    path = Path(f"/proc/{pid}/status") if pid else Path("/proc/self/status")
    for line in path.read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def peak_rss_bytes(pid: int | None = None) -> int:
    path = Path(f"/proc/{pid}/status") if pid else Path("/proc/self/status")
    for line in path.read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def scheduler_seconds(pid: int) -> tuple[float, float]:
    """(seconds on a CPU, seconds runnable but waiting for a CPU) summed over the process's threads (schedstat).

    Waiting for a CPU is what other processes on a busy machine cost the worker; a worker that lags while using
    little CPU and waiting little is blocked on something else (broker round trips, its own locks).
    """
    running = waiting = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = (task / "schedstat").read_text().split()
            running += int(fields[0])
            waiting += int(fields[1])
    return running / 1e9, waiting / 1e9


@dataclass
class WorkerProcess:
    """The worker (`python -m streams worker -l info`) as a subprocess, optionally under cProfile.

    Stopped by its own pid (SIGTERM, then SIGKILL).
    """

    bootstrap: str
    app_id: str
    workdir: Path
    profile_to: Path | None = None
    workaround: bool = False
    """True: run through bench.run_worker with its changelog-metadata workaround (see there)."""
    extra_env: dict[str, str] = field(default_factory=dict)
    module: str = "streams"
    """The app to run: the project's worker (`streams`), or `bench.naive_faust` (the framework's floor)."""
    process: subprocess.Popen[bytes] | None = None
    _log: IO[str] | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / f"worker-{self.app_id}.log"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(self.workdir),
            "SAFEGUARD_KAFKA__BOOTSTRAP_SERVERS": self.bootstrap,
            "SAFEGUARD_STREAMS__APP_ID": self.app_id,
            "SAFEGUARD_STREAMS__DATA_DIR": str(self.workdir / "streams"),
            "BENCH_CHANGELOG_METADATA_WORKAROUND": "1" if self.workaround else "0",
            **self.extra_env,
        }
        module = "bench.run_worker" if self.workaround else self.module
        if self.profile_to:  # the dump is written however the worker stops (see bench.profiled_worker)
            assert module == "streams", "only the project's worker is profiled"
            command = ["-m", "bench.profiled_worker", str(self.profile_to)]
        else:
            command = ["-m", module]
        self._log = self.log_path.open("a")
        self.process = subprocess.Popen(
            [sys.executable, *command, "worker", "-l", "info"],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, marker: str, timeout_s: float) -> float:
        """Poll the log until `marker` appears; returns the monotonic time it was seen."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if marker in self.log_text():
                return time.monotonic()
            if not self.alive():
                raise RuntimeError(f"the worker died before {marker!r}:\n{self.log_text()[-3000:]}")
            time.sleep(0.05)
        raise RuntimeError(f"no {marker!r} in the worker log within {timeout_s:.0f} s:\n{self.log_text()[-3000:]}")

    def stop(self, timeout_s: float = 60) -> None:
        """SIGTERM (a clean Faust shutdown, which also writes the profile), SIGKILL if it does not go."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None


WORKER_READY = "[^Worker]: Ready"


# --- profiles ------------------------------------------------------------------------------------------------

_CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("idle: waiting in epoll (no work)", ("method 'poll' of 'select.epoll'", "select.epoll")),
    ("rule engine (streams/rules)", ("/streams/rules/",)),
    ("RuleProcessor glue (streams/processor.py)", ("/streams/processor.py",)),
    ("worker glue (streams/app.py, intake.py)", ("/streams/app.py", "/streams/intake.py")),
    ("contract codec and models (schemas/)", ("/schemas/",)),
    ("pydantic / pydantic-core (validation, dumps)", ("pydantic",)),
    ("json (stdlib)", ("/json/", "_json.", "json.decoder", "json.encoder")),
    ("faust (streams, tables, changelog, commits)", ("/faust/",)),
    ("mode (services, timers)", ("/mode/",)),
    ("aiokafka (fetch, produce, protocol)", ("/aiokafka/",)),
    ("kafka-python", ("/kafka/",)),
    ("asyncio event loop", ("/asyncio/", "_asyncio", "_contextvars")),
    ("socket I/O", ("socket", "ssl", "selectors")),
)


def summarise_profile(path: Path, top: int = 25) -> dict[str, Any]:
    """Self time of a cProfile dump grouped by where it was spent, plus the heaviest functions by cumulative time."""
    stats = pstats.Stats(str(path))
    table: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = stats.stats  # type: ignore[attr-defined]
    total = sum(tt for (_cc, _nc, tt, _ct, _callers) in table.values())
    groups: dict[str, float] = {}
    for (filename, _line, name), (_cc, _nc, tt, _ct, _callers) in table.items():
        where = f"{filename}:{name}"
        category = next((label for label, needles in _CATEGORIES if any(n in where for n in needles)), "other")
        groups[category] = groups.get(category, 0.0) + tt
    busy = total - groups.get(_CATEGORIES[0][0], 0.0)
    by_group = {
        label: {
            "seconds": round(seconds, 2),
            "share_of_wall": round(seconds / total, 3) if total else 0.0,
            "share_of_busy": round(seconds / busy, 3) if busy and not label.startswith("idle") else None,
        }
        for label, seconds in sorted(groups.items(), key=lambda item: -item[1])
    }

    def short(filename: str, line: int, name: str) -> str:
        for marker in ("site-packages/", "/work/main/", "/lib/python3"):
            if marker in filename:
                filename = filename.split(marker, 1)[1]
        return f"{filename}:{line}({name})"

    heaviest = sorted(table.items(), key=lambda item: -item[1][3])
    cumulative = [
        {"function": short(*key), "calls": value[1], "cumulative_s": round(value[3], 2), "self_s": round(value[2], 2)}
        for key, value in heaviest[: top * 3]
        if not key[2].startswith("<") or "pydantic_core" in key[2]
    ][:top]
    selftime = [
        {"function": short(*key), "calls": value[1], "self_s": round(value[2], 2)}
        for key, value in sorted(table.items(), key=lambda item: -item[1][2])[:top]
    ]
    return {
        "wall_s": round(total, 2),
        "busy_s": round(busy, 2),
        "self_time_by_area": by_group,
        "top_cumulative": cumulative,
        "top_self": selftime,
    }


def cumulative_of(path: Path, needles: dict[str, tuple[str, str]]) -> dict[str, float]:
    """Cumulative seconds of named functions ({label: (file suffix, function name)}) in a cProfile dump."""
    stats = pstats.Stats(str(path))
    table: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = stats.stats  # type: ignore[attr-defined]
    found: dict[str, float] = {}
    for label, (suffix, name) in needles.items():
        found[label] = round(
            sum(v[3] for (f, _l, n), v in table.items() if f.endswith(suffix) and n == name),
            2,
        )
    return found


def cumulative_calls(path: Path, suffix: str, name: str) -> int:
    """How many times a (synchronous) function was called in a cProfile dump."""
    stats = pstats.Stats(str(path))
    table: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = stats.stats  # type: ignore[attr-defined]
    return sum(v[1] for (f, _l, n), v in table.items() if f.endswith(suffix) and n == name)
