"""One worker holding a million children: its memory (RSS), and how soon it raises an alert after SIGKILL.

    .venv/bin/python -m bench.worker_memory [--children 1000000] [--no-memory-store]

Writes two results, side by side with the `memory://` store on the same changelog in the same run:
`worker_memory` (RSS with the children in state) and `worker_recovery` (SIGKILL -> first alert after restart).

1. Templates: the simulated Leeds year (seed 7) through the pure `RuleProcessor`; its stored states (the compact
   version-2 bytes the tables hold) are sampled.
2. A broker of this run's own. The worker's changelog topics are filled directly with `--children` child states
   and households in the year's proportion, cloned from the templates under new 64-hex ids, each on Kafka's
   partition of its key: what a worker's changelog holds after a national year, without processing one.
3. The worker (`python -m streams worker`, `rocksdb://`, static membership) starts: its first start recovers the
   whole changelog into its RocksDB databases. A probe (a high-risk missing report for a new child) is published
   and its alert awaited; then the worker's RSS and its data directory's size on disk are read.
4. SIGKILL; the same worker restarts (same instance id, same data dir) and a probe is published at once:
   spawn -> the probe's alert is the recovery figure. RSS is read again.
5. Baseline: the worker with `memory://` (state rebuilt from the whole changelog on every start) on the same
   changelog: spawn -> probe alert, and its RSS.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import random
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import (
    WORKER_READY,
    WorkerProcess,
    load_average,
    local_broker,
    rss_bytes,
    say,
    write_result,
)
from bench.worker_throughput import Applier, new_processor
from schemas.codec import encode
from schemas.events import MissingReported
from schemas.topics import ALERTS, MISSING_EPISODES, message_key, topic_for
from streams.tables import murmur2_partition

MIB = 1 << 20
TARGET_RSS_MIB = 1024
TARGET_RECOVERY_S = 30.0
APP_ID = "bench-million"
INSTANCE = "bench-worker-1"
TEMPLATE_SAMPLE = 4000
PARTITIONS = 6


def templates() -> dict[str, Any]:
    """Stored states of the simulated Leeds year (version-2 bytes), sampled, and the year's proportions."""
    from producers.simulate import LEEDS_2019, generate

    events = generate(LEEDS_2019, seed=7)
    applier = Applier(new_processor())
    for i, event in enumerate(events, 1):
        applier.event(event, topic_for(event.event_type).name, murmur2_partition(message_key(event).encode(), 6))
        if i % 1000 == 0:
            applier.processor.flush()
    applier.processor.flush()
    children = applier.processor.tables["child"]
    households = applier.processor.tables["household"]
    rng = random.Random(7)
    sizes = [len(v) for v in children.values()]
    return {
        "child": [children[k] for k in rng.sample(sorted(children), min(TEMPLATE_SAMPLE, len(children)))],
        "household": [households[k] for k in rng.sample(sorted(households), min(TEMPLATE_SAMPLE, len(households)))],
        "year_children": len(children),
        "year_households": len(households),
        "households_per_child": len(households) / len(children),
        "mean_child_state_bytes": round(sum(sizes) / len(sizes), 1),
        "probe_template": next(e for e in events if isinstance(e, MissingReported)),
    }


