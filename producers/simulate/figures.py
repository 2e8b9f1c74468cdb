"""The calibration figures of a stream of events, counted the way the annual reports count them.

Used to print what a simulated year yields next to what the scenario asked for, so a demo shows at a
glance that the generator reproduces the published tables (calibration.md).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from itertools import pairwise

from producers.simulate.contacts import GROUPS, Group, group_of
from producers.simulate.scenarios import Scenario
from producers.simulate.timeline import local_epoch
from schemas.events import (
    ContactDecided,
    ContactReceived,
    CpPlanEnded,
    CpPlanStarted,
    DomesticIncidentRecorded,
    Envelope,
    MissingFound,
    MissingReported,
    MissingReturnInterview,
)
from schemas.types import REFERRAL_OUTCOMES


@dataclass
class Figures:
    """What a stream of events says about the year, in the terms of the published reports."""

    events_by_type: Counter[str] = field(default_factory=Counter)
    contacts_by_group: Counter[Group] = field(default_factory=Counter)
    referrals: int = 0
    re_referrals: int = 0
    incidents: int = 0
    child_present_incidents: int = 0
    present_children: int = 0
    present_children_contacted_in_24h: int = 0
    present_children_never_contacted: int = 0
    missing_looked_after: tuple[int, int] = (0, 0)  # episodes, children (absence_type missing)
    missing_not_looked_after: tuple[int, int] = (0, 0)
    away_episodes: int = 0
    high_risk_episodes: int = 0
    interviews_within_72h: int = 0
    episodes_found: int = 0
    plan_starts_in_year: Counter[str] = field(default_factory=Counter)
    plans_open_at_start: int = 0
    plans_open_at_end: int = 0
    average_on_plan: float = 0.0
    average_repeat_within_24m_first_half: float = 0.0
    average_repeat_within_24m_second_half: float = 0.0
    plans_over_two_years_at_end: int = 0

    @property
    def contacts(self) -> int:
        return sum(self.contacts_by_group.values())

    @property
    def child_present_share(self) -> float:
        return self.child_present_incidents / self.incidents if self.incidents else 0.0


def figures(events: Iterable[Envelope], scenario: Scenario) -> Figures:
    """Count the calibration figures of `events` (any order) for the scenario's year."""
    result = Figures()
    start = local_epoch(scenario.first_day)
    end = local_epoch(scenario.last_day + timedelta(days=1))
    referrals: dict[str, list[datetime]] = defaultdict(list)
    linked: dict[tuple[str, str], datetime] = {}
    incidents: list[DomesticIncidentRecorded] = []
    missing: dict[bool, list[str]] = {True: [], False: []}
    found: dict[str, datetime] = {}
    first_interview: dict[str, datetime] = {}
    starts: dict[str, CpPlanStarted] = {}
    ends: dict[str, datetime] = {}
    for event in events:
        result.events_by_type[event.event_type] += 1
        if isinstance(event, ContactReceived):
            result.contacts_by_group[group_of(event.contact_source)] += 1
            if event.linked_incident_id:
                linked[(event.linked_incident_id, event.child_id)] = event.occurred_at
        elif isinstance(event, ContactDecided) and event.outcome in REFERRAL_OUTCOMES:
            referrals[event.child_id].append(event.occurred_at)
        elif isinstance(event, DomesticIncidentRecorded):
            incidents.append(event)
        elif isinstance(event, MissingReported):
            if event.absence_type == "away":
                result.away_episodes += 1
            else:
                missing[event.looked_after].append(event.child_id)
            result.high_risk_episodes += event.risk_level == "high"
        elif isinstance(event, MissingFound):
            found[event.episode_id] = event.occurred_at
        elif isinstance(event, MissingReturnInterview):
            seen = first_interview.get(event.episode_id)
            if seen is None or event.occurred_at < seen:
                first_interview[event.episode_id] = event.occurred_at
        elif isinstance(event, CpPlanStarted):
            starts[event.plan_id] = event
        elif isinstance(event, CpPlanEnded):
            ends[event.plan_id] = event.occurred_at
    result.referrals = sum(len(times) for times in referrals.values())
    result.re_referrals = sum(_re_referrals(times) for times in referrals.values())
    _domestic(result, incidents, linked)
    result.missing_looked_after = (len(missing[True]), len(set(missing[True])))
    result.missing_not_looked_after = (len(missing[False]), len(set(missing[False])))
    result.episodes_found = len(found)
    result.interviews_within_72h = sum(
        1 for episode, at in found.items() if episode in first_interview and first_interview[episode] - at <= _72H
    )
    _plans(result, scenario, start, end, starts, ends)
    return result


_72H = timedelta(hours=72)
_24H = timedelta(hours=24)


def _re_referrals(times: list[datetime]) -> int:
    """Referrals with an earlier referral of the same child in the 12 calendar months before."""
    times = sorted(times)
    return sum(1 for earlier, later in pairwise(times) if _add_months(earlier.date(), 12) >= later.date())


