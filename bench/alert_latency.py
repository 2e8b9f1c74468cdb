"""Event -> alert latency through the real worker under a steady background load.

    .venv/bin/python -m bench.alert_latency [--rate 1000] [--probes-per-s 10] [--seconds 90] [--warmup 10]

A paced producer publishes background events at `--rate` per second: the simulated Leeds year (seed 7) with fresh
pseudonyms for this run and `occurred_at` / `recorded_at` set to the moment of sending, so every event is live.
Every 1/`--probes-per-s` seconds it also publishes a probe: a `missing.reported` at risk level `high` for a new child,
which raises `high_risk_missing` at once. A consumer on safeguarding.alerts.v1 matches each alert to its probe (the
probe's event id is in the alert's `evidence_event_ids`) and takes latency = alert received - probe handed to the
producer (same clock, same process). The same consumer also reads the probes back from their own topic: that one
Kafka hop (producer batching, broker append, fetch) is the baseline; an alert needs two hops plus the worker.

Producer: the project's publisher settings (kafka-python, acks=all, idempotent, linger 20 ms).
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import (
    WORKER_READY,
    Offsets,
    Relabeller,
    WorkerProcess,
    cpu_seconds,
    load_average,
    local_broker,
    rss_bytes,
    say,
    scheduler_seconds,
    write_result,
)
from producers.publisher import PRODUCER_DEFAULTS
from producers.simulate import LEEDS_2019, generate
from safeguard.kafka_clients import client_options
from safeguard.settings import KafkaSettings
from schemas.codec import encode
from schemas.events import AgencyEvent, MissingReported
from schemas.topics import ALERTS, MISSING_EPISODES, message_key, topic_for

TARGET_P99_MS = 250.0


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), nearest-rank on the sorted values."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[rank]


def summary_ms(values: Sequence[float]) -> dict[str, float | int]:
    ms = [v * 1000 for v in values]
    if not ms:
        return {"count": 0}
    return {
        "count": len(ms),
        "p50_ms": round(percentile(ms, 50), 1),
        "p95_ms": round(percentile(ms, 95), 1),
        "p99_ms": round(percentile(ms, 99), 1),
        "max_ms": round(max(ms), 1),
        "mean_ms": round(statistics.fmean(ms), 1),
    }


class Probes:
    """Probe events sent, their acks, when each came back on its topic and when its alert arrived."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sent: dict[str, float] = {}
        self.acked: dict[str, float] = {}
        self.echoed: dict[str, float] = {}
        self.alerted: dict[str, float] = {}
        self.alert_created: dict[str, float] = {}
        self.counted: set[str] = set()
        self.background_alerts = 0


def live(event: AgencyEvent, relabel: Relabeller, now: datetime) -> AgencyEvent:
    """A simulated event made live: this run's pseudonyms, a fresh event id, happening now."""
    relabelled = relabel(event)
    return relabelled.model_copy(update={"event_id": str(uuid.uuid4()), "occurred_at": now, "recorded_at": now})


LATE_WAIT_S = 60.0
"""After the measured window's 15 s grace: how long a probe still without an alert is waited for (late, or lost?)."""


def _wait_for_stragglers(probes: Probes, t0: float, wait_s: float) -> dict[str, Any]:
    """Wait up to `wait_s` for the counted probes still without an alert; say which came late and which never did
    (with when each was sent, whether the broker acknowledged it and whether it was read back from its topic)."""
    with probes.lock:
        waiting = sorted(probes.counted - probes.alerted.keys())
    until = time.monotonic() + wait_s
    while waiting and time.monotonic() < until:
        time.sleep(0.5)
        with probes.lock:
            waiting = [i for i in waiting if i not in probes.alerted]
    with probes.lock:
        return {
            "still_without_alert": [
                {
                    "event_id": i,
                    "sent_after_first_probe_s": round(probes.sent[i] - min(probes.sent.values()), 2),
                    "acked": i in probes.acked,
                    "read_back_from_its_topic": i in probes.echoed,
                }
                for i in waiting
            ],
        }


