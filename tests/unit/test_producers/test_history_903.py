"""Importing SSDA903 CSVs (hand-written fixtures: two overlapping years' Missing tables, a Header and an Episodes
table): each episode once, idempotently, every rejection named by file, line, row and column, and no raw
identifier anywhere downstream."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from producers.history import ImportSummary
from producers.history.lac import LacOptions, lac_tables
from producers.history.tabular import TableImport
from producers.pseudonymise import Pseudonymiser
from safeguard.cli import cli
from schemas.codec import decode_event, encode
from schemas.events import AgencyEvent, MissingFound, MissingReported
from schemas.topics import message_key, topic_for

FIXTURES = Path(__file__).parent / "fixtures" / "903"
HEADER = FIXTURES / "header-2018-19.csv"
EPISODES = FIXTURES / "episodes-2018-19.csv"
YEARS = [FIXTURES / "missing-2018-19.csv", FIXTURES / "missing-2019-20.csv"]
KEY = "partnership key for tests, 32 chars"
IDENTIFIERS = ["LAC-1001", "LAC-1002", "LAC-1003", "LAC-1004", "A383201800101", "B383201800303"]
NOW = datetime(2026, 12, 1, tzinfo=UTC)


class Remembering:
    def __init__(self) -> None:
        self.events: dict[str, AgencyEvent] = {}
        self.order: list[str] = []

    def add(self, event: AgencyEvent) -> bool | None:
        if event.event_id in self.events:
            return False
        self.events[event.event_id] = event
        self.order.append(event.event_id)
        return True


def run(
    missing: list[Path] = YEARS, target: Remembering | None = None, options: LacOptions | None = None
) -> tuple[Remembering, ImportSummary]:
    kept = target if target is not None else Remembering()
    importer = TableImport(
        pseudonymiser=Pseudonymiser.from_secret(KEY), clock=lambda: NOW, la_code="383", agency_code="SSDA903"
    )
    tables = lac_tables(headers=[HEADER], missing=missing, episodes=[EPISODES], options=options or LacOptions())
    return kept, importer.run(tables, kept)


def child(child_id: str) -> str:
    return Pseudonymiser.from_secret(KEY).pseudonym(child_id)


def assert_no_identifier(text: str) -> None:
    for identifier in IDENTIFIERS:
        for form in (identifier, identifier.replace("-", ""), identifier.lower()):
            assert form not in text, f"{form!r} leaked"


def episodes(events: dict[str, AgencyEvent]) -> Counter[tuple[str, str, date, date | None]]:
    found = {e.episode_id: e.occurred_at.date() for e in events.values() if isinstance(e, MissingFound)}
    return Counter(
        (e.child_id, e.absence_type, e.occurred_at.date(), found.get(e.episode_id))
        for e in events.values()
        if isinstance(e, MissingReported)
    )


def test_two_overlapping_years_import_each_episode_once() -> None:
    target, summary = run()
    # 2018-19: three episodes of child 1, child 2's open at the year's end, two rows of child 3 rejected.
    # 2019-20: child 2's episode again with its end (the start a duplicate), one with an end before its start,
    # two of child 1 on one day, and child 4 (in no header, outside every period of care).
    assert (summary.generated, summary.duplicates, summary.sent) == (16, 1, 15)
    assert (summary.new, summary.episodes, summary.children) == (15, 9, 3)
    first, second, fourth = child("LAC-1001"), child("LAC-1002"), child("LAC-1004")
    assert episodes(target.events) == {
        (first, "missing", date(2018, 5, 3), date(2018, 5, 4)): 1,
        (first, "away", date(2018, 6, 10), date(2018, 6, 10)): 1,
        (first, "missing", date(2018, 6, 10), date(2018, 6, 11)): 1,
        (first, "missing", date(2019, 7, 1), date(2019, 7, 1)): 1,
        (first, "missing", date(2019, 7, 1), date(2019, 7, 2)): 1,
        (second, "missing", date(2019, 3, 30), date(2019, 4, 2)): 1,
        (second, "missing", date(2019, 5, 20), None): 1,
        (fourth, "away", date(2019, 8, 5), date(2019, 8, 6)): 1,
    }


def test_mappings_of_the_contract() -> None:
    target, _ = run()
    reported = [e for e in target.events.values() if isinstance(e, MissingReported)]
    assert {(e.looked_after, e.risk_level, e.agency_type, e.agency_code, e.la_code) for e in reported} == {
        (True, "low", "local_authority", "SSDA903", "383")
    }
    summer = next(e for e in reported if e.occurred_at.date() == date(2018, 5, 3))
    assert summer.occurred_at.isoformat() == "2018-05-03T00:00:00+01:00" == summer.recorded_at.isoformat()
    assert summer.episode_id.startswith("903-missing-")
    found = [e for e in target.events.values() if isinstance(e, MissingFound) and e.episode_id == summer.episode_id]
    assert [e.occurred_at.date() for e in found] == [date(2018, 5, 4)]
    times = [target.events[i].occurred_at for i in target.order]
    assert times == sorted(times), "sent in event-time order, whatever the order of the rows"
    medium, _ = run(options=LacOptions(risk_level="medium"))
    assert {e.risk_level for e in medium.events.values() if isinstance(e, MissingReported)} == {"medium"}


def test_re_import_adds_nothing_and_a_year_alone_gives_the_same_ids() -> None:
    target, _ = run()
    ids = set(target.events)
    _, again = run(target=target)
    assert (again.new, again.already_present) == (0, 15)
    each_alone = Remembering()
    for year in YEARS:
        run([year], target=each_alone)
    assert set(each_alone.events) == ids


def test_bad_rows_are_reported_by_file_line_and_column_and_the_import_goes_on() -> None:
    _, summary = run()
    rejections = {(r.file, r.line, r.path, r.code) for r in summary.rejections}
    assert rejections == {
        ("missing-2018-19.csv", 6, "row[5]/MIS_START", "bad_date"),
        ("missing-2018-19.csv", 7, "row[6]/MISSING", "unknown_code"),
    }
    flagged = {(f.file, f.line, f.path, f.finding.rule_id, f.finding.fed) for f in summary.flagged}
    assert flagged == {
        ("missing-2018-19.csv", 7, "row[6]/MISSING", "1006", False),  # no event: rejected and flagged
        ("missing-2019-20.csv", 3, "row[2]/MIS_END", "567", False),  # found before reported: imported as still open
    }
    assert (summary.flagged_by_rule, summary.held) == ({"1006": 1, "567": 1}, 2)
    bad = next(r for r in summary.rejections if r.code == "bad_date")
    assert str(bad) == (
        "missing-2018-19.csv:6: row 5, MIS_START: '31/02/2019' is not a day of the calendar; the row gives no event"
    )
    assert summary.unknown_elements == {"Missing: column 'COMMENTS'": 1}
    assert summary.notes == {
        "Missing: a child in no Header file (imported)": 1,
        "Missing: an episode starting outside every period of care (imported)": 1,
    }


def test_the_child_can_be_keyed_by_the_headers_upn() -> None:
    target, summary = run(options=LacOptions(child_key="upn"))
    assert child("A383201800101") in {getattr(e, "child_id", None) for e in target.events.values()}
    no_upn = [r for r in summary.rejections if r.code == "missing"]
    assert {(r.file, r.path) for r in no_upn} == {
        ("missing-2018-19.csv", "row[4]/CHILD"),
        ("missing-2019-20.csv", "row[1]/CHILD"),
        ("missing-2019-20.csv", "row[2]/CHILD"),
        ("missing-2019-20.csv", "row[5]/CHILD"),
    }


def test_identifiers_appear_nowhere_downstream(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    target, summary = run()
    wire = b"".join(
        topic_for(e.event_type).name.encode() + message_key(e).encode() + encode(e) for e in target.events.values()
    )
    assert_no_identifier(wire.decode())
    assert_no_identifier(repr(summary) + "".join(str(r) for r in summary.rejections))
    assert_no_identifier(caplog.text)
    assert caplog.records


def test_the_command_writes_jsonl_and_adds_nothing_the_second_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAFEGUARD_PSEUDONYM_KEY", KEY)
    out = tmp_path / "history.jsonl"
    args = ["import", "903", "--header", str(HEADER), "--episodes", str(EPISODES), "--out", str(out)]
    for year in YEARS:
        args += ["--missing", str(year)]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 1, first.output  # three rows rejected, as `publish` exits for rejected lines
    assert "row 5, MIS_START" in first.output and "rejected rows or cells" in first.output
    written = out.read_bytes()
    assert len(written.splitlines()) == 15
    assert_no_identifier(first.output + written.decode())
    second = CliRunner().invoke(cli, args)
    assert out.read_bytes() == written
    assert "already present" in second.output
    assert all(decode_event(line).la_code == "383" for line in written.splitlines())


def test_dry_run_and_la_code(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEGUARD_PSEUDONYM_KEY", KEY)
    args = ["import", "903", "--dry-run", "--header", str(HEADER), "--missing", str(YEARS[1]), "--la-code", "856"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1, result.output
    assert "dry run: nothing was published" in result.output and "LA 856" in result.output
    bad = CliRunner().invoke(cli, [*args[:-1], "Leeds"])
    assert bad.exit_code == 2 and "three digits" in bad.output


def test_a_table_without_a_required_column_is_refused_and_the_next_is_read(tmp_path: Path) -> None:
    wrong = tmp_path / "missing-wrong.csv"
    wrong.write_text("CHILD,DOB,MIS_START\nLAC-1001,01/02/2006,03/05/2018\n")
    target, summary = run([wrong, YEARS[1]])
    refused = [r for r in summary.rejections if r.code == "file_refused"]
    assert len(refused) == 1 and "no MISSING column" in refused[0].reason and refused[0].line == 1
    assert any(isinstance(e, MissingFound) for e in target.events.values())


def test_a_broken_row_is_rejected_by_line(tmp_path: Path) -> None:
    broken = tmp_path / "missing.csv"
    broken.write_bytes(
        b"\xef\xbb\xbfchild,missing,mis_start,mis_end\r\n"
        b"LAC-1001,M,03/05/2018,04/05/2018,extra\r\n\r\n"
        b"LAC-1001,A,05/06/2018,\r\n"
    )
    target, summary = run([broken])
    (rejection,) = summary.rejections
    assert (rejection.line, rejection.path, rejection.code) == (2, "row[1]", "bad_row")
    assert [e.absence_type for e in target.events.values() if isinstance(e, MissingReported)] == ["away"]
