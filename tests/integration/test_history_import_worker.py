"""Imported history through the real broker, the real worker and the real sink (issue 9, "Done when").

Two overlapping hand-written census years (tests/integration/fixtures/cin_quality) are imported with
`safeguard import cin` against a broker of this module's own; the worker (`python -m streams worker`) runs over
them, the same years are imported again, and the sink (`safeguard sink run --until-caught-up`) stores everything
in chDB. Then:

- the second plan of child 1, starting within 24 months of the first's end, raised `repeat_cp_plan` high;
- the re-import added no event downstream: no new alert, the tables hold each event once;
- the bad date was reported, the plan ending before it starts flagged (8925) and kept from the rules, and every
  finding stored in `quality_findings` with its rule id, event id and message; the worker's own checks made the
  same findings (same ids) for what it could see;
- no LAchildID or UPN of the files appears in any record of any topic, any row of any table, or any output or log.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer

from producers.pseudonymise import Pseudonymiser
from safeguard.settings import ClickHouseSettings, Settings
from schemas.codec import decode_alert
from schemas.quality import QualityFinding, decode_quality_finding
from schemas.topics import ALERTS, EVENT_TOPICS, QUALITY_FINDINGS
from sinks.store import connect
from tests.integration.kafka_reader import Record, read_new
from tests.integration.worker_runs import WorkerProcess, broker_holding, progress, wait_for

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).parent / "fixtures" / "cin_quality"
YEARS = [FIXTURES / "census-2019-20.xml", FIXTURES / "census-2020-21.xml"]
KEY = "integration partnership key, 32 chars"
IDENTIFIERS = [f"LA-900{n}0{n}" for n in (1, 2, 3, 4, 5)] + [
    "K383201900101",
    "K383201900202",
    "K383201900303",
    "K383201900404",
    "K383202000505",
]
"""Every LAchildID and UPN in the two files."""
TIMEOUT_S = 300


def forms(identifier: str) -> list[str]:
    """An identifier as written, without its hyphen, and in lower case (how a leak could look)."""
    return sorted({identifier, identifier.replace("-", ""), identifier.lower(), identifier.replace("-", "").lower()})


@dataclass
class Run:
    """What the module's one pass through the pipeline left behind, for its tests to look at."""

    imports: list[subprocess.CompletedProcess[str]] = field(default_factory=list)
    alerts_after_first: list[Record] = field(default_factory=list)
    alerts_after_second: list[Record] = field(default_factory=list)
    findings: list[Record] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)
    topics: list[str] = field(default_factory=list)
    tables: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)
    columns: dict[str, list[str]] = field(default_factory=dict)
    logs: str = ""
    event_messages: int = 0


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFEGUARD_")}
    env.update({"SAFEGUARD_PSEUDONYM_KEY": KEY, "SAFEGUARD_LA_CODE": "383", **extra})
    return env