def _domestic(
    result: Figures, incidents: list[DomesticIncidentRecorded], linked: dict[tuple[str, str], datetime]
) -> None:
    result.incidents = len(incidents)
    for incident in incidents:
        present = [c.child_id for c in incident.children if c.present]
        result.child_present_incidents += bool(present)
        for child in present:
            result.present_children += 1
            contacted = linked.get((incident.incident_id, child))
            if contacted is None:
                result.present_children_never_contacted += 1
            elif contacted - incident.occurred_at <= _24H:
                result.present_children_contacted_in_24h += 1


def _plans(
    result: Figures,
    scenario: Scenario,
    start: int,
    end: int,
    starts: dict[str, CpPlanStarted],
    ends: dict[str, datetime],
) -> None:
    spans: list[tuple[float, float, bool]] = []
    for plan_id, started in starts.items():
        opened = started.occurred_at.timestamp()
        closed = ends[plan_id].timestamp() if plan_id in ends else float("inf")
        previous = started.previous_plan_ended_at
        repeat = previous is not None and _add_months(previous, 24) >= started.occurred_at.date()
        spans.append((opened, closed, repeat))
        if start <= opened < end:
            result.plan_starts_in_year[started.category] += 1
        if closed >= end and opened <= end and _add_months(started.occurred_at.date(), 24) < scenario.last_day:
            result.plans_over_two_years_at_end += 1
    month_ends = _month_ends(scenario)
    on_plan = [sum(1 for o, c, _ in spans if o <= t < c) for t in month_ends]
    repeats = [sum(1 for o, c, r in spans if r and o <= t < c) for t in month_ends]
    half = len(month_ends) // 2
    result.plans_open_at_start = sum(1 for o, c, _ in spans if o <= start < c)
    result.plans_open_at_end = on_plan[-1] if on_plan else 0
    result.average_on_plan = sum(on_plan) / len(on_plan) if on_plan else 0.0
    result.average_repeat_within_24m_first_half = sum(repeats[:half]) / half if half else 0.0
    result.average_repeat_within_24m_second_half = (
        sum(repeats[half:]) / (len(repeats) - half) if len(repeats) > half else 0.0
    )


def _month_ends(scenario: Scenario) -> list[int]:
    """The end of every month of the year (local midnight that starts the next month), as epoch seconds."""
    result = []
    day = scenario.first_day
    while day <= scenario.last_day:
        day = _add_months(day.replace(day=1), 1)
        result.append(local_epoch(day) - 1)
    return result


def _add_months(day: date, months: int) -> date:
    """Calendar months, clamped to the month's last day (P24M after 2023-01-31 is 2025-01-31)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    for last in (31, 30, 29, 28):
        try:
            return date(year, month + 1, min(day.day, last))
        except ValueError:
            continue
    raise AssertionError("unreachable")


def calibration_rows(result: Figures, scenario: Scenario) -> list[tuple[str, str, str]]:
    """(figure, simulated, target) rows for a summary table; target is empty where nothing is published."""
    contacts = scenario.contacts
    plans = scenario.plans
    repeat = plans.published_repeat_within_24m
    targets = {"police": contacts.police, "health": contacts.health, "education": contacts.education}
    targets["other"] = contacts.other
    rows = [(f"contacts from {g}", f"{result.contacts_by_group[g]:,}", f"{targets[g]:,}") for g in GROUPS]
    lac_episodes, lac_children = result.missing_looked_after
    home_episodes, home_children = result.missing_not_looked_after
    rows += [
        ("contacts", f"{result.contacts:,}", f"{contacts.total:,}"),
        (
            "referrals (re-referrals)",
            f"{result.referrals:,} ({result.re_referrals:,})",
            f"{contacts.referrals:,} ({contacts.re_referrals:,})",
        ),
        ("domestic incidents", f"{result.incidents:,}", f"{scenario.domestic.incidents:,}"),
        ("child present", f"{result.child_present_share:.1%}", f"{scenario.domestic.child_present_share:.1%}"),
        ("missing from care: episodes / children", f"{lac_episodes:,} / {lac_children:,}", _cohort(scenario, True)),
        ("missing from home: episodes / children", f"{home_episodes:,} / {home_children:,}", _cohort(scenario, False)),
        (
            "plans started in the year",
            f"{sum(result.plan_starts_in_year.values()):,}",
            f"{scenario.plans.total_starts:,}",
        ),
        ("average on a plan (month ends)", f"{result.average_on_plan:,.0f}", _maybe(plans.published_average_on_plan)),
        ("on a plan at year end", f"{result.plans_open_at_end:,}", _maybe(plans.published_on_plan_at_end)),
        (
            "repeat plans within 24 months (H1 / H2)",
            f"{result.average_repeat_within_24m_first_half:.0f} / {result.average_repeat_within_24m_second_half:.0f}",
            "" if repeat is None else f"{repeat[0]} / {repeat[1]}",
        ),
        (
            "plans over two years at year end",
            f"{result.plans_over_two_years_at_end}",
            f"{scenario.plans.long_plans_at_end}",
        ),
    ]
    return rows


def _maybe(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


def _cohort(scenario: Scenario, looked_after: bool) -> str:
    cohort = scenario.missing.looked_after if looked_after else scenario.missing.not_looked_after
    return f"{cohort.episodes:,} / {cohort.children:,}"
