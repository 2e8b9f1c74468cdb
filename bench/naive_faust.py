"""The framework's floor: a naive Faust app with one agent and one table doing two of our rules, nothing else.

    python -m bench.naive_faust worker -l info      (configured like the worker: SAFEGUARD_KAFKA__BOOTSTRAP_SERVERS,
                                                     SAFEGUARD_STREAMS__APP_ID, SAFEGUARD_STREAMS__DATA_DIR)

What a first Faust user would write: one agent over the four event topics, `async for` one event at a time,
`json.loads`, a memory table of per-child missing-report times (one changelog message per table write), and
two rules in plain Python (high_risk_missing: a report with risk high; repeat_missing: a third report within
90 days), alerts sent to a topic of its own. No contract validation, dead letters, clocks, deadlines, dedupe,
households or obligations. `bench.worker_throughput` runs it beside the project's worker on the same events: the
figure to reach is a share of this app's events/s, since both pay the same Faust per-event machinery.

Measurement code only: it reads its settings from the environment as the bench harness passes them.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from typing import Any

import faust

from schemas.topics import EVENT_TOPICS

WINDOW = timedelta(days=90)
REPEATS = 3


def make_app() -> faust.App:
    bootstrap = os.environ["SAFEGUARD_KAFKA__BOOTSTRAP_SERVERS"]
    app_id = os.environ.get("SAFEGUARD_STREAMS__APP_ID", "bench-naive-faust")
    app = faust.App(
        app_id,
        env={},
        broker=[f"kafka://{host}" for host in bootstrap.split(",")],
        store="memory://",
        datadir=os.environ.get("SAFEGUARD_STREAMS__DATA_DIR", ".bench-naive-faust"),
        autodiscover=False,
        topic_partitions=6,
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        web_enabled=False,
    )
    missing_times = app.Table("missing-times", default=list, partitions=6, key_type=str, value_type=None)
    alerts = app.topic(f"{app_id}-alerts", key_type=bytes, value_type=bytes, partitions=6)
    events = app.topic(*(spec.name for spec in EVENT_TOPICS), key_type=bytes, value_type=bytes)

    @app.agent(events, concurrency=1)
    async def rules(stream: Any) -> None:
        async for value in stream:
            event = json.loads(value)
            if event.get("event_type") != "missing.reported":
                continue
            child = event["child_id"]
            at = datetime.fromisoformat(event["occurred_at"])
            if event.get("risk_level") == "high":
                await alerts.send(key=child.encode(), value=json.dumps({"rule": "high_risk_missing"}).encode())
            times = [t for t in missing_times[child] if at - datetime.fromisoformat(t) <= WINDOW]
            times.append(event["occurred_at"])
            missing_times[child] = times
            if len(times) >= REPEATS:
                await alerts.send(key=child.encode(), value=json.dumps({"rule": "repeat_missing"}).encode())

    return app


app = make_app()

if __name__ == "__main__":
    app.main()
