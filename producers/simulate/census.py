"""The simulated history as one CIN census year (`safeguard simulate --cin-out`), for round trips and benchmarks.

A census holds referrals (decisions with outcome `referral` or `strategy_discussion`) and the plans under
them; contacts that were not referred, missing episodes and domestic incidents have no place in it. Each
plan is filed under the child's latest referral on or before its start. A plan with none in the stream
(the stock open on day one, or a plan early in the year whose referral was before the year) goes under a
referral the simulation never made: source 10 (unknown), dated the plan's start or the day before the year,
whichever is earlier. That date is the only value invented here, and it always falls before the year, so
the year's referrals in the census are exactly the simulated ones.

Children get LAchildIDs SIM0000001, SIM0000002, ... in order of first appearance (the simulator only has
pseudonyms); the mapping is returned so a test can follow each child through an import.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from producers.history.cin_writer import ChildRecord, PlanRecord, ReferralRecord, write_census
from producers.simulate.scenarios import Scenario
from schemas.events import AgencyEvent, ContactDecided, ContactReceived, CpPlanEnded, CpPlanStarted
from schemas.types import REFERRAL_OUTCOMES

UNKNOWN_SOURCE = "10"


@dataclass
class _Child:
    la_child_id: str
    referrals: list[ReferralRecord] = field(default_factory=list)
    plans: list[PlanRecord] = field(default_factory=list)


def census_children(events: Iterable[AgencyEvent], first_day: date) -> tuple[list[ChildRecord], dict[str, str]]:
    """The children of the census (in order of first appearance) and each child pseudonym's LAchildID."""
    events = list(events)
    received = {e.contact_id: e for e in events if isinstance(e, ContactReceived)}
    ends = {e.plan_id: e.occurred_at.date() for e in events if isinstance(e, CpPlanEnded)}
    children: dict[str, _Child] = {}

    def child(child_id: str) -> _Child:
        found = children.get(child_id)
        if found is None:
            found = children[child_id] = _Child(f"SIM{len(children) + 1:07d}")
        return found

    for event in events:
        if isinstance(event, ContactDecided) and event.outcome in REFERRAL_OUTCOMES:
            contact = received.get(event.contact_id)
            child(event.child_id).referrals.append(
                ReferralRecord(
                    referral_date=event.occurred_at.date(),
                    source=contact.contact_source if contact is not None else UNKNOWN_SOURCE,
                    primary_need=event.primary_need,
                    concerns=tuple(contact.concerns) if contact is not None else (),
                )
            )
        elif isinstance(event, CpPlanStarted):
            child(event.child_id).plans.append(
                PlanRecord(
                    start=event.occurred_at.date(),
                    end=ends.get(event.plan_id),
                    category=event.category,
                    previous_plans=event.previous_plans or 0,
                )
            )
    records = [ChildRecord(c.la_child_id, _file_plans(c, first_day)) for c in children.values()]
    return records, {child_id: c.la_child_id for child_id, c in children.items()}


def _file_plans(child: _Child, first_day: date) -> tuple[ReferralRecord, ...]:
    """The child's referrals in date order, each with the plans it led to; containers for plans without one."""
    referrals = sorted(child.referrals, key=lambda r: r.referral_date)
    filed: list[list[PlanRecord]] = [[] for _ in referrals]
    containers: list[ReferralRecord] = []
    for plan in sorted(child.plans, key=lambda p: p.start):
        before = [n for n, r in enumerate(referrals) if r.referral_date <= plan.start]
        if before:
            filed[before[-1]].append(plan)
        else:
            on = min(plan.start, first_day - timedelta(days=1))
            containers.append(ReferralRecord(referral_date=on, source=UNKNOWN_SOURCE, plans=(plan,)))
    made = [
        ReferralRecord(r.referral_date, r.source, r.primary_need, r.nfa, r.concerns, tuple(plans))
        for r, plans in zip(referrals, filed, strict=True)
    ]
    return tuple(sorted([*containers, *made], key=lambda r: r.referral_date))


def write_simulated_census(events: Iterable[AgencyEvent], scenario: Scenario, out: Path) -> dict[str, str]:
    """Write the scenario's year as its census file (collection year of its last day); returns the LAchildIDs."""
    records, ids = census_children(events, scenario.first_day)
    write_census(out, la_code=scenario.la_code, year=scenario.last_day.year, children=records)
    return ids
