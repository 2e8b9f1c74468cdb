"""Importing two overlapping CIN census years (hand-written fixtures): once, idempotently, with every
rejection named by position and reason, and without a raw identifier anywhere downstream."""

from __future__ import annotations

import logging
import shutil
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import safeguard.import_cli as import_cli
from producers.history import CinImport, CinOptions, DryRun, ImportSummary, JsonlTarget
from producers.history.report import Rejection
from producers.pseudonymise import Pseudonymiser
from producers.publisher import EventPublisher
from safeguard.cli import cli
from safeguard.settings import Settings
from schemas.codec import decode_event, encode
from schemas.events import AgencyEvent, ContactDecided, ContactReceived, CpPlanEnded, CpPlanStarted
from schemas.quality import decode_quality_finding
from schemas.topics import QUALITY_FINDINGS, message_key, topic_for

FIXTURES = Path(__file__).parent / "fixtures" / "cin"
YEARS = [FIXTURES / "cin-2018-19.xml", FIXTURES / "cin-2019-20.xml"]
KEY = "partnership key for tests, 32 chars"
IDENTIFIERS = ["LA-000117", "LA-000342", "LA-000519", "LA-000777", "H383201800117", "J383201900342"]
"""Every LAchildID and UPN of the fixtures, as written and as the pseudonymiser normalises them."""
NOW = datetime(2026, 12, 1, tzinfo=UTC)


class Remembering:
    """A target that can tell: it keeps the ids (and events) it has been given."""

    def __init__(self) -> None:
        self.events: dict[str, AgencyEvent] = {}

    def add(self, event: AgencyEvent) -> bool | None:
        if event.event_id in self.events:
            return False
        self.events[event.event_id] = event
        return True


def importer(**options: Any) -> CinImport:
    return CinImport(
        pseudonymiser=Pseudonymiser.from_secret(KEY),
        clock=lambda: NOW,
        options=CinOptions(**options),
        la_code="383",
    )


def child(la_child_id: str) -> str:
    return Pseudonymiser.from_secret(KEY).pseudonym(la_child_id)


def all_forms(identifier: str) -> list[str]:
    return [identifier, identifier.replace("-", ""), identifier.lower()]


def assert_no_identifier(text: str) -> None:
    for identifier in IDENTIFIERS:
        for form in all_forms(identifier):
            assert form not in text, f"{form!r} leaked"


def test_two_overlapping_years_import_once() -> None:
    target = Remembering()
    summary = importer().run(YEARS, target)
    # 2018-19: child 1 a referral and an open plan (3 events); child 2 two referrals and a plan whose end is
    # rejected (5); child 3 a plan (2), its referral rejected. 2019-20: child 1's referral and plan again
    # (3 duplicates) with the plan's end (1), a second referral and plan (3); child 4 a referral (2).
    assert (summary.generated, summary.duplicates, summary.sent) == (19, 3, 16)
    assert (summary.new, summary.already_present) == (16, 0)
    assert summary.children == 5 and summary.referrals == 6 and summary.plans == 5
    types = Counter(event.event_type for event in target.events.values())
    assert types == {"contact.received": 5, "contact.decided": 5, "cp_plan.started": 4, "cp_plan.ended": 2}
    first = child("LA-000117")
    plans = sorted(
        (e.occurred_at.date(), e.event_type)
        for e in target.events.values()
        if isinstance(e, CpPlanStarted | CpPlanEnded) and e.child_id == first
    )
    assert plans == [
        (date(2018, 7, 20), "cp_plan.started"),
        (date(2019, 9, 30), "cp_plan.ended"),
        (date(2020, 2, 3), "cp_plan.started"),
    ]


def test_re_import_gives_the_same_ids_and_adds_nothing() -> None:
    target = Remembering()
    importer().run(YEARS, target)
    ids = set(target.events)
    again = importer().run(list(reversed(YEARS)), target)
    assert (again.new, again.already_present) == (0, 16)
    assert set(target.events) == ids
    each_alone = Remembering()
    for year in YEARS:
        importer().run([year], each_alone)
    assert set(each_alone.events) == ids, "a year imported on its own gives the same ids"


def test_files_are_read_oldest_year_first_whatever_the_order_given() -> None:
    summary = importer().run(list(reversed(YEARS)), DryRun())
    assert [(f.name, f.year) for f in summary.files] == [("cin-2018-19.xml", "2019"), ("cin-2019-20.xml", "2020")]


