"""Events per second through the Faust worker, beside the framework's floor and a raw consumer on the same topics.

    .venv/bin/python -m bench.worker_throughput [--partnerships 2] [--profile-seconds 40] [--groups 2,3]

One run, one broker of its own, the same published events for every reader:

1. in process, no Kafka: decoding alone (`check_record`), the pure `RuleProcessor` alone over decoded events,
   and both together: the rule cost without any framework;
2. a raw aiokafka consumer reading the event topics from the start, fetch only, then fetch + `decode_event`
   (the practical limit, the baseline), then fetch + decode + `RuleProcessor` with dict tables (everything the
   worker does except Faust, the changelogs and publishing);
3. `bench.naive_faust` (one agent, one table, two rules: what the framework costs anyway), then the real worker
   (`python -m streams worker`) as a subprocess: startup (spawn -> Faust "Ready") reported separately,
   throughput from Ready to the group having committed every event;
4. groups of 2 and 3 workers in one consumer group over the same events (scale-out by partitions);
5. the same worker under cProfile for a fixed time, summarised by where the time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import (
    WORKER_READY,
    Offsets,
    Record,
    WorkerProcess,
    cpu_seconds,
    cumulative_calls,
    cumulative_of,
    history,
    load_average,
    local_broker,
    publish,
    rss_bytes,
    say,
    scheduler_seconds,
    summarise_profile,
    to_records,
    write_result,
)
from schemas.codec import decode_event
from schemas.deadletter import DeadLetter
from schemas.topics import DEFAULT_PARTITIONS, EVENT_TOPICS
from streams.app import murmur2_partition
from streams.intake import check_record
from streams.processor import RuleProcessor
from streams.rules import Catalogue

TARGET_RATIO_TO_NAIVE = 0.8
RAISED_AT = datetime(2030, 1, 1, tzinfo=UTC)
OBLIGATIONS_TOPIC = "bench-da-obligations"


def new_processor(partitions: int = DEFAULT_PARTITIONS, cache_size: int = 50_000) -> RuleProcessor:
    """The worker's processor with plain dicts for tables (what Faust's memory store holds)."""
    return RuleProcessor(
        Catalogue.default(),
        children={},
        households={},
        partition_of=lambda key: murmur2_partition(key.encode("utf-8"), partitions),
        cache_size=cache_size,
    )


class Applier:
    """Feeds records to a RuleProcessor as the worker does: decode and check, apply, obligations, flush per batch."""

    def __init__(self, processor: RuleProcessor, partitions: int = DEFAULT_PARTITIONS) -> None:
        self.processor = processor
        self.partitions = partitions
        self.events = 0
        self.obligations = 0
        self.alerts = 0
        self.dead_letters = 0

    def record(self, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None) -> None:
        outcome = check_record(topic=topic, partition=partition, offset=offset, key=key, value=value, at=RAISED_AT)
        if isinstance(outcome, DeadLetter):
            self.dead_letters += 1
            return
        self.event(outcome, topic, partition)

    def event(self, event: Any, topic: str, partition: int) -> None:
        step = self.processor.apply(event, topic=topic, partition=partition, raised_at=RAISED_AT)
        self.events += 1
        self.alerts += len(step.alerts)
        for obligation in step.obligations:  # the worker re-keys these through Kafka; here they apply at once
            child_partition = murmur2_partition(obligation.child_id.encode("utf-8"), self.partitions)
            self.alerts += len(
                self.processor.apply(
                    obligation, topic=OBLIGATIONS_TOPIC, partition=child_partition, raised_at=RAISED_AT
                ).alerts
            )
            self.obligations += 1


def timed(label: str, count: int, run: Callable[[], None]) -> dict[str, float]:
    """Wall and CPU time of `run()` over `count` events."""
    gc.collect()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    run()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    figures = {
        "events": count,
        "seconds": round(wall, 3),
        "cpu_seconds": round(cpu, 3),
        "events_per_s": round(count / wall, 1),
        "cpu_us_per_event": round(cpu / count * 1e6, 1),
    }
    say(f"{label}: {figures['events_per_s']:,.0f} events/s ({figures['cpu_us_per_event']} µs CPU/event)")
    return figures


# --- 1. in process -------------------------------------------------------------------------------------------


def in_process(records: Sequence[Record]) -> dict[str, dict[str, float]]:
    partitioned = [
        (topic, murmur2_partition(key, DEFAULT_PARTITIONS), offset, key, value)
        for offset, (topic, key, value) in enumerate(records)
    ]
    figures: dict[str, dict[str, float]] = {}
    figures["decode_only"] = timed(
        "in process, decode_event only", len(records), lambda: [decode_event(value) for _, _, value in records]
    )
    figures["check_record"] = timed(
        "in process, check_record (decode + placement)",
        len(records),
        lambda: [
            check_record(topic=t, partition=p, offset=o, key=k, value=v, at=RAISED_AT) for t, p, o, k, v in partitioned
        ],
    )
    decoded = [(decode_event(v), t, p) for t, p, _o, _k, v in partitioned]
    applier = Applier(new_processor())

    def rules_only() -> None:
        for i, (event, topic, partition) in enumerate(decoded, 1):
            applier.event(event, topic, partition)
            if i % 1000 == 0:
                applier.processor.flush()
        applier.processor.flush()

    figures["rule_processor_only"] = timed("in process, RuleProcessor only (decoded events)", len(records), rules_only)
    figures["rule_processor_only"].update({"obligations": applier.obligations, "alerts": applier.alerts})
    figures["rule_processor_only"]["children_in_state"] = len(applier.processor.tables["child"])
    figures["rule_processor_only"]["households_in_state"] = len(applier.processor.tables["household"])
    decoded.clear()
    full = Applier(new_processor())

    def decode_and_rules() -> None:
        for i, (topic, partition, offset, key, value) in enumerate(partitioned, 1):
            full.record(topic, partition, offset, key, value)
            if i % 1000 == 0:
                full.processor.flush()
        full.processor.flush()

    figures["check_record_and_rule_processor"] = timed(
        "in process, check_record + RuleProcessor", len(records), decode_and_rules
    )
    figures["check_record_and_rule_processor"]["alerts"] = full.alerts
    return figures


# --- 2. raw aiokafka -----------------------------------------------------------------------------------------


async def _consume(bootstrap: str, ends: dict[Any, int], handle: Callable[[list[Any]], None]) -> tuple[int, float]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        parts = [TopicPartition(tp.topic, tp.partition) for tp in ends if ends[tp] > 0]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        remaining = {TopicPartition(tp.topic, tp.partition): end for tp, end in ends.items() if end > 0}
        count = 0
        started = time.perf_counter()
        while remaining:
            batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for tp, messages in batches.items():
                handle(messages)
                count += len(messages)
                if messages and messages[-1].offset + 1 >= remaining.get(tp, 0):
                    remaining.pop(tp, None)
        return count, time.perf_counter() - started
    finally:
        await consumer.stop()


def raw_consumer(bootstrap: str, ends: dict[Any, int], label: str, handle: Callable[[list[Any]], None]) -> dict:
    gc.collect()
    cpu0 = time.process_time()
    count, wall = asyncio.run(_consume(bootstrap, ends, handle))
    cpu = time.process_time() - cpu0
    figures = {
        "events": count,
        "seconds": round(wall, 3),
        "cpu_seconds": round(cpu, 3),
        "events_per_s": round(count / wall, 1),
        "cpu_us_per_event": round(cpu / count * 1e6, 1),
    }
    say(f"{label}: {count:,} events in {wall:.1f} s = {figures['events_per_s']:,.0f} events/s")
    return figures


def raw_consumers(bootstrap: str, ends: dict[Any, int]) -> dict[str, dict]:
    figures = {"fetch_only": raw_consumer(bootstrap, ends, "raw aiokafka, fetch only", lambda messages: None)}

    def decode(messages: list[Any]) -> None:
        for message in messages:
            decode_event(message.value)

    figures["fetch_decode"] = raw_consumer(bootstrap, ends, "raw aiokafka, fetch + decode_event", decode)
    applier = Applier(new_processor())

    def apply(messages: list[Any]) -> None:
        for m in messages:
            applier.record(m.topic, m.partition, m.offset, m.key, m.value)
        applier.processor.flush()

    figures["fetch_decode_rules"] = raw_consumer(
        bootstrap, ends, "raw aiokafka, fetch + check_record + RuleProcessor (no Faust)", apply
    )
    figures["fetch_decode_rules"]["alerts"] = applier.alerts
    return figures


# --- 3. the worker -------------------------------------------------------------------------------------------


def run_worker(
    bootstrap: str,
    offsets: Offsets,
    app_id: str,
    workdir: Path,
    timeout_s: float,
    module: str = "streams",
    extra_env: dict[str, str] | None = None,
) -> dict[str, Any]:
    ends = offsets.ends()
    total = sum(ends.values())
    worker = WorkerProcess(bootstrap, app_id, workdir, module=module, extra_env=extra_env or {})
    spawned = time.monotonic()
    worker.start()
    samples: list[tuple[float, int, float]] = []
    try:
        ready = worker.wait_for_log(WORKER_READY, 120)
        cpu_at_ready = cpu_seconds(worker.pid)
        sched_at_ready = scheduler_seconds(worker.pid)
        rss_at_ready = rss_bytes(worker.pid)
        say(f"worker pid {worker.pid} ready {ready - spawned:.1f} s after spawn; consuming {total:,} events")
        deadline = ready + timeout_s
        last_report = ready
        while True:
            now = time.monotonic()
            done = offsets.committed(app_id, ends)
            samples.append((now, done, cpu_seconds(worker.pid)))
            if done >= total:
                break
            if now > deadline:
                raise RuntimeError(
                    f"the worker committed only {done:,}/{total:,} within {timeout_s:.0f} s:\n"
                    f"{worker.log_text()[-6000:]}"
                )
            if not worker.alive():
                raise RuntimeError(f"the worker died:\n{worker.log_text()[-3000:]}")
            if now - last_report >= 10:
                say(f"  committed {done:,}/{total:,} ({done / (now - ready):,.0f} events/s so far)")
                last_report = now
            time.sleep(0.25)
        finished = samples[-1][0]
        rss_at_end = rss_bytes(worker.pid)
        sched_at_end = scheduler_seconds(worker.pid)
    finally:
        worker.stop()
    first = next((s for s in samples if s[1] > 0), samples[-1])
    busy_cpu = samples[-1][2] - cpu_at_ready
    seconds = finished - ready
    steady = (samples[-1][1] - first[1]) / (samples[-1][0] - first[0]) if samples[-1][0] > first[0] else None
    figures = {
        "events": total,
        "startup_s": round(ready - spawned, 2),
        "seconds_ready_to_all_committed": round(seconds, 2),
        "events_per_s": round(total / seconds, 1),
        "events_per_s_first_to_last_commit": round(steady, 1) if steady else None,
        "ready_to_first_commit_s": round(first[0] - ready, 2),
        "cpu_seconds": round(busy_cpu, 2),
        "cpu_us_per_event": round(busy_cpu / total * 1e6, 1),
        "cpu_share_of_one_core": round(busy_cpu / seconds, 3),
        "share_of_time_waiting_for_a_cpu": round((sched_at_end[1] - sched_at_ready[1]) / seconds, 3),
        "rss_mib_at_ready": round(rss_at_ready / (1 << 20), 1),
        "rss_mib_at_end": round(rss_at_end / (1 << 20), 1),
        "commit_samples": [(round(t - ready, 2), n) for t, n, _cpu in samples[:: max(1, len(samples) // 40)]],
    }
    say(
        f"{module}: {total:,} events in {seconds:.1f} s after Ready = {figures['events_per_s']:,.0f} events/s "
        f"({figures['cpu_us_per_event']} µs CPU/event, {figures['cpu_share_of_one_core']:.0%} of a core); "
        f"startup {figures['startup_s']} s"
    )
    return figures


def run_naive_faust(bootstrap: str, offsets: Offsets, workdir: Path, timeout_s: float) -> dict[str, Any]:
    """`bench.naive_faust` (one agent, one table, two rules) over the same events: the framework's floor."""
    from safeguard.kafka_clients import client_options
    from safeguard.kafka_local import create_topics
    from safeguard.settings import KafkaSettings
    from schemas.topics import TopicSpec

    app_id = "bench-naive-faust"
    # Created first, as the worker's own internal topics are (Faust's late creation can stall its commits).
    create_topics(
        client_options(KafkaSettings(), bootstrap),
        DEFAULT_PARTITIONS,
        1,
        [
            TopicSpec(f"{app_id}-alerts", (), None),
            TopicSpec(f"{app_id}-missing-times-changelog", (), None, cleanup_policy="compact"),
        ],
    )
    return run_worker(bootstrap, offsets, app_id, workdir, timeout_s, module="bench.naive_faust")


