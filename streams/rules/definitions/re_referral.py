"""`re_referral`: a referral for a child with a previous referral within W (12 months, DfE)."""

from __future__ import annotations

from pydantic import Field

from schemas.events import ContactDecided
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

REFERRALS_FOR_A_RE_REFERRAL = 2


class ReReferralParams(RuleParams):
    window: PositiveDuration = Field(default=Duration(months=12))
    cooldown: Duration | None = Field(default=None, description="unset: the window")


def evaluate(state: SubjectState, item: RuleInput, params: ReReferralParams) -> list[Finding]:
    """Every window through the new referral holding referrals on two or more different contacts.

    A referral is a `contact.decided` with outcome `referral` or `strategy_discussion`; two decisions
    on the same contact are one referral.
    """
    if not isinstance(item, ContactDecided):
        return []
    trigger = record_with_id(state.referrals, item.event_id)
    if trigger is None:
        return []
    findings = []
    label = pseudonym_label(state.subject_type, state.subject_id)
    for end, in_window in windows_through(state.referrals, trigger, params.window):
        referrals = len({referral.contact_id for referral in in_window})
        if referrals >= REFERRALS_FOR_A_RE_REFERRAL:
            findings.append(
                Finding(
                    triggered_at=end,
                    evidence_event_ids=tuple(referral.event_id for referral in in_window),
                    severity="medium",
                    la_code=in_window[-1].la_code,
                    summary=(
                        f"{label} referred again within {params.window.describe()} of a previous referral "
                        f"({referrals} referrals)."
                    ),
                    threshold=REFERRALS_FOR_A_RE_REFERRAL,
                    count=referrals,
                    window=params.window,
                )
            )
    return findings


def cooldown(params: ReReferralParams) -> Duration:
    return params.window if params.cooldown is None else params.cooldown


def retention(params: ReReferralParams) -> tuple[Duration, ...]:
    return window_retention(params.window, cooldown(params))


RULE = RuleDefinition(
    rule_id="re_referral",
    version=1,
    description=(
        "A `contact.decided` with outcome `referral` or `strategy_discussion` for a child with a previous "
        "referral within W."
    ),
    source="DfE re-referral definition: a referral within 12 months of a previous referral.",
    subject_type="child",
    input_event_types=frozenset({"contact.decided"}),
    params_model=ReReferralParams,
    reads=frozenset({"referrals"}),
    evaluate=evaluate,
    cooldown=cooldown,
    retention=retention,
)
