"""`generate(scenario, seed)`: the simulated world turned into validated contract events, in event-time order.

Pure: the output depends on the scenario and the seed only. Each part of the world draws from its own
seeded generator, so tuning one stream does not reshuffle the others; event ids come from a seeded
generator too (never uuid4), and nothing reads the wall clock.
"""

from __future__ import annotations

import random
from datetime import date, datetime
from operator import itemgetter
from typing import Literal, TypedDict

from producers.referral_sources import agency_type
from producers.simulate.contacts import Contact, agency_code, contacts
from producers.simulate.domestic import Incident, domestic_incidents
from producers.simulate.ids import Identities, event_uuid
from producers.simulate.missing import Episode, missing_episodes
from producers.simulate.plans import Plan, plans
from producers.simulate.scenarios import Scenario
from producers.simulate.timeline import DAY, HOUR, MINUTE, Timeline, lognormal, to_datetime
from schemas.events import (
    AgencyEvent,
    ContactDecided,
    ContactReceived,
    CpPlanEnded,
    CpPlanStarted,
    DomesticIncidentRecorded,
    IncidentChild,
    MissingFound,
    MissingReported,
    MissingReturnInterview,
)
from schemas.types import AbsenceType, AgencyType, PlanCategory, RiskLevel

_LATE_UPLOAD_SHARE = 0.02
Lag = Literal["system", "police_report", "backload"]


class _Envelope(TypedDict):
    event_id: str
    schema_version: Literal[1]
    la_code: str
    agency_type: AgencyType
    agency_code: str
    occurred_at: datetime
    recorded_at: datetime


class _EpisodeFields(TypedDict):
    episode_id: str
    child_id: str
    looked_after: bool
    absence_type: AbsenceType
    risk_level: RiskLevel


class _PlanFields(TypedDict):
    plan_id: str
    child_id: str
    category: PlanCategory
    previous_plans: int
    previous_plan_ended_at: date | None


def timeline_of(scenario: Scenario) -> Timeline:
    """The scenario's year with its school and bank holidays."""
    return Timeline(scenario.first_day, scenario.last_day, scenario.school_holidays, scenario.bank_holidays)


def generate(scenario: Scenario, seed: int, *, days: int | None = None) -> list[AgencyEvent]:
    """Every event of the scenario's year, sorted by `occurred_at`; `days` keeps only the first N days.

    Truncating after generating keeps a short run a prefix of the full year (same events, same ids).
    The plans open when the year begins come first, with their real (earlier) start dates.
    """
    if days is not None and days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    timeline = timeline_of(scenario)
    ids = Identities(scenario.la_code)

    def rng(part: str) -> random.Random:
        return random.Random(f"{scenario.name}/{seed}/{part}")

    incidents = domestic_incidents(scenario, timeline, ids, rng("domestic"))
    episodes = missing_episodes(scenario, timeline, ids, rng("missing"))
    plan_list = plans(scenario, timeline, ids, rng("plans"))
    contact_list = contacts(scenario, timeline, ids, rng("contacts"), incidents, episodes, plan_list)
    builder = _Builder(scenario, timeline, ids, rng("envelope"))
    for incident in incidents:
        builder.incident(incident)
    for episode in episodes:
        builder.episode(episode)
    for plan in plan_list:
        builder.plan(plan)
    for contact in contact_list:
        builder.contact(contact)
    cutoff = None if days is None else timeline.start + days * DAY
    return builder.in_order(cutoff)


