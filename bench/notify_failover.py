"""Two notifier instances on one PostgreSQL store: failover time and burst latency (`python -m bench.notify_failover`).

Starts its own Kafka broker (6 partitions; bench.notify_latency's), its own PostgreSQL server (initdb in a temp
dir, a free loopback port, stopped by its pid: tests/integration/postgres_server.py), the SMTP recorder of
bench.notify_latency in a process of its own, and notifier instances as processes of their own
(tests/integration/test_notify/ha_instance.py, the code behind `safeguard notify run`) with the default timing and
lease (`claim_lease_s` 5 s, consumer `session_timeout_ms` 6 s) and the email channel only.

1. Latency: warm-up, then 3 bursts of 1,000 high/critical alerts for 1,000 subjects; per alert, SMTP accept time
   minus the time its record was handed to the producer. Two instances on PostgreSQL, and side by side in the same
   run on the same broker and SMTP server, the baseline: one instance on SQLite (the single-instance default).
2. Failover: with two instances running and a trickle of alerts (20/s), SIGKILL one; at the kill a probe alert is
   published to each of the 6 partitions. Failover time = kill → every probe emailed (the killed instance's
   partitions wait for the consumer group to notice); also kill → first probe emailed. Three kills (a, then b,
   then a again; the killed instance is restarted in between). Repeats: emails beyond the first per alert.
Result: bench/results/notify_failover.json.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from bench.notify_latency import ROTA, Accepted, alerts, broker, machine, percentiles, say, wait_all
from notify.service import Topics
from schemas.alerts import AlertRaised
from schemas.codec import encode
from tests.integration.postgres_server import postgres_server
from tests.integration.test_notify.ha import Cluster, Instance

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "bench" / "results" / "notify_failover.json"
BURST = 1000
ROUNDS = 3
WARMUP = 20
PARTITIONS = 6
KILLS = 3
TRICKLE_PER_S = 20
LATENCY_TARGET_S = 2.0
FAILOVER_TARGET_S = 10.0
SETTINGS: dict[str, Any] = {
    "channels": ["email"],
    "users": {},
    "group_wait_s": 0.5,
    "retry_initial_s": 1.0,
    "retry_max_s": 300.0,
    "claim_lease_s": 5.0,
    "session_timeout_ms": 6000,
}


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_of(instances: list[Instance]) -> float:
    return sum(cpu_s(i.process.pid) for i in instances if i.process is not None and i.alive)


def make_topics(bootstrap: str, tag: str) -> Topics:
    topics = Topics(alerts=f"bench.ha-alerts.{tag}", lifecycle=f"bench.ha-lifecycle.{tag}")
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topics.alerts, PARTITIONS, 1), NewTopic(topics.lifecycle, PARTITIONS, 1)])
    admin.close()
    return topics


def publish(
    producer: KafkaProducer, topic: str, batch: list[AlertRaised], partition: int | None = None
) -> dict[str, float]:
    sent: dict[str, float] = {}
    for alert in batch:
        sent[alert.alert_id] = time.time()
        producer.send(topic, key=alert.alert_id.encode(), value=encode(alert), partition=partition)
    producer.flush(60)
    return sent


def emails_per_alert(path: Path) -> Counter[str]:
    counts: Counter[str] = Counter()
    for line in path.read_text(encoding="utf-8").splitlines():
        if line:
            counts[line.split("\t")[0]] += 1
    return counts


def latency_run(cluster: Cluster, names: list[str], accepted: Accepted, producer: KafkaProducer) -> dict[str, Any]:
    instances = [cluster.start(n) for n in names]
    try:
        warm = alerts(f"{cluster.group}-warm", WARMUP)
        publish(producer, cluster.topics.alerts, warm)
        wait_all(accepted, [a.alert_id for a in warm])
        time.sleep(2)
        say(f"{'+'.join(names)} warmed up; publishing the bursts")
        cpu_before = cpu_of(instances)
        rounds: list[dict[str, Any]] = []
        for r in range(ROUNDS):
            burst = alerts(f"{cluster.group}-burst{r}", BURST)
            started = time.time()
            sent = publish(producer, cluster.topics.alerts, burst)
            wait_all(accepted, [a.alert_id for a in burst])
            wall = max(accepted.at[a.alert_id] for a in burst) - started
            rounds.append({"latencies": [accepted.at[i] - t for i, t in sent.items()], "wall_s": round(wall, 3)})
            time.sleep(2)
        cpu = cpu_of(instances) - cpu_before
    finally:
        for instance in instances:
            instance.stop()
    every = [x for r in rounds for x in r["latencies"]]
    return {
        "latency_s": percentiles(every),
        "per_burst": [{"p99": percentiles(r["latencies"])["p99"], "burst_wall_s": r["wall_s"]} for r in rounds],
        "cpu_ms_per_alert": round(cpu * 1000 / (BURST * ROUNDS), 3),
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }


def failover_run(cluster: Cluster, accepted: Accepted, producer: KafkaProducer, log: Path) -> dict[str, Any]:
    running = {"a": cluster.start("a"), "b": cluster.start("b")}
    stop = threading.Event()
    trickled: list[str] = []

    def trickle() -> None:
        n = 0
        while not stop.is_set():
            batch = alerts(f"{cluster.group}-trickle{n}", 1)
            publish(producer, cluster.topics.alerts, batch)
            trickled.append(batch[0].alert_id)
            n += 1
            time.sleep(1 / TRICKLE_PER_S)

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    kills: list[dict[str, Any]] = []
    try:
        time.sleep(5)
        for k, victim in enumerate(["a", "b", "a"][:KILLS]):
            load = [round(x, 2) for x in os.getloadavg()]
            killed_at_wall = time.time()
            running[victim].kill()
            probes = alerts(f"{cluster.group}-probe{k}", PARTITIONS)
            for p, probe in enumerate(probes):
                publish(producer, cluster.topics.alerts, [probe], partition=p)
            ids = [p.alert_id for p in probes]
            wait_all(accepted, ids, timeout_s=120)
            done = [accepted.at[i] for i in ids]
            kills.append({
                "killed": victim,
                "kill_to_first_probe_s": round(min(done) - killed_at_wall, 3),
                "kill_to_all_probes_s": round(max(done) - killed_at_wall, 3),
                "load_average_at_kill": load,
            })  # fmt: skip
            say(f"kill {k + 1} ({victim}): {kills[-1]}")
            running[victim] = cluster.start(f"{victim}{k + 2}")  # back again before the next kill
            time.sleep(8)
    finally:
        stop.set()
        thread.join(30)
    wait_all(accepted, trickled, timeout_s=120)
    time.sleep(float(SETTINGS["claim_lease_s"]) + 2)  # a late repeat would arrive by now
    for instance in running.values():
        instance.stop()
    counts = emails_per_alert(log)
    trickle_and_probes = set(trickled) | {
        a.alert_id for k in range(len(kills)) for a in alerts(f"{cluster.group}-probe{k}", PARTITIONS)
    }
    repeats = {i: counts[i] - 1 for i in trickle_and_probes if counts[i] > 1}
    return {
        "kills": kills,
        "failover_s_max": max(k["kill_to_all_probes_s"] for k in kills),
        "alerts": len(trickle_and_probes),
        "lost": sum(1 for i in trickle_and_probes if counts[i] == 0),
        "repeated_emails": sum(repeats.values()),
        "alerts_repeated": len(repeats),
        "most_emails_for_one_alert": max(counts[i] for i in trickle_and_probes),
    }


def main() -> None:
    smtp_port = free_port()
    work = Path(tempfile.mkdtemp(prefix="bench-notify-failover-"))
    log = work / "accepted.tsv"
    log.touch()
    accepted = Accepted(log)
    server = subprocess.Popen([sys.executable, "-m", "bench.notify_latency", "--smtp", str(smtp_port), str(log)])
    deadline = time.monotonic() + 30
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", smtp_port), timeout=1):
            break
        if time.monotonic() > deadline or server.poll() is not None:
            raise RuntimeError("the SMTP server did not start")
        time.sleep(0.1)
    say(f"SMTP server pid {server.pid} on 127.0.0.1:{smtp_port}")
    load_before = [round(x, 2) for x in os.getloadavg()]
    try:
        with broker() as bootstrap, postgres_server() as pg:
            say(f"PostgreSQL pid {pg.pid} on {pg.host}:{pg.port}")
            producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)

            def cluster(tag: str, shared: bool) -> Cluster:
                (work / tag).mkdir()
                return Cluster(
                    bootstrap=bootstrap, store_url=pg.new_database() if shared else None,
                    store_password=pg.password if shared else None, smtp_host="127.0.0.1", smtp_port=smtp_port,
                    password_hash="", workdir=work / tag, topics=make_topics(bootstrap, tag),
                    extra=dict(SETTINGS), rota_text=ROTA,
                )  # fmt: skip

            try:
                two = latency_run(cluster("two", True), ["a", "b"], accepted, producer)
                say(f"two instances on PostgreSQL: {two}")
                one = latency_run(cluster("one", False), ["solo"], accepted, producer)
                say(f"one instance on SQLite (baseline): {one}")
                failover = failover_run(cluster("failover", True), accepted, producer, log)
                say(f"failover: {failover}")
            finally:
                producer.close(10)
    finally:
        server.terminate()
        server.wait(30)
        shutil.rmtree(work, ignore_errors=True)
    p99, base_p99 = two["latency_s"]["p99"], one["latency_s"]["p99"]
    result = {
        "name": "notify_failover",
        "metric": "failover time (SIGKILL of one of two instances → a probe alert on every partition emailed), max "
        f"of {KILLS} kills; and p99 topic → SMTP under bursts of {BURST:,} alerts with two instances",
        "value": failover["failover_s_max"],
        "unit": "s",
        "target": f"failover <= {FAILOVER_TARGET_S} s; p99 <= {LATENCY_TARGET_S} s",
        "met": failover["failover_s_max"] <= FAILOVER_TARGET_S and p99 <= LATENCY_TARGET_S,
        "p99_two_instances_s": p99,
        "baseline": "one instance on SQLite (the single-instance default), same broker, SMTP server and bursts",
        "baseline_p99_s": base_p99,
        "ratio": round(p99 / base_p99, 3) if base_p99 else None,
        "machine": machine() | {"load_average_before": load_before},
        "parameters": {
            "alerts_per_burst": BURST,
            "bursts": ROUNDS,
            "partitions": PARTITIONS,
            "kills": KILLS,
            "trickle_alerts_per_s": TRICKLE_PER_S,
            **SETTINGS,
        },
        "details": {"two_instances_postgres": two, "one_instance_sqlite": one, "failover": failover},
        "notes": [
            "Failover is bounded by the consumer group noticing the killed member (session_timeout_ms 6 s, the "
            "broker's minimum by default) plus the rebalance; deliveries the killed instance had claimed wait for "
            "their lease (claim_lease_s 5 s) and are then sent by the survivor.",
            "Repeats: an email the killed instance handed to the SMTP server before it could record the result is "
            "sent again by the survivor (at most once per alert in flight; audited as delivery_taken_over).",
            "CPU per alert is the notifier processes' user + system time over the bursts (the broker, PostgreSQL "
            "and the SMTP server are not included).",
        ],
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    say(f"wrote {RESULT.relative_to(ROOT)}: failover {failover['failover_s_max']} s, p99 {p99} s "
        f"(one instance on SQLite: {base_p99} s)")  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


if __name__ == "__main__":
    main()
