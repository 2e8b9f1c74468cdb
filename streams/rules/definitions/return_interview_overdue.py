"""`return_interview_overdue`: no return interview step within D (72 hours) of a child being found.

A deadline rule. `missing.found` opens a deadline per episode; any `missing.return_interview` for the
same episode whose event time is at or before the deadline answers it. The missing-episodes topic's
partition clock decides when the deadline has passed; an answer processed after the alert fired
does not cancel it.
"""

from __future__ import annotations

from pydantic import Field

from schemas.topics import MISSING_EPISODES
from streams.rules.builders import Duty, deadline_rule
from streams.rules.definition import PositiveDuration, RuleParams
from streams.rules.durations import Duration
from streams.rules.state import ReturnInterviewDuty


class ReturnInterviewOverdueParams(RuleParams):
    deadline: PositiveDuration = Field(default=Duration(hours=72), description="from being found")
    cooldown: Duration | None = Field(default=None, description="unset: none, one alert per episode")


def _duty(episode: ReturnInterviewDuty) -> Duty:
    """Opened when the child was found; answered by the first interview step."""
    return Duty(episode.found_at, episode.interviewed_at, episode.found_event_id, episode.la_code)


def _summary(label: str, episode: ReturnInterviewDuty, params: ReturnInterviewOverdueParams) -> str:
    who = f"{label} (looked after)" if episode.looked_after else label
    return f"{who} has no return interview recorded within {params.deadline.describe()} of being found."


RULE = deadline_rule(
    rule_id="return_interview_overdue",
    version=1,
    description="A `missing.found` with no `missing.return_interview` for the same episode within D.",
    source="DfE statutory guidance (2014) on children who run away or go missing, as applied by Leeds SCP.",
    subject_type="child",
    params_model=ReturnInterviewOverdueParams,
    reads="return_interviews",
    on=frozenset({"missing.found", "missing.return_interview"}),
    clock_topic=MISSING_EPISODES.name,
    duty=_duty,
    severity=lambda episode: "high" if episode.looked_after else "medium",
    summary=_summary,
)
