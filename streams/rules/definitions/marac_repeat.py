"""`marac_repeat`: a domestic incident for a household within W after an incident referred to MARAC."""

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
from streams.rules.state import SubjectState, time_key


class MaracRepeatParams(RuleParams):
    window: PositiveDuration = Field(default=Duration(months=12), description="after the MARAC-referred incident")
    cooldown: Duration | None = Field(default=None, description="unset: the window")


def evaluate(state: SubjectState, item: RuleInput, params: MaracRepeatParams) -> list[Finding]:
    """Every incident at or within W after a *different* MARAC-referred incident, through the new one.

    The new incident is either the repeat itself or (arriving late) the MARAC referral that later
    incidents now repeat.
    """
    if not isinstance(item, DomesticIncidentRecorded):
        return []
    trigger = record_with_id(state.incidents, item.event_id)
    if trigger is None:
        return []
    findings = []
    label = pseudonym_label(state.subject_type, state.subject_id)
    for end, in_window in windows_through(state.incidents, trigger, params.window):
        if end != trigger.occurred_at and not trigger.marac_referral:
            continue
        repeats = [incident for incident in in_window if incident.occurred_at == end]
        referrals = [
            referral
            for referral in in_window
            if referral.marac_referral and any(referral.incident_id != repeat.incident_id for repeat in repeats)
        ]
        if not referrals:
            continue
        evidence = sorted({incident.event_id: incident for incident in (*referrals, *repeats)}.values(), key=time_key)
        findings.append(
            Finding(
                triggered_at=end,
                evidence_event_ids=tuple(incident.event_id for incident in evidence),
                severity="high",
                la_code=repeats[-1].la_code,
                summary=f"{label} had a domestic incident within {params.window.describe()} of a MARAC referral.",
                window=params.window,
            )
        )
    return findings


def cooldown(params: MaracRepeatParams) -> Duration:
    return params.window if params.cooldown is None else params.cooldown


def retention(params: MaracRepeatParams) -> tuple[Duration, ...]:
    return window_retention(params.window, cooldown(params))


RULE = RuleDefinition(
    rule_id="marac_repeat",
    version=1,
    description="Any `domestic_incident.recorded` for a household within W after an incident with `marac_referral`.",
    source="SafeLives repeat MARAC definition (any incident within 12 months of the last referral).",
    subject_type="household",
    input_event_types=frozenset({"domestic_incident.recorded"}),
    params_model=MaracRepeatParams,
    reads=frozenset({"incidents"}),
    evaluate=evaluate,
    cooldown=cooldown,
    retention=retention,
)
