"""Households and their police-recorded domestic incidents: repeats, DASH risk, MARAC, children present."""

from __future__ import annotations

import random
from dataclasses import dataclass

from producers.simulate.ids import Identities
from producers.simulate.scenarios import Scenario
from producers.simulate.timeline import DAY, Timeline
from schemas.types import DashRisk

# Incidents a household has in the year (1..12): most have one; a tail of households has many (repeat victims).
_INCIDENT_COUNTS = tuple(range(1, 13))
_INCIDENT_COUNT_WEIGHTS = (62, 19, 8, 4.5, 2.5, 1.5, 1.0, 0.6, 0.4, 0.3, 0.2, 0.1)
# Children in a household: none (about half of households), then 1..4.
_CHILD_COUNTS = (0, 1, 2, 3, 4)
_CHILD_COUNT_WEIGHTS = (50, 24, 16, 7, 3)
_SCHOOL_AGE_SHARE = 0.65
_ALL_CHILDREN_PRESENT = 0.5
_NO_PERPETRATOR_RECORDED = 0.04
_CRIME_SHARE: dict[DashRisk, float] = {"standard": 0.42, "medium": 0.6, "high": 0.75}
_REPEAT_RISK_BOOST = 1.8  # repeat victimisation (3+ incidents) goes with higher assessed risk ...
_REPEAT_INCIDENT_SHARE = sum(
    k * w for k, w in zip(_INCIDENT_COUNTS, _INCIDENT_COUNT_WEIGHTS, strict=True) if k >= 3
) / sum(k * w for k, w in zip(_INCIDENT_COUNTS, _INCIDENT_COUNT_WEIGHTS, strict=True))
_BASE_RISK = 1 / (1 - _REPEAT_INCIDENT_SHARE + _REPEAT_INCIDENT_SHARE * _REPEAT_RISK_BOOST)  # ... overall shares kept


@dataclass(slots=True)
class Household:
    number: int
    children: tuple[int, ...]
    school_urns: tuple[str | None, ...]
    victim: int
    perpetrator: int | None


@dataclass(slots=True)
class Incident:
    at: int
    household: Household
    dash_risk: DashRisk
    dash_score: int
    is_crime: bool
    marac: bool
    present: tuple[int, ...] = ()
    incident_id: str = ""


def domestic_incidents(scenario: Scenario, timeline: Timeline, ids: Identities, rng: random.Random) -> list[Incident]:
    """Exactly `incidents` incidents in time order, exactly `child_present_share` of them with a child present."""
    figures = scenario.domestic
    urns = [str(rng.randrange(*scenario.school_urns)) for _ in range(250)]
    incidents: list[Incident] = []
    remaining = figures.incidents
    while remaining > 0:
        count = min(remaining, rng.choices(_INCIDENT_COUNTS, _INCIDENT_COUNT_WEIGHTS)[0])
        household = _household(ids, rng, urns)
        for at in _household_times(timeline, rng, count):
            incidents.append(_incident(scenario, rng, household, at, repeat=count >= 3))
        remaining -= count
    with_children = [i for i in incidents if i.household.children]
    present = round(figures.child_present_share * len(incidents))
    if present > len(with_children):
        raise ValueError(
            f"{scenario.name}: {present} child-present incidents but only {len(with_children)} with children"
        )
    for incident in rng.sample(with_children, present):
        children = incident.household.children
        incident.present = children if rng.random() < _ALL_CHILDREN_PRESENT else (rng.choice(children),)
    incidents.sort(key=lambda i: i.at)
    year = str(scenario.first_day.year)[2:]
    for n, incident in enumerate(incidents, start=1):
        incident.incident_id = f"{scenario.agencies.police}-DA-{year}-{n:06d}"
    return incidents


def _household(ids: Identities, rng: random.Random, urns: list[str]) -> Household:
    children = tuple(ids.new("CHILD") for _ in range(rng.choices(_CHILD_COUNTS, _CHILD_COUNT_WEIGHTS)[0]))
    return Household(
        number=ids.new("HH"),
        children=children,
        school_urns=tuple(rng.choice(urns) if rng.random() < _SCHOOL_AGE_SHARE else None for _ in children),
        victim=ids.new("ADULT"),
        perpetrator=None if rng.random() < _NO_PERPETRATOR_RECORDED else ids.new("ADULT"),
    )


def _household_times(timeline: Timeline, rng: random.Random, count: int) -> list[int]:
    """Repeat incidents cluster: a household's incidents fall within a stretch of weeks to months."""
    return timeline.cluster(rng, "police", count, int(count * rng.uniform(20, 70) * DAY))


def _incident(scenario: Scenario, rng: random.Random, household: Household, at: int, *, repeat: bool) -> Incident:
    figures = scenario.domestic
    boost = _BASE_RISK * (_REPEAT_RISK_BOOST if repeat else 1.0)
    draw = rng.random()
    risk: DashRisk
    if draw < figures.high_risk_share * boost:
        risk, score = "high", 14 + min(13, int(rng.expovariate(1 / 2.5)))
    elif draw < (figures.high_risk_share + figures.medium_risk_share) * boost:
        risk, score = "medium", rng.randint(10, 13)
    else:
        risk, score = "standard", rng.randint(1, 9)
    return Incident(
        at=at,
        household=household,
        dash_risk=risk,
        dash_score=score,
        is_crime=rng.random() < _CRIME_SHARE[risk],
        marac=risk == "high" and rng.random() < figures.marac_share_of_high,
    )
