from datetime import UTC, datetime
from pathlib import Path

import pytest

from producers.ingest import Accepted, Ingestor, IngestSummary, Rejected, detect_format
from producers.pseudonymise import Pseudonymiser
from tests.unit.test_producers.helpers import CHILD, HOUSEHOLD, domestic_incident, jsonl, missing_reported

NOW = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)


def ingest(path: Path, fmt: str = "jsonl", **kwargs) -> tuple[list[Accepted | Rejected], IngestSummary]:
    summary = IngestSummary()
    outcomes = list(Ingestor(clock=lambda: NOW, **kwargs).ingest(path, fmt, summary))  # type: ignore[arg-type]
    return outcomes, summary


def test_jsonl_good_and_bad_lines_reconcile(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(
        jsonl(missing_reported(), domestic_incident())
        + "not json at all\n"
        + "\n"
        + jsonl(missing_reported(child_id="9434765919"), missing_reported(occurred_at="2025-03-01T21:15:00"))
        + "[1, 2]\n"
    )
    outcomes, summary = ingest(path)
    assert [type(o).__name__ for o in outcomes] == [
        "Accepted",
        "Accepted",
        "Rejected",
        "Rejected",
        "Rejected",
        "Rejected",
    ]
    assert [o.line for o in outcomes] == [1, 2, 3, 5, 6, 7]
    assert summary.read == 6 and summary.accepted == 2 and summary.rejected == 4 and summary.blank_lines == 1
    assert summary.accepted + summary.rejected == summary.read
    rejected = [o.dead_letter for o in outcomes if isinstance(o, Rejected)]
    assert rejected[0].reason_code == "undecodable" and "not valid JSON" in rejected[0].error
    assert rejected[1].reason_code == "raw_identifier" and "NHS number" in rejected[1].error
    assert "child_id" in rejected[1].error
    assert "occurred_at" in rejected[2].error and "offset" in rejected[2].error
    assert "JSON object" in rejected[3].error
    for dl in rejected:
        assert dl.source == "file" and dl.source_file == "events.jsonl" and dl.dead_lettered_at == NOW
    assert rejected[0].original() == b"not json at all"
    assert rejected[1].claimed_event_id == "0b9c1e52-4f7e-4a59-9a55-2f0f7c3d9e11"


def test_dead_letter_ids_are_stable_across_reruns(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_text("{oops\n")
    first, _ = ingest(path)
    second, _ = ingest(path)
    assert isinstance(first[0], Rejected) and isinstance(second[0], Rejected)
    assert first[0].dead_letter.dead_letter_id == second[0].dead_letter.dead_letter_id


def test_csv_rows_with_lists_numbers_and_empty_cells(tmp_path: Path) -> None:
    path = tmp_path / "contacts.csv"
    header = (
        "event_id,event_type,schema_version,la_code,agency_type,agency_code,occurred_at,recorded_at,"
        "contact_id,child_id,household_id,contact_source,concerns,route"
    )
    good = (
        "3f1e2d3c-4b5a-4978-8a1b-2c3d4e5f6a7b,contact.received,1,383,police,WYP,2025-01-02T10:00:00+00:00,"
        f"2025-01-02T11:00:00+00:00,C-1,{CHILD},,6,domestic_abuse;neglect,front_door"
    )
    bad_source = good.replace(",6,", ",11,").replace("3f1e2d3c", "4f1e2d3c")
    short_row = "a,b,c"
    path.write_text("\n".join([header, good, bad_source, short_row]) + "\n")
    outcomes, summary = ingest(path, "csv")
    assert isinstance(outcomes[0], Accepted)
    event = outcomes[0].event
    assert event.event_type == "contact.received"
    assert list(event.concerns) == ["domestic_abuse", "neglect"]  # type: ignore[union-attr]
    assert event.household_id is None  # type: ignore[union-attr]
    assert isinstance(outcomes[1], Rejected) and "contact_source" in outcomes[1].dead_letter.error
    assert outcomes[1].line == 3
    assert isinstance(outcomes[2], Rejected) and outcomes[2].dead_letter.reason_code == "undecodable"
    assert "3 cells" in outcomes[2].dead_letter.error
    assert summary.read == 3


def test_pseudonymise_fields_before_validation(tmp_path: Path) -> None:
    key = Pseudonymiser.from_secret("a-partnership-secret-key")
    path = tmp_path / "raw.jsonl"
    raw = domestic_incident(household_id="H 123", children=[{"child_id": "9434765919", "present": True}])
    path.write_text(jsonl(raw, missing_reported(child_id="")))
    outcomes, summary = ingest(path, pseudonymiser=key, pseudonymise_fields=frozenset({"household_id", "child_id"}))
    assert isinstance(outcomes[0], Accepted)
    incident = outcomes[0].event
    assert incident.household_id == key.pseudonym("H123")  # type: ignore[union-attr]
    assert incident.children[0].child_id == key.pseudonym("9434765919")  # type: ignore[union-attr]
    assert isinstance(outcomes[1], Rejected) and "empty" in outcomes[1].dead_letter.error
    assert summary.accepted == 1 and summary.rejected == 1


def test_already_pseudonymised_values_are_left_alone(tmp_path: Path) -> None:
    key = Pseudonymiser.from_secret("a-partnership-secret-key")
    path = tmp_path / "mixed.jsonl"
    path.write_text(jsonl(missing_reported()))
    outcomes, _ = ingest(path, pseudonymiser=key, pseudonymise_fields=frozenset({"child_id"}))
    assert isinstance(outcomes[0], Accepted) and outcomes[0].event.child_id == CHILD  # type: ignore[union-attr]
    assert HOUSEHOLD  # the helper's household id is a valid pseudonym too


def test_format_detection() -> None:
    assert detect_format(Path("a.jsonl")) == "jsonl"
    assert detect_format(Path("a.CSV")) == "csv"
    with pytest.raises(ValueError, match="--format"):
        detect_format(Path("a.txt"))


def test_non_utf8_line_is_dead_lettered_not_crashing(tmp_path: Path) -> None:
    path = tmp_path / "bin.jsonl"
    path.write_bytes(b"\xff\xfe\x00garbage\n" + jsonl(missing_reported()).encode())
    outcomes, summary = ingest(path)
    assert isinstance(outcomes[0], Rejected) and "UTF-8" in outcomes[0].dead_letter.error
    assert isinstance(outcomes[1], Accepted)
    assert summary.read == 2
