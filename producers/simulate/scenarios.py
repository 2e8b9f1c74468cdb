"""Scenarios: the published figures a simulated year must reproduce, as frozen data (calibration.md).

A scenario holds numbers and names only; the generator turns it into events. Figures marked "assumed" in
the comments are not published for that partnership and were chosen to give the same shape as Leeds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from schemas.types import PlanCategory, Route


@dataclass(frozen=True)
class Agencies:
    """Short codes of the publishing organisations of one partnership (the envelope's `agency_code`)."""

    police: str
    local_authority: str
    front_door: str  # contacts from the public, recorded by the Front Door on their behalf
    hospital: str  # A&E and other acute health (3E, 3F)
    community_health: str  # health visitors, school nurses, other primary health (3B-3D)
    gp: str  # general practice (3A)
    schools: str  # 2A
    education_services: str  # 2B
    probation: str  # other legal agency (7)
    voluntary: str  # other, third sector (8)


@dataclass(frozen=True)
class ContactFigures:
    """Contacts to the Front Door in the year, by source group, and what became of them."""

    police: int  # contact_source 6
    health: int  # 3A-3F
    education: int  # 2A, 2B
    other: int  # everything else
    referrals: int  # decisions with outcome referral or strategy_discussion
    re_referrals: int  # referrals of a child with an earlier referral in the previous 12 months
    multi_agency_children: int  # children planted with contacts from 3-4 agency types inside 30 days

    @property
    def total(self) -> int:
        return self.police + self.health + self.education + self.other


@dataclass(frozen=True)
class DomesticFigures:
    """Police-recorded domestic incidents and the Front Door contacts that children present must get."""

    incidents: int
    child_present_share: float  # of incidents
    late_contact_share: float  # present children whose contact arrives after 24 hours
    missed_contact_share: float  # present children who never get a contact
    high_risk_share: float  # DASH high (14+)
    medium_risk_share: float  # DASH medium (10-13)
    marac_share_of_high: float  # high-risk incidents referred to MARAC


@dataclass(frozen=True)
class MissingCohort:
    """Missing episodes (absence_type `missing`) and the distinct children they belong to."""

    episodes: int
    children: int


@dataclass(frozen=True)
class MissingFigures:
    looked_after: MissingCohort
    not_looked_after: MissingCohort
    away_episodes: int  # extra `away` absences of the looked-after children (SSDA903 code A), outside the figures
    high_risk_share: float
    interview_late_share: float  # first return-interview step after 72 hours
    interview_missed_share: float  # no return-interview step at all
    contact_share_not_looked_after: float  # episodes of children at home that the police refer to the Front Door


@dataclass(frozen=True)
class PlanFigures:
    """Child protection plans: the stock open when the year begins, starts in the year, and repeats."""

    starts: tuple[tuple[PlanCategory, int], ...]  # initial category of plans starting in the year
    open_at_start: int  # plans open on the first day (emitted as a backload with their real start dates)
    median_days: float  # median plan length
    long_plans_at_end: int  # plans open at year end that started more than two years before
    repeat_share_open_at_start: float  # of the open stock: previous plan ended within 24 months
    repeat_share_first_starts: float  # of starts at the beginning of the year (rises linearly ...)
    repeat_share_last_starts: float  # ... to this at the end of the year
    older_repeat_share: float  # previous plan ended more than 24 months before
    in_stream_repeats: int  # children whose earlier plan ends inside the simulated stream
    published_average_on_plan: int | None = None  # average of the month-end counts
    published_on_plan_at_end: int | None = None
    published_repeat_within_24m: tuple[int, int] | None = None  # month-end averages, first and second half

    @property
    def total_starts(self) -> int:
        return sum(n for _, n in self.starts)


@dataclass(frozen=True)
class Scenario:
    """One partnership's year: where, when, who publishes, and the figures to reproduce."""

    name: str
    title: str
    la_code: str
    first_day: date
    last_day: date  # inclusive
    route: Route
    agencies: Agencies
    contacts: ContactFigures
    domestic: DomesticFigures
    missing: MissingFigures
    plans: PlanFigures
    school_holidays: tuple[tuple[date, date], ...]  # inclusive ranges; schools make few contacts then
    bank_holidays: tuple[date, ...]
    school_urns: tuple[int, int]  # range of synthetic 6-digit school URNs for Operation Encompass

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1


_SCHOOL_HOLIDAYS_2019 = (
    (date(2019, 4, 8), date(2019, 4, 22)),
    (date(2019, 5, 27), date(2019, 5, 31)),
    (date(2019, 7, 22), date(2019, 9, 3)),
    (date(2019, 10, 28), date(2019, 11, 1)),
    (date(2019, 12, 23), date(2020, 1, 3)),
    (date(2020, 2, 17), date(2020, 2, 21)),
)
_BANK_HOLIDAYS_2019 = (
    date(2019, 4, 19),
    date(2019, 4, 22),
    date(2019, 5, 6),
    date(2019, 5, 27),
    date(2019, 8, 26),
    date(2019, 12, 25),
    date(2019, 12, 26),
    date(2020, 1, 1),
)

LEEDS_2019 = Scenario(
    name="leeds-2019",
    title="Leeds 2019/20",
    la_code="383",
    first_day=date(2019, 4, 1),
    last_day=date(2020, 3, 31),
    route="front_door",
    agencies=Agencies(
        police="WYP",
        local_authority="LCC",
        front_door="LCC-FD",
        hospital="LTHT",
        community_health="LCH",
        gp="LCCG",
        schools="LEEDS-SCHOOLS",
        education_services="LCC-EDU",
        probation="NPS",
        voluntary="VCS",
    ),
    # Duty and Advice contacts 2019/20 (calibration.md); referrals ~22% of contacts, ~22% of them re-referrals.
    contacts=ContactFigures(
        police=9_943,
        health=3_130,
        education=3_749,
        other=9_382,
        referrals=5_765,
        re_referrals=1_268,
        multi_agency_children=150,
    ),
    domestic=DomesticFigures(
        incidents=21_531,
        child_present_share=0.268,
        late_contact_share=0.025,
        missed_contact_share=0.01,
        high_risk_share=0.09,
        medium_risk_share=0.24,
        marac_share_of_high=0.85,
    ),
    # Assumed: no published Leeds split; the Leicester shape scaled up to ~2,600 episodes.
    missing=MissingFigures(
        looked_after=MissingCohort(episodes=1_480, children=170),
        not_looked_after=MissingCohort(episodes=1_120, children=490),
        away_episodes=90,
        high_risk_share=0.06,
        interview_late_share=0.07,
        interview_missed_share=0.04,
        contact_share_not_looked_after=0.35,
    ),
    # Initial categories 327/145/84/34 (+ assumed 12 multiple); ~519 on a plan on average; 5 over two years.
    plans=PlanFigures(
        starts=(("EMO", 327), ("NEG", 145), ("PHY", 84), ("SAB", 34), ("MUL", 12)),
        open_at_start=510,
        median_days=300.0,
        long_plans_at_end=5,
        repeat_share_open_at_start=0.10,
        repeat_share_first_starts=0.10,
        repeat_share_last_starts=0.22,
        older_repeat_share=0.07,
        in_stream_repeats=15,
        published_average_on_plan=519,
        published_repeat_within_24m=(54, 83),
    ),
    school_holidays=_SCHOOL_HOLIDAYS_2019,
    bank_holidays=_BANK_HOLIDAYS_2019,
    school_urns=(107_300, 108_800),
)

LEICESTER_2019 = Scenario(
    name="leicester-2019",
    title="Leicester 2019/20",
    la_code="856",
    first_day=date(2019, 4, 1),
    last_day=date(2020, 3, 31),
    route="duty_and_advice",
    agencies=Agencies(
        police="LEICS",
        local_authority="LCITYC",
        front_door="LCITYC-DAS",
        hospital="UHL",
        community_health="LPT",
        gp="LCCCG",
        schools="LEIC-SCHOOLS",
        education_services="LCITYC-EDU",
        probation="NPS",
        voluntary="VCS",
    ),
    # Published: 15,403 contacts, 2,704 referrals, 332 re-referrals. Assumed: the split by source (Leeds-like).
    contacts=ContactFigures(
        police=5_391,
        health=2_002,
        education=2_310,
        other=5_700,
        referrals=2_704,
        re_referrals=332,
        multi_agency_children=80,
    ),
    # Assumed: not published for Leicester.
    domestic=DomesticFigures(
        incidents=9_200,
        child_present_share=0.27,
        late_contact_share=0.025,
        missed_contact_share=0.01,
        high_risk_share=0.09,
        medium_risk_share=0.24,
        marac_share_of_high=0.85,
    ),
    # Published: 866 missing occasions of 97 children in care; 722 of 318 children at home.
    missing=MissingFigures(
        looked_after=MissingCohort(episodes=866, children=97),
        not_looked_after=MissingCohort(episodes=722, children=318),
        away_episodes=40,
        high_risk_share=0.06,
        interview_late_share=0.07,
        interview_missed_share=0.04,
        contact_share_not_looked_after=0.35,
    ),
    # Published: 325 on a plan at 31 March 2020. Assumed: starts and categories at England's 2019/20 shares.
    plans=PlanFigures(
        starts=(("NEG", 187), ("EMO", 144), ("PHY", 27), ("SAB", 16), ("MUL", 16)),
        open_at_start=330,
        median_days=290.0,
        long_plans_at_end=3,
        repeat_share_open_at_start=0.10,
        repeat_share_first_starts=0.12,
        repeat_share_last_starts=0.20,
        older_repeat_share=0.07,
        in_stream_repeats=8,
        published_on_plan_at_end=325,
    ),
    school_holidays=_SCHOOL_HOLIDAYS_2019,
    bank_holidays=_BANK_HOLIDAYS_2019,
    school_urns=(120_000, 120_900),
)

SCENARIOS: Mapping[str, Scenario] = {s.name: s for s in (LEEDS_2019, LEICESTER_2019)}
"""Every scenario by name, for the CLI."""
