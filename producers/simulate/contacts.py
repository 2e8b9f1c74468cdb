"""Contacts to the Front Door and their decisions, with the exact count per source group of the scenario.

Contacts that other streams cause come first (domestic-abuse notifications for children present, police
referrals after a child at home went missing, the referral before each new plan, children planted with
contacts from several agencies); the rest of each group's figure is filled with ordinary contacts.
Referrals are then chosen so that referrals and re-referrals hit their figures exactly.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from producers.simulate.domestic import Incident
from producers.simulate.ids import Identities
from producers.simulate.missing import Episode
from producers.simulate.plans import Plan
from producers.simulate.scenarios import Agencies, Scenario
from producers.simulate.timeline import DAY, HOUR, MINUTE, Profile, Timeline, lognormal
from schemas.types import Concern, ContactSource, Outcome, PlanCategory, PrimaryNeed

Group = Literal["police", "health", "education", "other"]
"""The calibration groups of contact sources: Police = 6, Health = 3A-3F, Education = 2A/2B, Other = the rest."""

GROUPS: tuple[Group, ...] = ("police", "health", "education", "other")

_SOURCES: dict[Group, tuple[tuple[ContactSource, ...], tuple[float, ...]]] = {
    "police": (("6",), (1.0,)),
    "health": (("3A", "3B", "3C", "3D", "3E", "3F"), (22, 20, 8, 10, 30, 10)),
    "education": (("2A", "2B"), (90, 10)),
    "other": (
        ("1A", "1B", "1C", "1D", "4", "5A", "5B", "5C", "5D", "7", "8", "9", "10"),
        (3, 16, 4, 5, 6, 22, 7, 6, 12, 6, 5, 5, 3),
    ),
}
_CONCERNS: dict[Group, tuple[tuple[Concern, ...], tuple[float, ...]]] = {
    "police": (
        ("neglect", "physical_abuse", "exploitation", "other", "emotional_abuse", "sexual_abuse", "mental_health"),
        (3, 2, 2, 2, 1, 0.5, 0.5),
    ),
    "health": (
        ("neglect", "physical_abuse", "mental_health", "emotional_abuse", "sexual_abuse", "domestic_abuse", "other"),
        (2, 2, 3, 1.5, 0.5, 1, 2),
    ),
    "education": (
        (
            "neglect",
            "emotional_abuse",
            "physical_abuse",
            "mental_health",
            "domestic_abuse",
            "sexual_abuse",
            "other",
            "exploitation",
        ),
        (3, 2, 2, 2, 1, 0.5, 1.5, 0.5),
    ),
    "other": (
        ("neglect", "domestic_abuse", "emotional_abuse", "physical_abuse", "mental_health", "other"),
        (3, 2, 2, 1, 1, 3),
    ),
}
_PLAN_CONCERNS: dict[PlanCategory, tuple[Concern, ...]] = {
    "NEG": ("neglect",),
    "EMO": ("emotional_abuse",),
    "PHY": ("physical_abuse",),
    "SAB": ("sexual_abuse",),
    "MUL": ("neglect", "emotional_abuse"),
}
_NEEDS: tuple[PrimaryNeed, ...] = ("N1", "N2", "N3", "N4", "N5", "N6", "N7", "N8", "N9")
_NEED_WEIGHTS = (55, 3, 5, 12, 15, 3, 1, 3, 3)
_OTHER_OUTCOMES: tuple[Outcome, ...] = ("nfa", "advice", "early_help")
_DA_OUTCOME_WEIGHTS = (35, 45, 20)
_OUTCOME_WEIGHTS = (25, 40, 35)
_STRATEGY_SHARE_OF_REFERRALS = 0.12
_REUSE_CHILD = 0.28  # ordinary contacts about a child the Front Door has heard of before
_SECOND_REFERRAL_ONLY = 0.8  # most re-referred children are referred twice, a few more often


@dataclass(slots=True)
class Contact:
    at: int
    child: int
    group: Group
    source: ContactSource
    concerns: tuple[Concern, ...]
    household: int | None = None
    incident_id: str | None = None
    outcome: Outcome | None = None
    decided: int = 0
    primary_need: PrimaryNeed | None = None
    decide_before: int | None = None  # a referral that must be decided before the plan it leads to
    contact_id: str = ""


def group_of(source: str) -> Group:
    """The calibration group of a contact source code."""
    if source == "6":
        return "police"
    if source.startswith("3"):
        return "health"
    if source.startswith("2"):
        return "education"
    return "other"


def agency_code(agencies: Agencies, source: ContactSource) -> str:
    """Which organisation publishes a contact from this source."""
    if source == "6":
        return agencies.police
    if source == "3A":
        return agencies.gp
    if source in ("3B", "3C", "3D"):
        return agencies.community_health
    if source.startswith("3"):
        return agencies.hospital
    if source == "2A":
        return agencies.schools
    if source == "2B":
        return agencies.education_services
    if source in ("4", "5A", "5B", "5C", "5D"):
        return agencies.local_authority
    if source == "7":
        return agencies.probation
    if source == "8":
        return agencies.voluntary
    return agencies.front_door


def contacts(
    scenario: Scenario,
    timeline: Timeline,
    ids: Identities,
    rng: random.Random,
    incidents: list[Incident],
    episodes: list[Episode],
    plans: list[Plan],
) -> list[Contact]:
    """All contacts of the year with their decisions, in time order, numbered."""
    figures = scenario.contacts
    quota: dict[Group, int] = {
        "police": figures.police,
        "health": figures.health,
        "education": figures.education,
        "other": figures.other,
    }
    made: list[Contact] = []

    def add(contact: Contact) -> None:
        if contact.at < timeline.end:
            quota[contact.group] -= 1
            made.append(contact)

    for contact in _domestic_abuse_contacts(scenario, rng, incidents):
        add(contact)
    for contact in _missing_contacts(scenario, rng, episodes):
        add(contact)
    for contact in _plan_referrals(timeline, rng, plans, quota):
        add(contact)
    for contact in _multi_agency(scenario, timeline, ids, rng):
        add(contact)
    short = {group: -n for group, n in quota.items() if n < 0}
    if short:
        raise ValueError(f"{scenario.name}: contact figures too small for the contacts other streams cause: {short}")
    known = sorted({c.child for c in made})
    for group in GROUPS:
        for _ in range(quota[group]):
            add(_ordinary(timeline, ids, rng, group, known))
    _decide(scenario, timeline, rng, made)
    made.sort(key=lambda c: c.at)
    year = str(scenario.first_day.year)[2:]
    for n, contact in enumerate(made, start=1):
        contact.contact_id = f"CT-{scenario.la_code}-{year}-{n:06d}"
    return made


def _domestic_abuse_contacts(scenario: Scenario, rng: random.Random, incidents: list[Incident]) -> Iterator[Contact]:
    """Every child present gets a police notification, usually within hours; a few late, a few never."""
    figures = scenario.domestic
    for incident in incidents:
        for child in incident.present:
            draw = rng.random()
            if draw < figures.missed_contact_share:
                continue
            if draw < figures.missed_contact_share + figures.late_contact_share:
                delay = rng.randrange(25 * HOUR, 6 * DAY)
            else:
                delay = int(lognormal(rng, 3 * HOUR, 0.8, 10 * MINUTE, 23 * HOUR))
            yield Contact(
                at=incident.at + delay,
                child=child,
                group="police",
                source="6",
                concerns=("domestic_abuse",),
                household=incident.household.number,
                incident_id=incident.incident_id,
            )


def _missing_contacts(scenario: Scenario, rng: random.Random, episodes: list[Episode]) -> Iterator[Contact]:
    """Police refer some children who went missing from home to the Front Door once they are found."""
    for episode in episodes:
        if episode.looked_after or rng.random() >= scenario.missing.contact_share_not_looked_after:
            continue
        concerns: tuple[Concern, ...] = ("missing", "exploitation") if rng.random() < 0.15 else ("missing",)
        at = episode.found + rng.randrange(2 * HOUR, 30 * HOUR)
        yield Contact(at=at, child=episode.child, group="police", source="6", concerns=concerns)


def _plan_referrals(
    timeline: Timeline, rng: random.Random, plans: list[Plan], quota: dict[Group, int]
) -> Iterator[Contact]:
    """The contact that led to each new plan: a strategy discussion some weeks before the conference."""
    for plan in plans:
        at = plan.start - rng.randrange(15 * DAY, 55 * DAY)
        if plan.backloaded or at < timeline.start:
            continue
        contact = _contact(rng, _weighted_group(rng, quota), plan.child, at, concerns=_PLAN_CONCERNS[plan.category])
        contact.outcome = "strategy_discussion"
        contact.decide_before = plan.start
        yield contact


def _multi_agency(scenario: Scenario, timeline: Timeline, ids: Identities, rng: random.Random) -> Iterator[Contact]:
    """Children about whom three or four different kinds of agency get in touch within a few weeks."""
    for _ in range(scenario.contacts.multi_agency_children):
        child = ids.new("CHILD")
        first = timeline.moment(rng, "office", timeline.start, timeline.end - 30 * DAY)
        groups = rng.sample(GROUPS, 4 if rng.random() < 0.3 else 3)
        for group in groups:
            at = timeline.moment(rng, _profile(group), first, first + 26 * DAY)
            yield _contact(rng, group, child, at)


def _ordinary(timeline: Timeline, ids: Identities, rng: random.Random, group: Group, known: list[int]) -> Contact:
    child = rng.choice(known) if known and rng.random() < _REUSE_CHILD else ids.new("CHILD")
    known.append(child)
    contact = _contact(rng, group, child, 0)
    contact.at = timeline.moment(rng, "hospital" if contact.source == "3E" else _profile(group))
    return contact


def _contact(rng: random.Random, group: Group, child: int, at: int, concerns: tuple[Concern, ...] = ()) -> Contact:
    codes, weights = _SOURCES[group]
    if not concerns:
        names, concern_weights = _CONCERNS[group]
        first = rng.choices(names, concern_weights)[0]
        second = rng.choices(names, concern_weights)[0] if rng.random() < 0.25 else first
        concerns = (first,) if second == first else (first, second)
    return Contact(at=at, child=child, group=group, source=rng.choices(codes, weights)[0], concerns=concerns)


_PROFILES: dict[Group, Profile] = {"police": "police", "health": "office", "education": "school", "other": "office"}


def _profile(group: Group) -> Profile:
    return _PROFILES[group]


def _weighted_group(rng: random.Random, quota: dict[Group, int]) -> Group:
    """A source group in proportion to what is left of each group's figure."""
    return rng.choices(GROUPS, [max(1, quota[g]) for g in GROUPS])[0]