def _where_is(bootstrap: str, event_ids: list[str]) -> dict[str, list[str]]:
    """Every record, on every topic of the run's broker, whose key or value names one of `event_ids` (read from the
    start): tells a probe the worker never applied from one whose alert went somewhere else."""
    from kafka import KafkaConsumer
    from kafka.structs import TopicPartition

    found: dict[str, list[str]] = {i: [] for i in event_ids}
    needles = {i: i.encode() for i in event_ids}
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        parts = [TopicPartition(t, p) for t in consumer.topics() for p in consumer.partitions_for_topic(t) or ()]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        ends = consumer.end_offsets(parts)
        while any(consumer.position(tp) < end for tp, end in ends.items()):
            for tp, records in consumer.poll(timeout_ms=500, max_records=5000).items():
                for record in records:
                    blob = (record.key or b"") + b" " + (record.value or b"")
                    for event_id, needle in needles.items():
                        if needle in blob:
                            found[event_id].append(f"{tp.topic}[{tp.partition}]@{record.offset}")
    finally:
        consumer.close()
    return found


_NO_DIGITS = str.maketrans("0123456789", "ghijklmnop")


def probe_event(template: MissingReported, now: datetime) -> MissingReported:
    return template.model_copy(
        update={
            "event_id": str(uuid.uuid4()),
            "child_id": secrets.token_hex(32),
            # letters only: a run of ten digits can pass the NHS number check, and the worker rightly dead-letters
            # an event whose record id looks like one (about 1 probe in 900 did, until 2026-12-07)
            "episode_id": f"BENCH-PROBE-{uuid.uuid4().hex[:16].translate(_NO_DIGITS)}",
            "risk_level": "high",
            "occurred_at": now,
            "recorded_at": now,
        }
    )


def produce(
    bootstrap: str,
    background: list[AgencyEvent],
    probes: Probes,
    *,
    rate: float,
    probes_per_s: float,
    seconds: float,
    warmup: float,
    stop: threading.Event,
    stats: dict[str, Any],
) -> None:
    """Publish background events at `rate`/s and a probe every 1/`probes_per_s` s, for warmup + seconds."""
    from kafka import KafkaProducer

    producer = KafkaProducer(**{**PRODUCER_DEFAULTS, **client_options(KafkaSettings(), bootstrap)})
    relabel = Relabeller(la=int(time.time()))  # fresh pseudonyms for this run
    template = next(e for e in background if isinstance(e, MissingReported))
    started = time.monotonic()
    total_s = warmup + seconds
    sent = probe_count = 0
    late_max = 0.0
    next_probe = started + 1.0 / probes_per_s
    try:
        while not stop.is_set():
            now_mono = time.monotonic()
            elapsed = now_mono - started
            if elapsed >= total_s:
                break
            due = int(elapsed * rate)
            now = datetime.now(UTC)
            while sent < due:
                event = live(background[sent % len(background)], relabel, now)
                producer.send(topic_for(event.event_type).name, key=message_key(event).encode(), value=encode(event))
                sent += 1
            if now_mono >= next_probe:
                late_max = max(late_max, now_mono - next_probe)
                probe = probe_event(template, datetime.now(UTC))
                value, key = encode(probe), probe.child_id.encode()
                counted = elapsed >= warmup
                with probes.lock:
                    probes.sent[probe.event_id] = time.time()
                    if counted:
                        probes.counted.add(probe.event_id)
                future = producer.send(MISSING_EPISODES.name, key=key, value=value)
                future.add_callback(_acked, probes, probe.event_id)
                probe_count += 1
                next_probe += 1.0 / probes_per_s
            time.sleep(0.002)
        producer.flush()
    finally:
        producer.close()
        stats.update(
            {
                "background_sent": sent,
                "probes_sent": probe_count,
                "seconds": round(time.monotonic() - started, 1),
                "achieved_rate_per_s": round(sent / (time.monotonic() - started), 1),
                "max_probe_schedule_slip_ms": round(late_max * 1000, 1),
            }
        )


def _acked(probes: Probes, event_id: str, _metadata: Any) -> None:
    with probes.lock:
        probes.acked[event_id] = time.time()


