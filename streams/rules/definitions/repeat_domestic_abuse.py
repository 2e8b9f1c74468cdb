"""`repeat_domestic_abuse`: K domestic incidents for a household within W (SafeLives escalation)."""

from __future__ import annotations

from pydantic import Field

from streams.rules.builders import Window, count_rule
from streams.rules.definition import PositiveDuration, RuleParams
from streams.rules.durations import Duration
from streams.rules.state import IncidentRecord


class RepeatDomesticAbuseParams(RuleParams):
    threshold: int = Field(default=3, ge=1, description="distinct incidents within the window")
    window: PositiveDuration = Field(default=Duration(months=12), description="Kent and Medway use P6M")
    cooldown: Duration | None = Field(default=None, description="unset: the window")


def _summary(window: Window[IncidentRecord], incidents: int, params: RepeatDomesticAbuseParams) -> str:
    return (
        f"{window.label} had {incidents} domestic incidents in {params.window.describe()} "
        f"(threshold {params.threshold})."
    )


RULE = count_rule(
    rule_id="repeat_domestic_abuse",
    version=1,
    description="At least K `domestic_incident.recorded` for a household within W.",
    source='SafeLives MARAC "potential escalation" (3 in 12 months); Kent and Medway use 6 months.',
    subject_type="household",
    params_model=RepeatDomesticAbuseParams,
    reads="incidents",
    on="domestic_incident.recorded",
    distinct=lambda incident: incident.incident_id,
    severity="high",
    summary=_summary,
)
