"""deploy/clickhouse/initdb/10-safeguard-access.sh, run for real by bash against a recording `clickhouse-client`
stand-in: the accounts, grants and row policies it issues, its input checks, and that every statement it writes
parses with ClickHouse's own SQL parser (chDB). Whether the server then enforces them is the container tier's job
(tests/containers/test_clickhouse.py)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.unit.test_deploy.deploy_files import ACCESS_SCRIPT, tables_of_migrations

BASH = shutil.which("bash")
pytestmark = pytest.mark.skipif(BASH is None, reason="bash is not installed")

STUB = r"""#!/bin/bash
# Stand-in for clickhouse-client: records arguments and SQL, answers the one catalogue query the script asks.
printf '%s\n' "$*" >> "$STUB_DIR/argv"
query=""
while [ $# -gt 0 ]; do
    if [ "$1" = "--query" ]; then query="$2"; shift; fi
    shift
done
if [ -n "$query" ]; then
    printf '%s;\n' "$query" >> "$STUB_DIR/sql"
    if [[ "$query" == *"system.roles"* ]]; then printf '%s\n' $STUB_ROLES; fi
else
    cat >> "$STUB_DIR/sql"
    printf '\n' >> "$STUB_DIR/sql"
fi
"""

PASSWORDS = {
    "CLICKHOUSE_PASSWORD": "admin-pw",
    "CLICKHOUSE_MIGRATOR_PASSWORD": "migrator-pw",
    "CLICKHOUSE_SINK_PASSWORD": "sink-pw",
    "CLICKHOUSE_ANALYST_PASSWORD": "analyst-pw",
}


@dataclass
class Run:
    returncode: int
    output: str
    sql: str
    argv: str

    def statements(self) -> list[str]:
        body = "\n".join(line for line in self.sql.splitlines() if not line.strip().startswith("--"))
        return [" ".join(s.split()) for s in body.split(";\n") if s.strip()]


def run_script(tmp_path: Path, *, sourced: bool = False, roles: str = "", **env: str) -> Run:
    stub_dir = tmp_path / "stub"
    stub_dir.mkdir(exist_ok=True)
    client = stub_dir / "clickhouse-client"
    client.write_text(STUB)
    client.chmod(0o755)
    for name in ("sql", "argv"):
        (stub_dir / name).write_text("")
    environment = {
        "PATH": f"{stub_dir}:/usr/bin:/bin",
        "STUB_DIR": str(stub_dir),
        "STUB_ROLES": roles,
        "CLICKHOUSE_DB": "safeguard",
        "CLICKHOUSE_USER": "safeguard_admin",
        **PASSWORDS,
        **env,
    }
    environment = {k: v for k, v in environment.items() if v is not None and v != "<unset>"}
    # The image's entrypoint runs an executable script, or sources it (set -eo pipefail) when it has no exec bit.
    command = f'set -eo pipefail; . "{ACCESS_SCRIPT}"; echo entrypoint-continues' if sourced else f'"{ACCESS_SCRIPT}"'
    proc = subprocess.run([BASH or "bash", "-c", command], env=environment, capture_output=True, text=True, timeout=60)
    return Run(
        proc.returncode,
        proc.stdout + proc.stderr,
        (stub_dir / "sql").read_text(),
        (stub_dir / "argv").read_text(),
    )


def test_the_script_is_executable_and_a_shell_script() -> None:
    assert os.access(ACCESS_SCRIPT, os.X_OK), "keep the exec bit (git update-index --chmod=+x)"
    assert ACCESS_SCRIPT.read_text().startswith("#!/bin/bash\n")


def test_accounts_roles_and_least_privilege_grants(tmp_path: Path) -> None:
    run = run_script(tmp_path)
    assert run.returncode == 0, run.output
    sql = run.statements()
    assert "CREATE DATABASE IF NOT EXISTS `safeguard`" in sql
    for user, role in (
        ("safeguard_migrator", "safeguard_schema_owner"),
        ("safeguard_sink", "safeguard_writer"),
        ("safeguard_analyst", "safeguard_reader"),
    ):
        assert any(s.startswith(f"CREATE USER IF NOT EXISTS {user} IDENTIFIED WITH sha256_password BY") for s in sql)
        assert f"GRANT {role} TO {user}" in sql
        assert f"ALTER USER {user} DEFAULT ROLE {role}" in sql
    grants = {s for s in sql if s.startswith("GRANT ") and " ON " in s}
    writer = {g for g in grants if g.endswith("TO safeguard_writer")}
    assert writer == {"GRANT SELECT, INSERT ON `safeguard`.* TO safeguard_writer"}, "the sink writes rows, nothing else"
    assert {g for g in grants if g.endswith("TO safeguard_reader")} == {
        "GRANT SELECT ON `safeguard`.* TO safeguard_reader"
    }
    assert "ALTER SETTINGS PROFILE safeguard_readonly SETTINGS readonly = 2" in sql
    assert "ALTER ROLE safeguard_reader SETTINGS PROFILE 'safeguard_readonly'" in sql
    assert all("*.*" not in g for g in grants), "no grant reaches beyond the safeguarding database"
    assert not [s for s in sql if "ROW POLICY" in s and not s.startswith("DROP ROW POLICY IF EXISTS")]
    assert "no analyst scopes configured" in run.output


def test_passwords_go_by_stdin_escaped_and_never_on_a_command_line(tmp_path: Path) -> None:
    tricky = "it's a \\ 'pass'"
    run = run_script(tmp_path, CLICKHOUSE_SINK_PASSWORD=tricky)
    assert run.returncode == 0, run.output
    assert "BY 'it\\'s a \\\\ \\'pass\\''" in run.sql
    for name, password in PASSWORDS.items():
        if name != "CLICKHOUSE_PASSWORD":
            assert password not in run.argv, f"{name} must not appear in a process listing"
    assert tricky not in run.argv


def test_missing_passwords_stop_the_script_before_any_sql(tmp_path: Path) -> None:
    run = run_script(tmp_path, CLICKHOUSE_ANALYST_PASSWORD="<unset>")
    assert run.returncode != 0
    assert "CLICKHOUSE_ANALYST_PASSWORD must be set" in run.output
    assert run.sql == ""


@pytest.mark.parametrize(
    ("scopes", "words"),
    [
        ("school_urn=1", "must be la_code=VALUE"),
        ("la_code", "must be la_code=VALUE"),
        ("la_code=383'; DROP TABLE x; --", "may hold only letters"),
    ],
)
def test_bad_scopes_are_refused_before_any_sql(tmp_path: Path, scopes: str, words: str) -> None:
    run = run_script(tmp_path, CLICKHOUSE_ANALYST_SCOPES=scopes)
    assert run.returncode != 0
    assert words in run.output
    assert run.sql == ""


def test_scopes_make_roles_grants_and_row_policies(tmp_path: Path) -> None:
    run = run_script(tmp_path, CLICKHOUSE_ANALYST_SCOPES="la_code=383, agency_code=WYP")
    assert run.returncode == 0, run.output
    sql = run.statements()
    tables = tables_of_migrations()
    for role, column, value in (
        ("safeguard_scope_la_code_383", "la_code", "383"),
        ("safeguard_scope_agency_code_WYP", "agency_code", "WYP"),
    ):
        assert f"CREATE ROLE IF NOT EXISTS `{role}`" in sql
        granted = {m[1] for s in sql if (m := re.fullmatch(rf"GRANT SELECT ON `safeguard`\.`(\w+)` TO `{role}`", s))}
        assert granted == {t for t, cols in tables.items() if column in cols}, f"{role} reads only tables with {column}"
        for table in granted:
            policy = (
                f"CREATE ROW POLICY OR REPLACE `{role}` ON `safeguard`.`{table}` FOR SELECT "
                f"USING {column} = '{value}' AS PERMISSIVE TO `{role}`"
            )
            assert policy in sql
    scoped_tables = {t for t, cols in tables.items() if {"la_code", "agency_code"} & set(cols)}
    for table in scoped_tables:
        assert (
            f"CREATE ROW POLICY OR REPLACE safeguard_unrestricted ON `safeguard`.`{table}` FOR SELECT USING 1 "
            "AS PERMISSIVE TO ALL EXCEPT `safeguard_scope_la_code_383`, `safeguard_scope_agency_code_WYP`"
        ) in sql
    dead = [s for s in sql if "dead_letters" in s or "data_quality_findings" in s]
    assert not dead, "scoped analysts get no grant on the dead letters (they hold raw rejected bytes)"


def test_scopes_no_longer_configured_are_removed(tmp_path: Path) -> None:
    run = run_script(
        tmp_path,
        roles="safeguard_scope_la_code_383 safeguard_scope_agency_code_OLD",
        CLICKHOUSE_ANALYST_SCOPES="la_code=383",
    )
    assert run.returncode == 0, run.output
    sql = run.statements()
    assert "DROP ROLE IF EXISTS `safeguard_scope_agency_code_OLD`" in sql
    assert "DROP ROLE IF EXISTS `safeguard_scope_la_code_383`" not in sql
    assert "DROP ROW POLICY IF EXISTS `safeguard_scope_agency_code_OLD` ON `safeguard`.`contacts`" in sql


def test_sourced_by_the_entrypoint_it_leaves_the_entrypoint_shell_alone(tmp_path: Path) -> None:
    run = run_script(tmp_path, sourced=True)
    assert run.returncode == 0, run.output
    assert "entrypoint-continues" in run.output


def test_the_table_lists_match_the_migrations() -> None:
    """A table added by a new migration must get its row policies: the script's lists follow sinks/migrations."""
    text = ACCESS_SCRIPT.read_text()
    lists = {name: set(value.split()) for name, value in re.findall(r'^(\w+_TABLES)="([^"]*)"', text, re.M)}
    tables = tables_of_migrations()
    assert lists["LA_CODE_TABLES"] == {t for t, cols in tables.items() if "la_code" in cols}
    assert lists["AGENCY_TABLES"] == {t for t, cols in tables.items() if "agency_code" in cols}
    assert lists["AGENCY_TABLES"] == {t for t, cols in tables.items() if "agency_type" in cols}


def test_every_statement_parses_with_the_clickhouse_parser(tmp_path: Path) -> None:
    """chDB is the ClickHouse engine: access statements fail there with ACCESS_DENIED or UNKNOWN_ROLE (it has no
    access storage), but only after they parsed; a SYNTAX_ERROR means the server would reject the script."""
    run = run_script(
        tmp_path, roles="safeguard_scope_agency_code_OLD", CLICKHOUSE_ANALYST_SCOPES="la_code=383 agency_type=police"
    )
    assert run.returncode == 0, run.output
    statements = run.statements()
    assert len(statements) > 40
    code = (
        "import json, sys, chdb\n"
        "out = []\n"
        "for s in json.load(sys.stdin):\n"
        "    try:\n"
        "        chdb.query(s)\n"
        "        out.append('')\n"
        "    except Exception as e:\n"
        "        out.append(str(e).splitlines()[0])\n"
        "print(json.dumps(out))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],  # its own process: chDB allows one engine per process
        input=json.dumps(statements),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    errors = json.loads(proc.stdout.strip().splitlines()[-1])
    syntax = [(s, e) for s, e in zip(statements, errors, strict=True) if "SYNTAX_ERROR" in e or "Syntax error" in e]
    assert not syntax, "\n".join(f"{s}\n  -> {e}" for s, e in syntax)
