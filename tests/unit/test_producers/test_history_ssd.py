"""Importing SSD extract tables as CSV (hand-written fixtures): contacts and their decisions, referrals, plans,
missing episodes with return interviews; a referral once whichever tables hold it; idempotent; rejections by
file, line and column; no raw identifier anywhere downstream."""

from __future__ import annotations

import logging
import shutil
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TypeVar

import pytest
from click.testing import CliRunner

from producers.history import CinImport, ImportSummary
from producers.history.ssd import SsdOptions, ssd_tables
from producers.history.tabular import TableImport
from producers.pseudonymise import Pseudonymiser
from safeguard.cli import cli
from schemas.codec import encode
from schemas.events import (
    AgencyEvent,
    ContactDecided,
    ContactReceived,
    CpPlanEnded,
    CpPlanStarted,
    MissingFound,
    MissingReported,
    MissingReturnInterview,
)
from schemas.topics import message_key, topic_for

FIXTURES = Path(__file__).parent / "fixtures" / "ssd"
KEY = "partnership key for tests, 32 chars"
IDENTIFIERS = ["P-7001", "P-7002", "P-7003", "C-9001", "C-9002", "C-9003", "C-9005", "R-1", "CP-1", "M-1"]
"""The fixtures' person ids and record ids (neither may leave the importer)."""
NOW = datetime(2026, 12, 1, tzinfo=UTC)
E = TypeVar("E")


class Remembering:
    def __init__(self) -> None:
        self.events: dict[str, AgencyEvent] = {}

    def add(self, event: AgencyEvent) -> bool | None:
        if event.event_id in self.events:
            return False
        self.events[event.event_id] = event
        return True


def run(
    directory: Path = FIXTURES, target: Remembering | None = None, options: SsdOptions | None = None
) -> tuple[Remembering, ImportSummary]:
    kept = target if target is not None else Remembering()
    importer = TableImport(
        pseudonymiser=Pseudonymiser.from_secret(KEY), clock=lambda: NOW, la_code="383", agency_code="SSD"
    )
    return kept, importer.run(ssd_tables(directory, options or SsdOptions()).tables, kept)


def person(person_id: str) -> str:
    return Pseudonymiser.from_secret(KEY).pseudonym(person_id)


def assert_no_identifier(text: str) -> None:
    for identifier in IDENTIFIERS:
        for form in (identifier, identifier.replace("-", "")):
            assert form not in text, f"{form!r} leaked"


def of(target: Remembering, kind: type[E]) -> list[E]:
    return [e for e in target.events.values() if isinstance(e, kind)]


def test_every_table_gives_its_events() -> None:
    target, summary = run()
    types = Counter(e.event_type for e in target.events.values())
    assert types == {
        "contact.received": 5,
        "contact.decided": 4,
        "cp_plan.started": 2,
        "cp_plan.ended": 1,
        "missing.reported": 3,
        "missing.found": 2,
        "missing.return_interview": 4,
    }
    # The contact decided `referral` on the day of the child's referral is that referral: a duplicate.
    assert (summary.generated, summary.duplicates, summary.sent) == (23, 2, 21)
    assert (summary.contacts, summary.referrals, summary.plans, summary.episodes) == (4, 2, 2, 3)


def test_contacts_and_referrals() -> None:
    target, _ = run()
    decided = {
        (e.child_id, e.occurred_at.date()): (e.outcome, e.primary_need)
        for e in target.events.values()
        if isinstance(e, ContactDecided)
    }
    first, second = person("P-7001"), person("P-7002")
    assert decided == {
        (first, date(2021, 4, 6)): ("referral", "N1"),
        (first, date(2021, 9, 1)): ("nfa", None),
        (second, date(2022, 1, 10)): ("advice", None),
        (second, date(2022, 2, 14)): ("strategy_discussion", "N4"),
    }
    received = {e.contact_id: e for e in target.events.values() if isinstance(e, ContactReceived)}
    advice = next(e for e in received.values() if e.occurred_at.date() == date(2022, 1, 10))
    assert (advice.contact_source, advice.agency_type, advice.concerns) == ("3A", "health", ["missing"])
    assert advice.occurred_at.isoformat() == "2022-01-10T11:00:00+00:00"
    assert advice.contact_id.startswith("ssd-contact-")
    referral = next(e for e in received.values() if e.occurred_at.date() == date(2021, 4, 6))
    assert referral.contact_id.startswith("cin-referral-") and referral.agency_type == "police"
    undecided = [e for e in received.values() if e.child_id == person("P-7003")]
    assert len(undecided) == 1, "a contact whose outcome cannot be read is imported undecided"
    nfa, _ = run(options=SsdOptions(nfa_outcome="nfa"))
    assert {e.outcome for e in nfa.events.values() if isinstance(e, ContactDecided)} == {
        "referral",
        "nfa",
        "advice",
        "strategy_discussion",
    }


