"""`multi_agency_concern`: contacts about a child from N or more kinds of agency within W."""

from __future__ import annotations

from pydantic import Field

from schemas.events import ContactReceived
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


class MultiAgencyConcernParams(RuleParams):
    threshold: int = Field(default=3, ge=1, description="distinct agency types within the window")
    window: PositiveDuration = Field(default=Duration(days=30))
    cooldown: Duration | None = Field(default=None, description="unset: the window")


def evaluate(state: SubjectState, item: RuleInput, params: MultiAgencyConcernParams) -> list[Finding]:
    """Every window through the new contact with contacts from at least N distinct `agency_type`s."""
    if not isinstance(item, ContactReceived):
        return []
    trigger = record_with_id(state.contacts, item.event_id)
    if trigger is None:
        return []
    findings = []
    label = pseudonym_label(state.subject_type, state.subject_id)
    for end, in_window in windows_through(state.contacts, trigger, params.window):
        agencies = sorted({contact.agency_type for contact in in_window})
        if len(agencies) >= params.threshold:
            kinds = ", ".join(agency.replace("_", " ") for agency in agencies)
            findings.append(
                Finding(
                    triggered_at=end,
                    evidence_event_ids=tuple(contact.event_id for contact in in_window),
                    severity="medium",
                    la_code=in_window[-1].la_code,
                    summary=(
                        f"{label} is the subject of contacts from {len(agencies)} kinds of agency in "
                        f"{params.window.describe()} (threshold {params.threshold}): {kinds}."
                    ),
                    threshold=params.threshold,
                    count=len(agencies),
                    window=params.window,
                )
            )
    return findings


def cooldown(params: MultiAgencyConcernParams) -> Duration:
    return params.window if params.cooldown is None else params.cooldown


def retention(params: MultiAgencyConcernParams) -> tuple[Duration, ...]:
    return window_retention(params.window, cooldown(params))


RULE = RuleDefinition(
    rule_id="multi_agency_concern",
    version=1,
    description="`contact.received` about a child from at least N distinct agency types within W.",
    source="Local practice (joined-up working); not a statutory measure.",
    subject_type="child",
    input_event_types=frozenset({"contact.received"}),
    params_model=MultiAgencyConcernParams,
    reads=frozenset({"contacts"}),
    evaluate=evaluate,
    cooldown=cooldown,
    retention=retention,
)