def run_group(bootstrap: str, offsets: Offsets, workers: int, workdir: Path, timeout_s: float) -> dict[str, Any]:
    """`workers` worker processes in one consumer group over the same events: from the first Ready to all committed."""
    app_id = f"bench-group-{workers}"
    ends = offsets.ends()
    total = sum(ends.values())
    group = [WorkerProcess(bootstrap, app_id, workdir / f"member-{i}") for i in range(workers)]
    for member in group:
        member.workdir.mkdir(parents=True, exist_ok=True)
        member.extra_env["SAFEGUARD_STREAMS__DATA_DIR"] = str(member.workdir / "streams")
    cpu_before: dict[int, float] = {}
    try:
        for member in group:
            member.start()
        readies = [member.wait_for_log(WORKER_READY, 180) for member in group]
        first_ready = min(readies)
        for member in group:
            cpu_before[member.pid] = cpu_seconds(member.pid)
        say(f"{workers} workers ready; consuming {total:,} events")
        last_done, last_progress = -1, first_ready
        while True:
            done = offsets.committed(app_id, ends)
            now = time.monotonic()
            if done != last_done:
                last_done, last_progress = done, now
            if done >= total:
                break
            if done >= 0.99 * total and now - last_progress > 15:
                # After a rebalance Faust may leave a partition read to its end uncommitted until a new record
                # arrives (its acks dropped): the last commit's time is the end of the work.
                say(f"  {done:,}/{total:,} committed, no commit for 15 s: measured to the last commit")
                now = last_progress
                break
            if now > first_ready + timeout_s:
                raise RuntimeError(f"{workers} workers committed only {done:,}/{total:,} within {timeout_s:.0f} s")
            for member in group:
                if not member.alive():
                    raise RuntimeError(f"a worker of the group died:\n{member.log_text()[-3000:]}")
            time.sleep(0.25)
        cpu = sum(cpu_seconds(member.pid) - cpu_before[member.pid] for member in group)
    finally:
        for member in group:
            member.stop()
    seconds = now - first_ready
    figures = {
        "workers": workers,
        "events": total,
        "events_committed": done,
        "seconds_first_ready_to_all_committed": round(seconds, 2),
        "events_per_s": round(done / seconds, 1),
        "cpu_us_per_event": round(cpu / done * 1e6, 1),
        "ready_spread_s": round(max(readies) - first_ready, 2),
    }
    say(f"{workers} workers: {figures['events_per_s']:,.0f} events/s ({figures['cpu_us_per_event']} µs CPU/event)")
    return figures