def consume(bootstrap: str, probes: Probes, ready: threading.Event, stop: threading.Event) -> None:
    """Read the alerts topic and the probes' own topic from their current ends; match alerts to probes."""
    from kafka import KafkaConsumer
    from kafka.structs import TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, fetch_max_wait_ms=100
    )
    try:
        parts = [
            TopicPartition(topic, p)
            for topic in (ALERTS.name, MISSING_EPISODES.name)
            for p in sorted(consumer.partitions_for_topic(topic) or [])
        ]
        consumer.assign(parts)
        consumer.seek_to_end(*parts)
        for tp in parts:
            consumer.position(tp)
        ready.set()
        while not stop.is_set():
            for tp, records in consumer.poll(timeout_ms=50, max_records=2000).items():
                received = time.time()
                for record in records:
                    if tp.topic == MISSING_EPISODES.name:
                        event_id = json.loads(record.value).get("event_id")
                        with probes.lock:
                            if event_id in probes.sent:
                                probes.echoed.setdefault(event_id, received)
                        continue
                    alert = json.loads(record.value)
                    matched = False
                    with probes.lock:
                        for event_id in alert.get("evidence_event_ids", ()):
                            if event_id in probes.sent:
                                probes.alerted.setdefault(event_id, received)
                                probes.alert_created.setdefault(event_id, record.timestamp / 1000)
                                matched = True
                        if not matched:
                            probes.background_alerts += 1
    finally:
        consumer.close()