def fill_changelogs(bootstrap: str, sample: dict[str, Any], children: int) -> dict[str, Any]:
    """Write the cloned states straight into the worker's changelog topics, each at its key's partition."""
    from kafka import KafkaProducer

    from safeguard.kafka_clients import client_options
    from safeguard.kafka_local import create_topics
    from safeguard.settings import KafkaSettings, Settings
    from streams.app import internal_topics
    from streams.settings import StreamsSettings

    settings = Settings(_env_file=None, kafka=KafkaSettings(), streams=StreamsSettings(app_id=APP_ID))
    create_topics(client_options(KafkaSettings(), bootstrap), PARTITIONS, 1, internal_topics(settings))
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks=1, linger_ms=20, batch_size=512 * 1024, max_request_size=8 * MIB
    )
    households = round(children * sample["households_per_child"])
    started = time.perf_counter()
    written = 0
    try:
        for kind, count, fill in (("child", children, "c"), ("household", households, "d")):
            topic = f"{APP_ID}-{kind}-state-changelog"
            states = sample[kind]
            for i in range(count):
                key = f"{i:016x}".rjust(64, fill).encode()
                producer.send(topic, key=key, value=states[i % len(states)], partition=murmur2_partition(key, 6))
                written += 1
                if written % 200_000 == 0:
                    say(f"  {written:,} states written to the changelogs")
        producer.flush()
    finally:
        producer.close()
    seconds = time.perf_counter() - started
    say(f"changelogs: {children:,} children and {households:,} households in {seconds:.0f} s")
    return {"children": children, "households": households, "seconds": round(seconds, 1)}


class ProbeWatch:
    """Publishes a probe (a high-risk missing report for a new child) and waits for the alert it raises."""

    def __init__(self, bootstrap: str, template: MissingReported) -> None:
        from kafka import KafkaConsumer, KafkaProducer
        from kafka.structs import TopicPartition

        self.template = template
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
        parts = [TopicPartition(ALERTS.name, p) for p in sorted(self.consumer.partitions_for_topic(ALERTS.name) or [])]
        self.consumer.assign(parts)
        self.consumer.seek_to_end(*parts)
        for tp in parts:
            self.consumer.position(tp)

    def publish(self) -> str:
        now = datetime.now(UTC)
        probe = self.template.model_copy(
            update={
                "event_id": str(uuid.uuid4()),
                "child_id": uuid.uuid4().hex + uuid.uuid4().hex,
                "episode_id": f"BENCH-PROBE-{uuid.uuid4().hex[:16]}",
                "risk_level": "high",
                "occurred_at": now,
                "recorded_at": now,
            }
        )
        self.producer.send(MISSING_EPISODES.name, key=probe.child_id.encode(), value=encode(probe)).get(timeout=30)
        return probe.event_id

    def wait(self, event_id: str, worker: WorkerProcess, timeout_s: float) -> tuple[float, int]:
        """The monotonic time the probe's alert was read, and how many other alerts came before it."""
        deadline = time.monotonic() + timeout_s
        others = 0
        while time.monotonic() < deadline:
            for records in self.consumer.poll(timeout_ms=100, max_records=5000).values():
                for record in records:
                    if event_id in json.loads(record.value).get("evidence_event_ids", ()):
                        return time.monotonic(), others
                    others += 1
            if not worker.alive():
                raise RuntimeError(f"the worker died:\n{worker.log_text()[-3000:]}")
        raise RuntimeError(f"no alert for the probe within {timeout_s:.0f} s:\n{worker.log_text()[-4000:]}")

    def close(self) -> None:
        self.producer.close()
        self.consumer.close()


def disk_mib(path: Path) -> float:
    return round(sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / MIB, 1)


