"""`da_contact_overdue`: a child present at a domestic incident, and no Front Door contact within D.

A deadline rule on the child's state, fed by `DaObligation`s (see `streams.rules.obligations`) and by
`contact.received` events carrying `linked_incident_id`. A contact for that child and incident whose
event time is at or before the deadline (incident time + D) answers it. The contacts topic's
partition clock decides when the deadline has passed; an answer processed after the alert fired
does not cancel it. One alert per child and incident.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from schemas.topics import CONTACTS
from streams.rules.definition import (
    DeadlineSpec,
    Finding,
    PositiveDuration,
    RuleDefinition,
    RuleParams,
    no_findings,
    pseudonym_label,
)
from streams.rules.durations import Duration
from streams.rules.state import DaContactDuty, SubjectState


class DaContactOverdueParams(RuleParams):
    deadline: PositiveDuration = Field(default=Duration(hours=24), description="from the incident")
    cooldown: Duration | None = Field(default=None, description="unset: none, one alert per child and incident")


def _deadline(duty: DaContactDuty, params: DaContactOverdueParams) -> datetime | None:
    """The deadline of an incident still waiting for its contact, or None (no obligation yet, or answered)."""
    if duty.incident_at is None:
        return None
    deadline = params.deadline.after(duty.incident_at)
    if duty.answered_at is not None and duty.answered_at <= deadline:
        return None
    return deadline


def pending(state: SubjectState, params: DaContactOverdueParams) -> list[tuple[str, datetime]]:
    duties = ((f"incident:{duty.incident_id}", _deadline(duty, params)) for duty in state.da_contacts)
    return [(entity, deadline) for entity, deadline in duties if deadline is not None]


def due(state: SubjectState, clock: datetime, params: DaContactOverdueParams) -> list[Finding]:
    findings = []
    label = pseudonym_label(state.subject_type, state.subject_id)
    for duty in state.da_contacts:
        deadline = _deadline(duty, params)
        if deadline is None or deadline > clock or duty.obligation_event_id is None or duty.la_code is None:
            continue
        findings.append(
            Finding(
                triggered_at=deadline,
                evidence_event_ids=(duty.obligation_event_id,),
                severity="high",
                la_code=duty.la_code,
                summary=(
                    f"{label} was present at a domestic incident and no contact about it reached the Front Door "
                    f"within {params.deadline.describe()}."
                ),
                entity=f"incident:{duty.incident_id}",
            )
        )
    return findings


def cooldown(params: DaContactOverdueParams) -> Duration | None:
    return params.cooldown


def retention(params: DaContactOverdueParams) -> tuple[Duration, ...]:
    return (params.deadline,)


RULE = RuleDefinition(
    rule_id="da_contact_overdue",
    version=1,
    description=(
        "A child present at a domestic incident with no `contact.received` carrying that `linked_incident_id` "
        "for that child within D (one alert per child)."
    ),
    source="Front Door practice (every child-present incident becomes a contact); cross-agency reconciliation.",
    subject_type="child",
    input_event_types=frozenset({"da_obligation", "contact.received"}),
    params_model=DaContactOverdueParams,
    reads=frozenset({"da_contacts"}),
    evaluate=no_findings,
    cooldown=cooldown,
    retention=retention,
    deadline=DeadlineSpec(clock_topic=CONTACTS.name, due=due, pending=pending),
)
