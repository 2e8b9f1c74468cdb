"""The ClickHouse server of docker-compose.yml (clickhouse/clickhouse-server, the repository's init scripts):

- the accounts are least-privilege: the sink's writer inserts and reads, nothing else; the analyst only reads;
  the schema owner changes the schema of its database and no other;
- per-agency scopes: a scoped analyst sees only its agency's rows, and no dead letters at all;
- the integration suite's store tests again, unchanged, on the server (as the schema owner);
- the compose path end to end: `safeguard sink migrate` as the migrator, `safeguard sink run` as the writer, events
  published to the container broker, read back as the analyst and as scoped analysts;
- the access script converges when run again on the live server (the documented way to change scopes).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from deploy.healthcheck import check_sink
from producers.publisher import EventPublisher
from producers.simulate import LEEDS_2019, LEICESTER_2019, generate
from safeguard.kafka_clients import client_options
from safeguard.settings import KafkaSettings, Settings, load_settings
from sinks.mapping import TABLE_COLUMNS
from tests.containers.engine import require_docker
from tests.containers.stack import (
    ADMIN_USER,
    DATABASE,
    SECRETS,
    ClickHouseNode,
    KafkaNode,
    compose_environment,
)
from tests.integration.test_sink_store import (
    test_every_example_round_trips_and_reinserting_doubles_nothing,
    test_migrate_creates_every_table_once,
    test_purge_tombstone_hides_the_event,
    test_same_dedup_token_is_dropped_by_the_store,
)
from tests.unit.test_deploy.deploy_files import ACCESS_SCRIPT, ROOT

require_docker()
pytestmark = pytest.mark.containers

__all__ = [
    "test_every_example_round_trips_and_reinserting_doubles_nothing",
    "test_migrate_creates_every_table_once",
    "test_purge_tombstone_hides_the_event",
    "test_same_dedup_token_is_dropped_by_the_store",
]

DENIED = r"ACCESS_DENIED|Code: 497|READONLY|Code: 164|Not enough privileges"
EVENT_TABLES = ("contacts", "contact_decisions", "missing_episodes", "domestic_incidents", "cp_plans")


def _drop_all_tables(clickhouse: ClickHouseNode) -> None:
    admin = clickhouse.admin()
    try:
        for (table,) in admin.query(f"SELECT name FROM system.tables WHERE database = '{DATABASE}'").result_rows:
            admin.command(f"DROP TABLE `{DATABASE}`.`{table}` SYNC")
    finally:
        admin.close()


@pytest.fixture
def store(clickhouse: ClickHouseNode) -> Iterator[tuple[Any, Settings]]:
    """The integration tier's `store`, on the server: an empty safeguarding database, the schema owner's client."""
    _drop_all_tables(clickhouse)
    settings = clickhouse.settings("safeguard_migrator", SECRETS["CLICKHOUSE_MIGRATOR_PASSWORD"])
    client = clickhouse.migrator()
    try:
        yield client, settings
    finally:
        client.close()


def _scoped_user(clickhouse: ClickHouseNode, name: str, role: str) -> Any:
    """An agency analyst's account as docs/operations.md creates it: its own password, just the scope role."""
    password = f"{name}-Test-pw-1"
    admin = clickhouse.admin()
    try:
        admin.command(f"CREATE USER IF NOT EXISTS {name} IDENTIFIED WITH sha256_password BY '{password}'")
        admin.command(f"GRANT `{role}` TO {name}")
        admin.command(f"ALTER USER {name} DEFAULT ROLE `{role}`")
    finally:
        admin.close()
    return clickhouse.client(name, password)


