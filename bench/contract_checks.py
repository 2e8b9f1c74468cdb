"""CPU per message of the contract checks (decode, and decode + map as the sink does), against an older commit.

    .venv/bin/python -m bench.contract_checks [--against 987809a] [--days 120] [--rounds 5]

What the hostile-input guard (limits, event-time window, identifiers inside every string field, strict JSON
types) costs on ordinary traffic. One run measures both trees on the same simulated events, alternating
rounds so machine noise falls on both alike: this checkout, and `--against` (default 987809a, the last
commit before the guard) checked out into a temporary git worktree, removed afterwards. Each round runs in
a fresh interpreter (`PYTHONPATH` set to the tree) and reports its best of three passes, in CPU time.

Writes bench/results/contract_checks.json.
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

DEFAULT_AGAINST = "987809a"

# Runs inside the tree being measured; uses only what both trees have.
_MEASURE = r"""
import gc, json, sys, time
from datetime import UTC, datetime
from producers.simulate import LEEDS_2019, generate
from schemas.codec import decode_event, encode
from schemas.topics import message_key, topic_for
from sinks.records import Message, rows_for_message

days = int(sys.argv[1])
events = generate(LEEDS_2019, seed=7, days=days)
records = [(topic_for(e.event_type).name, message_key(e).encode(), encode(e)) for e in events]
now = datetime.now(UTC)
ts = int(now.timestamp() * 1000)
messages = [Message(t, 0, i, k, v, ts) for i, (t, k, v) in enumerate(records)]
gc.collect()
gc.freeze()
decode = mapped = float("inf")
for _ in range(3):
    started = time.process_time()
    for m in messages:
        decode_event(m.value)
    decode = min(decode, time.process_time() - started)
    started = time.process_time()
    for m in messages:
        rows_for_message(m, now)
    mapped = min(mapped, time.process_time() - started)
n = len(messages)
print(json.dumps({"messages": n, "decode_us": decode / n * 1e6, "decode_and_map_us": mapped / n * 1e6}))
"""


def measure(tree: Path, days: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(days)], cwd=tree, env=env, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise SystemExit(f"measuring {tree} failed:\n{out.stderr[-2000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", default=DEFAULT_AGAINST, help="the commit to compare with")
    parser.add_argument("--days", type=int, default=120, help="simulated days of one Leeds-sized year")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per tree")
    args = parser.parse_args()
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    load_at_start = load_average()
    with tempfile.TemporaryDirectory(prefix="bench-contract-checks-") as tmp:
        older = Path(tmp) / "tree"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(older), args.against], cwd=ROOT, check=True)
        try:
            now_runs: list[dict[str, Any]] = []
            old_runs: list[dict[str, Any]] = []
            for round_no in range(1, args.rounds + 1):
                now_runs.append(measure(ROOT, args.days))
                old_runs.append(measure(older, args.days))
                say(
                    f"round {round_no}/{args.rounds}: decode {now_runs[-1]['decode_us']:.1f} µs here vs "
                    f"{old_runs[-1]['decode_us']:.1f} at {args.against}; decode + map "
                    f"{now_runs[-1]['decode_and_map_us']:.1f} vs {old_runs[-1]['decode_and_map_us']:.1f}"
                )
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(older)], cwd=ROOT, check=False)

    def best(runs: list[dict[str, Any]], key: str) -> float:
        return round(min(float(r[key]) for r in runs), 1)

    decode_now, decode_old = best(now_runs, "decode_us"), best(old_runs, "decode_us")
    map_now, map_old = best(now_runs, "decode_and_map_us"), best(old_runs, "decode_and_map_us")
    write_result(
        "contract_checks",
        metric="CPU µs per message: decode + map (the sink's pure path), with the hostile-input guard",
        value=map_now,
        unit="µs CPU/message",
        baseline=f"the same path at {args.against} (before the guard), same events, alternating rounds",
        baseline_value=map_old,
        target="none set in issue 13 (report the cost of the guard)",
        met=True,
        parameters={"against": args.against, "head": head.strip(), "days": args.days, "rounds": args.rounds},
        notes=[
            f"decode_event alone: {decode_now} µs CPU/message here vs {decode_old} at {args.against} "
            f"(+{decode_now - decode_old:.1f}); decode + map: {map_now} vs {map_old} (+{map_now - map_old:.1f}).",
            f"{now_runs[0]['messages']:,} messages of a simulated Leeds-sized year ({args.days} days); best of "
            f"{args.rounds} rounds of best-of-three passes, CPU time of the measuring process.",
            f"Load average before {load_at_start}, after {load_average()}.",
        ],
        details={"rounds_here": now_runs, f"rounds_{args.against}": old_runs, "load_average_at_start": load_at_start},
    )


if __name__ == "__main__":
    main()