def profile_worker(bootstrap: str, app_id: str, workdir: Path, seconds: float, out: Path) -> dict[str, Any]:
    out.unlink(missing_ok=True)  # a dump left by an earlier run must never be summarised as this one's
    worker = WorkerProcess(bootstrap, app_id, workdir, profile_to=out)
    worker.start()
    try:
        ready = worker.wait_for_log(WORKER_READY, 180)
        say(f"profiling the worker (cProfile) for {seconds:.0f} s after Ready")
        while time.monotonic() < ready + seconds:
            if not worker.alive():
                raise RuntimeError(f"the profiled worker died:\n{worker.log_text()[-3000:]}")
            time.sleep(1)
    finally:
        worker.stop(timeout_s=120)
    if not out.exists():
        raise RuntimeError(f"the profiled worker wrote no profile:\n{worker.log_text()[-3000:]}")
    summary = summarise_profile(out)
    summary["key_functions_cumulative_s"] = cumulative_of(
        out,
        {
            "Worker._run_batch (whole batch, synchronous part)": ("streams/app.py", "_run_batch"),
            "Worker._intake_one (decode + apply one record)": ("streams/app.py", "_intake_one"),
            "intake.check_record (decode + validate + placement)": ("streams/intake.py", "check_record"),
            "RuleProcessor.apply": ("streams/processor.py", "apply"),
            "rules.engine.evaluate": ("streams/rules/engine.py", "evaluate"),
            "RuleProcessor.flush (state -> table)": ("streams/processor.py", "flush"),
            "SubjectState.to_json_obj": ("streams/rules/state.py", "to_json_obj"),
            "SubjectState.from_json_obj": ("streams/rules/state.py", "from_json_obj"),
            "Worker._publish (alerts, obligations, wait for acks)": ("streams/app.py", "_publish"),
            "faust Table.on_key_set (store + changelog send)": ("faust/tables/table.py", "on_key_set"),
            "faust Collection.send_changelog": ("faust/tables/base.py", "send_changelog"),
            "logging (alert log lines)": ("logging/__init__.py", "_log"),
        },
    )
    key = summary["key_functions_cumulative_s"]
    busy = summary["busy_s"]
    parts = {
        "rules: RuleProcessor.apply (engine, state cache, deadline index)": key["RuleProcessor.apply"],
        "decode + validate + placement (check_record)": key["intake.check_record (decode + validate + placement)"],
        "state writes: flush (to_json_obj + Faust table set + changelog send)": key[
            "RuleProcessor.flush (state -> table)"
        ],
        "publishing alerts, obligations, dead letters (synchronous part)": key[
            "Worker._publish (alerts, obligations, wait for acks)"
        ],
    }
    parts["everything else: Faust streams/acks/commits, aiokafka fetch+produce, asyncio, logging"] = round(
        busy - sum(parts.values()), 2
    )
    summary["attribution_of_busy_time"] = {
        label: {"seconds": seconds, "share": round(seconds / busy, 3)} for label, seconds in parts.items()
    }
    summary["batches"] = cumulative_calls(out, "streams/processor.py", "flush")
    return summary


