"""The SQL docs/operations.md tells operators to run, against the real schema (the sink's migrations on chDB, in a
process of its own): queries and deletes run; account and backup statements at least parse (chDB has no access
storage and no backup destination, so those stop at ACCESS_DENIED or a destination error, after parsing)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from tests.unit.test_deploy.deploy_files import ROOT

DOC = ROOT / "docs" / "operations.md"
RUNS = re.compile(r"^(SELECT|DELETE) ", re.I)
PARSE_ONLY_ERRORS = ("ACCESS_DENIED", "UNKNOWN_ROLE", "UNKNOWN_USER", "Not enough privileges", "'backups.allowed_path'")
"""Errors that come after parsing: chDB has no access storage, and no backups.allowed_path (the compose server gets
it from deploy/clickhouse/config.d/backups.xml, checked below)."""


def documented_sql() -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    statements: list[str] = []
    for block in re.findall(r"```sql\n(.*?)```", text, re.S):
        body = "\n".join(line for line in block.splitlines() if not line.strip().startswith("--"))
        statements += [" ".join(s.split()) for s in body.split(";") if s.strip()]
    statements += [" ".join(s.split()) for s in re.findall(r"`(SELECT [^`]+ FROM [^`]+)`", text)]
    statements += [s.replace("$(date +%F)", "2026-01-31") for s in re.findall(r'-q "((?:BACKUP|RESTORE) [^"]+)"', text)]
    return statements


def test_the_operations_guide_sql_works_on_the_schema(tmp_path: Path) -> None:
    statements = documented_sql()
    assert sum(1 for s in statements if RUNS.match(s)) >= 8, "the guide's queries and deletes were found"
    assert any(s.startswith("BACKUP DATABASE") for s in statements) and any(s.startswith("RESTORE") for s in statements)
    code = (
        "import json, sys\n"
        "from safeguard.settings import ClickHouseSettings\n"
        "from sinks.migrate import migrate\n"
        "from sinks.store import connect\n"
        "section = ClickHouseSettings(url='chdb://memory')\n"
        "client = connect(section)\n"
        "migrate(client, section)\n"
        "out = []\n"
        "for s in json.load(sys.stdin):\n"
        "    try:\n"
        "        client.command(s)\n"
        "        out.append('')\n"
        "    except Exception as e:\n"
        "        out.append(str(e).strip().splitlines()[0] or type(e).__name__)\n"
        "print(json.dumps(out))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(statements),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    errors = json.loads(proc.stdout.strip().splitlines()[-1])
    problems = []
    for statement, error in zip(statements, errors, strict=True):
        if not error:
            continue
        must_run = RUNS.match(statement) is not None
        unparsed = "SYNTAX_ERROR" in error or "Syntax error" in error
        if must_run or unparsed or not any(word in error for word in PARSE_ONLY_ERRORS):
            problems.append(f"{statement}\n  -> {error}")
    assert not problems, "docs/operations.md SQL that fails on the schema:\n" + "\n".join(problems)


def test_backups_go_where_the_server_allows_them() -> None:
    allowed = re.search(
        r"<allowed_path>(.*?)</allowed_path>", (ROOT / "deploy/clickhouse/config.d/backups.xml").read_text()
    )
    assert allowed, "deploy/clickhouse/config.d/backups.xml sets backups.allowed_path"
    for statement in documented_sql():
        if statement.startswith(("BACKUP", "RESTORE")):
            assert f"File('{allowed[1]}" in statement, f"{statement} is outside {allowed[1]}"
