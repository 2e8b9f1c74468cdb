"""Replaying six years of national-scale history (~30 million events) through the in-process engine.

    .venv/bin/python -m bench.replay_national [--partnerships 6] [--years 6] [--kafka-replay-seconds 0]

What an import or a backtest does: the framework-free `RuleProcessor` (the worker's own step: rules, deadline
index, partition clocks, the compact stored form flushed every 1,000 events) over a national-like history, one
process, no Kafka. `--partnerships` simulated Leeds-sized partnerships (each with its own children) interleaved in
event time, over `--years` consecutive years (later years keep each partnership's children, so histories
continue). Years are generated and processed one at a time, so the events of only one year are in memory: RSS is
sampled every 100,000 events to show that memory stays flat apart from the state itself. The time for 30,000,000
events is extrapolated from the measured rate over the whole run (labelled as such).

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
from bench.worker_throughput import Applier, _consume, new_processor
from schemas.codec import decode_event
from schemas.topics import DEFAULT_PARTITIONS, message_key, topic_for
from streams.app import murmur2_partition

NATIONAL_EVENTS = 30_000_000


def process_years(partnerships: int, years: int, cache_size: int) -> dict[str, Any]:
    """The RuleProcessor over `years` national-like years, generated and processed one year at a time."""
    applier = Applier(new_processor(cache_size=cache_size))
    checkpoints: list[dict[str, Any]] = []
    generate_s = 0.0
    wall = cpu = 0.0
    done = 0
    for year in range(years):
        started = time.perf_counter()
        events = history(partnerships, year)
        partitions = [murmur2_partition(message_key(e).encode("utf-8"), DEFAULT_PARTITIONS) for e in events]
        topics = [topic_for(e.event_type).name for e in events]
        generate_s += time.perf_counter() - started
        gc.collect()
        wall0, cpu0 = time.perf_counter(), time.process_time()
        for i, event in enumerate(events):
            applier.event(event, topics[i], partitions[i])
            done += 1
            if done % 1000 == 0:
                applier.processor.flush()
            if done % 100_000 == 0:
                elapsed = wall + time.perf_counter() - wall0
                checkpoints.append(
                    {
                        "events": done,
                        "seconds": round(elapsed, 1),
                        "rss_mib": round(rss_bytes() / (1 << 20), 1),
                        "children": len(applier.processor.tables["child"]),
                    }
                )
                say(f"  {done:,} events, {done / elapsed:,.0f} events/s, RSS {checkpoints[-1]['rss_mib']:,.0f} MiB")
        applier.processor.flush()
        wall += time.perf_counter() - wall0
        cpu += time.process_time() - cpu0
        del events, partitions, topics
    tables = applier.processor.tables
    stored = sum(len(v) for table in tables.values() for v in table.values() if isinstance(v, bytes))
    figures = {
        "partnerships": partnerships,
        "years": years,
        "cache_size": cache_size,
        "events": done,
        "seconds": round(wall, 1),
        "generate_seconds_excluded": round(generate_s, 1),
        "events_per_s": round(done / wall, 1),
        "cpu_us_per_event": round(cpu / done * 1e6, 1),
        "children_in_state": len(tables["child"]),
        "households_in_state": len(tables["household"]),
        "stored_state_mib": round(stored / (1 << 20), 1),
        "alerts": applier.alerts,
        "checkpoints": checkpoints,
    }
    say(
        f"in process: {done:,} events at {figures['events_per_s']:,.0f} events/s ({figures['cpu_us_per_event']} µs CPU)"
    )
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
    measured = figures["in_process"]
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
    rss = [c["rss_mib"] for c in measured["checkpoints"]]
    figures["projection_30M"] = {
        "events": NATIONAL_EVENTS,
        "minutes_in_process": minutes,
        "basis": f"30,000,000 / {measured['events_per_s']:,.0f} events/s measured over {measured['events']:,} events",
    }
    notes = [
        f"EXTRAPOLATED from a measurement: {measured['events']:,} events ({args.partnerships} Leeds-sized "
        f"partnerships x {args.years} consecutive years) through the in-process RuleProcessor at "
        f"{measured['events_per_s']:,.0f} events/s ({measured['cpu_us_per_event']} µs CPU/event); "
        f"30,000,000 events at that rate: {minutes} min.",
        f"Memory: RSS {rss[0]:,.0f} MiB after the first 100,000 events, {max(rss):,.0f} MiB at most, "
        f"{rss[-1]:,.0f} MiB at the end, holding {measured['children_in_state']:,} children and "
        f"{measured['households_in_state']:,} households ({measured['stored_state_mib']:,.0f} MiB of stored state); "
        "one year of events is in memory at a time (each year's ~0.5M event objects are freed before the next).",
        f"{measured['alerts']:,} alerts raised. Generating the events ({measured['generate_seconds_excluded']} s) is "
        "not timed.",
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
        baseline="the previous projection through one worker (3.75 h = 225 min, bench results of 2026-11-23)",
        baseline_value=225.0,
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