def test_plans_and_missing_episodes_with_return_interviews() -> None:
    target, _ = run()
    started = sorted((e.child_id, e.occurred_at.date(), e.category) for e in of(target, CpPlanStarted))
    assert started == sorted(
        [(person("P-7001"), date(2021, 5, 20), "NEG"), (person("P-7002"), date(2022, 3, 1), "PHY")]
    )
    (ended,) = of(target, CpPlanEnded)
    assert (ended.occurred_at.date(), ended.category) == (date(2021, 11, 30), "MUL")
    reported = {e.episode_id: e for e in of(target, MissingReported)}
    assert sorted((e.absence_type, e.occurred_at.isoformat()) for e in reported.values()) == [
        ("away", "2022-06-20T21:00:00+01:00"),
        ("missing", "2022-06-01T22:00:00+01:00"),
        ("missing", "2022-07-04T20:00:00+01:00"),
    ]
    assert all(e.looked_after and e.risk_level == "low" for e in reported.values())
    found = {e.episode_id: e.occurred_at.isoformat() for e in of(target, MissingFound)}
    steps = Counter((e.episode_id, e.interview, e.occurred_at.isoformat()) for e in of(target, MissingReturnInterview))
    by_type = {e.absence_type: e.episode_id for e in reported.values() if e.episode_id in found}
    assert steps == {
        (by_type["missing"], "offered", found[by_type["missing"]]): 1,
        (by_type["missing"], "accepted", found[by_type["missing"]]): 1,
        (by_type["away"], "offered", found[by_type["away"]]): 1,
        (by_type["away"], "declined", found[by_type["away"]]): 1,
    }, "the SSD has no interview date: steps are put at the return (the earliest they can have been)"


def test_bad_cells_are_reported_by_file_line_and_column() -> None:
    _, summary = run()
    assert {(r.file, r.line, r.path, r.code) for r in summary.rejections} == {
        ("ssd_contacts.csv", 5, "row[4]/cont_contact_date", "bad_date"),
        ("ssd_contacts.csv", 6, "row[5]/cont_contact_outcome_json", "bad_json"),
    }
    flagged = {(f.file, f.line, f.path, f.finding.rule_id, f.finding.fed) for f in summary.flagged}
    assert flagged == {("ssd_cp_plans.csv", 3, "row[2]/cppl_cp_plan_end_date", "8925", False)}
    bad = next(r for r in summary.rejections if r.code == "bad_date")
    assert "'2022-13-01 11:00:00.000' is not a day of the calendar" in str(bad)


def test_re_import_adds_nothing() -> None:
    target, first = run()
    ids = set(target.events)
    _, again = run(target=target)
    assert (first.new, again.new, again.already_present) == (21, 0, 21)
    assert set(target.events) == ids


def test_the_census_and_the_ssd_name_one_referral_alike(tmp_path: Path) -> None:
    census = tmp_path / "cin.xml"
    census.write_text(
        "<Message><Header><Source><LEA>383</LEA></Source></Header><Children>\n"
        "<Child><ChildIdentifiers><LAchildID>P-7001</LAchildID></ChildIdentifiers>\n"
        "<CINdetails><CINreferralDate>2021-04-06</CINreferralDate><ReferralSource>6</ReferralSource>"
        "<ReferralNFA>false</ReferralNFA><ChildProtectionPlans><CPPstartDate>2021-05-20</CPPstartDate>"
        "<InitialCategoryOfAbuse>NEG</InitialCategoryOfAbuse><LatestCategoryOfAbuse>NEG</LatestCategoryOfAbuse>"
        "<NumberOfPreviousCPP>0</NumberOfPreviousCPP></ChildProtectionPlans></CINdetails></Child>\n"
        "</Children></Message>\n"
    )
    target = Remembering()
    CinImport(pseudonymiser=Pseudonymiser.from_secret(KEY), clock=lambda: NOW).run([census], target)
    _, summary = run(target=target)
    assert summary.already_present == 3, "the referral's two events and the plan's start were there already"


def test_identifiers_appear_nowhere_downstream(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    target, summary = run()
    wire = b"\n".join(
        topic_for(e.event_type).name.encode() + b" " + message_key(e).encode() + b" " + encode(e)
        for e in target.events.values()
    )
    assert_no_identifier(wire.decode())
    assert_no_identifier(repr(summary) + "\n".join(str(r) for r in summary.rejections))
    assert_no_identifier(caplog.text)
    assert caplog.records


def test_the_command_reads_the_tables_it_finds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEGUARD_PSEUDONYM_KEY", KEY)
    shutil.copy(FIXTURES / "ssd_missing.csv", tmp_path / "SSD_Missing.csv")
    (tmp_path / "ssd_person.csv").write_text("pers_person_id,pers_forename\nP-7003,Alex\n")
    result = CliRunner().invoke(cli, ["import", "ssd", str(tmp_path), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "no ssd_contacts.csv" in result.output and "ssd_person.csv is not an SSD table" in result.output
    assert "missing episodes" in result.output and "dry run: nothing was published" in result.output
    assert "Alex" not in result.output
    assert_no_identifier(result.output)
    empty = CliRunner().invoke(cli, ["import", "ssd", str(tmp_path / "..")])
    assert empty.exit_code == 2 and "no SSD table" in empty.output


def test_older_column_names_are_read(tmp_path: Path) -> None:
    (tmp_path / "ssd_missing.csv").write_text(
        "miss_table_id,miss_person_id,miss_missing_episode_start_date,miss_missing_episode_type,"
        "miss_missing_episode_end_date,miss_missing_rhi_offered,miss_missing_rhi_accepted,miss_note\n"
        "M-1,P-7003,01/06/2022 22:00,M,02/06/2022 08:15,N,NA,\n"
    )
    target, summary = run(tmp_path)
    assert Counter(e.event_type for e in target.events.values()) == {"missing.reported": 1, "missing.found": 1}
    assert summary.unknown_elements == {"ssd_missing: column 'miss_note'": 1} and not summary.rejections