def test_bad_date_and_plan_ending_before_it_starts_are_reported_and_the_import_goes_on() -> None:
    target = Remembering()
    summary = importer().run(YEARS, target)
    assert summary.rejected == 1
    assert summary.rejected_by_code == {"bad_date": 1}
    by_code = {r.code: r for r in summary.rejections}
    bad = by_code["bad_date"]
    assert bad.path == "Message/Children/Child[3]/CINdetails[1]/CINreferralDate"
    assert bad.file == "cin-2018-19.xml" and bad.line == 108
    assert str(bad).startswith("cin-2018-19.xml:108: child 3, CINdetails 1, CINreferralDate: ")
    assert "not a day of the calendar" in bad.reason
    # The plan ending before it starts is flagged (national rule 8925) and its end not imported: the plan stays open.
    [ends] = summary.flagged
    assert ends.path == "Message/Children/Child[2]/CINdetails[2]/ChildProtectionPlans[1]/CPPendDate"
    assert (ends.finding.rule_id, ends.finding.fed, ends.finding.checked_event_type) == ("8925", False, "cp_plan.ended")
    assert "ends (2019-02-15) before it starts (2019-03-01)" in ends.finding.message
    assert (summary.flagged_by_rule, summary.held) == ({"8925": 1}, 1)
    # The import went on: child 3's plan is there although its referral was not, child 2's plan is open.
    third, second = child("LA-000519"), child("LA-000342")
    kinds = Counter((e.child_id, e.event_type) for e in target.events.values())
    assert kinds[(third, "cp_plan.started")] == 1 and kinds[(third, "cp_plan.ended")] == 1
    assert kinds[(third, "contact.decided")] == 0
    assert kinds[(second, "cp_plan.started")] == 1 and kinds[(second, "cp_plan.ended")] == 0
    assert kinds[(second, "contact.decided")] == 2


def test_unknown_elements_warn_and_never_stop() -> None:
    summary = importer().run(YEARS, DryRun())
    where = "Message/Children/Child/ChildIdentifiers/FavouriteColour"
    assert summary.unknown_elements == {where: 1}
    assert summary.unknown_first_seen[where] == "cin-2018-19.xml:102"


def test_mappings_of_the_contract() -> None:
    target = Remembering()
    importer().run(YEARS, target)
    first = child("LA-000117")
    received = [e for e in target.events.values() if isinstance(e, ContactReceived) and e.child_id == first]
    decided = [e for e in target.events.values() if isinstance(e, ContactDecided) and e.child_id == first]
    started = [e for e in target.events.values() if isinstance(e, CpPlanStarted) and e.child_id == first]
    police = min(received, key=lambda e: e.occurred_at)
    assert (police.contact_source, police.agency_type, police.agency_code) == ("6", "police", "CIN")
    assert police.concerns == ["domestic_abuse", "neglect"], "assessment factors 3A and 16A"
    assert police.occurred_at.isoformat() == "2018-06-04T00:00:00+01:00" == police.recorded_at.isoformat()
    assert {(e.outcome, e.primary_need, e.agency_type) for e in decided} == {("referral", "N1", "local_authority")}
    assert {e.contact_id for e in decided} == {e.contact_id for e in received}
    assert sorted((e.category, e.previous_plans) for e in started) == [("NEG", 0), ("NEG", 1)]
    third = child("LA-000519")
    ended = next(e for e in target.events.values() if isinstance(e, CpPlanEnded) and e.child_id == third)
    assert (ended.category, ended.previous_plans) == ("MUL", 1), "the end carries the latest category"
    nfa = next(e for e in target.events.values() if isinstance(e, ContactDecided) and e.child_id == child("LA-000777"))
    assert (nfa.outcome, nfa.primary_need) == ("referral", None), "an NFA referral is a referral, as the DfE counts it"


def test_nfa_referrals_can_be_decided_nfa() -> None:
    target = Remembering()
    importer(nfa_outcome="nfa").run(YEARS, target)
    outcomes = {e.child_id: e.outcome for e in target.events.values() if isinstance(e, ContactDecided)}
    assert outcomes[child("LA-000777")] == "nfa"
    assert outcomes[child("LA-000117")] == "referral"


def test_the_child_can_be_keyed_by_upn() -> None:
    target = Remembering()
    summary = importer(child_key="upn").run(YEARS, target)
    assert child("H383201800117") in {getattr(e, "child_id", None) for e in target.events.values()}
    missing = [r for r in summary.rejections if r.code == "missing"]
    assert [r.path for r in missing] == [
        "Message/Children/Child[3]/ChildIdentifiers/UPN",
        "Message/Children/Child[2]/ChildIdentifiers/UPN",
    ]
    assert "no UPN" in missing[0].reason


