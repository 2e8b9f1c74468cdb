"""`safeguard rules backtest --source store`: the sink's tables on a real chDB read back as the contract events that
went in (purged ones not at all), and the same backtest as from the JSONL file of those events. No Kafka.

chDB allows one engine per process and one path per engine at a time: every client here is on the same path and
closed before the command opens its own.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from safeguard.cli import cli
from safeguard.settings import ClickHouseSettings, Settings
from schemas.codec import encode
from schemas.events import AgencyEvent, DomesticIncidentRecorded
from sinks.mapping import rows_for_event
from sinks.migrate import migrate
from sinks.readback import event_tables_present, read_events
from sinks.store import connect, insert_rows
from tests.unit.test_streams.backtest_history import CHILDREN, PROPOSED_TOML, history
from tests.unit.test_streams.factories import day, missing_reported

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[AgencyEvent], AgencyEvent]:
    """A migrated store holding the hand-made history plus one more episode of A that was then purged."""
    path = tmp_path_factory.mktemp("backtest-store") / "store"
    events = history()
    purged = missing_reported(day(25), child=CHILDREN["A"], episode="MP-A-25")
    tombstone = purged.model_copy(update={"purge": True})
    settings = Settings(_env_file=None, clickhouse=ClickHouseSettings(url=f"chdb://{path}"))
    client = connect(settings)
    try:
        migrate(client, settings)
        rows = [row for event in [*events, purged] for row in rows_for_event(event)]
        rows += rows_for_event(tombstone, ingested_at=tombstone.recorded_at + timedelta(days=1))
        insert_rows(client, "safeguard", rows)
    finally:
        client.close()
    return path, events, purged


def _env(path: Path, **extra: str) -> dict[str, str]:
    return {"SAFEGUARD_CLICKHOUSE__URL": f"chdb://{path}", **extra}


def test_the_tables_read_back_as_the_events_that_went_in_without_the_purged_one(
    stored: tuple[Path, list[AgencyEvent], AgencyEvent],
) -> None:
    path, events, purged = stored
    client = connect(Settings(_env_file=None, clickhouse=ClickHouseSettings(url=f"chdb://{path}")))
    try:
        assert event_tables_present(client, "safeguard")
        back = {event.event_id: event for event in read_events(client, "safeguard")}
    finally:
        client.close()
    assert purged.event_id not in back
    assert set(back) == {event.event_id for event in events}
    for event in events:
        assert back[event.event_id] == event
        assert back[event.event_id].occurred_at.utcoffset() == timedelta(0)
    assert any(isinstance(event, DomesticIncidentRecorded) and event.children for event in back.values())


def test_the_store_gives_the_same_backtest_as_the_jsonl_of_its_events(
    stored: tuple[Path, list[AgencyEvent], AgencyEvent], tmp_path: Path
) -> None:
    path, events, _ = stored
    rules = tmp_path / "proposed.toml"
    rules.write_text(PROPOSED_TOML)
    jsonl = tmp_path / "history.jsonl"
    jsonl.write_bytes(b"".join(encode(e) + b"\n" for e in events))
    runner = CliRunner()
    from_store = runner.invoke(
        cli, ["rules", "backtest", "--rules", str(rules), "--out", str(tmp_path / "store.html")], env=_env(path)
    )
    assert from_store.exit_code == 0, from_store.output
    from_file = runner.invoke(
        cli, ["rules", "backtest", "--rules", str(rules), "--source", str(jsonl), "--out", str(tmp_path / "file.html")]
    )
    assert from_file.exit_code == 0, from_file.output

    def gained(page: str) -> str:
        return page.split('data-table="gained"', 1)[1].split("</table>", 1)[0]

    store_page, file_page = (tmp_path / "store.html").read_text(), (tmp_path / "file.html").read_text()
    assert gained(store_page) == gained(file_page)
    assert CHILDREN["A"] in gained(store_page)  # the purged third episode of A counts nowhere
    assert "from the store (safeguard)" in store_page


def test_a_database_without_the_tables_is_a_clear_error(
    stored: tuple[Path, list[AgencyEvent], AgencyEvent], tmp_path: Path
) -> None:
    path, _, _ = stored
    rules = tmp_path / "proposed.toml"
    rules.write_text(PROPOSED_TOML)
    result = CliRunner().invoke(
        cli, ["rules", "backtest", "--rules", str(rules)], env=_env(path, SAFEGUARD_CLICKHOUSE__DATABASE="elsewhere")
    )
    assert result.exit_code == 2
    assert "has no event tables in database elsewhere" in result.output
