"""The CIN importer's data-quality checks (two hand-written overlapping census years, tests/integration/fixtures/
cin_quality): each national rule flagged once at the element it came from, counted in the summary and the command's
output, published as a finding; what is fed and what is held back, as docs/history-import.md says."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

import safeguard.import_cli as import_cli
from producers.history import CinImport, DryRun
from producers.history.report import Flagged
from producers.pseudonymise import Pseudonymiser
from producers.publisher import EventPublisher
from safeguard.cli import cli
from safeguard.settings import Settings
from schemas.events import AgencyEvent, ContactReceived, CpPlanEnded, CpPlanStarted
from schemas.quality import QualityFinding, decode_quality_finding
from schemas.topics import QUALITY_FINDINGS

FIXTURES = Path(__file__).parents[2] / "integration" / "fixtures" / "cin_quality"
YEARS = [FIXTURES / "census-2019-20.xml", FIXTURES / "census-2020-21.xml"]
KEY = "partnership key for tests, 32 chars"
NOW = datetime(2026, 12, 1, tzinfo=UTC)
IDENTIFIERS = [f"LA-900{n}0{n}" for n in (1, 2, 3, 4, 5)] + [
    "K383201900101",
    "K383201900202",
    "K383201900303",
    "K383201900404",
    "K383202000505",
]


class Collecting:
    """A target that keeps the events and the findings it is given."""

    def __init__(self) -> None:
        self.events: dict[str, AgencyEvent] = {}
        self.findings: list[QualityFinding] = []

    def add(self, event: AgencyEvent) -> bool | None:
        new = event.event_id not in self.events
        self.events[event.event_id] = event
        return new

    def add_finding(self, finding: QualityFinding) -> None:
        self.findings.append(finding)


def importer() -> CinImport:
    return CinImport(pseudonymiser=Pseudonymiser.from_secret(KEY), clock=lambda: NOW, la_code="383")


def child(la_child_id: str) -> str:
    return Pseudonymiser.from_secret(KEY).pseudonym(la_child_id)


def test_each_rule_is_flagged_once_where_it_was_found() -> None:
    target = Collecting()
    summary = importer().run(YEARS, target)
    assert summary.flagged_by_rule == {"8925": 1, "8840": 1, "8905": 1, "8866": 1, "8935": 1, "8940": 1, "8910": 1}
    assert summary.flagged_total == 7 and summary.held == 1
    assert summary.rejected_by_code == {"bad_date": 1}
    where = {f.finding.rule_id: (f.file, f.path.rsplit("/", 2)[-2:], f.finding.fed) for f in summary.flagged}
    assert where == {
        "8925": ("census-2019-20.xml", ["ChildProtectionPlans[1]", "CPPendDate"], False),
        "8905": ("census-2019-20.xml", ["ChildProtectionPlans[1]", "InitialCategoryOfAbuse"], True),
        "8866": ("census-2019-20.xml", ["CINdetails[1]", "ReferralSource"], True),
        "8840": ("census-2019-20.xml", ["ChildProtectionPlans[1]", "CPPendDate"], True),
        "8935": ("census-2020-21.xml", ["ChildProtectionPlans[1]", "CPPstartDate"], True),
        "8940": ("census-2020-21.xml", ["ChildProtectionPlans[1]", "CPPendDate"], True),
        "8910": ("census-2020-21.xml", ["ChildProtectionPlans[1]", "LatestCategoryOfAbuse"], True),
    }
    assert sorted(f.finding_id for f in target.findings) == sorted(f.finding.finding_id for f in summary.flagged)
    assert all(f.found_by == "importer" and f.found_at == NOW for f in target.findings)


def test_a_flagged_event_is_fed_unless_its_dates_are_impossible() -> None:
    target = Collecting()
    summary = importer().run(YEARS, target)
    by_rule = {f.finding.rule_id: f.finding for f in summary.flagged}
    events = target.events
    assert by_rule["8925"].event_id not in events, "a plan ending before it starts: its end is held back"
    second = child("LA-900202")
    assert Counter(e.event_type for e in events.values() if getattr(e, "child_id", None) == second) == {
        "contact.received": 1,
        "contact.decided": 1,
        "cp_plan.started": 1,
    }
    referral = events[by_rule["8866"].event_id]
    assert isinstance(referral, ContactReceived) and referral.contact_source == "10", "fed as source unknown"
    same_day = events[by_rule["8840"].event_id]
    assert isinstance(same_day, CpPlanEnded)
    started = events[by_rule["8905"].event_id]
    assert isinstance(started, CpPlanStarted) and started.category == "EMO", "fed with the latest category"
    assert isinstance(events[by_rule["8935"].event_id], CpPlanStarted)
    assert isinstance(events[by_rule["8940"].event_id], CpPlanEnded)
    assert events[by_rule["8910"].event_id].event_type == "cp_plan.ended"


def test_re_import_flags_nothing_new_and_each_year_alone_finds_what_it_can_see() -> None:
    target = Collecting()
    importer().run(YEARS, target)
    again = importer().run(YEARS, target)
    assert (again.new, again.already_present) == (0, len(target.events))
    assert again.flagged_by_rule == {"8925": 1, "8840": 1, "8905": 1, "8866": 1, "8935": 1, "8940": 1, "8910": 1}
    assert len({f.finding_id for f in target.findings}) == 7, "the same findings, by id"
    later_alone = importer().run(YEARS[1:], DryRun())
    assert set(later_alone.flagged_by_rule) == {"8935", "8940", "8910"}


def test_a_flagged_element_is_shown_by_position_never_by_identifier() -> None:
    summary = importer().run(YEARS, Collecting())
    text = "\n".join(str(f) for f in summary.flagged)
    assert "child 2, CINdetails 1, ChildProtectionPlans 1, CPPendDate: rule 8925" in text
    assert "ends (2020-02-15) before it starts (2020-03-01); not imported" in text
    assert "ReferralSource: rule 8866 (referral_source_not_valid): contact_source '99' is not" in text
    for identifier in IDENTIFIERS:
        assert identifier not in text and identifier.lower() not in text


class _Future:
    def add_callback(self, fn: object, *args: object) -> _Future:
        assert callable(fn)
        fn(*args, None)
        return self

    def add_errback(self, fn: object, *args: object) -> _Future:
        return self


class _Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes]] = []

    def send(self, topic: str, value: bytes | None = None, key: bytes | None = None) -> _Future:
        assert value is not None
        self.sent.append((topic, key, value))
        return _Future()

    def flush(self, timeout: float | None = None) -> None:
        pass

    def close(self, timeout: float | None = None) -> None:
        pass


def test_the_command_counts_the_findings_and_publishes_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEGUARD_PSEUDONYM_KEY", KEY)
    producer = _Producer()

    def connect(settings: Settings) -> EventPublisher:
        return EventPublisher(producer)

    monkeypatch.setattr(import_cli, "_connect", connect)
    result = CliRunner().invoke(cli, ["import", "cin", *map(str, YEARS)])
    assert result.exit_code == 1, result.output  # a rejected element and a flagged event not imported
    findings = [decode_quality_finding(v) for t, _, v in producer.sent if t == QUALITY_FINDINGS.name]
    assert sorted(f.rule_id for f in findings) == ["8840", "8866", "8905", "8910", "8925", "8935", "8940"]
    assert all(key == f.event_id.encode() for (t, key, _), f in zip(
        [s for s in producer.sent if s[0] == QUALITY_FINDINGS.name], findings, strict=True
    ))  # fmt: skip
    assert "flagged 8925 (plan_ends_before_start)" in result.output
    assert "flagged by data-quality checks" in result.output
    lines = {
        line.split("│")[1].strip(): line.split("│")[2].strip() for line in result.output.splitlines() if "│" in line
    }
    assert lines["flagged by data-quality checks"] == "7"
    assert lines["flagged and not imported"] == "1"
    for identifier in IDENTIFIERS:
        assert identifier not in result.output and identifier.encode() not in b"".join(v for _, _, v in producer.sent)


def test_flagged_has_the_finding_and_where_it_came_from() -> None:
    summary = importer().run(YEARS[:1], DryRun())
    assert all(isinstance(f, Flagged) and f.line > 0 for f in summary.flagged)


# --- the CSV returns: the SSD extract -----------------------------------------------------------------------------

SSD_EPISODES = (
    "cine_referral_id,cine_person_id,cine_referral_date,cine_cin_primary_need_code,cine_referral_source_code\n"
    "R-1,P-1,2021-04-06 00:00:00.000,N1,77\n"
)
SSD_PLANS = (
    (
        "cppl_cp_plan_id,cppl_person_id,cppl_cp_plan_start_date,cppl_cp_plan_end_date,"
        "cppl_cp_plan_initial_category,cppl_cp_plan_latest_category\n"
    )
    + """CP-1,P-1,2021-05-20 00:00:00.000,2021-11-30 00:00:00.000,Nglect,Emotional abuse
