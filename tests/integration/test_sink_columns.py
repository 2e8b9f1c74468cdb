"""The sink's column path stores what the row path stores: every table, whatever reads the inserted blocks too.

The sink writes `MessageMapper` batches column-oriented with LowCardinality columns sent as their plain type
(`ClickHouseStore.write`); `insert_rows` writes row dicts from the contract models. Two chDB stores in tmp_path get
the same simulated messages, one each way, and must hold the same rows in every table of the database (event
tables, findings, and any table filled from them, such as materialized views' targets).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from producers.simulate import LEEDS_2019, generate
from safeguard.settings import ClickHouseSettings
from schemas.codec import encode
from schemas.topics import message_key, topic_for
from sinks.columns import TableBatch
from sinks.migrate import migrate
from sinks.records import PRINCIPAL_HEADER, Message, MessageMapper, rows_for_message
from sinks.service import ClickHouseStore
from sinks.store import connect, insert_rows

pytestmark = pytest.mark.integration
AT = datetime.now(UTC)  # recent: findings are kept `retention_dead_letters` (90 days) from the record's timestamp
BOOKKEEPING = {"schema_migrations", "schema_retention"}


def _messages() -> list[Message]:
    stamp = int((AT - timedelta(minutes=1)).timestamp() * 1000)
    events = generate(LEEDS_2019, seed=5, days=45)
    # Most through the gateway (its header: two principals), the rest from direct producers (no header).
    principals = ([(PRINCIPAL_HEADER, b"police-wyp")], [(PRINCIPAL_HEADER, b"council-cin")], [])
    out = [
        Message(topic_for(e.event_type).name, i % 6, i, message_key(e).encode(), encode(e), stamp, principals[i % 3])
        for i, e in enumerate(events)
    ]
    n = len(out)
    out.append(Message("safeguarding.contacts.v1", 0, n, b"not-the-key", out[0].value, stamp))  # stored and noted
    out.append(Message("safeguarding.contacts.v1", 0, n + 1, b"k", b"{not json", stamp))  # a finding only
    unusable = [(PRINCIPAL_HEADER, b"\xff")]
    out.append(out[1]._replace(offset=n + 2, headers=unusable))  # stored with NULL, and noted
    return out


def _contents(path: Path, write: Any) -> dict[str, list[tuple[str, ...]]]:
    """Every table of the database after `write(client, section)`, FINAL, each row as text, sorted."""
    section = ClickHouseSettings(url=f"chdb://{path}")
    client = connect(section)
    try:
        migrate(client, section)
        write(client, section)
        tables = [r[0] for r in client.query("SHOW TABLES FROM safeguard").result_rows]
        contents = {}
        for table in sorted(set(tables) - BOOKKEEPING):
            engine = client.command(
                "SELECT engine FROM system.tables WHERE database = 'safeguard' AND name = {t:String}",
                parameters={"t": table},
            )
            if engine == "MaterializedView":
                continue
            rows = client.query(f"SELECT toString(tuple(*)) FROM safeguard.{table} FINAL").result_rows
            contents[table] = sorted(r[0] for r in rows)
        return contents
    finally:
        client.close()


def test_the_column_path_stores_exactly_what_the_row_path_stores(tmp_path: Path) -> None:
    messages = _messages()

    def as_the_sink_does(client: Any, section: ClickHouseSettings) -> None:
        batch, mapper = TableBatch(), MessageMapper()
        for msg in messages:
            mapper.add(batch, msg, AT)
        store = ClickHouseStore(section, client=client)
        store.write(batch, "sink:columns")

    def from_row_dicts(client: Any, section: ClickHouseSettings) -> None:
        insert_rows(client, "safeguard", [r for msg in messages for r in rows_for_message(msg, AT)], token="rows")

    columns = _contents(tmp_path / "columns", as_the_sink_does)
    rows = _contents(tmp_path / "rows", from_row_dicts)
    assert columns.keys() == rows.keys()
    assert {t: len(v) for t, v in columns.items()} == {t: len(v) for t, v in rows.items()}
    for table in columns:
        assert columns[table] == rows[table], table
    assert len(columns["data_quality_findings"]) == 3 and len(columns["contacts"]) > 1000
    for table in ("contacts", "domestic_incident_children", "cp_plans"):
        principals = {row.rsplit(",", 1)[-1].strip(" ()'") for row in columns[table]}
        assert principals == {"police-wyp", "council-cin", "NULL"}, table
