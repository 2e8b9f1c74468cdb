"""Who published an event: the `safeguard-principal` header into `published_by`, on both paths.

The gateway puts the authenticated principal's name on every message it publishes; the sink stores it on every
row of the event (a domestic incident's child rows too). Without the header the column is None. A header that is
there but unusable is never stored: the rows are kept with None, and a finding beside them says why. The column
path (`MessageMapper`) must give exactly the reference path's rows, and must not make a new `str` per message.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.kafka import PRINCIPAL_HEADER as GATEWAY_HEADER
from gateway.principals import Principal
from producers.simulate import LEEDS_2019, generate
from schemas.codec import encode, validate_event
from schemas.topics import message_key, topic_for
from sinks.columns import TableBatch
from sinks.mapping import TABLE_COLUMNS, rows_for_event
from sinks.reconcile import message_row
from sinks.records import BAD_PRINCIPAL_HEADER, PRINCIPAL_HEADER, Message, MessageMapper, publisher
from tests.unit.test_schemas import examples as ex
from tests.unit.test_sinks.test_columns import AT, TS, _event, assert_same_rows

EVENT_TABLES = {"contacts", "contact_decisions", "missing_episodes", "domestic_incidents",
                "domestic_incident_children", "cp_plans"}  # fmt: skip
FUZZ = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def _with(msg: Message, *headers: tuple[str, bytes | None]) -> Message:
    return msg._replace(headers=list(headers))


def _published_by(batch: TableBatch) -> dict[str, list[Any]]:
    return {t: list(cols[TABLE_COLUMNS[t].index("published_by")]) for t, cols in batch.columns.items()
            if t in EVENT_TABLES}  # fmt: skip


def _findings(batch: TableBatch) -> list[dict[str, Any]]:
    return [row for t, row in batch.rows() if t == "data_quality_findings"]


def test_the_sink_reads_the_header_the_gateway_writes() -> None:
    assert PRINCIPAL_HEADER == GATEWAY_HEADER == "safeguard-principal"


@pytest.mark.parametrize("name", ["police-wyp", "a", "leeds.cc_front-door.2", "x" * 63, "0health"])
def test_every_name_the_gateway_allows_is_stored(name: str) -> None:
    Principal(name=name, agency_type="police", agency_codes=["WYP"], la_codes=["383"], event_types=["contact.received"])
    assert publisher([(PRINCIPAL_HEADER, name.encode())]) == (name, None)


def test_only_agency_event_tables_have_the_column() -> None:
    assert {t for t, cols in TABLE_COLUMNS.items() if "published_by" in cols} == EVENT_TABLES
    for table in EVENT_TABLES:
        assert TABLE_COLUMNS[table][-1] == "published_by", "added by migration 0005: last, as ALTER ADD COLUMN puts it"


@pytest.mark.parametrize(("label", "event"), ex.all_examples())
def test_every_row_of_an_event_carries_its_publisher(label: str, event: dict[str, Any]) -> None:
    batch = assert_same_rows([_with(_event(event), (PRINCIPAL_HEADER, b"police-wyp"))])
    assert batch.findings == 0, label
    by_table = _published_by(batch)
    assert by_table and all(v == ["police-wyp"] * len(v) for v in by_table.values()), (label, by_table)


@pytest.mark.parametrize(("label", "event"), ex.all_examples())
def test_an_event_without_the_header_has_none(label: str, event: dict[str, Any]) -> None:
    for msg in (_event(event), _with(_event(event), ("traceparent", b"00-abc-def-01"))):
        batch = assert_same_rows([msg])
        assert batch.findings == 0, label
        assert all(v == [None] * len(v) for v in _published_by(batch).values()), label


def test_rows_for_event_takes_the_publisher_for_every_row_and_defaults_to_none() -> None:
    incident = validate_event(ex.full("domestic_incident.recorded"))
    rows = rows_for_event(incident, published_by="police-wyp")
    assert len(rows) == 3 and {row["published_by"] for _, row in rows} == {"police-wyp"}
    assert {row["published_by"] for _, row in rows_for_event(incident)} == {None}


@pytest.mark.parametrize(
    "headers",
    [
        [(PRINCIPAL_HEADER, b"\xff\xfe")],
        [(PRINCIPAL_HEADER, b"Police WYP")],
        [(PRINCIPAL_HEADER, b"")],
        [(PRINCIPAL_HEADER, None)],
        [(PRINCIPAL_HEADER, b"x" * 64)],
        [(PRINCIPAL_HEADER, b"-leading-dash")],
        [(PRINCIPAL_HEADER, b"police-wyp\n")],
        [(PRINCIPAL_HEADER, b"9434765919 j.smith@example.org")],
        [(PRINCIPAL_HEADER, b"9434765919")],
        [(PRINCIPAL_HEADER, b"943-476-5919")],
        [(PRINCIPAL_HEADER, b"police-wyp"), (PRINCIPAL_HEADER, b"health-lth")],
        [(PRINCIPAL_HEADER, b"police-wyp"), (PRINCIPAL_HEADER, b"police-wyp")],
        [("traceparent", b"x"), (PRINCIPAL_HEADER, b"Nope")],
    ],
    ids=[
        "not-utf8",
        "capitals",
        "empty",
        "null",
        "too-long",
        "dash-first",
        "newline",
        "identifier",
        "nhs-number",
        "nhs-number-dashed",
        "two",
        "twice",
        "second-of-two",
    ],
)
def test_an_unusable_header_keeps_the_rows_with_none_and_notes_why(headers: list[tuple[str, bytes | None]]) -> None:
    msg = _with(_event(ex.full("domestic_incident.recorded")), *headers)
    batch = assert_same_rows([msg])
    assert all(v == [None] * len(v) for v in _published_by(batch).values())
    assert len(batch.columns["domestic_incident_children"][0]) == 2
    [finding] = _findings(batch)
    assert finding["reason_code"] == BAD_PRINCIPAL_HEADER and finding["row_stored"] is True
    assert PRINCIPAL_HEADER in finding["error"]
    assert "9434765919" not in finding["error"] and "j.smith" not in finding["error"], "the value is never quoted"
    # Reconciliation stands the message for its event row, not for the finding beside it.
    table, key, _ = message_row(msg)
    assert (table, key) == ("domestic_incidents", ex.full("domestic_incident.recorded")["event_id"])


def test_headers_on_other_topics_are_not_read() -> None:
    alert = Message("safeguarding.alerts.v1", 0, 1, b"k", json.dumps(ex.alert()).encode(), TS)
    for headers in ([(PRINCIPAL_HEADER, b"worker")], [(PRINCIPAL_HEADER, b"\xff")]):
        batch = assert_same_rows([_with(alert, *headers)])
        assert list(batch.columns) == ["alerts"] and batch.findings == 0
    # An event that becomes a finding only (invalid) is not also noted for its header.
    bad = Message("safeguarding.contacts.v1", 0, 2, b"k", b"{not json", TS, [(PRINCIPAL_HEADER, b"\xff")])
    assert [r["reason_code"] for r in _findings(assert_same_rows([bad]))] == ["undecodable"]


def test_a_simulated_month_mixed_gateway_and_direct_gives_the_reference_rows_and_no_new_str_per_row() -> None:
    events = generate(LEEDS_2019, seed=7, days=30)
    principals = [b"police-wyp", b"health-lth", b"council-cin"]
    messages = [
        Message(topic_for(e.event_type).name, i % 6, i, message_key(e).encode(), encode(e), TS,
                [(PRINCIPAL_HEADER, bytes(principals[i % 3]))] if i % 4 else [])  # a new bytes object per record
        for i, e in enumerate(events)
    ]  # fmt: skip
    batch = assert_same_rows(messages)
    assert batch.findings == 0
    stored = [v for values in _published_by(batch).values() for v in values]
    assert {v for v in stored if v is not None} == {"police-wyp", "health-lth", "council-cin"}
    assert None in stored
    # The column path hands every row of one publisher the same str (decoded and checked once).
    mapper, fast = MessageMapper(), TableBatch()
    for msg in messages:
        mapper.add(fast, msg, AT)
    assert len({id(v) for values in _published_by(fast).values() for v in values if v is not None}) == 3


_HEADER_VALUES = st.one_of(
    st.sampled_from([b"police-wyp", b"health-lth", b"", b"\xff", b"UPPER", b"x" * 64, None]),
    st.binary(max_size=70),
    st.from_regex(re.compile(rb"[a-z0-9][a-z0-9_.-]{0,62}", re.ASCII), fullmatch=True),
)
_HEADERS = st.lists(
    st.tuples(st.sampled_from([PRINCIPAL_HEADER, "traceparent", "Safeguard-Principal"]), _HEADER_VALUES), max_size=3
)


@FUZZ
@given(example=st.sampled_from(ex.all_examples()), headers=_HEADERS)
def test_any_headers_give_the_reference_rows(example: tuple[str, dict[str, Any]], headers: list[Any]) -> None:
    msg = _with(_event(example[1]), *headers)
    batch = assert_same_rows([msg, msg._replace(offset=msg.offset + 1)])  # the memo's second look too
    principal, problem = publisher(headers)
    assert all(v == [principal] * len(v) for v in _published_by(batch).values())
    assert [r["reason_code"] for r in _findings(batch)] == ([BAD_PRINCIPAL_HEADER] * 2 if problem else [])
