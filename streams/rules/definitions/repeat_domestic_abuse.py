"""`repeat_domestic_abuse`: K domestic incidents for a household within W (SafeLives escalation)."""

from __future__ import annotations

from pydantic import Field

from schemas.events import DomesticIncidentRecorded
from streams.rules.definition import (
    Finding,
    PositiveDuration,
    RuleDefinition,
    RuleInput,
    RuleParams,
    pseudonym_label,
    record_with_id,
    window_retention,
    windows_through,
)
from streams.rules.durations import Duration
from streams.rules.state import SubjectState


class RepeatDomesticAbuseParams(RuleParams):
    threshold: int = Field(default=3, ge=1, description="distinct incidents within the window")
    window: PositiveDuration = Field(default=Duration(months=12), description="Kent and Medway use P6M")
    cooldown: Duration | None = Field(default=None, description="unset: the window")


def evaluate(state: SubjectState, item: RuleInput, params: RepeatDomesticAbuseParams) -> list[Finding]:
    """Every window through the new incident holding at least K distinct incidents."""
    if not isinstance(item, DomesticIncidentRecorded):
        return []
    trigger = record_with_id(state.incidents, item.event_id)
    if trigger is None:
        return []
    findings = []
    label = pseudonym_label(state.subject_type, state.subject_id)
    for end, in_window in windows_through(state.incidents, trigger, params.window):
        incidents = len({incident.incident_id for incident in in_window})
        if incidents >= params.threshold:
            findings.append(
                Finding(
                    triggered_at=end,
                    evidence_event_ids=tuple(incident.event_id for incident in in_window),
                    severity="high",
                    la_code=in_window[-1].la_code,
                    summary=(
                        f"{label} had {incidents} domestic incidents in {params.window.describe()} "
                        f"(threshold {params.threshold})."
                    ),
                    threshold=params.threshold,
                    count=incidents,
                    window=params.window,
                )
            )
    return findings


def cooldown(params: RepeatDomesticAbuseParams) -> Duration:
    return params.window if params.cooldown is None else params.cooldown


def retention(params: RepeatDomesticAbuseParams) -> tuple[Duration, ...]:
    return window_retention(params.window, cooldown(params))


RULE = RuleDefinition(
    rule_id="repeat_domestic_abuse",
    version=1,
    description="At least K `domestic_incident.recorded` for a household within W.",
    source='SafeLives MARAC "potential escalation" (3 in 12 months); Kent and Medway use 6 months.',
    subject_type="household",
    input_event_types=frozenset({"domestic_incident.recorded"}),
    params_model=RepeatDomesticAbuseParams,
    reads=frozenset({"incidents"}),
    evaluate=evaluate,
    cooldown=cooldown,
    retention=retention,
)