def test_identifiers_appear_nowhere_downstream(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    target = Remembering()
    summary = importer().run(YEARS, target)
    wire = b"".join(
        topic_for(e.event_type).name.encode() + message_key(e).encode() + encode(e) for e in target.events.values()
    )
    assert_no_identifier(wire.decode())
    assert_no_identifier(repr(summary) + "".join(str(r) for r in summary.rejections))
    assert_no_identifier(caplog.text)
    assert caplog.records, "the import logs (and nothing it logs names a child)"


def test_identifiers_appear_nowhere_in_the_command_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEGUARD_PSEUDONYM_KEY", KEY)
    out = tmp_path / "history.jsonl"
    result = CliRunner().invoke(cli, ["import", "cin", *map(str, YEARS), "--out", str(out)])
    assert result.exit_code == 1, result.output  # two elements were rejected
    assert_no_identifier(result.output + out.read_text())
    assert "child 3, CINdetails 1, CINreferralDate" in result.output


def test_entity_expansion_is_refused(tmp_path: Path) -> None:
    laughs = tmp_path / "laughs.xml"
    laughs.write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE Message [\n <!ENTITY a "aaaaaaaaaa">\n'
        ' <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">\n <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">\n]>\n'
        "<Message><Header><Source><LEA>&c;</LEA></Source></Header><Children/></Message>\n"
    )
    outside = tmp_path / "outside.txt"
    outside.write_text("LA-SECRET-1")
    external = tmp_path / "external.xml"
    external.write_text(
        f'<?xml version="1.0"?>\n<!DOCTYPE Message [<!ENTITY x SYSTEM "file://{outside}">]>\n'
        "<Message><Header><Source><LEA>383</LEA></Source></Header><Children><Child><ChildIdentifiers>"
        "<LAchildID>&x;</LAchildID></ChildIdentifiers><CINdetails><CINreferralDate>2019-05-01</CINreferralDate>"
        "<ReferralSource>6</ReferralSource><ReferralNFA>false</ReferralNFA></CINdetails></Child></Children></Message>\n"
    )
    target = Remembering()
    summary = importer().run([laughs, external], target)
    assert not target.events
    assert [f.refused is not None for f in summary.files] == [True, True]
    assert all("declares a DTD" in r.reason and r.path == "Message" for r in summary.rejections)
    assert "LA-SECRET-1" not in repr(summary)


def test_a_file_that_is_not_xml_is_refused_with_its_line_and_the_next_file_is_read(tmp_path: Path) -> None:
    broken = tmp_path / "broken.xml"
    text = YEARS[0].read_text()
    third_child = "</Child>\n    <Child>\n      <ChildIdentifiers>\n        <LAchildID>LA-000519"
    broken.write_text(text.replace(third_child, "<"))
    target = Remembering()
    summary = importer().run([broken, YEARS[1]], target)
    refused = [r for r in summary.rejections if r.code == "file_refused"]
    assert len(refused) == 1 and refused[0].file == "broken.xml"
    assert f"not well-formed XML at line {refused[0].line}" in refused[0].reason and refused[0].line > 60
    files = {f.name: f for f in summary.files}
    assert files["broken.xml"].refused is not None
    assert files["cin-2019-20.xml"].children == 2 and files["cin-2019-20.xml"].refused is None


def test_a_file_of_another_authority_is_imported_under_its_own_code_with_a_warning() -> None:
    summary = CinImport(pseudonymiser=Pseudonymiser.from_secret(KEY), clock=lambda: NOW, la_code="856").run(
        YEARS[:1], DryRun()
    )
    assert summary.files[0].la_code == "383"
    assert summary.warnings and "383" in summary.warnings[0] and "856" in summary.warnings[0]


def test_dates_outside_the_contracts_window_are_rejected_by_element() -> None:
    before_the_year_ended = datetime(2019, 6, 1, tzinfo=UTC)
    early = CinImport(pseudonymiser=Pseudonymiser.from_secret(KEY), clock=lambda: before_the_year_ended)
    summary = early.run(YEARS[1:], DryRun())
    future = [r for r in summary.rejections if r.code == "in_the_future"]
    assert future and all(r.path.endswith(("CINreferralDate", "CPPstartDate", "CPPendDate")) for r in future)


def test_jsonl_target_appends_only_what_it_does_not_hold(tmp_path: Path) -> None:
    out = tmp_path / "history.jsonl"
    first = JsonlTarget(out)
    importer().run(YEARS[:1], first)
    first.close()
    second = JsonlTarget(out)
    summary = importer().run(YEARS, second)
    second.close()
    assert (summary.new, summary.already_present) == (6, 10)
    events = [decode_event(line) for line in out.read_bytes().splitlines()]
    assert len(events) == len({e.event_id for e in events}) == 16


class _Future:
    def add_callback(self, fn: Any, *args: Any) -> None:
        fn(*args, "metadata")

    def add_errback(self, fn: Any, *args: Any) -> None:
        pass


class _Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes]] = []
        self.closed = False

    def send(self, topic: str, value: bytes | None = None, key: bytes | None = None) -> _Future:
        assert value is not None
        self.sent.append((topic, key, value))
        return _Future()

    def flush(self, timeout: float | None = None) -> None:
        pass

    def close(self, timeout: float | None = None) -> None:
        self.closed = True