def test_the_init_script_made_the_accounts_roles_and_scopes(clickhouse: ClickHouseNode) -> None:
    admin = clickhouse.admin()
    try:
        users = {r[0] for r in admin.query("SELECT name FROM system.users").result_rows}
        roles = {r[0] for r in admin.query("SELECT name FROM system.roles").result_rows}
        grants = {
            (r[0], r[1], r[2])
            for r in admin.query(
                "SELECT role_name, access_type, ifNull(table, '*') FROM system.grants WHERE role_name != ''"
            ).result_rows
        }
    finally:
        admin.close()
    assert {ADMIN_USER, "safeguard_migrator", "safeguard_sink", "safeguard_analyst"} <= users
    assert "default" not in users, "the image removes the passwordless default user"
    assert {
        "safeguard_schema_owner",
        "safeguard_writer",
        "safeguard_reader",
        "safeguard_scope_la_code_383",
        "safeguard_scope_la_code_856",
        "safeguard_scope_agency_code_WYP",
    } <= roles
    writer = {(access, table) for role, access, table in grants if role == "safeguard_writer"}
    assert writer == {("SELECT", "*"), ("INSERT", "*")}
    assert {(a, t) for r, a, t in grants if r == "safeguard_reader"} == {("SELECT", "*")}


def test_the_writer_writes_rows_and_nothing_else(clickhouse: ClickHouseNode) -> None:
    _drop_all_tables(clickhouse)
    migrator = clickhouse.migrator()
    sink = clickhouse.sink()
    try:
        from sinks.migrate import migrate, pending

        sink_settings = clickhouse.settings("safeguard_sink", SECRETS["CLICKHOUSE_SINK_PASSWORD"])
        assert "0001_initial" in pending(sink, sink_settings), "an empty database: the sink sees what is missing"
        migrate(migrator, clickhouse.settings("safeguard_migrator", SECRETS["CLICKHOUSE_MIGRATOR_PASSWORD"]))
        # What `safeguard sink run` does at start on a server: it checks the schema with reads only.
        assert pending(sink, sink_settings) == []
        for statement in (
            f"CREATE TABLE IF NOT EXISTS {DATABASE}.schema_migrations (name String) ENGINE = Memory",
            f"CREATE TABLE {DATABASE}.sneaky (x UInt8) ENGINE = Memory",
            f"DROP TABLE {DATABASE}.contacts",
            f"ALTER TABLE {DATABASE}.contacts DELETE WHERE 1",
            f"TRUNCATE TABLE {DATABASE}.alerts",
            "CREATE DATABASE elsewhere",
            "SELECT count() FROM system.users",
        ):
            with pytest.raises(DatabaseError, match=DENIED):
                sink.command(statement)
        for statement in (f"CREATE TABLE {DATABASE}.owned (x UInt8) ENGINE = Memory", f"DROP TABLE {DATABASE}.owned"):
            migrator.command(statement)
        with pytest.raises(DatabaseError, match=DENIED):
            migrator.command("CREATE DATABASE elsewhere")
    finally:
        sink.close()
        migrator.close()


def test_the_analyst_only_reads(clickhouse: ClickHouseNode) -> None:
    analyst = clickhouse.analyst()
    try:
        assert int(analyst.command("SELECT 1")) == 1
        assert analyst.query("SELECT getSetting('readonly')").result_rows[0][0] == 2
        for statement in (
            f"INSERT INTO {DATABASE}.schema_retention VALUES ('x', '', now64(3))",
            f"CREATE TABLE {DATABASE}.mine (x UInt8) ENGINE = Memory",
            "SET readonly = 0",
        ):
            with pytest.raises(DatabaseError, match=DENIED + r"|Cannot modify 'readonly'"):
                analyst.command(statement)
    finally:
        analyst.close()


