"""Small factories for agency events with fixed times and valid pseudonyms, and a runner for the rules."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta

from schemas.alerts import AlertRaised
from schemas.events import (
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
from schemas.types import AbsenceType, AgencyType, DashRisk, InterviewStep, Outcome, RiskLevel
from streams.rules import Catalogue, RuleInput, SubjectState, advance, evaluate

CHILD = "5f2c" + "0123456789abcdef" * 3 + "9e11d0c7a3e1"
OTHER_CHILD = "c0ffee" + "ab" * 29
HOUSEHOLD = "ab" * 32
T0 = datetime(2025, 1, 1, 9, 0, tzinfo=UTC)
RAISED_AT = datetime(2027, 6, 1, 12, 0, tzinfo=UTC)
DEFAULTS = Catalogue.default()

_ids = itertools.count(1)


def new_event_id() -> str:
    return str(uuid.UUID(int=next(_ids)))


def day(n: float, hours: float = 0) -> datetime:
    """T0 plus n 24-hour days (and hours)."""
    return T0 + timedelta(days=n, hours=hours)


def _envelope(
    at: datetime, event_id: str | None, agency_type: AgencyType, la_code: str, purge: bool
) -> dict[str, object]:
    return {
        "event_id": event_id or new_event_id(),
        "schema_version": 1,
        "la_code": la_code,
        "agency_type": agency_type,
        "agency_code": "WYP",
        "occurred_at": at,
        "recorded_at": at + timedelta(hours=1),
        "purge": purge,
    }


def missing_reported(
    at: datetime,
    *,
    child: str = CHILD,
    episode: str | None = None,
    looked_after: bool = False,
    absence_type: AbsenceType = "missing",
    risk_level: RiskLevel = "medium",
    la_code: str = "383",
    event_id: str | None = None,
    purge: bool = False,
) -> MissingReported:
    envelope = _envelope(at, event_id, "police", la_code, purge)
    return MissingReported.model_validate(
        {
            **envelope,
            "event_type": "missing.reported",
            "episode_id": episode or f"MP-{envelope['event_id']}",
            "child_id": child,
            "looked_after": looked_after,
            "absence_type": absence_type,
            "risk_level": risk_level,
        }
    )


def missing_found(
    at: datetime,
    *,
    episode: str,
    child: str = CHILD,
    looked_after: bool = False,
    event_id: str | None = None,
    purge: bool = False,
) -> MissingFound:
    return MissingFound.model_validate(
        {
            **_envelope(at, event_id, "police", "383", purge),
            "event_type": "missing.found",
            "episode_id": episode,
            "child_id": child,
            "looked_after": looked_after,
            "absence_type": "missing",
            "risk_level": "medium",
        }
    )


def return_interview(
    at: datetime, *, episode: str, child: str = CHILD, interview: InterviewStep = "offered", event_id: str | None = None
) -> MissingReturnInterview:
    return MissingReturnInterview.model_validate(
        {
            **_envelope(at, event_id, "local_authority", "383", False),
            "event_type": "missing.return_interview",
            "episode_id": episode,
            "child_id": child,
            "looked_after": False,
            "absence_type": "missing",
            "risk_level": "medium",
            "interview": interview,
        }
    )


def contact_received(
    at: datetime,
    *,
    child: str = CHILD,
    agency_type: AgencyType = "police",
    contact_id: str | None = None,
    linked_incident_id: str | None = None,
    event_id: str | None = None,
    purge: bool = False,
) -> ContactReceived:
    envelope = _envelope(at, event_id, agency_type, "383", purge)
    return ContactReceived.model_validate(
        {
            **envelope,
            "event_type": "contact.received",
            "contact_id": contact_id or f"C-{envelope['event_id']}",
            "child_id": child,
            "contact_source": "2A",
            "concerns": ["neglect"],
            "linked_incident_id": linked_incident_id,
        }
    )


def contact_decided(
    at: datetime,
    *,
    child: str = CHILD,
    outcome: Outcome = "referral",
    contact_id: str | None = None,
    event_id: str | None = None,
    purge: bool = False,
) -> ContactDecided:
    envelope = _envelope(at, event_id, "local_authority", "383", purge)
    return ContactDecided.model_validate(
        {
            **envelope,
            "event_type": "contact.decided",
            "contact_id": contact_id or f"C-{envelope['event_id']}",
            "child_id": child,
            "outcome": outcome,
        }
    )


def incident(
    at: datetime,
    *,
    household: str = HOUSEHOLD,
    incident_id: str | None = None,
    children: Sequence[tuple[str, bool]] = (),
    dash_risk: DashRisk = "standard",
    marac: bool = False,
    event_id: str | None = None,
    purge: bool = False,
) -> DomesticIncidentRecorded:
    envelope = _envelope(at, event_id, "police", "383", purge)
    return DomesticIncidentRecorded.model_validate(
        {
            **envelope,
            "event_type": "domestic_incident.recorded",
            "incident_id": incident_id or f"DI-{envelope['event_id']}",
            "household_id": household,
            "dash_risk": dash_risk,
            "is_crime": False,
            "children": [IncidentChild(child_id=child, present=present) for child, present in children],
            "marac_referral": marac,
        }
    )


def plan_started(
    at: datetime,
    *,
    plan_id: str,
    child: str = CHILD,
    previous_plans: int | None = None,
    previous_plan_ended_at: date | None = None,
    event_id: str | None = None,
    purge: bool = False,
) -> CpPlanStarted:
    return CpPlanStarted.model_validate(
        {
            **_envelope(at, event_id, "local_authority", "383", purge),
            "event_type": "cp_plan.started",
            "plan_id": plan_id,
            "child_id": child,
            "category": "NEG",
            "previous_plans": previous_plans,
            "previous_plan_ended_at": previous_plan_ended_at,
        }
    )


def plan_ended(at: datetime, *, plan_id: str, child: str = CHILD, event_id: str | None = None) -> CpPlanEnded:
    return CpPlanEnded.model_validate(
        {
            **_envelope(at, event_id, "local_authority", "383", False),
            "event_type": "cp_plan.ended",
            "plan_id": plan_id,
            "child_id": child,
            "category": "NEG",
        }
    )


def run(
    inputs: Iterable[RuleInput], catalogue: Catalogue = DEFAULTS, state: SubjectState | None = None
) -> tuple[SubjectState | None, list[AlertRaised]]:
    """Apply inputs in the given (arrival) order to one subject's state; all alerts raised."""
    alerts: list[AlertRaised] = []
    for item in inputs:
        result = evaluate(state, item, RAISED_AT, catalogue)
        state = result.state
        alerts += result.alerts
    return state, alerts


def run_then_advance(
    inputs: Iterable[RuleInput], clock: datetime, clock_topic: str, catalogue: Catalogue = DEFAULTS
) -> tuple[SubjectState, list[AlertRaised]]:
    state, alerts = run(inputs, catalogue)
    assert state is not None
    result = advance(state, clock, RAISED_AT, catalogue, clock_topic=clock_topic)
    return result.state, alerts + result.alerts


def ids(alerts: Iterable[AlertRaised]) -> set[str]:
    return {alert.alert_id for alert in alerts}


def of_rule(alerts: Iterable[AlertRaised], rule_id: str) -> list[AlertRaised]:
    return [alert for alert in alerts if alert.rule_id == rule_id]