def start_and_probe(
    bootstrap: str, watch: ProbeWatch, workdir: Path, store: str, label: str, timeout_s: float
) -> dict[str, Any]:
    """Spawn the worker, publish a probe at once, wait for its alert; the worker is left running."""
    logs = workdir / label.split(" ")[0].replace(":", "").replace("/", "")
    logs.mkdir(parents=True, exist_ok=True)
    worker = WorkerProcess(  # its own log per start (the log is read for Ready); one data dir for every start
        bootstrap,
        APP_ID,
        logs,
        extra_env={
            "SAFEGUARD_STREAMS__STORE_URL": store,
            "SAFEGUARD_STREAMS__GROUP_INSTANCE_ID": INSTANCE,
            "SAFEGUARD_STREAMS__DATA_DIR": str(workdir / "streams"),
        },
    )
    spawned = time.time()
    worker.start()
    try:
        event_id = watch.publish()
        alerted, others = watch.wait(event_id, worker, timeout_s)
    except BaseException:
        worker.stop()  # by its own pid; nothing of this run is left running
        raise
    alerted = time.time() - (time.monotonic() - alerted)  # on the wall clock, as the worker's log lines are
    log = worker.log_text()
    for _ in range(20):  # the Ready line may still be in the worker's output buffer
        if (ready := ready_at(log)) is not None:
            break
        time.sleep(0.25)
        log = worker.log_text()
    figures = {
        "store": store,
        "spawn_to_ready_s": round(ready - spawned, 2) if ready else None,
        "spawn_to_probe_alert_s": round(alerted - spawned, 2),
        "alerts_before_the_probe": others,
        "rss_mib_at_probe_alert": round(rss_bytes(worker.pid) / MIB, 1),
        "recovery_log": [line.strip()[-160:] for line in log.splitlines() if "Recovery" in line or "recovered" in line][
            -6:
        ],
        "_worker": worker,
    }
    say(
        f"{label}: spawn -> Ready {figures['spawn_to_ready_s']} s, "
        f"-> probe alert {figures['spawn_to_probe_alert_s']} s, RSS {figures['rss_mib_at_probe_alert']:,.0f} MiB"
    )
    return figures


def ready_at(log: str) -> float | None:
    """When Faust logged Ready (its log lines start with `[%Y-%m-%d %H:%M:%S,%f]`, local time), as epoch seconds."""
    for line in log.splitlines():
        if WORKER_READY in line and line.startswith("["):
            with contextlib.suppress(ValueError):
                return datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f").timestamp()
    return None


def kill(worker: WorkerProcess) -> None:
    """SIGKILL, as a crash: nothing of Faust's shutdown runs."""
    assert worker.process is not None
    worker.process.send_signal(signal.SIGKILL)
    worker.process.wait()
    worker.stop()  # closes the log


