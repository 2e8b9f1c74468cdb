"""Sink rows per second into chDB, side by side with clickhouse-connect inserting the same columns (the limit) and
with the sink of an older commit.

    .venv/bin/python -m bench.sink_throughput [--days 365] [--batch-rows 20000] [--rounds 3] [--against 8d29f47]

One Kafka broker of its own (temporary state dir, stopped by its pid), the simulated events published once. Then
rounds, each measurement in a fresh interpreter with a fresh chDB store (migrated by this tree, so every sink writes
into the same schema, materialized views included), so that machine noise falls on all alike:

1. the limit: the rows the sink would write (mapped up front, outside the timing) inserted with clickhouse-connect
   (`sinks.store.insert_batch`, column-oriented) in the sink's batches;
2. the sink of this tree: `SinkService` with a real KafkaConsumer (its own consumer group) reading every contract
   topic from the start until caught up; rows/s from the first message received (after the group join) to the
   last commit, and the CPU time of the whole process (consumer, mapping, insert thread, chDB) per row;
3. the sink at `--against` (checked out into a temporary git worktree, removed afterwards), the same way.

Also measured once, in process: the pure path of both trees (decode, validate, map into what the insert takes,
no Kafka, no store; CPU µs per message, best of three passes) and kafka-python's fetch alone (poll every record,
CPU µs per record). Writes bench/results/sink_throughput.json; the headline value is the median round.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from kafka import KafkaProducer

from bench.common import ROOT, load_average, local_broker, say, to_records, write_result
from producers.simulate import LEEDS_2019, generate
from safeguard.kafka_clients import client_options
from safeguard.settings import ClickHouseSettings, KafkaSettings
from sinks.service import SINK_TOPICS, kafka_consumer, tune_gc

TARGET = 50_000.0
DEFAULT_AGAINST = "8d29f47"
"""The last commit before the column path (schemas.fastcheck, sinks.columns)."""

# The measuring scripts run inside the tree being measured and use only what both trees have.
_SINK = r"""
import json, sys, time, uuid
from safeguard.kafka_clients import client_options
from safeguard.settings import ClickHouseSettings, KafkaSettings
from sinks.service import ClickHouseStore, SinkService, kafka_consumer, tune_gc
from sinks.store import connect

bootstrap, store, batch_rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
tune_gc()  # as `safeguard sink run` does
group = f"bench-{uuid.uuid4().hex[:8]}"
section = ClickHouseSettings(url=f"chdb://{store}", batch_rows=batch_rows, consumer_group=group)
client = connect(section)  # migrated by _MIGRATE: every store has this tree's schema, whichever sink writes to it
consumer = kafka_consumer(client_options(KafkaSettings(), bootstrap), section)
service = SinkService(consumer, ClickHouseStore(section, client=client), section)
cpu, wall = time.process_time(), time.perf_counter()
stats = service.run(until_caught_up=True)
cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
check = connect(section)
tables = ("contacts", "contact_decisions", "missing_episodes", "domestic_incidents", "domestic_incident_children",
          "cp_plans", "data_quality_findings")
stored = sum(int(check.command(f"SELECT count() FROM safeguard.{t} FINAL")) for t in tables)
check.close()
print(json.dumps({"rows_per_s": stats.rows_per_second() or 0.0, "rows": stats.rows, "messages": stats.messages,
                  "batches": stats.batches, "cpu_s": cpu, "run_s": wall, "stored_final": stored}))
"""

_MIGRATE = r"""
import sys
from safeguard.settings import ClickHouseSettings
from sinks.migrate import migrate
from sinks.store import connect

section = ClickHouseSettings(url=f"chdb://{sys.argv[1]}")
client = connect(section)
print(__import__("json").dumps({"applied": migrate(client, section)}))
client.close()
"""

_LIMIT = r"""
import gc, json, pickle, sys, time
from datetime import UTC, datetime
from safeguard.settings import ClickHouseSettings
from sinks.columns import TableBatch
from sinks.records import Message, MessageMapper
from sinks.service import tune_gc
from sinks.store import connect, insert_batch, insert_types

records, store, batch_rows = pickle.load(open(sys.argv[1], "rb")), sys.argv[2], int(sys.argv[3])
tune_gc()
now = datetime.now(UTC)
stamp = int(now.timestamp() * 1000)
batches = []
for start in range(0, len(records), batch_rows):
    batch, mapper = TableBatch(), MessageMapper()
    for i, (topic, key, value) in enumerate(records[start : start + batch_rows], start):
        mapper.add(batch, Message(topic, 0, i, key, value, stamp), now)
    batches.append(batch)
section = ClickHouseSettings(url=f"chdb://{store}", batch_rows=batch_rows)
client = connect(section)  # migrated by _MIGRATE
types = insert_types(client, "safeguard", {t for b in batches for t in b.columns})  # as the sink's store does
gc.collect()
cpu, wall = time.process_time(), time.perf_counter()
for n, batch in enumerate(batches):
    insert_batch(client, "safeguard", batch, token=f"limit:{n}", types=types)
cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
rows = sum(len(b) for b in batches)
client.close()
print(json.dumps({"rows_per_s": rows / wall, "rows": rows, "cpu_s": cpu, "run_s": wall}))
"""

_PURE = r"""
import gc, json, pickle, sys, time
from datetime import UTC, datetime
from sinks.records import Message
from sinks.service import tune_gc

records, batch_rows = pickle.load(open(sys.argv[1], "rb")), int(sys.argv[2])
tune_gc()
now = datetime.now(UTC)
stamp = int(now.timestamp() * 1000)
messages = [Message(topic, 0, i, key, value, stamp) for i, (topic, key, value) in enumerate(records)]
try:  # this tree: what the sink's consumer thread does per message
    from sinks.columns import TableBatch
    from sinks.records import MessageMapper

    def one_pass():
        for start in range(0, len(messages), batch_rows):
            batch, mapper = TableBatch(), MessageMapper()
            for m in messages[start : start + batch_rows]:
                mapper.add(batch, m, now)
except ImportError:  # before: models and row dicts, then grouped per table (in the insert thread, same GIL)
    from sinks.mapping import group_by_table
    from sinks.records import rows_for_message

    def one_pass():
        for start in range(0, len(messages), batch_rows):
            group_by_table([r for m in messages[start : start + batch_rows] for r in rows_for_message(m, now)])
gc.collect()
gc.freeze()
best = float("inf")
for _ in range(3):
    cpu = time.process_time()
    one_pass()
    best = min(best, time.process_time() - cpu)
print(json.dumps({"us_per_message": best / len(messages) * 1e6}))
"""


def run_script(tree: Path, script: str, *args: str) -> dict[str, Any]:
    """Run a measuring script in a fresh interpreter inside `tree`; its last stdout line is JSON."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(
        [sys.executable, "-c", script, *args], cwd=tree, env=env, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise SystemExit(f"measuring in {tree} failed:\n{out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def publish_all(bootstrap: str, records: list[tuple[str, bytes, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, batch_size=512 * 1024)
    for topic, key, value in records:
        producer.send(topic, key=key, value=value)
    producer.flush(timeout=300)
    producer.close()


def fetch_alone(bootstrap: str, total: int, batch_rows: int) -> dict[str, float]:
    """kafka-python reading every record as the sink's consumer does (same settings, partitions assigned rather than
    joined, so no group join is timed), nothing else."""
    from kafka.structs import TopicPartition

    section = ClickHouseSettings(batch_rows=batch_rows, consumer_group=f"bench-fetch-{uuid.uuid4().hex[:8]}")
    consumer = kafka_consumer(client_options(KafkaSettings(), bootstrap), section)
    partitions = [TopicPartition(t, p) for t in SINK_TOPICS for p in sorted(consumer.partitions_for_topic(t) or ())]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    read, wall, cpu = 0, time.perf_counter(), time.process_time()
    while read < total:
        read += sum(len(records) for records in consumer.poll(timeout_ms=500, max_records=batch_rows).values())
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    consumer.close()
    return {"records_per_s": read / wall, "cpu_us_per_record": cpu / read * 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365, help="days of the simulated Leeds year")
    parser.add_argument("--batch-rows", type=int, default=ClickHouseSettings().batch_rows)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of limit, sink, older sink")
    parser.add_argument("--against", default=DEFAULT_AGAINST, help="the commit whose sink runs beside (or 'none')")
    args = parser.parse_args()
    tune_gc()
    load_at_start = load_average()
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout

    say(f"generating {args.days} simulated days ...")
    records = to_records(generate(LEEDS_2019, seed=args.seed, days=args.days))
    say(f"{len(records):,} events")
    runs: dict[str, list[dict[str, Any]]] = {"limit": [], "sink": [], "against": []}
    schema: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-sink-") as tmp:
        work = Path(tmp)
        records_file = work / "records.pickle"
        records_file.write_bytes(pickle.dumps(records))
        older = work / "older"
        against = args.against if args.against != "none" else None
        if against:
            subprocess.run(["git", "worktree", "add", "--detach", "-q", str(older), against], cwd=ROOT, check=True)
        try:
            pure = {"here": run_script(ROOT, _PURE, str(records_file), str(args.batch_rows))["us_per_message"]}
            if against:
                pure["against"] = run_script(older, _PURE, str(records_file), str(args.batch_rows))["us_per_message"]
            say(f"pure path (decode, validate, map): {pure} µs CPU/message")
            with local_broker() as bootstrap:
                say("publishing ...")
                publish_all(bootstrap, records)
                fetch = fetch_alone(bootstrap, len(records), args.batch_rows)
                say(f"kafka-python fetch alone: {fetch['records_per_s']:,.0f} records/s, "
                    f"{fetch['cpu_us_per_record']:.1f} µs CPU/record")  # fmt: skip
                for n in range(1, args.rounds + 1):
                    trees = [("limit", ROOT, _LIMIT), ("sink", ROOT, _SINK)]
                    if against:
                        trees.append(("against", older, _SINK))
                    for name, tree, script in trees:
                        store = str(work / f"{name}-{n}")
                        schema = run_script(ROOT, _MIGRATE, store)["applied"]
                        before = load_average()
                        first = str(records_file) if script is _LIMIT else bootstrap
                        run = run_script(tree, script, first, store, str(args.batch_rows))
                        run.update(load_before=before, load_after=load_average(), cpu_us_per_row=_per_row(run))
                        runs[name].append(run)
                        say(
                            f"round {n}/{args.rounds} {name}: {run['rows_per_s']:,.0f} rows/s, "
                            f"{run['cpu_us_per_row']:.1f} µs CPU/row (load {before} -> {run['load_after']})"
                        )
        finally:
            if against:
                subprocess.run(["git", "worktree", "remove", "--force", str(older)], cwd=ROOT, check=False)
    _report(args, runs, pure, fetch, len(records), head.strip(), load_at_start, schema)


def _per_row(run: dict[str, Any]) -> float:
    return float(run["cpu_s"]) / max(int(run["rows"]), 1) * 1e6


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(float(r[key]) for r in runs)) if runs else 0.0