def _sink_env(kafka: KafkaNode, clickhouse: ClickHouseNode, service: str, **overrides: str) -> dict[str, str]:
    """The compose service's environment, pointed at the containers from this host."""
    url_user = "safeguard_migrator" if service == "migrate" else "safeguard_sink"
    key = "CLICKHOUSE_MIGRATE_URL" if service == "migrate" else "SAFEGUARD_CLICKHOUSE__URL"
    environment = compose_environment(
        service,
        SAFEGUARD_KAFKA__BOOTSTRAP_SERVERS=kafka.bootstrap,
        **{key: clickhouse.url(url_user)},
        **overrides,
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SAFEGUARD_", "KAFKA_"))}
    return {**base, **environment}


def _safeguard(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from safeguard.cli import main; main()", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_compose_path_migrate_then_sink_then_scoped_reads(
    kafka: KafkaNode, clickhouse: ClickHouseNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _drop_all_tables(clickhouse)
    events = generate(LEEDS_2019, 101, days=4) + generate(LEICESTER_2019, 102, days=4)  # seeds no other test uses
    with EventPublisher.connect(client_options(KafkaSettings(), kafka.bootstrap)) as publisher:
        for event in events:
            publisher.publish(event)
        assert publisher.flush().failed == 0
    ids = {event.event_id for event in events}
    assert len(ids) == len(events)

    migrated = _safeguard(_sink_env(kafka, clickhouse, "migrate"), "sink", "migrate", cwd=tmp_path)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    group = f"sink-compose-{uuid.uuid4().hex[:8]}"
    sink_env = _sink_env(kafka, clickhouse, "sink", SAFEGUARD_CLICKHOUSE__CONSUMER_GROUP=group)
    for name, value in sink_env.items():
        if name.startswith("SAFEGUARD_"):
            monkeypatch.setenv(name, value)
    check_sink(load_settings(_env_file=None))  # the sink's container healthcheck passes against the containers
    ran = _safeguard(sink_env, "sink", "run", "--until-caught-up", cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]

    def stored(client: Any) -> Counter[tuple[str, str, str]]:
        found: Counter[tuple[str, str, str]] = Counter()
        for table in EVENT_TABLES:
            rows = client.query(f"SELECT event_id, la_code, agency_code FROM {DATABASE}.{table} FINAL").result_rows
            found.update((table, la, agency) for event_id, la, agency in rows if event_id in ids)
        return found

    analyst = clickhouse.analyst()
    leeds = _scoped_user(clickhouse, "leeds_analyst", "safeguard_scope_la_code_383")
    police = _scoped_user(clickhouse, "wyp_analyst", "safeguard_scope_agency_code_WYP")
    try:
        everything = stored(analyst)
        assert sum(everything.values()) == len(ids), "one row per event in its family's table"
        assert {la for _, la, _ in everything} == {"383", "856"}
        seen_by_leeds = stored(leeds)
        assert seen_by_leeds == Counter({k: n for k, n in everything.items() if k[1] == "383"})
        seen_by_police = stored(police)
        assert seen_by_police and seen_by_police == Counter({k: n for k, n in everything.items() if k[2] == "WYP"})
        for scoped in (leeds, police):
            with pytest.raises(DatabaseError, match=DENIED):
                scoped.query(f"SELECT count() FROM {DATABASE}.dead_letters")
            with pytest.raises(DatabaseError, match=DENIED):
                scoped.command(f"INSERT INTO {DATABASE}.schema_retention VALUES ('x', '', now64(3))")
        with pytest.raises(DatabaseError, match=DENIED):
            police.query(f"SELECT count() FROM {DATABASE}.alerts")  # alerts carry no agency: not its to read
        assert set(TABLE_COLUMNS) <= {
            r[0] for r in analyst.query(f"SELECT name FROM system.tables WHERE database = '{DATABASE}'").result_rows
        }
    finally:
        for client in (analyst, leeds, police):
            client.close()


def test_running_the_access_script_again_converges(clickhouse: ClickHouseNode) -> None:
    """The documented way to change scopes or rotate passwords on a live server."""
    container = clickhouse.container.get_wrapped_container()
    environment = {**compose_environment("clickhouse"), "CLICKHOUSE_ANALYST_SCOPES": "la_code=383"}
    script = f"/docker-entrypoint-initdb.d/{ACCESS_SCRIPT.name}"
    for _ in range(2):
        result = container.exec_run(["bash", script], environment=environment)
        assert result.exit_code == 0, result.output.decode(errors="replace")
    admin = clickhouse.admin()
    try:
        roles = {r[0] for r in admin.query("SELECT name FROM system.roles").result_rows}
        policies = {r[0] for r in admin.query("SELECT short_name FROM system.row_policies").result_rows}
    finally:
        admin.close()
    assert "safeguard_scope_la_code_383" in roles
    assert not {"safeguard_scope_la_code_856", "safeguard_scope_agency_code_WYP"} & roles, "removed scopes are dropped"
    assert policies == {"safeguard_scope_la_code_383", "safeguard_unrestricted"}
    assert (ROOT / "deploy" / "clickhouse" / "initdb" / ACCESS_SCRIPT.name).exists()
