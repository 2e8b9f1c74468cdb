"""`return_interview_overdue`: no return interview step within D (72 hours) of a child being found.

A deadline rule. `missing.found` opens a deadline per episode; any `missing.return_interview` for the
same episode whose event time is at or before the deadline answers it. The missing-episodes topic's
partition clock decides when the deadline has passed; an answer processed after the alert fired
does not cancel it.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from schemas.topics import MISSING_EPISODES
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
from streams.rules.state import ReturnInterviewDuty, SubjectState


class ReturnInterviewOverdueParams(RuleParams):
    deadline: PositiveDuration = Field(default=Duration(hours=72), description="from being found")
    cooldown: Duration | None = Field(default=None, description="unset: none, one alert per episode")


def _deadline(duty: ReturnInterviewDuty, params: ReturnInterviewOverdueParams) -> datetime | None:
    """The deadline of an episode still waiting for its interview, or None (not found yet, or answered)."""
    if duty.found_at is None:
        return None
    deadline = params.deadline.after(duty.found_at)
    if duty.interviewed_at is not None and duty.interviewed_at <= deadline:
        return None
    return deadline


def pending(state: SubjectState, params: ReturnInterviewOverdueParams) -> list[tuple[str, datetime]]:
    found = ((f"episode:{duty.episode_id}", _deadline(duty, params)) for duty in state.return_interviews)
    return [(entity, deadline) for entity, deadline in found if deadline is not None]


def due(state: SubjectState, clock: datetime, params: ReturnInterviewOverdueParams) -> list[Finding]:
    findings = []
    label = pseudonym_label(state.subject_type, state.subject_id)
    for duty in state.return_interviews:
        deadline = _deadline(duty, params)
        if deadline is None or deadline > clock or duty.found_event_id is None or duty.la_code is None:
            continue
        who = f"{label} (looked after)" if duty.looked_after else label
        findings.append(
            Finding(
                triggered_at=deadline,
                evidence_event_ids=(duty.found_event_id,),
                severity="high" if duty.looked_after else "medium",
                la_code=duty.la_code,
                summary=f"{who} has no return interview recorded within {params.deadline.describe()} of being found.",
                entity=f"episode:{duty.episode_id}",
            )
        )
    return findings


def cooldown(params: ReturnInterviewOverdueParams) -> Duration | None:
    return params.cooldown


def retention(params: ReturnInterviewOverdueParams) -> tuple[Duration, ...]:
    return (params.deadline,)


RULE = RuleDefinition(
    rule_id="return_interview_overdue",
    version=1,
    description="A `missing.found` with no `missing.return_interview` for the same episode within D.",
    source="DfE statutory guidance (2014) on children who run away or go missing, as applied by Leeds SCP.",
    subject_type="child",
    input_event_types=frozenset({"missing.found", "missing.return_interview"}),
    params_model=ReturnInterviewOverdueParams,
    reads=frozenset({"return_interviews"}),
    evaluate=no_findings,
    cooldown=cooldown,
    retention=retention,
    deadline=DeadlineSpec(clock_topic=MISSING_EPISODES.name, due=due, pending=pending),
)