class _Builder:
    """Builds the contract models (validated on construction) with their envelopes, keyed for sorting."""

    def __init__(self, scenario: Scenario, timeline: Timeline, ids: Identities, rng: random.Random) -> None:
        self._scenario = scenario
        self._timeline = timeline
        self._ids = ids
        self._rng = rng
        self._agencies = scenario.agencies
        self._built: list[tuple[int, int, AgencyEvent]] = []

    def in_order(self, cutoff: int | None) -> list[AgencyEvent]:
        """The events by event time (ties in the order built, so the output is stable), before `cutoff`."""
        self._built.sort(key=itemgetter(0, 1))
        return [event for at, _, event in self._built if cutoff is None or at < cutoff]

    def _add(self, at: int, event: AgencyEvent) -> None:
        self._built.append((at, len(self._built), event))

    def _envelope(self, at: int, agency: AgencyType, code: str, lag: Lag = "system") -> _Envelope:
        rng = self._rng
        if lag == "backload":
            recorded = self._timeline.start + rng.randrange(6 * HOUR, 7 * HOUR)
        elif lag == "police_report":
            recorded = at + int(lognormal(rng, 3 * HOUR, 0.6, 30 * MINUTE, 12 * HOUR))
        else:
            recorded = at + int(lognormal(rng, 25 * MINUTE, 1.0, 30, 12 * HOUR))
        if lag != "backload" and rng.random() < _LATE_UPLOAD_SHARE:
            recorded = at + rng.randrange(DAY, 10 * DAY)  # an agency uploads last week's records
        return _Envelope(
            event_id=event_uuid(rng),
            schema_version=1,
            la_code=self._scenario.la_code,
            agency_type=agency,
            agency_code=code,
            occurred_at=to_datetime(at),
            recorded_at=to_datetime(max(at, recorded)),
        )

    def incident(self, incident: Incident) -> None:
        household = incident.household
        present = set(incident.present)
        pseudonym = self._ids.pseudonym
        event = DomesticIncidentRecorded(
            **self._envelope(incident.at, "police", self._agencies.police),
            event_type="domestic_incident.recorded",
            incident_id=incident.incident_id,
            household_id=pseudonym("HH", household.number),
            victim_id=pseudonym("ADULT", household.victim),
            perpetrator_id=None if household.perpetrator is None else pseudonym("ADULT", household.perpetrator),
            dash_risk=incident.dash_risk,
            dash_score=incident.dash_score,
            is_crime=incident.is_crime,
            children=[
                IncidentChild(child_id=pseudonym("CHILD", child), present=child in present, school_urn=urn)
                for child, urn in zip(household.children, household.school_urns, strict=True)
            ],
            marac_referral=incident.marac,
        )
        self._add(incident.at, event)

    def episode(self, episode: Episode) -> None:
        police = self._agencies.police
        common = _EpisodeFields(
            episode_id=episode.episode_id,
            child_id=self._ids.pseudonym("CHILD", episode.child),
            looked_after=episode.looked_after,
            absence_type=episode.absence,
            risk_level=episode.risk,
        )
        reported = MissingReported(
            **self._envelope(episode.reported, "police", police, "police_report"),
            event_type="missing.reported",
            **common,
        )
        self._add(episode.reported, reported)
        found = MissingFound(
            **self._envelope(episode.found, "police", police),
            event_type="missing.found",
            **common,
        )
        self._add(episode.found, found)
        for step, at in episode.interview:
            interview = MissingReturnInterview(
                **self._envelope(at, "local_authority", self._agencies.local_authority),
                event_type="missing.return_interview",
                interview=step,
                **common,
            )
            self._add(at, interview)

    def plan(self, plan: Plan) -> None:
        la = self._agencies.local_authority
        common = _PlanFields(
            plan_id=plan.plan_id,
            child_id=self._ids.pseudonym("CHILD", plan.child),
            category=plan.category,
            previous_plans=plan.previous_plans,
            previous_plan_ended_at=plan.previous_end,
        )
        lag: Lag = "backload" if plan.backloaded else "system"
        started = CpPlanStarted(
            **self._envelope(plan.start, "local_authority", la, lag),
            event_type="cp_plan.started",
            **common,
        )
        self._add(plan.start, started)
        if plan.end is not None:
            ended = CpPlanEnded(
                **self._envelope(plan.end, "local_authority", la),
                event_type="cp_plan.ended",
                **common,
            )
            self._add(plan.end, ended)

    def contact(self, contact: Contact) -> None:
        child_id = self._ids.pseudonym("CHILD", contact.child)
        received = ContactReceived(
            **self._envelope(contact.at, agency_type(contact.source), agency_code(self._agencies, contact.source)),
            event_type="contact.received",
            contact_id=contact.contact_id,
            child_id=child_id,
            household_id=None if contact.household is None else self._ids.pseudonym("HH", contact.household),
            contact_source=contact.source,
            concerns=list(contact.concerns),
            route=self._scenario.route,
            linked_incident_id=contact.incident_id,
        )
        self._add(contact.at, received)
        assert contact.outcome is not None
        decided = ContactDecided(
            **self._envelope(contact.decided, "local_authority", self._agencies.local_authority),
            event_type="contact.decided",
            contact_id=contact.contact_id,
            child_id=child_id,
            outcome=contact.outcome,
            primary_need=contact.primary_need,
        )
        self._add(contact.decided, decided)