def profile_rules(records: Sequence[Record], limit: int = 40_000) -> dict[str, Any]:
    """cProfile of the pure RuleProcessor (no Kafka) over the first `limit` events: where the rule time goes."""
    import cProfile

    decoded = [(decode_event(v), t, murmur2_partition(k, DEFAULT_PARTITIONS)) for t, k, v in records[:limit]]
    applier = Applier(new_processor())
    out = Path(tempfile.gettempdir()) / "bench-rules.prof"
    profiler = cProfile.Profile()
    profiler.enable()
    for i, (event, topic, partition) in enumerate(decoded, 1):
        applier.event(event, topic, partition)
        if i % 1000 == 0:
            applier.processor.flush()
    applier.processor.flush()
    profiler.disable()
    profiler.dump_stats(str(out))
    summary = summarise_profile(out, top=20)
    summary["events"] = len(decoded)
    summary["hot_spots_cumulative_s"] = cumulative_of(
        out,
        {
            "engine.evaluate": ("streams/rules/engine.py", "evaluate"),
            "engine._tidy (prune after every input)": ("streams/rules/engine.py", "_tidy"),
            "history.prune": ("streams/rules/history.py", "prune"),
            "durations.reaches": ("streams/rules/durations.py", "reaches"),
            "Duration.after (calendar arithmetic)": ("streams/rules/durations.py", "after"),
            "durations._add_months": ("streams/rules/durations.py", "_add_months"),
            "engine._open_duties": ("streams/rules/engine.py", "_open_duties"),
            "definition.windows_through": ("streams/rules/definition.py", "windows_through"),
            "history.record": ("streams/rules/history.py", "record"),
            "pydantic BaseModel.model_copy": ("pydantic/main.py", "model_copy"),
            "engine.next_deadline (deadline index)": ("streams/rules/engine.py", "next_deadline"),
            "RuleProcessor.flush (to_json_obj into dict)": ("streams/processor.py", "flush"),
            "SubjectState.has_seen (linear scan)": ("streams/rules/state.py", "has_seen"),
        },
    )
    say(f"rules profile: {summary['hot_spots_cumulative_s']}")
    return summary


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--partnerships", type=int, default=2, help="simulated Leeds-sized years side by side")
    parser.add_argument("--profile-seconds", type=float, default=40.0, help="0: no profiled run")
    parser.add_argument("--timeout", type=float, default=480.0, help="longest wait for the worker, in seconds")
    parser.add_argument("--groups", default="2,3", help="also run groups of these many workers ('' for none)")
    args = parser.parse_args(argv)

    load_before = load_average()
    say(f"generating {args.partnerships} simulated partnership year(s) (LEEDS_2019, seed 7 and salted copies)")
    records = to_records(history(args.partnerships, 0))
    say(f"{len(records):,} events")
    figures: dict[str, Any] = {"in_process": in_process(records)}
    figures["rules_profile"] = profile_rules(records)
    workdir = Path(tempfile.mkdtemp(prefix="bench-worker-"))
    profile_path = Path(tempfile.gettempdir()) / "bench-worker_throughput.prof"
    try:
        with local_broker() as bootstrap:
            say(f"publishing {len(records):,} events (EventPublisher, acks=all)")
            published_s = publish(bootstrap, records)
            figures["publish"] = {"seconds": round(published_s, 2), "events_per_s": round(len(records) / published_s)}
            del records
            gc.collect()
            offsets = Offsets(bootstrap, [spec.name for spec in EVENT_TOPICS])
            try:
                ends = offsets.ends()
                figures["raw_aiokafka"] = raw_consumers(bootstrap, ends)
                figures["naive_faust"] = run_naive_faust(bootstrap, offsets, workdir, args.timeout)
                figures["worker"] = run_worker(bootstrap, offsets, "bench-throughput", workdir, args.timeout)
                for size in [int(n) for n in args.groups.split(",") if n.strip()]:
                    figures[f"group_of_{size}"] = run_group(bootstrap, offsets, size, workdir, args.timeout)
            finally:
                offsets.close()
            if args.profile_seconds > 0:
                figures["worker_profile"] = profile_worker(
                    bootstrap, "bench-profile", workdir, args.profile_seconds, profile_path
                )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    worker = figures["worker"]
    naive = figures["naive_faust"]
    raw = figures["raw_aiokafka"]["fetch_decode"]
    rules = figures["in_process"]["rule_processor_only"]
    no_faust = figures["raw_aiokafka"]["fetch_decode_rules"]
    fetch_only = figures["raw_aiokafka"]["fetch_only"]
    framework_us = worker["cpu_us_per_event"] - no_faust["cpu_us_per_event"]
    ratio_to_naive = worker["events_per_s"] / naive["events_per_s"]
    groups = {key: value for key, value in figures.items() if key.startswith("group_of_")}
    notes = [
        f"Value: events/s of one worker from Faust 'Ready' to its group having committed all {worker['events']:,} "
        f"events (includes up to one commit interval of lag at the end); startup (spawn -> Ready) "
        f"{worker['startup_s']} s is reported separately. CPU {worker['cpu_us_per_event']} µs/event.",
        f"Baseline: bench.naive_faust, one Faust agent and one table doing two of the rules, nothing else "
        f"(the framework's floor), on the same events in the same run: {naive['events_per_s']:,.0f} events/s, "
        f"{naive['cpu_us_per_event']} µs CPU/event. The worker runs the full catalogue at {ratio_to_naive:.2f} of it "
        f"(target >= {TARGET_RATIO_TO_NAIVE}).",
        f"Raw aiokafka reading the same topics and decoding every value with decode_event: "
        f"{raw['events_per_s']:,.0f} events/s (fetch alone {fetch_only['events_per_s']:,.0f}).",
        f"Rule cost without any framework: the pure RuleProcessor over decoded events runs at "
        f"{rules['events_per_s']:,.0f} events/s ({rules['cpu_us_per_event']} µs CPU/event).",
        f"Worker CPU per event {worker['cpu_us_per_event']} µs vs {no_faust['cpu_us_per_event']} µs for aiokafka + "
        f"check_record + RuleProcessor without Faust: about {framework_us:.0f} µs/event is Faust (streams, changelog "
        f"sends, obligations repartition, acks, commits) and logging.",
        *(
            f"{group['workers']} workers in one group: {group['events_per_s']:,.0f} events/s = "
            f"{group['events_per_s'] / worker['events_per_s']:.2f}x one worker ({group['cpu_us_per_event']} µs "
            f"CPU/event summed over the members); on this 2-core VM the broker and the members share two cores, so "
            f"more than two processes cannot scale linearly here."
            for group in groups.values()
        ),
        "Events: simulated Leeds-sized years (generate(LEEDS_2019, seed=7) and salted copies with their own "
        "children) merged in occurred_at order, published with the project's EventPublisher to 6 partitions.",
        f"The worker was runnable but waiting for a CPU {worker['share_of_time_waiting_for_a_cpu']:.0%} of the "
        f"time (other processes on the 2 cores) and ran {worker['cpu_share_of_one_core']:.0%} of it.",
        f"Load average before {load_before}, after {load_average()}.",
    ]
    if "worker_profile" in figures:
        notes.append(
            f"Profile of the worker: bench/results/worker_throughput.json details.worker_profile "
            f"(cProfile, {args.profile_seconds:.0f} s after Ready; cProfile inflates Python-heavy code, read shares "
            f"not absolute times); the raw dump is left in {profile_path} for pstats."
        )
    write_result(
        "worker_throughput",
        metric="events/s through one Faust worker (full catalogue)",
        value=worker["events_per_s"],
        unit="events/s",
        baseline="bench.naive_faust: one Faust agent + one table doing two rules, same events, same run",
        baseline_value=naive["events_per_s"],
        target=f">= {TARGET_RATIO_TO_NAIVE} of the naive Faust app; 2 and 3 workers >= 1.7x and 2.4x one",
        met=ratio_to_naive >= TARGET_RATIO_TO_NAIVE,
        parameters={
            "partnerships": args.partnerships,
            "events": worker["events"],
            "partitions": DEFAULT_PARTITIONS,
            "profile_seconds": args.profile_seconds,
            "groups": args.groups,
            "worker_settings": "defaults (batch_size 1000, batch_within_s 0.05, acks=all)",
        },
        notes=notes,
        details=figures,
    )


if __name__ == "__main__":
    main()
