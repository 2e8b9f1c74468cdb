"""`repeat_cp_plan`: a child protection plan starts for a child who has had a plan before.

Severity `high` when the new plan starts within the lookback (24 months) of the end of the child's
most recent earlier plan (Leeds), `medium` for any earlier plan (DfE "second or subsequent"), unless
`alert_on_any_previous` is false. The earlier plan is known from the stream, or only from the
start event's `previous_plans` / `previous_plan_ended_at` (history older than the stream).

`high` is raised only when it is certain. An earlier plan still open at the new start (overlap)
ends, for this purpose, at the new start. An earlier plan whose end has not been seen (its end
event not arrived yet, e.g. a backfill arriving start first) ended no earlier than it started, so
its start stands in for its end: `high` if even that is within the lookback, else `medium`.
Plans are never pruned: "ever" needs the whole history, and a child has few plans.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from pydantic import Field

from schemas.events import CpPlanEnded, CpPlanStarted
from streams.rules.definition import Finding, PositiveDuration, RuleDefinition, RuleInput, RuleParams, pseudonym_label
from streams.rules.durations import Duration
from streams.rules.state import PlanRecord, SubjectState


class RepeatCpPlanParams(RuleParams):
    lookback: PositiveDuration = Field(default=Duration(months=24), description="from the previous plan's end")
    alert_on_any_previous: bool = Field(default=True, description="false: alert only within the lookback")
    cooldown: Duration | None = Field(default=None, description="unset: the lookback")


@dataclass(frozen=True)
class _Previous:
    """The child's most recent plan before a start, as far as the stream knows it."""

    plan: PlanRecord
    ended_at: datetime


def _is_before(earlier: PlanRecord, plan: PlanRecord) -> bool:
    if earlier.plan_id == plan.plan_id or plan.started_at is None:
        return False
    if earlier.started_at is not None:
        return earlier.started_at < plan.started_at
    return earlier.ended_at is not None and earlier.ended_at <= plan.started_at


def _known_end(earlier: PlanRecord, start: datetime) -> datetime:
    """The latest time the earlier plan is known to have lasted until, as seen from a new plan's `start`."""
    if earlier.ended_at is not None:
        return min(earlier.ended_at, start)
    assert earlier.started_at is not None  # _is_before: a plan with neither start nor end is never earlier
    return earlier.started_at


def _previous(plans: Sequence[PlanRecord], plan: PlanRecord, start: datetime) -> _Previous | None:
    """The earlier plan known to have lasted latest."""
    candidates = [_Previous(earlier, _known_end(earlier, start)) for earlier in plans if _is_before(earlier, plan)]
    return max(candidates, key=lambda p: (p.ended_at, p.plan.plan_id), default=None)


def _finding(state: SubjectState, plan: PlanRecord, params: RepeatCpPlanParams) -> Finding | None:
    start = plan.started_at
    if start is None or plan.start_event_id is None:
        return None
    previous = _previous(state.plans, plan, start)
    ended_on = plan.previous_plan_ended_at  # a date: the lookback then holds to the end of that day
    within_lookback = (previous is not None and start <= params.lookback.after(previous.ended_at)) or (
        ended_on is not None and start.date() <= params.lookback.after_date(ended_on)
    )
    had_plan = previous is not None or bool(plan.previous_plans) or plan.previous_plan_ended_at is not None
    if not within_lookback and not (had_plan and params.alert_on_any_previous):
        return None
    label = pseudonym_label(state.subject_type, state.subject_id)
    evidence = [plan.start_event_id]
    if previous is not None:
        evidence += [e for e in (previous.plan.start_event_id, previous.plan.end_event_id) if e is not None]
    if within_lookback:
        summary = (
            f"{label} started a child protection plan within {params.lookback.describe()} "
            "of the end of a previous plan."
        )
    else:
        summary = f"{label} started a second or subsequent child protection plan."
    return Finding(
        triggered_at=start,
        evidence_event_ids=tuple(evidence),
        severity="high" if within_lookback else "medium",
        la_code=plan.la_code,
        summary=summary,
        entity=f"plan:{plan.plan_id}",
    )


def evaluate(state: SubjectState, item: RuleInput, params: RepeatCpPlanParams) -> list[Finding]:
    """The plan this event is about, and every later plan it is now known to precede (late arrivals)."""
    if not isinstance(item, CpPlanStarted | CpPlanEnded):
        return []
    changed = next((plan for plan in state.plans if plan.plan_id == item.plan_id), None)
    if changed is None:
        return []
    affected = [plan for plan in state.plans if plan.plan_id == changed.plan_id or _is_before(changed, plan)]
    findings = (_finding(state, plan, params) for plan in affected)
    return [finding for finding in findings if finding is not None]


def cooldown(params: RepeatCpPlanParams) -> Duration:
    return params.lookback if params.cooldown is None else params.cooldown


def retention(params: RepeatCpPlanParams) -> tuple[Duration, ...]:
    return ()


RULE = RuleDefinition(
    rule_id="repeat_cp_plan",
    version=1,
    description="A `cp_plan.started` for a child who has had a plan before (high within the lookback).",
    source=(
        'DfE "second or subsequent plan" (ever); Leeds reports plans "within 24 months of the last plan" '
        "(previous plan's end)."
    ),
    subject_type="child",
    input_event_types=frozenset({"cp_plan.started", "cp_plan.ended"}),
    params_model=RepeatCpPlanParams,
    reads=frozenset({"plans"}),
    evaluate=evaluate,
    cooldown=cooldown,
    retention=retention,
    keeps_history_forever=True,
)
