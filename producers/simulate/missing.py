"""Missing and away episodes: exact episode and child counts per cohort, found times, return interviews.

A few children account for most episodes (heavy tail), episodes of one child never overlap (SSDA903 574),
and the return interview is usually offered within 72 hours, sometimes late, sometimes never.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from producers.simulate.ids import Identities
from producers.simulate.scenarios import MissingCohort, Scenario
from producers.simulate.timeline import DAY, HOUR, MINUTE, Timeline, lognormal
from schemas.types import AbsenceType, InterviewStep, RiskLevel

_RISKS: tuple[RiskLevel, ...] = ("no_apparent_risk", "low", "medium")
_RISK_WEIGHTS = (0.17, 0.40, 0.43)  # of episodes that are not high risk
_AWAY_RISKS: tuple[RiskLevel, ...] = ("no_apparent_risk", "low")
_ACCEPTED = 0.72
_COMPLETED = 0.92
_GAP_AFTER_RETURN = 2 * HOUR


@dataclass(slots=True)
class Episode:
    child: int
    looked_after: bool
    absence: AbsenceType
    risk: RiskLevel
    reported: int
    found: int
    interview: list[tuple[InterviewStep, int]] = field(default_factory=list)
    episode_id: str = ""


def missing_episodes(scenario: Scenario, timeline: Timeline, ids: Identities, rng: random.Random) -> list[Episode]:
    """Every episode of the year, in the order the children went missing."""
    figures = scenario.missing
    episodes: list[Episode] = []
    for cohort, looked_after in ((figures.looked_after, True), (figures.not_looked_after, False)):
        counts = _partition(cohort, rng)
        aways = _spread(figures.away_episodes if looked_after else 0, len(counts), rng)
        for missing_count, away_count in zip(counts, aways, strict=True):
            missing: list[AbsenceType] = ["missing"] * missing_count
            away: list[AbsenceType] = ["away"] * away_count
            absences = missing + away
            rng.shuffle(absences)
            episodes.extend(_child_episodes(scenario, timeline, rng, ids.new("CHILD"), looked_after, absences))
    episodes.sort(key=lambda e: e.reported)
    for n, episode in enumerate(episodes, start=1):
        episode.episode_id = f"MP-{scenario.la_code}-{n:05d}"
    return episodes


def _partition(cohort: MissingCohort, rng: random.Random) -> list[int]:
    """Episodes per child: every child at least one, the rest spread with heavy-tailed weights."""
    if cohort.episodes < cohort.children:
        raise ValueError(f"{cohort.episodes} episodes cannot cover {cohort.children} children")
    weights = [rng.gammavariate(0.6, 1.0) for _ in range(cohort.children)]
    counts = [1] * cohort.children
    for child in rng.choices(range(cohort.children), weights, k=cohort.episodes - cohort.children):
        counts[child] += 1
    return counts


def _spread(total: int, children: int, rng: random.Random) -> list[int]:
    counts = [0] * children
    for child in rng.choices(range(children), k=total) if children else []:
        counts[child] += 1
    return counts


def _child_episodes(
    scenario: Scenario,
    timeline: Timeline,
    rng: random.Random,
    child: int,
    looked_after: bool,
    absences: list[AbsenceType],
) -> list[Episode]:
    """One child's episodes, placed in a stretch of the year so that repeats cluster, never overlapping."""
    year = timeline.end - timeline.start
    span = min(year, int(max(20.0, len(absences) * rng.uniform(6, 30)) * DAY))
    for _attempt in range(6):
        placed = _place(timeline, rng, timeline.cluster(rng, "evening", len(absences), span), absences)
        if placed is not None:
            break
        span = min(year, span * 2)
    else:  # pragma: no cover - a child with hundreds of episodes; evenly spaced always fits
        step = year // (len(absences) + 1)
        placed = _place(timeline, rng, [timeline.start + step * (n + 1) for n in range(len(absences))], absences)
        assert placed is not None
    episodes = []
    for (reported, found), absence in zip(placed, absences, strict=True):
        risk = _risk(scenario, rng, absence)
        episode = Episode(child, looked_after, absence, risk, reported, found)
        episode.interview = _interview(scenario, timeline, rng, found)
        episodes.append(episode)
    return episodes


def _place(
    timeline: Timeline, rng: random.Random, starts: list[int], absences: list[AbsenceType]
) -> list[tuple[int, int]] | None:
    """(reported, found) pairs with each return before the next disappearance and before the year ends."""
    placed: list[tuple[int, int]] = []
    free_from = timeline.start
    for start, absence in zip(starts, absences, strict=True):
        reported = max(start, free_from)
        median = 6 * HOUR if absence == "away" else 9 * HOUR
        duration = int(lognormal(rng, median, 1.0, HOUR, 10 * DAY))
        found = min(reported + duration, timeline.end - MINUTE)
        if found - reported < 30 * MINUTE:
            return None
        placed.append((reported, found))
        free_from = found + _GAP_AFTER_RETURN + rng.randrange(12 * HOUR)
    return placed


def _risk(scenario: Scenario, rng: random.Random, absence: AbsenceType) -> RiskLevel:
    if absence == "away":
        return rng.choice(_AWAY_RISKS)
    if rng.random() < scenario.missing.high_risk_share:
        return "high"
    return rng.choices(_RISKS, _RISK_WEIGHTS)[0]


def _interview(
    scenario: Scenario, timeline: Timeline, rng: random.Random, found: int
) -> list[tuple[InterviewStep, int]]:
    """Return-interview steps after the child is found; steps after the year's end have not happened yet."""
    figures = scenario.missing
    draw = rng.random()
    if draw < figures.interview_missed_share:
        return []
    if draw < figures.interview_missed_share + figures.interview_late_share:
        offered = found + rng.randrange(73 * HOUR, 12 * DAY)
    else:
        offered = found + int(lognormal(rng, 20 * HOUR, 0.7, HOUR, 71 * HOUR))
    steps: list[tuple[InterviewStep, int]] = [("offered", offered)]
    if rng.random() < _ACCEPTED:
        accepted = offered + rng.randrange(30 * MINUTE, 48 * HOUR)
        steps.append(("accepted", accepted))
        if rng.random() < _COMPLETED:
            steps.append(("completed", accepted + rng.randrange(2 * HOUR, 5 * DAY)))
    else:
        steps.append(("declined", offered + rng.randrange(30 * MINUTE, 72 * HOUR)))
    return [(step, at) for step, at in steps if at < timeline.end]
