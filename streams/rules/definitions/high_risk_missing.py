"""`high_risk_missing`: a child reported missing at high risk (police risk grading): alert at once."""

from __future__ import annotations

from pydantic import Field

from schemas.events import MissingReported
from streams.rules.definition import Finding, RuleDefinition, RuleInput, RuleParams, pseudonym_label, utc
from streams.rules.durations import Duration
from streams.rules.state import SubjectState


class HighRiskMissingParams(RuleParams):
    cooldown: Duration | None = Field(default=None, description="unset: none, one alert per episode")


def evaluate(state: SubjectState, item: RuleInput, params: HighRiskMissingParams) -> list[Finding]:
    """One finding per high-risk report; the engine keeps it to one alert per episode."""
    if not isinstance(item, MissingReported) or item.risk_level != "high":
        return []
    label = pseudonym_label(state.subject_type, state.subject_id)
    return [
        Finding(
            triggered_at=utc(item.occurred_at),
            evidence_event_ids=(item.event_id,),
            severity="critical",
            la_code=item.la_code,
            summary=f"{label} reported {item.absence_type} at high risk (police risk grading).",
            entity=f"episode:{item.episode_id}",
        )
    ]


def cooldown(params: HighRiskMissingParams) -> Duration | None:
    return params.cooldown


def retention(params: HighRiskMissingParams) -> tuple[Duration, ...]:
    return ()


RULE = RuleDefinition(
    rule_id="high_risk_missing",
    version=1,
    description="A `missing.reported` with risk level `high`: immediate, one alert per episode.",
    source="Police risk grading (College of Policing APP on missing persons).",
    subject_type="child",
    input_event_types=frozenset({"missing.reported"}),
    params_model=HighRiskMissingParams,
    reads=frozenset(),
    evaluate=evaluate,
    cooldown=cooldown,
    retention=retention,
)
