"""Events per second through the ingestion gateway (batches of 500) and the p99 latency of single posts at a fixed
rate, beside the project's kafka-python publisher writing the same events straight to Kafka (the limit).

    .venv/bin/python -m bench.gateway [--events 30000] [--rate 200] [--seconds 15]

One broker of its own. The gateway is `safeguard gateway run` in its own process (as deployed: uvicorn, API-key
authentication, validation, scope, the SQLite accepted-event index, acks=all), with one principal per agency type
of the simulated events; the driver posts from this process over keep-alive HTTP connections. Phases, one run:

1. the limit: EventPublisher (acks=all, idempotent) publishing the events (already built models) and flushing;
2. batches: the same number of other events posted as JSON arrays of 500 by two concurrent clients, each batch
   answered only after Kafka acknowledged every event;
3. single posts: one event per request at a fixed rate (open loop: each request is due at its slot, latency is
   measured from the slot, so a slow answer delays the next ones' latency too, not the schedule).

CPU time per event: the gateway process's own (from /proc), and the publishing process's for the limit.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from bench.common import ROOT, cpu_seconds, load_average, local_broker, say, write_result
from producers.publisher import EventPublisher
from producers.simulate import LEEDS_2019, generate
from safeguard.kafka_clients import client_options
from safeguard.settings import KafkaSettings
from schemas.codec import encode
from schemas.events import AgencyEvent

BATCH = 500
TARGET_RATIO = 0.5
TARGET_P99_MS = 50.0


def _events(count: int) -> list[AgencyEvent]:
    """`count` simulated events (the Leeds year, repeated under fresh event ids when more are asked for)."""
    year = generate(LEEDS_2019, seed=7)
    out: list[AgencyEvent] = []
    while len(out) < count:
        out += [e.model_copy(update={"event_id": str(uuid.uuid4())}) for e in year[: count - len(out)]]
    return out


def _principals_file(path: Path, events: list[AgencyEvent]) -> dict[str, str]:
    """One principal per agency type (its codes and LAs), via the CLI as an operator would; returns type -> key."""
    scope: dict[str, tuple[set[str], set[str]]] = defaultdict(lambda: (set(), set()))
    for e in events:
        scope[e.agency_type][0].add(e.agency_code)
        scope[e.agency_type][1].add(e.la_code)
    keys = {}
    env = {**os.environ, "SAFEGUARD_GATEWAY__PRINCIPALS_FILE": str(path)}
    for agency_type, (codes, las) in scope.items():
        args = [sys.executable, "-m", "safeguard", "gateway", "add-agency", f"bench-{agency_type}".replace("_", "-")]
        args += ["--agency-type", agency_type]
        for code in sorted(codes):
            args += ["--agency-code", code]
        for la in sorted(las):
            args += ["--la-code", la]
        out = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, check=True).stdout
        keys[agency_type] = next(line.strip() for line in out.splitlines() if line.strip().startswith("sgk_"))
    return keys


def _direct(bootstrap: str, events: list[AgencyEvent]) -> dict[str, float]:
    cpu0 = time.process_time()
    started = time.perf_counter()
    with EventPublisher.connect(client_options(KafkaSettings(), bootstrap)) as publisher:
        for event in events:
            publisher.publish(event)
        report = publisher.flush()
    elapsed = time.perf_counter() - started
    if report.delivered != len(events):
        raise RuntimeError(f"direct publishing failed: {report}")
    return {
        "events_per_s": len(events) / elapsed,
        "seconds": elapsed,
        "cpu_us_per_event": (time.process_time() - cpu0) / len(events) * 1e6,
    }


def _batches(url: str, keys: dict[str, str], events: list[AgencyEvent], clients: int) -> dict[str, Any]:
    by_type: dict[str, list[bytes]] = defaultdict(list)
    for event in events:
        by_type[event.agency_type].append(encode(event))
    work: list[tuple[str, bytes, int]] = []
    for agency_type, values in by_type.items():
        for start in range(0, len(values), BATCH):
            chunk = values[start : start + BATCH]
            work.append((keys[agency_type], b"[" + b",".join(chunk) + b"]", len(chunk)))
    accepted = 0
    lock = threading.Lock()
    statuses: dict[int, int] = defaultdict(int)

    def post(client: httpx.Client, item: tuple[str, bytes, int]) -> None:
        nonlocal accepted
        key, body, _ = item
        response = client.post(
            f"{url}/v1/events:batch",
            content=body,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        with lock:
            statuses[response.status_code] += 1
            if response.status_code == 200:
                accepted += response.json()["accepted"]

    shares = [work[i::clients] for i in range(clients)]

    def run(share: list[tuple[str, bytes, int]]) -> None:
        with httpx.Client(timeout=60) as client:
            for item in share:
                post(client, item)

    started = time.perf_counter()
    threads = [threading.Thread(target=run, args=(share,)) for share in shares]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    return {
        "events_per_s": accepted / elapsed,
        "seconds": elapsed,
        "accepted": accepted,
        "requests": len(work),
        "statuses": dict(statuses),
    }


def _singles(url: str, keys: dict[str, str], events: list[AgencyEvent], rate: float) -> dict[str, Any]:
    bodies = [(keys[e.agency_type], encode(e)) for e in events]
    latencies: list[float] = []
    statuses: dict[int, int] = defaultdict(int)
    lock = threading.Lock()
    local = threading.local()
    t0 = time.perf_counter() + 0.5

    def one(i: int) -> None:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(timeout=30)
        due = t0 + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        key, body = bodies[i]
        response = client.post(
            f"{url}/v1/events", content=body, headers={"X-API-Key": key, "Content-Type": "application/json"}
        )
        done = time.perf_counter()
        with lock:
            latencies.append((done - due) * 1000)
            statuses[response.status_code] += 1

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(one, range(len(bodies))))
    latencies.sort()
    q = statistics.quantiles(latencies, n=100)
    return {
        "requests": len(latencies),
        "rate_per_s": rate,
        "p50_ms": round(q[49], 2),
        "p90_ms": round(q[89], 2),
        "p99_ms": round(q[98], 2),
        "max_ms": round(latencies[-1], 2),
        "statuses": dict(statuses),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--clients", type=int, default=2)
    args = parser.parse_args()
    singles_count = int(args.rate * args.seconds)
    say(f"generating {2 * args.events + singles_count:,} events")
    events = _events(2 * args.events + singles_count)
    direct_events, batch_events, single_events = (
        events[: args.events],
        events[args.events : 2 * args.events],
        events[2 * args.events :],
    )
    load_start = load_average()
    work = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    with local_broker() as bootstrap:
        keys = _principals_file(work / "principals.toml", events)
        port = 18480 + os.getpid() % 1000
        env = {
            **os.environ,
            "SAFEGUARD_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
            "SAFEGUARD_GATEWAY__PRINCIPALS_FILE": str(work / "principals.toml"),
            "SAFEGUARD_GATEWAY__DATA_DIR": str(work / "data"),
            "SAFEGUARD_GATEWAY__BIND_PORT": str(port),
            "SAFEGUARD_GATEWAY__RATE_EVENTS_PER_S": "1000000",
            "SAFEGUARD_GATEWAY__RATE_BURST_EVENTS": "1000000",
        }
        log = (work / "gateway.log").open("wb")
        gateway = subprocess.Popen(
            [sys.executable, "-m", "safeguard", "gateway", "run"], env=env, cwd=ROOT, stdout=log, stderr=log
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or gateway.poll() is not None:
                    raise RuntimeError(f"the gateway did not start; see {work / 'gateway.log'}")
                time.sleep(0.2)
            # Warm-up: connections, metadata, the first batch of each principal (not counted).
            _batches(url, keys, _events(2000), 1)

            say(f"direct: EventPublisher, {len(direct_events):,} events")
            load_direct = load_average()
            direct = _direct(bootstrap, direct_events)
            say(f"  {direct['events_per_s']:,.0f} events/s, {direct['cpu_us_per_event']:.1f} µs CPU/event")

            say(f"gateway batches of {BATCH}: {len(batch_events):,} events, {args.clients} clients")
            load_batches = load_average()
            cpu0 = cpu_seconds(gateway.pid)
            batches = _batches(url, keys, batch_events, args.clients)
            batches["gateway_cpu_us_per_event"] = (cpu_seconds(gateway.pid) - cpu0) / max(batches["accepted"], 1) * 1e6
            batches["load_average"] = load_batches
            say(
                f"  {batches['events_per_s']:,.0f} events/s, gateway {batches['gateway_cpu_us_per_event']:.1f} µs "
                f"CPU/event, statuses {batches['statuses']}"
            )

            say(f"gateway single posts: {singles_count:,} at {args.rate:g}/s")
            load_singles = load_average()
            cpu0 = cpu_seconds(gateway.pid)
            singles = _singles(url, keys, single_events, args.rate)
            singles["gateway_cpu_us_per_event"] = (cpu_seconds(gateway.pid) - cpu0) / singles["requests"] * 1e6
            singles["load_average"] = load_singles
            say(f"  p50 {singles['p50_ms']} ms, p99 {singles['p99_ms']} ms, statuses {singles['statuses']}")
        finally:
            gateway.terminate()
            try:
                gateway.wait(timeout=30)
            except subprocess.TimeoutExpired:
                gateway.kill()
            log.close()
    load_end = load_average()
    direct["load_average"] = load_direct
    ratio = batches["events_per_s"] / direct["events_per_s"]
    met = ratio >= TARGET_RATIO and singles["p99_ms"] <= TARGET_P99_MS
    write_result(
        "gateway",
        metric="events/s through the gateway in batches of 500",
        value=round(batches["events_per_s"], 1),
        unit="events/s",
        baseline="EventPublisher (kafka-python, acks=all) publishing the same number of events directly",
        baseline_value=round(direct["events_per_s"], 1),
        target=f">= {TARGET_RATIO:.0%} of the direct publisher; single posts p99 <= {TARGET_P99_MS:g} ms at "
        f"{args.rate:g}/s",
        met=met,
        parameters={
            "events": args.events,
            "batch": BATCH,
            "clients": args.clients,
            "single_rate_per_s": args.rate,
            "single_requests": singles_count,
        },
        notes=[
            f"Batches of {BATCH}: {batches['events_per_s']:,.0f} events/s "
            f"({batches['gateway_cpu_us_per_event']:.1f} µs gateway CPU/event, load {batches['load_average']}); "
            f"direct EventPublisher {direct['events_per_s']:,.0f} events/s ({direct['cpu_us_per_event']:.1f} µs "
            f"CPU/event, load {direct['load_average']}); ratio {ratio:.2f} (target >= {TARGET_RATIO}).",
            f"Single posts at {args.rate:g}/s for {args.seconds:g} s (open loop, latency from each request's slot): "
            f"p50 {singles['p50_ms']} ms, p90 {singles['p90_ms']} ms, p99 {singles['p99_ms']} ms, max "
            f"{singles['max_ms']} ms ({singles['gateway_cpu_us_per_event']:.0f} µs gateway CPU/request, load "
            f"{singles['load_average']}); target p99 <= {TARGET_P99_MS:g} ms.",
            "The gateway is `safeguard gateway run` in its own process (uvicorn, one worker; API keys, validation, "
            "scope, SQLite accepted-event index, kafka-python acks=all with linger 1 ms, access log at INFO); each "
            "answer waits for Kafka's acknowledgement of every event it reports accepted. The driver (httpx, "
            "keep-alive) and the broker share the same 2 cores with it.",
            f"Events: the simulated Leeds year under fresh event ids, one principal per agency type; load average at "
            f"the start {load_start}, at the end {load_end}.",
        ],
        details={"direct": direct, "batches": batches, "singles": singles},
    )


if __name__ == "__main__":
    main()
