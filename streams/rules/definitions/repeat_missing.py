"""`repeat_missing`: a child reported missing K times within W (3 in 90 days by default)."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from streams.rules.builders import Limit, Window, count_rule
from streams.rules.definition import ParamsModel, PositiveDuration, RuleParams, times
from streams.rules.durations import Duration
from streams.rules.state import MissingReport


class LookedAfterThresholds(ParamsModel):
    """Separate threshold and/or window for a child who was looked after when the count completes."""

    threshold: int | None = Field(default=None, ge=1, description="episodes; unset: the rule's threshold")
    window: PositiveDuration | None = Field(default=None, description="unset: the rule's window")


class RepeatMissingParams(RuleParams):
    threshold: int = Field(default=3, ge=1, description="episodes within the window")
    window: PositiveDuration = Field(default=Duration(days=90))
    cooldown: Duration | None = Field(default=None, description="unset: the window")
    count_away: bool = Field(default=False, description="also count `away` episodes (looked-after children)")
    looked_after: LookedAfterThresholds | None = None


def _limits(params: RepeatMissingParams) -> tuple[Limit, ...]:
    """The rule's own threshold, then the looked-after one if the partnership set it."""
    everyone = Limit(params.window, params.threshold)
    if params.looked_after is None:
        return (everyone,)
    looked_after = Limit(
        params.looked_after.window or params.window,
        params.looked_after.threshold or params.threshold,
        note=" for a looked-after child",
    )
    return (everyone, looked_after)


def _pick(completing: Sequence[MissingReport], limits: tuple[Limit, ...]) -> Limit:
    """The looked-after threshold when a report completing the window (the latest in it) was of a looked-after child."""
    return limits[1] if len(limits) > 1 and any(report.looked_after for report in completing) else limits[0]


def _counts(report: MissingReport, params: RepeatMissingParams) -> bool:
    return report.absence_type == "missing" or params.count_away


def _severity(window: Window[MissingReport]) -> str:
    serious = any(report.looked_after or report.risk_level == "high" for report in window.records)
    return "high" if serious else "medium"


def _summary(window: Window[MissingReport], episodes: int, params: RepeatMissingParams) -> str:
    status = "missing or away" if params.count_away else "missing"
    limit = window.limit
    return (
        f"{window.label} reported {status} {times(episodes)} "
        f"in {limit.window.describe()} (threshold {limit.threshold}{limit.note})."
    )


RULE = count_rule(
    rule_id="repeat_missing",
    version=1,
    description="A child reported missing (absence type `missing`) at least K times within W.",
    source=(
        "Local protocols: no national number; 3 in 90 days is the common trigger, 3 in 12 months is also used, "
        "some partnerships set separate thresholds for children in care."
    ),
    subject_type="child",
    params_model=RepeatMissingParams,
    reads="missing_reports",
    on="missing.reported",
    counts=_counts,
    distinct=lambda report: report.episode_id,
    limits=_limits,
    pick=_pick,
    severity=_severity,  # type: ignore[arg-type]
    summary=_summary,
)