def _cli(env: dict[str, str], cwd: Path, *args: str, timeout: float = TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", "from safeguard.cli import main; main()", *args]
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def _caught_up(bootstrap: str, group: str) -> bool:
    processed, total = progress(bootstrap, group)
    return total > 0 and processed >= total


def _quiet(bootstrap: str, topic: str, seconds: float = 5) -> list[Record]:
    """The topic's records once it has stopped growing for `seconds`."""
    seen, since = -1, time.monotonic()
    records: list[Record] = []
    while time.monotonic() - since < seconds:
        records = read_new(bootstrap, {}, [topic])
        if len(records) != seen:
            seen, since = len(records), time.monotonic()
        time.sleep(1)
    return records


def _all_topics(bootstrap: str) -> list[str]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    try:
        return sorted(consumer.topics())
    finally:
        consumer.close()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    workdir = tmp_path_factory.mktemp("history-import")
    result = Run()
    with broker_holding(tmp_path_factory.mktemp("kafka-history-import"), []) as bootstrap:
        env = _env(SAFEGUARD_KAFKA__BOOTSTRAP_SERVERS=bootstrap)
        files = [str(path) for path in YEARS]
        result.imports.append(_cli(env, workdir, "import", "cin", *files))
        worker = WorkerProcess(bootstrap, f"history-{uuid.uuid4().hex[:8]}", workdir)
        worker.start()
        try:
            wait_for(worker, "the first import processed", lambda: _caught_up(bootstrap, worker.app_id), TIMEOUT_S)
            result.alerts_after_first = _quiet(bootstrap, ALERTS.name)
            result.imports.append(_cli(env, workdir, "import", "cin", *files))
            wait_for(worker, "the re-import processed", lambda: _caught_up(bootstrap, worker.app_id), TIMEOUT_S)
            result.alerts_after_second = _quiet(bootstrap, ALERTS.name)
            result.findings = _quiet(bootstrap, QUALITY_FINDINGS.name)
        finally:
            worker.stop()
        store = workdir / "store"
        sink_env = {
            **env,
            "SAFEGUARD_CLICKHOUSE__URL": f"chdb://{store}",
            "SAFEGUARD_CLICKHOUSE__CONSUMER_GROUP": f"sink-{uuid.uuid4().hex[:8]}",
            "SAFEGUARD_CLICKHOUSE__BATCH_SECONDS": "0.5",
            # the census years are older than the default retention of events: keep them to look at them
            "SAFEGUARD_CLICKHOUSE__RETENTION_EVENTS": "forever",
            "SAFEGUARD_CLICKHOUSE__RETENTION_ALERTS": "forever",
            "SAFEGUARD_CLICKHOUSE__RETENTION_DEAD_LETTERS": "forever",
        }
        sink = _cli(sink_env, workdir, "sink", "run", "--until-caught-up")
        assert sink.returncode == 0, sink.stderr[-3000:]
        result.topics = _all_topics(bootstrap)
        result.records = read_new(bootstrap, {}, result.topics)
        result.event_messages = sum(1 for r in result.records if r.topic in {t.name for t in EVENT_TOPICS})
        worker_log = workdir / f"worker-{worker.app_id}.log"
        result.logs = "\n".join(
            [
                *(p.stdout + p.stderr for p in result.imports),
                sink.stdout + sink.stderr,
                worker_log.read_text() if worker_log.exists() else "",
            ]
        )
    client = connect(Settings(_env_file=None, clickhouse=ClickHouseSettings(url=f"chdb://{store}")))
    try:
        names = client.query(
            "SELECT name FROM system.tables WHERE database = 'safeguard' AND engine NOT LIKE '%View%'"
        ).result_rows
        for (name,) in names:
            answer = client.query(f"SELECT * FROM safeguard.`{name}`")
            result.tables[name] = [tuple(row) for row in answer.result_rows]
            result.columns[name] = list(answer.column_names)
    finally:
        client.close()
    yield result


def _rows(run: Run, table: str) -> list[dict[str, Any]]:
    return [dict(zip(run.columns[table], row, strict=True)) for row in run.tables[table]]


def test_the_imports_report_the_bad_date_and_flag_the_plan_ending_before_it_starts(run: Run) -> None:
    for done in run.imports:
        assert done.returncode == 1, done.stderr[-3000:]  # a rejected element and a flagged event not imported
        assert "CINreferralDate: '2020-02-30' is not a day of the calendar" in done.stderr
        assert "CPPendDate: rule 8925 (plan_ends_before_start): the plan ends (2020-02-15)" in done.stderr
        assert "flagged by data-quality checks" in done.stdout


def test_a_second_plan_within_24_months_of_the_first_raises_repeat_cp_plan_high(run: Run) -> None:
    first_child = Pseudonymiser.from_secret(KEY).pseudonym("LA-900101")
    alerts = [decode_alert(r.value) for r in run.alerts_after_first]
    repeat = [a for a in alerts if a.rule_id == "repeat_cp_plan" and a.subject_id == first_child]
    assert [a.severity for a in repeat] == ["high"], alerts
    assert len(repeat[0].evidence_event_ids) == 3, "the new start, and the earlier plan's start and end"


def test_the_re_import_adds_nothing_downstream(run: Run) -> None:
    assert run.alerts_after_second == run.alerts_after_first, "no alert from the second import"
    plans = _rows(run, "cp_plans")
    assert len(plans) * 2 == sum(1 for r in run.records if r.topic == "safeguarding.cp-plans.v1")
    ids = [r["event_id"] for table in ("contacts", "contact_decisions", "cp_plans") for r in _rows(run, table)]
    assert len(ids) == len(set(ids)) == run.event_messages // 2


def test_every_finding_is_stored_with_its_rule_event_and_message(run: Run) -> None:
    on_topic = [decode_quality_finding(r.value) for r in run.findings]
    by_importer = {f.finding_id: f for f in on_topic if f.found_by == "importer"}
    by_worker = {f.finding_id: f for f in on_topic if f.found_by == "worker"}
    assert sorted(f.rule_id for f in by_importer.values()) == ["8840", "8866", "8905", "8910", "8925", "8935", "8940"]
    # The worker checks every event it applies against its own state: it finds what it can see, by the same ids.
    assert sorted(f.rule_id for f in by_worker.values()) == ["8840", "8935", "8940"]
    assert set(by_worker) <= set(by_importer)
    rows = _rows(run, "quality_findings")
    stored = {r["finding_id"]: r for r in rows}
    assert len(rows) == len(stored), "one row per finding"
    assert set(stored) == set(by_importer)
    for finding_id, found in by_importer.items():
        row = stored[finding_id]
        assert (row["rule_id"], row["event_id"], row["message"]) == (found.rule_id, found.event_id, found.message)
    held = by_importer_rule(by_importer, "8925")
    assert stored[held.finding_id]["fed"] is False
    assert held.event_id not in {r["event_id"] for r in _rows(run, "cp_plans")}, "the impossible end is not stored"


def by_importer_rule(findings: dict[str, QualityFinding], rule_id: str) -> QualityFinding:
    [found] = [f for f in findings.values() if f.rule_id == rule_id]
    return found


def test_identifiers_appear_nowhere_downstream(run: Run) -> None:
    assert QUALITY_FINDINGS.name in run.topics and any(t.endswith("-changelog") for t in run.topics)
    assert run.records and run.tables["quality_findings"] and "plan_ends_same_day (rule" in run.logs
    wire = b"".join((r.key or b"") + b"\0" + r.value for r in run.records)
    stored = "\n".join(repr(row) for rows in run.tables.values() for row in rows)
    for identifier in IDENTIFIERS:
        for form in forms(identifier):
            assert form.encode() not in wire, f"{form!r} on a topic"
            assert form not in stored, f"{form!r} in a table"
            assert form not in run.logs, f"{form!r} in an output or a log"
