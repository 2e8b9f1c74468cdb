"""Backtest speed: a year of a Leeds-sized partnership through `safeguard rules backtest`, end to end.

    .venv/bin/python -m bench.backtest [--rounds 3]

The simulated Leeds year (generate(LEEDS_2019, seed=7): 87,738 events) written as JSONL and loaded into a chDB
store (the sink's own mapping and migrations), then `safeguard rules backtest` run as a user runs it, in a fresh
process per round, from each source: wall time from spawn to exit (imports, reading, both replays, the HTML),
and the child's CPU time. The proposed file lowers `repeat_missing` to 2 and shortens `repeat_domestic_abuse`
to P6M (the Kent and Medway variant of rules.md), so both matching paths (same id, changed, gained, lost) run.

In process (this interpreter, events already decoded), the phases: JSONL decoding, one catalogue replayed
alone (the baseline: what one replay costs), the backtest of both catalogues, the HTML. The store is loaded by a
child process: chDB locks its directory for the life of the process that opens it.

Writes bench/results/backtest.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import ROOT, load_average, say, write_result

TARGET_SECONDS = 30.0
"""Issue 9: "a year of a Leeds-sized partnership in well under a minute": half a minute, end to end."""
PROPOSED = '[repeat_missing]\nthreshold = 2\n\n[repeat_domestic_abuse]\nwindow = "P6M"\n'

_LOAD_STORE = r"""
import sys
from producers.simulate import LEEDS_2019, generate
from safeguard.settings import ClickHouseSettings, Settings
from sinks.mapping import rows_for_event
from sinks.migrate import migrate
from sinks.store import connect, insert_rows
settings = Settings(_env_file=None, clickhouse=ClickHouseSettings(url="chdb://" + sys.argv[1]))
client = connect(settings)
migrate(client, settings)
events = generate(LEEDS_2019, seed=7)
for start in range(0, len(events), 20_000):
    insert_rows(client, "safeguard", [r for e in events[start:start + 20_000] for r in rows_for_event(e)])
client.close()
print(len(events))
"""


def end_to_end(args: list[str], env: dict[str, str], log: Path) -> dict[str, float]:
    """One `safeguard rules backtest` in a fresh process: wall seconds and the child's CPU seconds."""
    with log.open("wb") as output:
        started = time.perf_counter()
        process = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "safeguard"), "rules", "backtest", *args],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"safeguard rules backtest {' '.join(args)} failed:\n{log.read_text()[-3000:]}")
    return {"wall_s": round(wall, 2), "cpu_s": round(usage.ru_utime + usage.ru_stime, 2)}


