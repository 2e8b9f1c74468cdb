"""The rule step in process (issue 14's first figure): CPU per event of the RuleProcessor, beside an older commit.

    .venv/bin/python -m bench.rule_step [--against 83c166b] [--rounds 3]

The simulated Leeds year (generate(LEEDS_2019, seed=7): 87,738 events, the mix the pipeline is calibrated
on) in event-time order, through the framework-free `RuleProcessor` exactly as the worker drives it: each
event applied, obligations re-applied, states flushed into dict tables every 500 events (the worker's batch)
in their stored form. Also the pure engine alone (no processor, no stored form), and the stored bytes per
subject. One run measures both trees on the same events in alternating rounds: this checkout, and
`--against` (default 83c166b, the last commit with the frozen pydantic state) in a temporary git worktree,
removed afterwards. Each round is a fresh interpreter; the input events are made before timing starts and
frozen out of the cyclic GC in both trees (`gc.freeze()`), so the figure is the rules' own cost.

Writes bench/results/rule_step.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import ROOT, load_average, say, write_result

DEFAULT_AGAINST = "83c166b"
TARGET_US = 20.0

# Runs inside the tree being measured; uses only what both trees have.
_MEASURE = r"""
import gc, json, resource, time
from datetime import UTC, datetime
from producers.simulate import LEEDS_2019, generate
from schemas.events import DomesticIncidentRecorded
from schemas.topics import topic_for
from streams.processor import RuleProcessor
from streams.rules import Catalogue, evaluate, obligations_from_incident, subject_of

events = sorted(generate(LEEDS_2019, seed=7), key=lambda e: (e.occurred_at, e.event_id))
topics = [topic_for(e.event_type).name for e in events]
inputs = []
for e in events:
    inputs.append(e)
    if isinstance(e, DomesticIncidentRecorded):
        inputs.extend(obligations_from_incident(e))
raised = datetime(2027, 1, 1, tzinfo=UTC)
gc.collect()
gc.freeze()

def processor_pass():
    children, households = {}, {}
    p = RuleProcessor(Catalogue.default(), children=children, households=households, partition_of=lambda s: 0)
    alerts = 0
    for i, (e, topic) in enumerate(zip(events, topics)):
        step = p.apply(e, topic=topic, partition=0, raised_at=raised)
        alerts += len(step.alerts)
        for o in step.obligations:
            alerts += len(p.apply(o, topic="obligations", partition=0, raised_at=raised).alerts)
        if i % 500 == 499:
            p.flush()
    p.flush()
    return alerts, children, households

def engine_pass():
    states = {}
    alerts = 0
    for item in inputs:
        key = subject_of(item)
        result = evaluate(states.get(key), item, raised, Catalogue_default)
        states[key] = result.state
        alerts += len(result.alerts)
    return alerts

Catalogue_default = Catalogue.default()
best_processor = best_engine = float("inf")
for _ in range(2):
    started = time.process_time()
    alerts, children, households = processor_pass()
    best_processor = min(best_processor, time.process_time() - started)
    started = time.process_time()
    engine_alerts = engine_pass()
    best_engine = min(best_engine, time.process_time() - started)
def size(value):
    return len(value) if isinstance(value, bytes) else len(json.dumps(value, separators=(",", ":")))
stored = [size(v) for v in children.values()] + [size(v) for v in households.values()]
n = len(events)
print(json.dumps({
    "events": n, "inputs": len(inputs), "alerts": alerts, "engine_alerts": engine_alerts,
    "processor_us": best_processor / n * 1e6, "engine_us": best_engine / n * 1e6,
    "subjects": len(stored), "stored_bytes_per_subject": sum(stored) / len(stored),
    "table_value_type": type(next(iter(children.values()))).__name__,
}))
"""


def measure(tree: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE], cwd=tree, env=env, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise SystemExit(f"measuring {tree} failed:\n{out.stderr[-2000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", default=DEFAULT_AGAINST, help="the commit to compare with")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per tree")
    args = parser.parse_args()
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    load_at_start = load_average()
    with tempfile.TemporaryDirectory(prefix="bench-rule-step-") as tmp:
        older = Path(tmp) / "tree"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(older), args.against], cwd=ROOT, check=True)
        try:
            now_runs: list[dict[str, Any]] = []
            old_runs: list[dict[str, Any]] = []
            for round_no in range(1, args.rounds + 1):
                now_runs.append(measure(ROOT))
                old_runs.append(measure(older))
                say(
                    f"round {round_no}/{args.rounds}: processor {now_runs[-1]['processor_us']:.1f} µs/event here vs "
                    f"{old_runs[-1]['processor_us']:.1f} at {args.against}; engine alone "
                    f"{now_runs[-1]['engine_us']:.1f} vs {old_runs[-1]['engine_us']:.1f}"
                )
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(older)], cwd=ROOT, check=False)

    def best(runs: list[dict[str, Any]], key: str) -> float:
        return round(min(float(r[key]) for r in runs), 1)

    now, old = now_runs[0], old_runs[0]
    if (now["alerts"], now["engine_alerts"]) != (old["alerts"], old["engine_alerts"]):
        raise SystemExit(f"the trees raised different alert counts: {now['alerts']} here, {old['alerts']} there")
    processor_now, processor_old = best(now_runs, "processor_us"), best(old_runs, "processor_us")
    engine_now, engine_old = best(now_runs, "engine_us"), best(old_runs, "engine_us")
    write_result(
        "rule_step",
        metric="CPU µs per event of the rule step in process (RuleProcessor with state flushes, Leeds mix)",
        value=processor_now,
        unit="µs CPU/event",
        baseline=f"the same step at {args.against} (frozen pydantic state, JSON dict tables), same events",
        baseline_value=processor_old,
        target=f"<= {TARGET_US:.0f} µs/event (>= 50,000 events/s)",
        met=processor_now <= TARGET_US,
        parameters={"against": args.against, "head": head.strip(), "rounds": args.rounds},
        notes=[
            f"RuleProcessor (apply, deadline index, partition clocks, flush to tables every 500 events): "
            f"{processor_now} µs CPU/event here vs {processor_old} at {args.against} "
            f"({processor_old / processor_now:.1f}x); {1e6 / processor_now:,.0f} events/s on one core.",
            f"Engine alone (evaluate per input, states in a dict, no stored form): {engine_now} vs {engine_old} "
            "µs/event.",
            f"Stored state per subject: {now['stored_bytes_per_subject']:.0f} bytes ({now['table_value_type']}) "
            "here vs "
            f"{old['stored_bytes_per_subject']:.0f} bytes of JSON text at {args.against} (held there as decoded "
            f"dicts, several times larger in memory), over {now['subjects']:,} subjects at the end of the year.",
            f"Both trees raised the same {now['alerts']:,} alerts over {now['events']:,} events "
            f"({now['inputs']:,} inputs with obligations); best of {args.rounds} rounds of best-of-two passes, "
            "CPU time of the measuring process, input events frozen out of the cyclic GC in both.",
            f"Load average before {load_at_start}, after {load_average()}.",
        ],
        details={"rounds_here": now_runs, f"rounds_{args.against}": old_runs, "load_average_at_start": load_at_start},
    )


if __name__ == "__main__":
    main()
