"""Sink rows per second into chDB, side by side with clickhouse-connect inserting the same rows directly (the limit).

    .venv/bin/python -m bench.sink_throughput [--days 365] [--batch-rows 20000]

One run, one Kafka broker of its own (temporary state dir, stopped by its pid), the same simulated events:

1. the limit: the rows the sink would write (mapped up front, outside the timing) inserted with clickhouse-connect
   into a fresh chDB store, in the batches the sink would use (`sinks.store.insert_rows`);
2. the sink: `SinkService` with a real KafkaConsumer and the chDB store reading every contract topic from the
   start until caught up; rows/s from the first message received (after the group join) to the last commit.
   The decode/map cost alone (no Kafka, no store) is reported as well.

Writes bench/results/sink_throughput.json (metric, value, unit, baseline_value, ratio, machine, ...).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kafka import KafkaProducer

from producers.simulate import LEEDS_2019, generate
from safeguard.kafka_clients import client_options
from safeguard.kafka_local import LocalBroker
from safeguard.settings import ClickHouseSettings, KafkaSettings, LocalKafkaSettings
from schemas.codec import encode
from schemas.topics import DEFAULT_PARTITIONS, message_key, topic_for
from sinks.migrate import migrate
from sinks.records import Message, rows_for_message
from sinks.service import ClickHouseStore, SinkService, kafka_consumer, tune_gc
from sinks.store import connect, insert_rows

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "bench" / "results" / "sink_throughput.json"
TARGET = 50_000.0


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def _version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _java() -> str:
    import subprocess

    try:
        done = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    first = (done.stderr or done.stdout).strip().splitlines()
    return first[0] if first else "unknown"


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = 0.0
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = round(int(line.split()[1]) / (1 << 20), 1)
    return {
        "cpu_model": cpu,
        "cores": os.cpu_count(),
        "ram_gib": mem,
        "os": platform.platform(),
        "python": platform.python_version(),
        "kafka": LocalKafkaSettings().version,
        "clickhouse_connect": _version("clickhouse-connect"),
        "chdb": _version("chdb"),
        "kafka_python": _version("kafka-python"),
        "faust_streaming": _version("faust-streaming"),
        "aiokafka": _version("aiokafka"),
        "java": _java(),
        "pydantic": _version("pydantic"),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "description": (
            "a shared 2-core VM: other engineers' tests and brokers may run at the same time; the broker, "
            "the sink and chDB share the same cores"
        ),
    }


@contextlib.contextmanager
def local_broker() -> Iterator[str]:
    state_dir = Path(tempfile.mkdtemp(prefix="bench-sink-kafka-"))
    broker = LocalBroker(LocalKafkaSettings(state_dir=state_dir), partitions=DEFAULT_PARTITIONS)
    try:
        state = broker.start(progress=say)
        say(f"broker pid {state.pid} at {state.bootstrap}")
        yield state.bootstrap
    finally:
        stopped = broker.stop()
        if stopped is not None:
            say(f"stopped broker pid {stopped.pid}")
        shutil.rmtree(state_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365, help="days of the simulated Leeds year")
    parser.add_argument("--batch-rows", type=int, default=ClickHouseSettings().batch_rows)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    tune_gc()  # as `safeguard sink run` does
    load_at_start = [round(x, 2) for x in os.getloadavg()]

    say(f"generating {args.days} simulated days ...")
    events = generate(LEEDS_2019, seed=args.seed, days=args.days)
    records = [(topic_for(e.event_type).name, message_key(e).encode(), encode(e)) for e in events]
    say(f"{len(records):,} events")

    # Decode + map alone (pure, in process): what the sink's Python does per message before the store.
    messages = [Message(t, 0, i, k, v, 0) for i, (t, k, v) in enumerate(records)]
    now = datetime.now(UTC)
    started = time.perf_counter()
    rows = [r for m in messages for r in rows_for_message(m, now)]
    map_s = time.perf_counter() - started
    say(f"decode + map: {len(rows):,} rows in {map_s:.2f}s = {len(rows) / map_s:,.0f} rows/s")

    work = Path(tempfile.mkdtemp(prefix="bench-sink-"))
    try:
        # 1. the limit: clickhouse-connect inserting the same rows in the sink's batches.
        limit_settings = ClickHouseSettings(url=f"chdb://{work / 'limit'}", batch_rows=args.batch_rows)
        client = connect(limit_settings)
        migrate(client, limit_settings)
        batches: list[list[Any]] = []
        for i in range(0, len(messages), args.batch_rows):
            batches.append([r for m in messages[i : i + args.batch_rows] for r in rows_for_message(m, now)])
        started, cpu = time.perf_counter(), time.process_time()
        for n, batch in enumerate(batches):
            insert_rows(client, "safeguard", batch, token=f"limit:{n}")
        limit_s = time.perf_counter() - started
        limit_cpu_s = time.process_time() - cpu
        stored_limit = sum(
            int(client.command(f"SELECT count() FROM safeguard.{t}"))
            for t in ("contacts", "contact_decisions", "missing_episodes", "domestic_incidents",
                      "domestic_incident_children", "cp_plans", "data_quality_findings")
        )  # fmt: skip
        client.close()  # chDB: one engine path per process; the sink's store comes next
        limit_rate = len(rows) / limit_s
        say(f"limit (clickhouse-connect direct): {len(rows):,} rows in {limit_s:.2f}s = {limit_rate:,.0f} rows/s")

        # 2. the sink, through a real broker.
        with local_broker() as bootstrap:
            say("publishing ...")
            producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, batch_size=512 * 1024)
            for topic, key, value in records:
                producer.send(topic, key=key, value=value)
            producer.flush(timeout=300)
            producer.close()
            say("published; running the sink until caught up ...")
            section = ClickHouseSettings(
                url=f"chdb://{work / 'sink'}",
                batch_rows=args.batch_rows,
                consumer_group=f"bench-{uuid.uuid4().hex[:8]}",
            )
            sink_client = connect(section)
            migrate(sink_client, section)
            consumer = kafka_consumer(client_options(KafkaSettings(), bootstrap), section)
            service = SinkService(consumer, ClickHouseStore(section, client=sink_client), section)
            started, cpu = time.perf_counter(), time.process_time()
            stats = service.run(until_caught_up=True)
            total_s = time.perf_counter() - started
            sink_cpu_s = time.process_time() - cpu  # this process: consumer, mapping, insert thread, chDB
        sink_rate = stats.rows_per_second() or 0.0
        check = connect(section)
        stored_sink = sum(
            int(check.command(f"SELECT count() FROM safeguard.{t} FINAL"))
            for t in ("contacts", "contact_decisions", "missing_episodes", "domestic_incidents",
                      "domestic_incident_children", "cp_plans", "data_quality_findings")
        )  # fmt: skip
        check.close()
        say(f"rows per CPU second: limit {len(rows) / limit_cpu_s:,.0f}, sink {stats.rows / sink_cpu_s:,.0f}")
        say(
            f"sink: {stats.rows:,} rows from {stats.messages:,} messages, {sink_rate:,.0f} rows/s "
            f"(run() total {total_s:.2f}s including the group join)"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)

    result = {
        "name": "sink_throughput",
        "metric": "sink rows per second into chDB (Kafka fetch, decode, map, insert, commit)",
        "value": round(sink_rate),
        "unit": "rows/s",
        "baseline": "clickhouse-connect inserting the same rows directly into chDB, same batches (the limit)",
        "baseline_value": round(limit_rate),
        "ratio": round(sink_rate / limit_rate, 3) if limit_rate else None,
        "target": f">= {TARGET:,.0f} rows/s",
        "met": sink_rate >= TARGET,
        "machine": machine(),
        "parameters": {"days": args.days, "seed": args.seed, "events": len(records), "batch_rows": args.batch_rows},
        "details": {
            "load_average_at_start": load_at_start,
            "limit_rows_per_cpu_second": round(len(rows) / limit_cpu_s),
            "sink_rows_per_cpu_second": round(stats.rows / sink_cpu_s),
            "sink_cpu_seconds": round(sink_cpu_s, 2),
            "rows": len(rows),
            "decode_and_map_rows_per_s": round(len(rows) / map_s),
            "sink_messages": stats.messages,
            "sink_rows": stats.rows,
            "sink_batches": stats.batches,
            "sink_run_seconds_including_group_join": round(total_s, 2),
            "rows_stored_limit": stored_limit,
            "rows_stored_sink_final": stored_sink,
        },
        "notes": [
            "Throughput counts from the first message received to the last commit (the group join is excluded).",
            "Rows per CPU second (this process's CPU time, all threads) is the steadier figure on a shared machine.",
            "Rows include one row per child of each domestic incident; the limit has the mapping done up front.",
            "Where a message's CPU goes (measured separately on this machine): kafka-python fetch and record "
            "parsing ~11 us (the same with check_crcs off or larger fetches; with the C crc32c installed), "
            "pydantic validation of the contract ~11 us, mapping ~5 us, column grouping ~2 us, clickhouse-connect "
            "serialisation ~4 us per row, then chDB's own work. Inserts run in a second thread, overlapping "
            "with reading (chDB's engine runs outside the GIL), but all of the Python shares one core: about "
            "30 us of Python per message caps one sink process near 35,000 rows/s on an idle core of this "
            "machine, below the 50,000 rows/s target. A ClickHouse server lets several sink processes share the "
            "partitions (one consumer group); chDB allows one process per store.",
        ],
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    say(f"wrote {RESULT.relative_to(ROOT)}: {result['value']:,} rows/s vs limit {result['baseline_value']:,} rows/s")


if __name__ == "__main__":
    main()