def test_the_command_publishes_to_the_contract_topics_with_the_contract_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEGUARD_PSEUDONYM_KEY", KEY)
    producer = _Producer()

    def connect(settings: Settings) -> EventPublisher:
        return EventPublisher(producer)

    monkeypatch.setattr(import_cli, "_connect", connect)
    result = CliRunner().invoke(cli, ["import", "cin", *map(str, YEARS)])
    assert result.exit_code == 1, result.output  # rejected elements, as `publish` exits for rejected lines
    events = [sent for sent in producer.sent if sent[0] != QUALITY_FINDINGS.name]
    [(_, finding_key, finding_value)] = [sent for sent in producer.sent if sent[0] == QUALITY_FINDINGS.name]
    finding = decode_quality_finding(finding_value)
    assert (finding.rule_id, finding.event_id.encode()) == ("8925", finding_key)
    assert "flagged by data-quality checks" in result.output
    assert producer.closed and len(events) == 16
    for topic, key, value in events:
        event = decode_event(value)
        assert topic == topic_for(event.event_type).name and key == message_key(event).encode()
    assert "duplicates within this import" in result.output and "delivered to Kafka" in result.output
    assert_no_identifier(result.output + repr(producer.sent))


def test_dry_run_publishes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEGUARD_PSEUDONYM_KEY", KEY)

    def connect(settings: Settings) -> EventPublisher:
        raise AssertionError("a dry run does not connect")

    monkeypatch.setattr(import_cli, "_connect", connect)
    result = CliRunner().invoke(cli, ["import", "cin", "--dry-run", str(YEARS[1])])
    assert result.exit_code == 0, result.output
    assert "dry run: nothing was published" in result.output
    assert "not known (dry run)" in result.output


def test_without_a_key_the_command_stops_before_reading(tmp_path: Path) -> None:
    copy = tmp_path / "cin.xml"
    shutil.copy(YEARS[0], copy)
    result = CliRunner().invoke(cli, ["import", "cin", "--dry-run", str(copy)])
    assert result.exit_code == 2 and "SAFEGUARD_PSEUDONYM_KEY" in result.output


def test_summary_counts_the_targets_verdicts() -> None:
    summary = ImportSummary()
    summary.delivered(None)
    assert (summary.sent, summary.new, summary.already_present) == (1, None, None)
    summary.delivered(True)
    summary.delivered(False)
    assert (summary.sent, summary.new, summary.already_present) == (3, 1, 1)
    summary.reject(Rejection("f.xml", "Message/Children/Child[2]/CINdetails[1]/ReferralSource", 9, "x", "why"))
    assert str(summary.rejections[0]) == "f.xml:9: child 2, CINdetails 1, ReferralSource: why"


def test_a_child_without_a_usable_identifier_is_rejected_and_the_file_without_lea_takes_the_settings(
    tmp_path: Path,
) -> None:
    census = tmp_path / "no-header.xml"
    census.write_text(
        "<Message><Children>\n<Child><ChildIdentifiers><LAchildID> - </LAchildID></ChildIdentifiers>\n"
        "<CINdetails><CINreferralDate>2019-05-01</CINreferralDate><ReferralSource>6</ReferralSource></CINdetails>"
        "</Child>\n<Child><ChildIdentifiers><LAchildID>LA-000342</LAchildID></ChildIdentifiers>\n"
        "<CINdetails><CINreferralDate>2019-05-01</CINreferralDate><ReferralSource>6</ReferralSource>"
        "<Assessments><FactorsIdentifiedAtAssessment><AssessmentFactors>99Z</AssessmentFactors>"
        "</FactorsIdentifiedAtAssessment></Assessments></CINdetails>"
        "</Child>\n</Children></Message>\n"
    )
    target = Remembering()
    summary = importer().run([census], target)
    (rejection,) = summary.rejections
    assert rejection.path == "Message/Children/Child[1]/ChildIdentifiers/LAchildID" and rejection.line == 2
    assert "no letter or digit" in rejection.reason
    assert len(target.events) == 2 and {e.la_code for e in target.events.values()} == {"383"}
    assert summary.warnings == ["no-header.xml: no Header/Source/LEA; imported as local authority 383"]
    assert summary.unknown_elements == {"AssessmentFactors '99Z' (read as 'other')": 1}
    received = [e for e in target.events.values() if isinstance(e, ContactReceived)]
    assert [e.concerns for e in received] == [["other"]]
    without = CinImport(pseudonymiser=Pseudonymiser.from_secret(KEY), clock=lambda: NOW).run([census], DryRun())
    assert without.files[0].refused is not None and "no Header/Source/LEA" in without.files[0].refused
