"""`marac_repeat`: a domestic incident for a household within W after an incident referred to MARAC."""

from __future__ import annotations

from pydantic import Field

from streams.rules.builders import Hit, Window, window_rule
from streams.rules.definition import PositiveDuration, RuleParams
from streams.rules.durations import Duration
from streams.rules.state import IncidentRecord, time_key


class MaracRepeatParams(RuleParams):
    window: PositiveDuration = Field(default=Duration(months=12), description="after the MARAC-referred incident")
    cooldown: Duration | None = Field(default=None, description="unset: the window")


def _repeat_of_a_referral(window: Window[IncidentRecord], params: MaracRepeatParams) -> Hit | None:
    """The incidents at the window's end repeat a *different* MARAC-referred incident within W before them.

    The new incident is either the repeat itself or (arriving late) the MARAC referral that later
    incidents now repeat.
    """
    end, in_window, trigger = window.end, window.records, window.trigger
    if end != trigger.occurred_at and not trigger.marac_referral:
        return None
    repeats = [incident for incident in in_window if incident.occurred_at == end]
    referrals = [
        referral
        for referral in in_window
        if referral.marac_referral and any(referral.incident_id != repeat.incident_id for repeat in repeats)
    ]
    if not referrals:
        return None
    evidence = sorted({incident.event_id: incident for incident in (*referrals, *repeats)}.values(), key=time_key)
    summary = f"{window.label} had a domestic incident within {params.window.describe()} of a MARAC referral."
    return Hit(evidence, "high", summary)


RULE = window_rule(
    rule_id="marac_repeat",
    version=1,
    description="Any `domestic_incident.recorded` for a household within W after an incident with `marac_referral`.",
    source="SafeLives repeat MARAC definition (any incident within 12 months of the last referral).",
    subject_type="household",
    params_model=MaracRepeatParams,
    reads="incidents",
    on="domestic_incident.recorded",
    condition=_repeat_of_a_referral,
    may_hold=lambda incidents, _: any(incident.marac_referral for incident in incidents),  # no referral: no repeat
)
