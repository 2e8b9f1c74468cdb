"""`multi_agency_concern`: contacts about a child from N or more kinds of agency within W."""

from __future__ import annotations

from pydantic import Field

from streams.rules.builders import Window, count_rule
from streams.rules.definition import PositiveDuration, RuleParams
from streams.rules.durations import Duration
from streams.rules.state import ContactRecord


class MultiAgencyConcernParams(RuleParams):
    threshold: int = Field(default=3, ge=1, description="distinct agency types within the window")
    window: PositiveDuration = Field(default=Duration(days=30))
    cooldown: Duration | None = Field(default=None, description="unset: the window")


def _summary(window: Window[ContactRecord], agencies: int, params: MultiAgencyConcernParams) -> str:
    kinds = ", ".join(agency.replace("_", " ") for agency in sorted({c.agency_type for c in window.records}))
    return (
        f"{window.label} is the subject of contacts from {agencies} kinds of agency in "
        f"{params.window.describe()} (threshold {params.threshold}): {kinds}."
    )


RULE = count_rule(
    rule_id="multi_agency_concern",
    version=1,
    description="`contact.received` about a child from at least N distinct agency types within W.",
    source="Local practice (joined-up working); not a statutory measure.",
    subject_type="child",
    params_model=MultiAgencyConcernParams,
    reads="contacts",
    on="contact.received",
    distinct=lambda contact: contact.agency_type,
    severity="medium",
    summary=_summary,
)