def _report(
    args: argparse.Namespace,
    runs: dict[str, list[dict[str, Any]]],
    pure: dict[str, float],
    fetch: dict[str, float],
    events: int,
    head: str,
    load_at_start: list[float],
    schema: list[str],
) -> None:
    sink, limit, older = (_median(runs[k], "rows_per_s") for k in ("sink", "limit", "against"))
    sink_cpu, limit_cpu, older_cpu = (_median(runs[k], "cpu_us_per_row") for k in ("sink", "limit", "against"))
    best = max(float(r["rows_per_s"]) for r in runs["sink"])
    rows = runs["sink"][0]["rows"]
    per_row = {  # the separate measurements per row of the sink (rows per message: incidents add child rows)
        "decode, validate, map": pure["here"] * events / rows,
        "kafka-python fetch": fetch["cpu_us_per_record"] * events / rows,
        "insert (as the limit)": limit_cpu,
    }
    per_row["the rest"] = sink_cpu - sum(per_row.values())
    compared = (
        f"The sink at {args.against} in the same rounds: {older:,.0f} rows/s, {older_cpu:.1f} µs CPU/row "
        f"(this tree {sink / older:.2f}x the rows/s, {older_cpu / sink_cpu:.2f}x less CPU per row)."
        if runs["against"]
        else "No older sink measured (--against none)."
    )
    write_result(
        "sink_throughput",
        metric="sink rows per second into chDB (Kafka fetch, decode, map, insert, commit), median of the rounds",
        value=round(sink),
        unit="rows/s",
        baseline="clickhouse-connect inserting the same columns directly into chDB, same batches (the limit)",
        baseline_value=round(limit),
        target=f">= {TARGET:,.0f} rows/s",
        met=sink >= TARGET,
        parameters={
            "days": args.days,
            "seed": args.seed,
            "events": events,
            "rows": rows,
            "batch_rows": args.batch_rows,
            "rounds": args.rounds,
            "against": args.against,
            "head": head,
            "schema": schema,
        },
        notes=[
            f"Sink (median of {args.rounds} rounds): {sink:,.0f} rows/s (best {best:,.0f}), {sink_cpu:.1f} µs CPU "
            f"per row; the limit {limit:,.0f} rows/s, {limit_cpu:.1f} µs CPU/row; ratio {sink / limit:.2f}.",
            compared,
            "Pure path per message (decode, validate, map into what the insert takes; no Kafka, no store): "
            + ", ".join(f"{k} {v:.1f} µs CPU" for k, v in pure.items())
            + ". kafka-python's fetch alone (same consumer settings): "
            f"{fetch['cpu_us_per_record']:.1f} µs CPU/record, {fetch['records_per_s']:,.0f} records/s.",
            "Where the sink's CPU per row goes, from those measurements: "
            + ", ".join(f"{k} {v:.1f} µs" for k, v in per_row.items())
            + " (the rest: kafka-python's IO thread, batching and commits, and what contention adds).",
            f"Each measurement runs in a fresh interpreter with a fresh chDB store, migrated by this tree "
            f"({', '.join(schema)}) before either sink writes to it; rounds alternate limit, sink, older sink. "
            "Throughput counts from the first message received to the last commit (the group join is excluded); "
            "CPU is the whole process's (all threads: consumer, mapping, insert, chDB's engine) over the run, group "
            "join included. Rows include one row per child of each domestic incident.",
            f"Load average at the start {load_at_start}; per round in the details (load_before, load_after).",
        ],
        details={
            "load_average_at_start": load_at_start,
            "pure_path_us_per_message": pure,
            "cpu_us_per_row_split": {k: round(v, 2) for k, v in per_row.items()},
            "fetch_alone": fetch,
            "rounds_sink": runs["sink"],
            "rounds_limit": runs["limit"],
            f"rounds_sink_at_{args.against}": runs["against"],
        },
    )


if __name__ == "__main__":
    main()
