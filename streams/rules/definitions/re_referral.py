"""`re_referral`: a referral for a child with a previous referral within W (12 months, DfE)."""

from __future__ import annotations

from pydantic import Field

from streams.rules.builders import Limit, Window, count_rule
from streams.rules.definition import PositiveDuration, RuleParams
from streams.rules.durations import Duration
from streams.rules.state import ReferralRecord

REFERRALS_FOR_A_RE_REFERRAL = 2


class ReReferralParams(RuleParams):
    window: PositiveDuration = Field(default=Duration(months=12))
    cooldown: Duration | None = Field(default=None, description="unset: the window")


def _summary(window: Window[ReferralRecord], referrals: int, params: ReReferralParams) -> str:
    return (
        f"{window.label} referred again within {params.window.describe()} of a previous referral "
        f"({referrals} referrals)."
    )


RULE = count_rule(
    rule_id="re_referral",
    version=1,
    description=(
        "A `contact.decided` with outcome `referral` or `strategy_discussion` for a child with a previous "
        "referral within W."
    ),
    source="DfE re-referral definition: a referral within 12 months of a previous referral.",
    subject_type="child",
    params_model=ReReferralParams,
    # A referral is a `contact.decided` with outcome `referral` or `strategy_discussion` (the `referrals`
    # history); two decisions on the same contact are one referral.
    reads="referrals",
    on="contact.decided",
    distinct=lambda referral: referral.contact_id,
    limits=lambda params: (Limit(params.window, REFERRALS_FOR_A_RE_REFERRAL),),
    severity="medium",
    summary=_summary,
)