CP-2,P-2,2021-05-20 00:00:00.000,,Nglect,Phsyical
"""
)
SSD_MISSING = """miss_table_id,miss_la_person_id,miss_mis_epi_start,miss_mis_epi_type,miss_mis_epi_end
M-1,P-3,2022-06-01 22:00:00.000,M,2022-06-05 08:15:00.000
M-2,P-3,2022-06-03 21:00:00.000,A,2022-06-03 23:30:00.000
M-3,P-3,2022-07-10 21:00:00.000,M,2022-07-09 23:30:00.000
M-4,P-3,2022-08-10 21:00:00.000,X,
"""


def test_the_ssd_tables_are_checked_as_the_census_is(tmp_path: Path) -> None:
    from producers.history.ssd import SsdOptions, ssd_tables
    from producers.history.tabular import TableImport

    (tmp_path / "ssd_cin_episodes.csv").write_text(SSD_EPISODES)
    (tmp_path / "ssd_cp_plans.csv").write_text(SSD_PLANS)
    (tmp_path / "ssd_missing.csv").write_text(SSD_MISSING)
    target = Collecting()
    importer = TableImport(
        pseudonymiser=Pseudonymiser.from_secret(KEY), clock=lambda: NOW, la_code="383", agency_code="SSD"
    )
    summary = importer.run(ssd_tables(tmp_path, SsdOptions()).tables, target)
    flagged = {(f.file, f.path, f.finding.rule_id, f.finding.fed) for f in summary.flagged}
    assert flagged == {
        ("ssd_cin_episodes.csv", "row[1]/cine_referral_source_code", "8866", True),
        ("ssd_cp_plans.csv", "row[1]/cppl_cp_plan_initial_category", "8905", True),
        ("ssd_cp_plans.csv", "row[2]/cppl_cp_plan_initial_category", "8905", False),  # no valid category: no plan
        ("ssd_cp_plans.csv", "row[2]/cppl_cp_plan_latest_category", "8910", False),
        ("ssd_missing.csv", "row[1]/miss_mis_epi_end", "574", True),  # sent in time order: M-2 began inside M-1
        ("ssd_missing.csv", "row[3]/miss_mis_epi_end", "567", False),  # found before reported: held back
        ("ssd_missing.csv", "row[4]/miss_mis_epi_type", "1006", False),  # neither M nor A: no event
    }
    assert summary.held == 3 and summary.rejected_by_code == {"missing": 1, "unknown_code": 1}
    by_rule = {f.finding.rule_id: f.finding for f in summary.flagged if f.finding.fed}
    received = target.events[by_rule["8866"].event_id]
    assert isinstance(received, ContactReceived) and received.contact_source == "10"
    started = target.events[by_rule["8905"].event_id]
    assert isinstance(started, CpPlanStarted) and started.category == "EMO"
    held = {f.finding.event_id for f in summary.flagged if not f.finding.fed}
    assert not held & set(target.events), "nothing held back was sent"
    assert {f.finding_id for f in target.findings} == {f.finding.finding_id for f in summary.flagged}
