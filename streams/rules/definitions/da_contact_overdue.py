"""`da_contact_overdue`: a child present at a domestic incident, and no Front Door contact within D.

A deadline rule on the child's state, fed by `DaObligation`s (see `streams.rules.obligations`) and by
`contact.received` events carrying `linked_incident_id`. A contact for that child and incident whose
event time is at or before the deadline (incident time + D) answers it. The contacts topic's
partition clock decides when the deadline has passed; an answer processed after the alert fired
does not cancel it. One alert per child and incident.
"""

from __future__ import annotations

from pydantic import Field

from schemas.topics import CONTACTS
from streams.rules.builders import Duty, deadline_rule
from streams.rules.definition import PositiveDuration, RuleParams
from streams.rules.durations import Duration
from streams.rules.state import DaContactDuty


class DaContactOverdueParams(RuleParams):
    deadline: PositiveDuration = Field(default=Duration(hours=24), description="from the incident")
    cooldown: Duration | None = Field(default=None, description="unset: none, one alert per child and incident")


def _duty(incident: DaContactDuty) -> Duty:
    """Opened by the incident (its obligation); answered by the first contact carrying the incident id."""
    return Duty(incident.incident_at, incident.answered_at, incident.obligation_event_id, incident.la_code)


def _summary(label: str, incident: DaContactDuty, params: DaContactOverdueParams) -> str:
    return (
        f"{label} was present at a domestic incident and no contact about it reached the Front Door "
        f"within {params.deadline.describe()}."
    )


RULE = deadline_rule(
    rule_id="da_contact_overdue",
    version=1,
    description=(
        "A child present at a domestic incident with no `contact.received` carrying that `linked_incident_id` "
        "for that child within D (one alert per child)."
    ),
    source="Front Door practice (every child-present incident becomes a contact); cross-agency reconciliation.",
    subject_type="child",
    params_model=DaContactOverdueParams,
    reads="da_contacts",
    on=frozenset({"da_obligation", "contact.received"}),
    clock_topic=CONTACTS.name,
    duty=_duty,
    severity="high",
    summary=_summary,
)