def _decide(scenario: Scenario, timeline: Timeline, rng: random.Random, made: list[Contact]) -> None:
    """Pick exactly `referrals` referrals over exactly `referrals - re_referrals` children; decide the rest."""
    figures = scenario.contacts
    by_child: dict[int, list[Contact]] = defaultdict(list)
    for contact in made:
        by_child[contact.child].append(contact)
    referred: dict[int, int] = defaultdict(int)
    for contact in made:
        if contact.outcome is not None:
            referred[contact.child] += 1
    total = sum(referred.values())
    extra = total - len(referred)

    def refer(contact: Contact) -> None:
        nonlocal total, extra
        contact.outcome = "strategy_discussion" if rng.random() < _STRATEGY_SHARE_OF_REFERRALS else "referral"
        extra += referred[contact.child] > 0
        referred[contact.child] += 1
        total += 1

    repeat_children = [child for child, cs in by_child.items() if len(cs) >= 2]
    rng.shuffle(repeat_children)
    for child in repeat_children:
        if extra >= figures.re_referrals or total >= figures.referrals:
            break
        free = [c for c in by_child[child] if c.outcome is None]
        rng.shuffle(free)
        while free and extra < figures.re_referrals and total < figures.referrals:
            refer(free.pop())
            if referred[child] >= 2 and rng.random() < _SECOND_REFERRAL_ONLY:
                break
    first_timers = [child for child in by_child if referred[child] == 0]
    rng.shuffle(first_timers)
    for child in first_timers:
        if total >= figures.referrals:
            break
        refer(rng.choice(by_child[child]))
    if total != figures.referrals or extra != figures.re_referrals:
        raise ValueError(
            f"{scenario.name}: could only make {total} referrals with {extra} re-referrals "
            f"(figures: {figures.referrals}, {figures.re_referrals})"
        )
    for contact in made:
        if contact.outcome is None:
            weights = _DA_OUTCOME_WEIGHTS if contact.incident_id else _OUTCOME_WEIGHTS
            contact.outcome = rng.choices(_OTHER_OUTCOMES, weights)[0]
        else:
            contact.primary_need = rng.choices(_NEEDS, _NEED_WEIGHTS)[0]
        deadline = min(timeline.end, contact.decide_before or timeline.end)
        delay = int(lognormal(rng, 5 * HOUR, 1.0, 10 * MINUTE, 72 * HOUR))
        if contact.at + delay >= deadline:
            delay = rng.randrange(deadline - contact.at)
        contact.decided = contact.at + delay