def in_process(jsonl: Path, rules: Path) -> dict[str, Any]:
    """The phases in this interpreter, CPU seconds each (best of two passes for the replays)."""
    from dashboards.backtest_report import render_backtest
    from streams.backtest import LineError, Period, decode_jsonl, in_event_time_order, run_backtest
    from streams.replay import replay_alerts
    from streams.rules import Catalogue, load_catalogue

    current, proposed = Catalogue.default(), load_catalogue(rules)
    started = time.process_time()
    with jsonl.open("rb") as lines:
        decoded = [item for item in decode_jsonl(lines) if not isinstance(item, LineError)]
    events = in_event_time_order(decoded)
    decode_s = time.process_time() - started
    raised_at = datetime(2030, 1, 1, tzinfo=UTC)
    one = both = float("inf")
    for _ in range(2):
        started = time.process_time()
        alerts = replay_alerts(events, current, partitions=6, raised_at=raised_at)
        one = min(one, time.process_time() - started)
        started = time.process_time()
        period = Period(events[0].occurred_at, events[-1].occurred_at)
        result = run_backtest(events, current, proposed, period=period, partitions=6, raised_at=raised_at)
        both = min(both, time.process_time() - started)
    started = time.process_time()
    page = render_backtest(
        result, title="bench", current_name="defaults", proposed_name=rules.name, source="bench", generated_at=raised_at
    )
    render_s = time.process_time() - started
    cmp = result.comparison
    return {
        "events": len(events),
        "decode_cpu_s": round(decode_s, 2),
        "one_catalogue_replay_cpu_s": round(one, 2),
        "backtest_two_catalogues_cpu_s": round(both, 2),
        "render_cpu_s": round(render_s, 2),
        "html_bytes": len(page.encode()),
        "alerts_current_catalogue_whole_history": len(alerts),
        "alerts": {
            "current": len(result.current),
            "proposed": len(result.proposed),
            "same": len(cmp.same),
            "changed": len(cmp.changed),
            "gained": len(cmp.gained),
            "lost": len(cmp.lost),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="end-to-end runs per source")
    args = parser.parse_args()
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    load_at_start = load_average()
    with tempfile.TemporaryDirectory(prefix="bench-backtest-") as tmp:
        work = Path(tmp)
        jsonl, rules, store = work / "year.jsonl", work / "proposed.toml", work / "store"
        rules.write_text(PROPOSED)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SAFEGUARD_")}
        say("writing the simulated Leeds year as JSONL")
        subprocess.run(
            [str(ROOT / ".venv" / "bin" / "safeguard"), "simulate", "--out", str(jsonl)],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
        say("loading it into a chDB store (child process)")
        subprocess.run([sys.executable, "-c", _LOAD_STORE, str(store)], cwd=ROOT, env=env, check=True)
        rounds: dict[str, list[dict[str, float]]] = {"jsonl": [], "store": []}
        for round_no in range(1, args.rounds + 1):
            for source, extra_env, source_args in (
                ("jsonl", {}, ["--source", str(jsonl)]),
                ("store", {"SAFEGUARD_CLICKHOUSE__URL": f"chdb://{store}"}, ["--source", "store"]),
            ):
                run = end_to_end(
                    ["--rules", str(rules), *source_args, "--out", str(work / f"{source}.html")],
                    {**env, **extra_env},
                    work / f"{source}.log",
                )
                rounds[source].append(run)
                say(f"round {round_no}/{args.rounds} {source}: {run['wall_s']} s wall, {run['cpu_s']} s CPU")
        say("phases in process")
        phases = in_process(jsonl, rules)
    events = phases["events"]
    best = {source: min(runs, key=lambda r: r["wall_s"]) for source, runs in rounds.items()}
    wall_rate = round(events / best["jsonl"]["wall_s"])
    value = round(events / best["jsonl"]["cpu_s"])
    baseline = round(events / phases["one_catalogue_replay_cpu_s"])
    store_rate = round(events / best["store"]["wall_s"])
    met = best["jsonl"]["wall_s"] <= TARGET_SECONDS and best["store"]["wall_s"] <= TARGET_SECONDS
    a = phases["alerts"]
    write_result(
        "backtest",
        metric="events per CPU second of `safeguard rules backtest` end to end (JSONL source, two catalogues, HTML; "
        "process start to exit, best round); wall time in the notes",
        value=value,
        unit="events/CPU s",
        baseline="one catalogue replayed alone in process (streams.replay, events already decoded), events per CPU s",
        baseline_value=baseline,
        target=f"a Leeds-sized year (87,738 events) in well under a minute: <= {TARGET_SECONDS:.0f} s end to end",
        met=met,
        parameters={"head": head.strip(), "rounds": args.rounds, "partitions": 6, "proposed": PROPOSED},
        notes=[
            f"{events:,} events: JSONL source {best['jsonl']['wall_s']} s wall ({wall_rate:,} events/s), "
            f"{best['jsonl']['cpu_s'] / events * 1e6:.0f} µs CPU/event ({best['jsonl']['cpu_s']} s CPU); store "
            f"source (chDB) {best['store']['wall_s']} s wall ({store_rate:,} events/s), "
            f"{best['store']['cpu_s'] / events * 1e6:.0f} µs CPU/event. Best of {args.rounds} rounds, each a "
            "fresh `safeguard` process (imports included).",
            f"In process (CPU s): decoding the JSONL {phases['decode_cpu_s']}, one catalogue replayed "
            f"{phases['one_catalogue_replay_cpu_s']}, the backtest of both {phases['backtest_two_catalogues_cpu_s']}"
            f", the HTML {phases['render_cpu_s']} ({phases['html_bytes'] / 1e6:.1f} MB).",
            f"Alerts: {a['current']:,} current, {a['proposed']:,} proposed; {a['same']:,} the same, "
            f"{a['changed']:,} changed, {a['gained']:,} gained, {a['lost']:,} lost.",
            f"Median wall over the rounds: JSONL {statistics.median(r['wall_s'] for r in rounds['jsonl'])} s, "
            f"store {statistics.median(r['wall_s'] for r in rounds['store'])} s.",
            f"Load average before {load_at_start}, after {load_average()}.",
        ],
        details={
            "rounds": rounds,
            "phases": phases,
            "cpu_s_per_event": {s: round(best[s]["cpu_s"] / events, 6) for s in best},
            "events_per_wall_s": {s: round(events / best[s]["wall_s"]) for s in best},
            "load_average_at_start": load_at_start,
        },
    )


if __name__ == "__main__":
    main()