def settle(worker: WorkerProcess, seconds: float) -> float:
    """Let the worker commit and write its state; returns its RSS after."""
    time.sleep(seconds)
    return round(rss_bytes(worker.pid) / MIB, 1)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--children", type=int, default=1_000_000)
    parser.add_argument("--no-memory-store", action="store_true", help="skip the memory:// baseline")
    parser.add_argument("--timeout", type=float, default=900.0, help="longest wait for one probe's alert, seconds")
    args = parser.parse_args(argv)

    load_before = load_average()
    say("templates: the simulated Leeds year through the RuleProcessor")
    sample = templates()
    template = sample.pop("probe_template")
    gc.collect()
    figures: dict[str, Any] = {
        "templates": {k: v for k, v in sample.items() if not isinstance(v, list)},
    }
    workdir = Path(tempfile.mkdtemp(prefix="bench-million-"))
    try:
        with local_broker(heap="1g") as bootstrap:
            figures["changelogs"] = fill_changelogs(bootstrap, sample, args.children)
            del sample
            gc.collect()
            watch = ProbeWatch(bootstrap, template)
            try:
                first = start_and_probe(bootstrap, watch, workdir, "rocksdb://", "first-start (full recovery)", 1800)
                worker = first.pop("_worker")
                try:
                    first["rss_mib_settled"] = settle(worker, 10)
                    first["data_dir_mib_on_disk"] = disk_mib(workdir / "streams")
                    settled, on_disk = first["rss_mib_settled"], first["data_dir_mib_on_disk"]
                    say(f"  settled RSS {settled:,.0f} MiB, {on_disk:,.0f} MiB on disk")
                finally:
                    kill(worker)
                say(f"SIGKILLed worker pid {worker.pid}")
                figures["rocksdb_first_start"] = first
                again = start_and_probe(bootstrap, watch, workdir, "rocksdb://", "restart after SIGKILL", args.timeout)
                worker = again.pop("_worker")
                try:
                    again["rss_mib_settled"] = settle(worker, 10)
                finally:
                    worker.stop()
                figures["rocksdb_restart_after_sigkill"] = again
                if not args.no_memory_store:
                    shutil.rmtree(workdir / "streams", ignore_errors=True)
                    memory = start_and_probe(bootstrap, watch, workdir, "memory://", "memory-store start", args.timeout)
                    worker = memory.pop("_worker")
                    try:
                        memory["rss_mib_settled"] = settle(worker, 10)
                    finally:
                        worker.stop()
                    figures["memory_store_start"] = memory
            finally:
                watch.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    first, again = figures["rocksdb_first_start"], figures["rocksdb_restart_after_sigkill"]
    memory = figures.get("memory_store_start")
    load_after = load_average()
    children, households = figures["changelogs"]["children"], figures["changelogs"]["households"]
    common_notes = [
        f"State: {children:,} children and {households:,} households (the Leeds year's proportion), cloned from a "
        f"sample of the simulated Leeds year's end-of-year states (mean child state "
        f"{figures['templates']['mean_child_state_bytes']:.0f} bytes stored) under new ids, written straight into "
        f"the worker's changelog topics at each key's partition.",
        "The worker: `python -m streams worker` with default settings (RocksDB block cache 64 MiB shared by every "
        "database, state cache of 50,000 decoded subjects, batch 1,000), static membership (group.instance.id set), "
        "one broker of this run's own, 6 partitions, all on one shared 2-core VM.",
        f"Load average before {load_before}, after {load_after}.",
    ]
    write_result(
        "worker_memory",
        metric=f"RSS of one worker with {children:,} children in state (rocksdb:// store, after a probe alert)",
        value=again["rss_mib_settled"],
        unit="MiB",
        baseline="the same worker with the memory:// store on the same changelog, same run",
        baseline_value=memory["rss_mib_settled"] if memory else 0.0,
        target="<= 1 GiB (1,024 MiB) with one million children; state on disk reported",
        met=again["rss_mib_settled"] <= TARGET_RSS_MIB,
        parameters={"children": args.children},
        notes=[
            f"RSS after the restart's probe alert and 10 s settling: {again['rss_mib_settled']:,.0f} MiB; after the "
            f"first start (which recovered the whole changelog into RocksDB): {first['rss_mib_settled']:,.0f} MiB. "
            f"State on disk: {first['data_dir_mib_on_disk']:,.0f} MiB in the worker's data dir.",
            *(
                [
                    f"Baseline, memory:// on the same changelog: {memory['rss_mib_settled']:,.0f} MiB (every state "
                    "held in the process as bytes)."
                ]
                if memory
                else []
            ),
            "The RSS includes the deadline index rebuilt at the first input (only subjects holding a duty are "
            "decoded) and the cache of recently used decoded states.",
            *common_notes,
        ],
        details=figures,
    )
    write_result(
        "worker_recovery",
        metric=f"SIGKILL with {children:,} children in state -> first alert after restart (spawn -> probe alert)",
        value=again["spawn_to_probe_alert_s"],
        unit="s",
        baseline="the memory:// store (whole changelog replayed) on the same changelog, same run",
        baseline_value=memory["spawn_to_probe_alert_s"] if memory else 0.0,
        target=f"<= {TARGET_RECOVERY_S:.0f} s",
        met=again["spawn_to_probe_alert_s"] <= TARGET_RECOVERY_S,
        parameters={"children": args.children},
        notes=[
            f"Restart after SIGKILL (rocksdb://, same instance id and data dir): spawn -> Faust Ready "
            f"{again['spawn_to_ready_s']} s, spawn -> the probe's alert {again['spawn_to_probe_alert_s']} s (the probe "
            "was published right after the spawn; the first input rebuilds the deadline index over every stored "
            "state).",
            f"First start (the whole changelog recovered into RocksDB): spawn -> probe alert "
            f"{first['spawn_to_probe_alert_s']} s.",
            *(
                [
                    f"Baseline, memory:// (rebuilds the whole changelog on every start): spawn -> probe alert "
                    f"{memory['spawn_to_probe_alert_s']} s."
                ]
                if memory
                else []
            ),
            *common_notes,
        ],
        details=figures,
    )


if __name__ == "__main__":
    main()
