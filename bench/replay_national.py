"""Replaying six years of national-scale history (~30 million events) through the in-process engine.

    .venv/bin/python -m bench.replay_national [--partnerships 6] [--years 6] [--kafka-replay-seconds 0]

What a backtest does: `streams.replay.Replay` (the worker's own rule step, `RuleProcessor`, with states kept decoded
in memory) over a national-like history, one process, no Kafka; beside it, on the same events in the same run, the
`RuleProcessor` driven as a worker drives it (its compact stored form flushed every 1,000 events, a bounded cache of
decoded states), which an in-process replay does not need. `--partnerships` simulated Leeds-sized partnerships (each
with its own children) interleaved in event time, over `--years` consecutive years (later years keep each
partnership's children, so histories continue). Years are generated and processed one at a time, so the events of
only one year are in memory: RSS is sampled after each year to show that memory stays flat apart from the state
itself. The time for 30,000,000 events is extrapolated from the measured rate over the whole run (labelled as such).

`--kafka-replay-seconds N` also replays the start of the same history through Kafka and one real worker for N
seconds (events committed per second), with a raw aiokafka consumer + decode_event as its baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import (
    WORKER_READY,
    Offsets,
    WorkerProcess,
    cpu_seconds,
    history,
    load_average,
    local_broker,
    publish,
    rss_bytes,
    say,
    to_records,
    write_result,
)
from bench.worker_throughput import RAISED_AT, Applier, _consume, new_processor
from schemas.codec import decode_event
from schemas.topics import DEFAULT_PARTITIONS, message_key, topic_for
from streams.app import murmur2_partition
from streams.replay import Replay, kafka_partitions
from streams.rules import Catalogue

NATIONAL_EVENTS = 30_000_000


@dataclass
class _EngineRun:
    wall: float = 0.0
    cpu: float = 0.0
    alerts: int = 0
    per_year_cpu_us: list[float] = field(default_factory=list)


def process_years(partnerships: int, years: int, cache_size: int) -> dict[str, dict[str, Any]]:
    """Both in-process engines over `years` national-like years, generated one year at a time.

    `replay`: `streams.replay.Replay`, what `safeguard rules backtest` runs (states kept decoded in memory, the key's
    partition computed per event, obligations applied at once). `processor`: the worker's `RuleProcessor` as a worker
    drives it (its compact stored form flushed every 1,000 events, a cache of `cache_size` decoded states), the
    measurement of 2026-12-07. Each year's events go through both, in alternating order, CPU time taken per engine.
    """
    replay = Replay(Catalogue.default(), partition_of=kafka_partitions(DEFAULT_PARTITIONS), raised_at=RAISED_AT)
    applier = Applier(new_processor(cache_size=cache_size))
    runs = {name: _EngineRun() for name in ("replay", "processor")}
    checkpoints: list[dict[str, Any]] = []
    generate_s = 0.0
    done = 0

    def run_replay(events: list[Any], _partitions: list[int], _topics: list[str]) -> int:
        alerts = 0
        for event in events:
            alerts += len(replay.apply(event))
        return alerts

    def run_processor(events: list[Any], partitions: list[int], topics: list[str]) -> int:
        before = applier.alerts
        for i, event in enumerate(events):
            applier.event(event, topics[i], partitions[i])
            if (i + 1) % 1000 == 0:
                applier.processor.flush()
        applier.processor.flush()
        return applier.alerts - before

    engines = {"replay": run_replay, "processor": run_processor}
    for year in range(years):
        started = time.perf_counter()
        events = history(partnerships, year)
        partitions = [murmur2_partition(message_key(e).encode("utf-8"), DEFAULT_PARTITIONS) for e in events]
        topics = [topic_for(e.event_type).name for e in events]
        generate_s += time.perf_counter() - started
        order = ["replay", "processor"] if year % 2 == 0 else ["processor", "replay"]
        for name in order:
            gc.collect()
            wall0, cpu0 = time.perf_counter(), time.process_time()
            alerts = engines[name](events, partitions, topics)
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            run = runs[name]
            run.wall += wall
            run.cpu += cpu
            run.alerts += alerts
            run.per_year_cpu_us.append(round(cpu / len(events) * 1e6, 1))
            say(f"  year {year + 1}, {name}: {len(events):,} events, {cpu / len(events) * 1e6:.1f} µs CPU/event")
        done += len(events)
        checkpoints.append(
            {
                "events": done,
                "rss_mib": round(rss_bytes() / (1 << 20), 1),
                "children": len(applier.processor.tables["child"]),
            }
        )
        say(f"  after year {year + 1}: {done:,} events, RSS {checkpoints[-1]['rss_mib']:,.0f} MiB (both engines)")
        del events, partitions, topics
    tables = applier.processor.tables
    stored = sum(len(v) for table in tables.values() for v in table.values() if isinstance(v, bytes))
    figures: dict[str, dict[str, Any]] = {}
    for name, run in runs.items():
        figures[name] = {
            "events": done,
            "seconds": round(run.wall, 1),
            "events_per_s": round(done / run.wall, 1),
            "cpu_us_per_event": round(run.cpu / done * 1e6, 1),
            "cpu_us_per_event_by_year": run.per_year_cpu_us,
            "alerts": run.alerts,
        }
        say(f"{name}: {done:,} events at {done / run.wall:,.0f} events/s ({run.cpu / done * 1e6:.1f} µs CPU)")
    figures["shared"] = {
        "partnerships": partnerships,
        "years": years,
        "cache_size": cache_size,
        "generate_seconds_excluded": round(generate_s, 1),
        "children_in_state": len(tables["child"]),
        "households_in_state": len(tables["household"]),
        "stored_state_mib": round(stored / (1 << 20), 1),
        "checkpoints": checkpoints,
    }
    return figures


def replay(bootstrap: str, total: int, seconds: float, workdir: Path) -> dict[str, Any]:
    """The worker from the start of the topics for at most `seconds` after Ready; events committed per second."""
    offsets = Offsets(bootstrap)
    worker = WorkerProcess(bootstrap, "bench-replay", workdir)
    spawned = time.monotonic()
    worker.start()
    try:
        ready = worker.wait_for_log(WORKER_READY, 120)
        cpu0 = cpu_seconds(worker.pid)
        ends = offsets.ends()
        last = ready
        samples = []
        while True:
            now = time.monotonic()
            done = offsets.committed("bench-replay", ends)
            samples.append((round(now - ready, 1), done))
            if done >= total or now - ready >= seconds:
                break
            if not worker.alive():
                raise RuntimeError(f"the worker died:\n{worker.log_text()[-3000:]}")
            if now - last >= 15:
                say(f"  replay: committed {done:,}/{total:,} ({done / (now - ready):,.0f} events/s)")
                last = now
            time.sleep(0.5)
        cpu = cpu_seconds(worker.pid) - cpu0
    finally:
        worker.stop()
        offsets.close()
    elapsed = samples[-1][0]
    done = samples[-1][1]
    return {
        "events_published": total,
        "events_committed": done,
        "seconds_after_ready": elapsed,
        "startup_s": round(ready - spawned, 2),
        "events_per_s": round(done / elapsed, 1) if elapsed else 0.0,
        "cpu_us_per_event": round(cpu / done * 1e6, 1) if done else None,
        "cpu_share_of_one_core": round(cpu / elapsed, 3) if elapsed else None,
        "finished": done >= total,
        "commit_samples": samples[:: max(1, len(samples) // 30)],
    }


def raw_rate(bootstrap: str) -> dict[str, Any]:
    offsets = Offsets(bootstrap)
    try:
        ends = offsets.ends()
    finally:
        offsets.close()

    def decode(messages: list[Any]) -> None:
        for message in messages:
            decode_event(message.value)

    count, wall = asyncio.run(_consume(bootstrap, ends, decode))
    say(f"raw aiokafka + decode_event: {count:,} events in {wall:.1f} s = {count / wall:,.0f} events/s")
    return {"events": count, "seconds": round(wall, 2), "events_per_s": round(count / wall, 1)}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--partnerships", type=int, default=6)
    parser.add_argument("--years", type=int, default=6, help="consecutive years, generated one at a time")
    parser.add_argument("--cache-size", type=int, default=50_000, help="the processor's cache of decoded states")
    parser.add_argument("--kafka-replay-seconds", type=float, default=0.0, help="0: no replay through a worker")
    args = parser.parse_args(argv)

    load_before = load_average()
    say(f"in process: {args.partnerships} partnerships x {args.years} years, one year in memory at a time")
    figures: dict[str, Any] = {"in_process": process_years(args.partnerships, args.years, args.cache_size)}
    measured, baseline, shared = (figures["in_process"][k] for k in ("replay", "processor", "shared"))
    if args.kafka_replay_seconds > 0:
        records = to_records(history(args.partnerships, 0))
        workdir = Path(tempfile.mkdtemp(prefix="bench-replay-"))
        try:
            with local_broker() as bootstrap:
                say(f"publishing {len(records):,} events of the first year for the replay through a worker")
                publish(bootstrap, records)
                total = len(records)
                del records
                figures["raw_aiokafka_decode"] = raw_rate(bootstrap)
                figures["worker_replay"] = replay(bootstrap, total, args.kafka_replay_seconds, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    minutes = round(NATIONAL_EVENTS / measured["events_per_s"] / 60, 1)
    cpu_minutes = round(NATIONAL_EVENTS * measured["cpu_us_per_event"] / 1e6 / 60, 1)
    baseline_minutes = round(NATIONAL_EVENTS / baseline["events_per_s"] / 60, 1)
    rss = [c["rss_mib"] for c in shared["checkpoints"]]
    figures["projection_30M"] = {
        "events": NATIONAL_EVENTS,
        "minutes_in_process": minutes,
        "cpu_minutes_in_process": cpu_minutes,
        "minutes_worker_processor": baseline_minutes,
        "basis": f"30,000,000 / {measured['events_per_s']:,.0f} events/s measured over {measured['events']:,} events",
    }
    notes = [
        f"EXTRAPOLATED from a measurement: {measured['events']:,} events ({args.partnerships} Leeds-sized "
        f"partnerships x {args.years} consecutive years) through streams.replay.Replay, the engine of "
        f"`safeguard rules backtest`, at {measured['events_per_s']:,.0f} events/s ({measured['cpu_us_per_event']} µs "
        f"CPU/event; by year {measured['cpu_us_per_event_by_year']}); 30,000,000 events at that rate: {minutes} min "
        f"of wall time on this shared machine ({cpu_minutes} min of CPU time: the wall time on one uncontended core).",
        f"Baseline in the same run, on the same events: the worker's RuleProcessor driven as the worker does (stored "
        f"form flushed every 1,000 events, {args.cache_size:,} decoded states cached) at "
        f"{baseline['events_per_s']:,.0f} events/s ({baseline['cpu_us_per_event']} µs CPU/event; by year "
        f"{baseline['cpu_us_per_event_by_year']}): {baseline_minutes} min for 30M. The difference is the encoding and "
        "decoding of states the worker needs for its changelog and a bounded memory, which an in-process replay does "
        "not.",
        f"Both raised the same alerts: {measured['alerts']:,} and {baseline['alerts']:,}."
        if measured["alerts"] == baseline["alerts"]
        else f"ALERTS DIFFER: replay {measured['alerts']:,}, processor {baseline['alerts']:,}.",
        f"Memory (both engines' states in one process): RSS {rss[0]:,.0f} MiB after the first year, "
        f"{max(rss):,.0f} MiB at most, {rss[-1]:,.0f} MiB at the end; {shared['children_in_state']:,} children and "
        f"{shared['households_in_state']:,} households ({shared['stored_state_mib']:,.0f} MiB in the processor's "
        "stored form); one year of events is in memory at a time (each year's ~0.5M event objects are freed before "
        "the next).",
        f"Generating the events ({shared['generate_seconds_excluded']} s) is not timed.",
        "History: simulated Leeds-sized partnership years (generate(LEEDS_2019) with seeds per partnership and "
        "year, salted pseudonyms per partnership, later years shifted by 52-week steps), merged in event time.",
        f"Load average before {load_before}, after {load_average()}.",
    ]
    if "worker_replay" in figures:
        replayed = figures["worker_replay"]
        notes.append(
            f"Through Kafka and one worker: {replayed['events_committed']:,} events committed in "
            f"{replayed['seconds_after_ready']} s after Ready ({replayed['events_per_s']:,.0f} events/s); raw "
            f"aiokafka + decode_event {figures['raw_aiokafka_decode']['events_per_s']:,.0f} events/s."
        )
    write_result(
        "replay_national",
        metric="time to replay 30M events (six national years) through the in-process engine, extrapolated",
        value=minutes,
        unit="minutes",
        baseline="the worker's RuleProcessor driven as the worker does (flushes, bounded cache), same events, same run",
        baseline_value=baseline_minutes,
        target="<= 30 min, measured on 3M+ events and extrapolated, with memory flat",
        met=minutes <= 30 and measured["events"] >= 3_000_000,
        parameters={
            "partnerships": args.partnerships,
            "years": args.years,
            "cache_size": args.cache_size,
            "kafka_replay_seconds": args.kafka_replay_seconds,
        },
        notes=notes,
        details=figures,
    )


if __name__ == "__main__":
    main()
