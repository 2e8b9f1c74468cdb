"""`domestic_abuse_child_present`: a domestic incident with a child present; one alert per incident."""

from __future__ import annotations

from pydantic import Field

from schemas.events import DomesticIncidentRecorded
from streams.rules.definition import Finding, RuleDefinition, RuleInput, RuleParams, pseudonym_label, utc
from streams.rules.durations import Duration
from streams.rules.state import SubjectState


class DomesticAbuseChildPresentParams(RuleParams):
    cooldown: Duration | None = Field(default=None, description="unset: none, one alert per incident")


def evaluate(state: SubjectState, item: RuleInput, params: DomesticAbuseChildPresentParams) -> list[Finding]:
    if not isinstance(item, DomesticIncidentRecorded):
        return []
    present = len({child.child_id for child in item.children if child.present})
    if not present:
        return []
    label = pseudonym_label(state.subject_type, state.subject_id)
    children = "a child" if present == 1 else f"{present} children"
    return [
        Finding(
            triggered_at=utc(item.occurred_at),
            evidence_event_ids=(item.event_id,),
            severity="high" if item.dash_risk == "high" else "medium",
            la_code=item.la_code,
            summary=f"{label} had a domestic incident with {children} present (DASH risk {item.dash_risk}).",
            entity=f"incident:{item.incident_id}",
        )
    ]


def cooldown(params: DomesticAbuseChildPresentParams) -> Duration | None:
    return params.cooldown


def retention(params: DomesticAbuseChildPresentParams) -> tuple[Duration, ...]:
    return ()


RULE = RuleDefinition(
    rule_id="domestic_abuse_child_present",
    version=1,
    description="A `domestic_incident.recorded` with at least one child present: immediate, one alert per incident.",
    source=(
        "Leeds practice (every child-present incident becomes a Front Door contact); Operation Encompass duty "
        "(Victims and Prisoners Act 2024)."
    ),
    subject_type="household",
    input_event_types=frozenset({"domestic_incident.recorded"}),
    params_model=DomesticAbuseChildPresentParams,
    reads=frozenset(),
    evaluate=evaluate,
    cooldown=cooldown,
    retention=retention,
)