def run_at(
    background: list[AgencyEvent],
    *,
    rate: float,
    probes_per_s: float,
    seconds: float,
    warmup: float,
    worker_env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One measurement on a broker and a worker of its own: latencies of the probes sent after the warm-up.

    `worker_env`: settings for the worker other than its defaults (`SAFEGUARD_STREAMS__...`)."""
    probes = Probes()
    producer_stats: dict[str, Any] = {}
    worker_stats: dict[str, Any] = {}
    workdir = Path(tempfile.mkdtemp(prefix="bench-latency-"))
    try:
        with local_broker() as bootstrap:
            worker = WorkerProcess(bootstrap, "bench-latency", workdir, extra_env=dict(worker_env or {}))
            offsets = Offsets(bootstrap)
            spawned = time.monotonic()
            worker.start()
            try:
                ready_at = worker.wait_for_log(WORKER_READY, 120)
                say(f"worker pid {worker.pid} ready")
                time.sleep(2)  # let the tables settle after the first assignment
                stop = threading.Event()
                consumer_ready = threading.Event()
                consumer = threading.Thread(
                    target=consume, args=(bootstrap, probes, consumer_ready, stop), name="alerts", daemon=True
                )
                consumer.start()
                consumer_ready.wait(60)
                cpu0, t0 = cpu_seconds(worker.pid), time.monotonic()
                sched0 = scheduler_seconds(worker.pid)
                say(
                    f"producing {rate:,.0f} events/s and {probes_per_s:g} probes/s for "
                    f"{warmup:.0f} s warm-up + {seconds:.0f} s measured"
                )
                producer = threading.Thread(
                    target=produce,
                    args=(bootstrap, background, probes),
                    kwargs={
                        "rate": rate,
                        "probes_per_s": probes_per_s,
                        "seconds": seconds,
                        "warmup": warmup,
                        "stop": stop,
                        "stats": producer_stats,
                    },
                    name="producer",
                    daemon=True,
                )
                producer.start()
                lags: list[tuple[float, int]] = []
                while producer.is_alive():
                    producer.join(5)
                    if not worker.alive():
                        raise RuntimeError(f"the worker died:\n{worker.log_text()[-3000:]}")
                    ends = offsets.ends()
                    lag = sum(ends.values()) - offsets.committed("bench-latency", ends)
                    lags.append((round(time.monotonic() - t0, 1), lag))
                    with probes.lock:
                        done = len(probes.alerted)
                    say(f"  {done:,}/{len(probes.sent):,} probes alerted; worker lag {lag:,} events (committed)")
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline:
                    with probes.lock:
                        if probes.counted.issubset(probes.alerted):
                            break
                    time.sleep(0.2)
                busy = time.monotonic() - t0
                late = _wait_for_stragglers(probes, t0, LATE_WAIT_S)
                if late["still_without_alert"]:  # where did they go? (the first 20: a slow worker has many)
                    late["found_in"] = _where_is(bootstrap, [p["event_id"] for p in late["still_without_alert"][:20]])
                    kept = Path(tempfile.gettempdir()) / "bench-alert_latency-worker.log"
                    shutil.copyfile(worker.log_path, kept)
                    ends = offsets.ends()
                    late["worker_lag_at_the_end"] = sum(ends.values()) - offsets.committed("bench-latency", ends)
                    late["worker_log"] = str(kept)
                    say(f"  probes without an alert {LATE_WAIT_S:.0f} s later: {late}")
                sched1 = scheduler_seconds(worker.pid)
                worker_stats = {
                    "share_of_time_running": round((sched1[0] - sched0[0]) / busy, 3),
                    "share_of_time_waiting_for_a_cpu": round((sched1[1] - sched0[1]) / busy, 3),
                    "startup_s_to_ready": round(ready_at - spawned, 2),
                    "cpu_share_of_one_core": round((cpu_seconds(worker.pid) - cpu0) / busy, 3),
                    "rss_mib_at_end": round(rss_bytes(worker.pid) / (1 << 20), 1),
                    "committed_lag_samples": lags,
                    "probes_after_the_wait": late,
                }
                stop.set()
                consumer.join(10)
            finally:
                offsets.close()
                worker.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    with probes.lock:
        counted = sorted(probes.counted)
        alert_lat = [probes.alerted[i] - probes.sent[i] for i in counted if i in probes.alerted]
        echo_lat = [probes.echoed[i] - probes.sent[i] for i in counted if i in probes.echoed]
        ack_lat = [probes.acked[i] - probes.sent[i] for i in counted if i in probes.acked]
        to_alert_produced = [probes.alert_created[i] - probes.sent[i] for i in counted if i in probes.alert_created]
        alert_delivery = [probes.alerted[i] - probes.alert_created[i] for i in counted if i in probes.alert_created]
        missing = [i for i in counted if i not in probes.alerted]
        background_alerts = probes.background_alerts
    return {
        "probe_to_alert_received": summary_ms(alert_lat),
        "baseline_probe_to_probe_read_back": summary_ms(echo_lat),
        "probe_send_to_producer_ack": summary_ms(ack_lat),
        "probe_send_to_alert_produced_by_worker": summary_ms(to_alert_produced),
        "alert_produced_to_received": summary_ms(alert_delivery),
        "probes_counted": len(counted),
        "probes_without_alert": len(missing),
        "background_alerts_seen": background_alerts,
        "producer": producer_stats,
        "worker": worker_stats,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=1000.0, help="background events per second")
    parser.add_argument("--probes-per-s", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=90.0, help="measured time, after the warm-up")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds of load before probes count")
    parser.add_argument(
        "--extra-rates", default="5000", help="comma-separated other rates also measured (60 s each), for the curve"
    )
    parser.add_argument(
        "--also-batch-within",
        default="",
        help="comma-separated batch_within_s values also measured at --rate, each on a fresh broker and worker",
    )
    args = parser.parse_args(argv)

    load_before = load_average()
    say("generating the background: the simulated Leeds year (seed 7)")
    background = generate(LEEDS_2019, seed=7)
    details = run_at(
        background, rate=args.rate, probes_per_s=args.probes_per_s, seconds=args.seconds, warmup=args.warmup
    )
    extra = [float(r) for r in args.extra_rates.split(",") if r.strip()]
    details["other_rates"] = {}
    for rate in extra:
        say(f"also at {rate:,.0f} events/s (60 s)")
        other = run_at(background, rate=rate, probes_per_s=args.probes_per_s, seconds=60, warmup=args.warmup)
        details["other_rates"][f"{rate:g}_per_s"] = {
            key: other[key]
            for key in ("probe_to_alert_received", "baseline_probe_to_probe_read_back", "probes_without_alert")
        } | {"worker_cpu_share": other["worker"].get("cpu_share_of_one_core")}
    details["batch_within"] = {}
    for within in [float(w) for w in args.also_batch_within.split(",") if w.strip()]:
        say(f"also with batch_within_s {within:g} at {args.rate:,.0f} events/s")
        other = run_at(
            background,
            rate=args.rate,
            probes_per_s=args.probes_per_s,
            seconds=args.seconds,
            warmup=args.warmup,
            worker_env={"SAFEGUARD_STREAMS__BATCH_WITHIN_S": str(within)},
        )
        details["batch_within"][f"{within:g}"] = {
            key: other[key]
            for key in ("probe_to_alert_received", "baseline_probe_to_probe_read_back", "probes_without_alert")
        } | {"worker": other["worker"], "load_average_after": load_average()}
    latency = details["probe_to_alert_received"]
    hop = details["baseline_probe_to_probe_read_back"]
    missing = details["probes_without_alert"]
    background_alerts = details["background_alerts_seen"]
    say(f"probe -> alert: {latency}")
    say(f"baseline (one hop, probe read back from its topic): {hop}")
    p99 = float(latency.get("p99_ms", float("nan")))
    write_result(
        "alert_latency",
        metric="event -> alert latency p99 (probe handed to the producer -> alert read from safeguarding.alerts.v1)",
        value=p99,
        unit="ms",
        baseline="one Kafka hop: the same probe read back from its own topic by the same consumer (p99)",
        baseline_value=float(hop.get("p99_ms", 0.0)),
        target=f"p99 <= {TARGET_P99_MS:.0f} ms at {args.rate:,.0f} events/s (5,000/s reported too)",
        met=bool(p99 <= TARGET_P99_MS and not missing),
        parameters={
            "background_rate_per_s": args.rate,
            "probes_per_s": args.probes_per_s,
            "measured_seconds": args.seconds,
            "warmup_seconds": args.warmup,
            "probe": "missing.reported, risk_level high, new child each -> high_risk_missing",
            "producer": "kafka-python with producers.publisher.PRODUCER_DEFAULTS (acks=all, idempotent, linger 20 ms)",
            "worker_settings": "defaults (batch_size 1000, batch_within_s 0.05)",
        },
        notes=[
            f"p50 {latency.get('p50_ms')} ms, p95 {latency.get('p95_ms')} ms, p99 {latency.get('p99_ms')} ms, max "
            f"{latency.get('max_ms')} ms over {latency.get('count')} probes; {missing} probes got no alert.",
            f"Worker during the main run: running {details['worker'].get('share_of_time_running')} of the time, "
            f"runnable but waiting for a CPU {details['worker'].get('share_of_time_waiting_for_a_cpu')} (other "
            "processes on the 2 cores), the rest blocked (waiting for broker acks or input).",
            f"Where the time goes (p50): producer ack {details['probe_send_to_producer_ack'].get('p50_ms')} ms "
            f"(linger 20 ms + acks=all); probe -> alert written by the worker (its CreateTime) "
            f"{details['probe_send_to_alert_produced_by_worker'].get('p50_ms')} ms; alert written -> read "
            f"{details['alert_produced_to_received'].get('p50_ms')} ms.",
            "Other rates (each on a fresh broker and worker): "
            + "; ".join(
                f"{rate}: p50 {o['probe_to_alert_received'].get('p50_ms')} ms, p99 "
                f"{o['probe_to_alert_received'].get('p99_ms')} ms"
                for rate, o in details["other_rates"].items()
            )
            + ". When the offered rate nears the worker's capacity, latency is queueing (the worker's lag).",
            *[
                f"With batch_within_s {within} (fresh broker and worker, same rate, after the main run): p50 "
                f"{o['probe_to_alert_received'].get('p50_ms')} ms, p99 {o['probe_to_alert_received'].get('p99_ms')} "
                f"ms, {o['probes_without_alert']} probes without an alert; worker "
                f"{o['worker'].get('cpu_share_of_one_core')} of a core, waiting for a CPU "
                f"{o['worker'].get('share_of_time_waiting_for_a_cpu')} of the time; load after "
                f"{o['load_average_after']}."
                for within, o in details["batch_within"].items()
            ],
            "Background: the simulated Leeds year (88k events) replayed at the rate with fresh pseudonyms and "
            "current timestamps, so a year of each child's history is compressed into the run; window rules raise "
            f"alerts along the way ({background_alerts:,} background alerts seen).",
            "The worker is the project's own `python -m streams worker -l info` with default settings.",
            f"Load average before {load_before}, after {load_average()}.",
        ],
        details=details,
    )


if __name__ == "__main__":
    main()
