"""`repeat_missing`: a child reported missing K times within W (3 in 90 days by default)."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field

from schemas.events import MissingReported
from streams.rules.definition import (
    Finding,
    ParamsModel,
    PositiveDuration,
    RuleDefinition,
    RuleInput,
    RuleParams,
    pseudonym_label,
    record_with_id,
    times,
    window_retention,
)
from streams.rules.durations import Duration, within
from streams.rules.state import MissingReport, SubjectState


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


@dataclass(frozen=True)
class _Threshold:
    threshold: int
    window: Duration
    for_looked_after: bool


def _thresholds(params: RepeatMissingParams) -> tuple[_Threshold, _Threshold | None]:
    everyone = _Threshold(params.threshold, params.window, for_looked_after=False)
    if params.looked_after is None:
        return everyone, None
    looked_after = _Threshold(
        params.looked_after.threshold or params.threshold,
        params.looked_after.window or params.window,
        for_looked_after=True,
    )
    return everyone, looked_after


def _counts(report: MissingReport, params: RepeatMissingParams) -> bool:
    return report.absence_type == "missing" or params.count_away


def evaluate(state: SubjectState, item: RuleInput, params: RepeatMissingParams) -> list[Finding]:
    """Every window through the new report that holds at least K distinct episodes.

    The threshold that applies is the looked-after one when the report completing the window (the
    latest in it) was of a looked-after child; otherwise the rule's own.
    """
    if not isinstance(item, MissingReported):
        return []
    trigger = record_with_id(state.missing_reports, item.event_id)
    if trigger is None or not _counts(trigger, params):
        return []
    qualifying = tuple(report for report in state.missing_reports if _counts(report, params))
    everyone, looked_after = _thresholds(params)
    findings = []
    for end in sorted({report.occurred_at for report in qualifying if report.occurred_at >= trigger.occurred_at}):
        completing = [report for report in qualifying if report.occurred_at == end]
        rule = looked_after if looked_after and any(r.looked_after for r in completing) else everyone
        if not within(trigger.occurred_at, end, rule.window):
            continue
        in_window = tuple(report for report in qualifying if within(report.occurred_at, end, rule.window))
        episodes = len({report.episode_id for report in in_window})
        if episodes >= rule.threshold:
            findings.append(_finding(state, in_window, episodes, rule, params))
    return findings


def _finding(
    state: SubjectState,
    in_window: tuple[MissingReport, ...],
    episodes: int,
    rule: _Threshold,
    params: RepeatMissingParams,
) -> Finding:
    completing = in_window[-1]
    serious = any(report.looked_after or report.risk_level == "high" for report in in_window)
    status = "missing or away" if params.count_away else "missing"
    whose = " for a looked-after child" if rule.for_looked_after else ""
    summary = (
        f"{pseudonym_label(state.subject_type, state.subject_id)} reported {status} {times(episodes)} "
        f"in {rule.window.describe()} (threshold {rule.threshold}{whose})."
    )
    return Finding(
        triggered_at=completing.occurred_at,
        evidence_event_ids=tuple(report.event_id for report in in_window),
        severity="high" if serious else "medium",
        la_code=completing.la_code,
        summary=summary,
        threshold=rule.threshold,
        count=episodes,
        window=rule.window,
    )


def cooldown(params: RepeatMissingParams) -> Duration:
    return params.window if params.cooldown is None else params.cooldown


def retention(params: RepeatMissingParams) -> tuple[Duration, ...]:
    windows = {params.window}
    if params.looked_after and params.looked_after.window:
        windows.add(params.looked_after.window)
    return tuple(span for window in sorted(windows, key=str) for span in window_retention(window, cooldown(params)))


RULE = RuleDefinition(
    rule_id="repeat_missing",
    version=1,
    description="A child reported missing (absence type `missing`) at least K times within W.",
    source=(
        "Local protocols: no national number; 3 in 90 days is the common trigger, 3 in 12 months is also used, "
        "some partnerships set separate thresholds for children in care."
    ),
    subject_type="child",
    input_event_types=frozenset({"missing.reported"}),
    params_model=RepeatMissingParams,
    reads=frozenset({"missing_reports"}),
    evaluate=evaluate,
    cooldown=cooldown,
    retention=retention,
)
