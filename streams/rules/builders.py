"""The two shapes most rules have, built once: a rule module states only its condition and its metadata.

`window_rule` (and `count_rule`, the common case of it): a condition over the records of one history kind
that fall in a closed window of event time through the new record (rules.md: "at least K ... within W").
The builder finds the new record, walks every window that contains it, and derives what every window
rule shares: the cooldown (default: the window) and the retention (`window_retention` of each window).

`deadline_rule`: a duty of one history kind opened at some event time, answered in time or not; the
partition clock of one topic decides when it is overdue (rules.md "Deadline rules"). One alert per duty.

Either builder returns a plain `RuleDefinition`; the engine knows nothing of the shapes.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Hashable, Sequence
from datetime import datetime
from operator import attrgetter
from typing import Any, Generic, NamedTuple, TypeVar

from schemas.types import Severity, SubjectType
from streams.rules.definition import (
    DeadlineSpec,
    Finding,
    RuleDefinition,
    RuleInput,
    RuleParams,
    no_findings,
    pseudonym_label,
    window_retention,
)
from streams.rules.durations import Duration
from streams.rules.history import HISTORY
from streams.rules.obligations import DaObligation
from streams.rules.state import HistoryKind, SubjectState, Timed

R = TypeVar("R", bound=Timed)
P = TypeVar("P", bound=RuleParams)


class Limit(NamedTuple):
    """A window length and (for count rules) the threshold that applies in it; `note` is said in the summary."""

    window: Duration
    threshold: int | None = None
    note: str = ""


class Window(NamedTuple, Generic[R]):
    """One closed window through the new record, as a rule's condition sees it.

    `records`: the counted records with `end - window <= occurred_at <= end`, in event-time order (the
    last one is at `end`). `trigger` is the new record; `label` names the subject for a summary.
    """

    end: datetime
    records: tuple[R, ...]
    limit: Limit
    trigger: R
    label: str


class Hit(NamedTuple):
    """The condition holds in a window: on what evidence (in order), how serious, and what to tell the manager.

    `la_code` defaults to the latest record's in the window; `counted` is reported on the alert as its count.
    """

    evidence: Sequence[Timed]
    severity: Severity
    summary: str
    counted: int | None = None
    la_code: str | None = None


def _first_limit(completing: Sequence[Any], limits: tuple[Limit, ...]) -> Limit:
    return limits[0]


def window_rule(
    *,
    rule_id: str,
    version: int,
    description: str,
    source: str,
    subject_type: SubjectType,
    params_model: type[P],
    reads: HistoryKind,
    on: str,
    condition: Callable[[Window[Any], P], Hit | None],
    limits: Callable[[P], tuple[Limit, ...]] | None = None,
    pick: Callable[[Sequence[Any], tuple[Limit, ...]], Limit] = _first_limit,
    counts: Callable[[Any, P], bool] | None = None,
    at_least: Callable[[tuple[Limit, ...]], int] | None = None,
    may_hold: Callable[[Sequence[Any], int], bool] | None = None,
) -> RuleDefinition[P]:
    """A rule whose condition is checked in every closed window through the new `reads` record of an `on` input.

    `limits(params)`: the windows (and thresholds) the rule can use, its own first (default: `params.window`);
    `pick(completing records, limits)` chooses one per window end from the records at that end (default: the
    first). `counts(record, params)`: which records take part at all (default: all; the new record must).
    `at_least(limits)`: fewer counted records than this can never satisfy the condition (skips the walk);
    `may_hold(counted records, at_least)`: False when no window of them can (the same, found from all of them).
    The cooldown is `params.cooldown`, unset: the rule's own window; the history is kept for
    `window_retention` of every window the rule can use.
    """
    records_of: Callable[[SubjectState], list[Any]] = attrgetter(reads)
    limits_of: Callable[[P], tuple[Limit, ...]] = limits or _own_window
    derived: dict[int, tuple[P, tuple[Limit, ...], int]] = {}

    def settings(params: P) -> tuple[tuple[Limit, ...], int]:
        """The limits and the fewest records that can hold, derived once per params object."""
        found = derived.get(id(params))
        if found is None or found[0] is not params:
            if len(derived) > 64:
                derived.clear()
            rule_limits = limits_of(params)
            found = derived[id(params)] = (params, rule_limits, 1 if at_least is None else at_least(rule_limits))
        return found[1], found[2]

    def evaluate(state: SubjectState, item: RuleInput, params: P) -> list[Finding]:
        records = records_of(state)
        if not records or item.event_type != on:
            return []
        rule_limits, fewest = settings(params)
        if len(records) < fewest:
            return []
        trigger = _record_with_id(records, item.source_event_id if isinstance(item, DaObligation) else item.event_id)
        if trigger is None:
            return []
        if counts is not None:
            if not counts(trigger, params):
                return []
            records = [record for record in records if counts(record, params)]
            if len(records) < fewest:
                return []
        if may_hold is not None and not may_hold(records, fewest):
            return []
        findings: list[Finding] = []
        label = pseudonym_label(state.subject_type, state.subject_id)
        for window in _windows(records, trigger, rule_limits, pick, label):
            hit = condition(window, params)
            if hit is not None:
                findings.append(
                    Finding(
                        triggered_at=window.end,
                        evidence_event_ids=tuple(record.event_id for record in hit.evidence),
                        severity=hit.severity,
                        la_code=hit.la_code or window.records[-1].la_code,
                        summary=hit.summary,
                        threshold=window.limit.threshold,
                        count=hit.counted,
                        window=window.limit.window,
                    )
                )
        return findings

    def cooldown(params: P) -> Duration:
        own: Duration | None = getattr(params, "cooldown", None)
        return limits_of(params)[0].window if own is None else own

    def retention(params: P) -> tuple[Duration, ...]:
        windows = sorted({limit.window for limit in limits_of(params)}, key=str)
        return tuple(span for window in windows for span in window_retention(window, cooldown(params)))

    return RuleDefinition(
        rule_id=rule_id,
        version=version,
        description=description,
        source=source,
        subject_type=subject_type,
        input_event_types=frozenset({on}),
        params_model=params_model,
        reads=frozenset({reads}),
        evaluate=evaluate,
        cooldown=cooldown,
        retention=retention,
    )


def count_rule(
    *,
    rule_id: str,
    version: int,
    description: str,
    source: str,
    subject_type: SubjectType,
    params_model: type[P],
    reads: HistoryKind,
    on: str,
    distinct: Callable[[Any], Hashable],
    severity: Severity | Callable[[Window[Any]], Severity],
    summary: Callable[[Window[Any], int, P], str],
    limits: Callable[[P], tuple[Limit, ...]] | None = None,
    pick: Callable[[Sequence[Any], tuple[Limit, ...]], Limit] = _first_limit,
    counts: Callable[[Any, P], bool] | None = None,
) -> RuleDefinition[P]:
    """At least `threshold` distinct `distinct(record)` values in a window (default limit: params.window and
    params.threshold). Evidence: every counted record in the window; `summary(window, count, params)`."""
    rated: Callable[[Window[Any]], Severity] = (lambda _: severity) if isinstance(severity, str) else severity

    def may_hold(records: Sequence[Any], fewest: int) -> bool:
        """A window holds no more distinct values than all the records do."""
        return len({distinct(record) for record in records}) >= fewest

    def condition(window: Window[Any], params: P) -> Hit | None:
        threshold = window.limit.threshold or 1
        if len(window.records) < threshold:
            return None
        count = len({distinct(record) for record in window.records})
        if count < threshold:
            return None
        return Hit(window.records, rated(window), summary(window, count, params), counted=count)

    return window_rule(
        rule_id=rule_id,
        version=version,
        description=description,
        source=source,
        subject_type=subject_type,
        params_model=params_model,
        reads=reads,
        on=on,
        condition=condition,
        limits=limits or _own_threshold,
        pick=pick,
        counts=counts,
        at_least=_fewest,
        may_hold=may_hold,
    )


def _own_window(params: Any) -> tuple[Limit, ...]:
    return (Limit(params.window),)


def _own_threshold(params: Any) -> tuple[Limit, ...]:
    return (Limit(params.window, params.threshold),)


def _fewest(limits: tuple[Limit, ...]) -> int:
    return min(limit.threshold or 1 for limit in limits)


def _record_with_id(records: Sequence[R], event_id: str) -> R | None:
    """The stored record of this event (most often the newest), or None when the state did not keep it."""
    for at in range(len(records) - 1, -1, -1):
        if records[at].event_id == event_id:
            return records[at]
    return None


def _windows(
    records: Sequence[R],
    trigger: R,
    limits: tuple[Limit, ...],
    pick: Callable[[Sequence[R], tuple[Limit, ...]], Limit],
    label: str,
) -> list[Window[R]]:
    """Every closed window through `trigger` that ends at a record's time, earliest end first.

    rules.md: a window rule holds when enough events fall in *some* closed interval of length W that
    contains the event being processed. Such an interval can always be slid to end at its latest event
    τ, so it is enough to look at each event time τ with trigger ≤ τ ≤ trigger + W, and take the records
    y with y ≤ τ ≤ y + W (a late event is counted where it belongs in time). W is the limit `pick` chooses
    from the records at τ. Records are in event-time order and `y + W` grows with y, so each window is
    one slice of them, found by bisection.
    """
    start = trigger.occurred_at
    single = len(limits) == 1
    latest = limits[0].window.after(start) if single else max(limit.window.after(start) for limit in limits)
    oldest = records[0].occurred_at
    windows: list[Window[R]] = []
    at = bisect_left(records, start, key=_TIME)
    count = len(records)
    while at < count:
        end = records[at].occurred_at
        if end > latest:
            break
        stop = bisect_right(records, end, at, key=_TIME)
        limit = limits[0] if single else pick(records[at:stop], limits)
        span = limit.window
        if not single and span.after(start) < end:  # the trigger is outside the window this end's limit gives
            at = stop
            continue
        if span.after(oldest) >= end:
            first = 0  # the window reaches back to the oldest record (short histories)
        else:
            first = bisect_left(records, True, 1, stop, key=lambda record: span.after(record.occurred_at) >= end)
        windows.append(Window(end, tuple(records[first:stop]), limit, trigger, label))
        at = stop
    return windows


_TIME = attrgetter("occurred_at")


# --- deadline rules -------------------------------------------------------------------------------------


class Duty(NamedTuple):
    """How a deadline rule reads one duty record: when it opened, when (if ever) it was first answered."""

    opened_at: datetime | None
    answered_at: datetime | None
    evidence_event_id: str | None
    la_code: str | None


class _Deadline(Generic[P]):
    """`pending` and `due` of a deadline rule, from how it reads a duty."""

    def __init__(
        self,
        records_of: Callable[[SubjectState], list[Any]],
        entity: Callable[[Any], str],
        duty: Callable[[Any], Duty],
        severity: Callable[[Any], Severity],
        summary: Callable[[str, Any, P], str],
    ) -> None:
        self.records_of, self.entity, self.duty, self.severity, self.summary = (
            records_of,
            entity,
            duty,
            severity,
            summary,
        )

    def pending(self, state: SubjectState, params: P) -> list[tuple[str, datetime]]:
        span: Duration = params.deadline  # type: ignore[attr-defined]
        after, duty, entity = span.after, self.duty, self.entity  # asked for every duty held, at every change
        found = []
        for record in self.records_of(state):
            opened_at, answered_at, _, _ = duty(record)
            if opened_at is None:
                continue
            deadline = after(opened_at)
            if answered_at is None or answered_at > deadline:
                found.append((entity(record), deadline))
        return found

    def due(self, state: SubjectState, clock: datetime, params: P) -> list[Finding]:
        span: Duration = params.deadline  # type: ignore[attr-defined]
        findings = []
        label = ""
        for record in self.records_of(state):
            opened_at, answered_at, evidence, la_code = self.duty(record)
            if opened_at is None or evidence is None or la_code is None:
                continue
            deadline = span.after(opened_at)
            if deadline > clock or (answered_at is not None and answered_at <= deadline):
                continue
            label = label or pseudonym_label(state.subject_type, state.subject_id)
            findings.append(
                Finding(
                    triggered_at=deadline,
                    evidence_event_ids=(evidence,),
                    severity=self.severity(record),
                    la_code=la_code,
                    summary=self.summary(label, record, params),
                    entity=self.entity(record),
                )
            )
        return findings


def deadline_rule(
    *,
    rule_id: str,
    version: int,
    description: str,
    source: str,
    subject_type: SubjectType,
    params_model: type[P],
    reads: HistoryKind,
    on: frozenset[str],
    clock_topic: str,
    duty: Callable[[Any], Duty],
    severity: Severity | Callable[[Any], Severity],
    summary: Callable[[str, Any, P], str],
) -> RuleDefinition[P]:
    """A duty per `reads` record, due `params.deadline` after `duty(record).opened_at`, unless answered by then.

    Fires when `clock_topic`'s partition clock reaches the deadline; one alert per duty (its entity is the
    history kind's, e.g. `episode:<id>`). Evidence: the event that opened the duty. The cooldown is
    `params.cooldown` (unset: none); the history is kept the subject's horizon once the deadline has passed
    or was met, and for ever while it waits (`history.prune`).
    """
    spec = next(spec for spec in HISTORY if spec.kind == reads)
    rated: Callable[[Any], Severity] = (lambda _: severity) if isinstance(severity, str) else severity
    deadline = _Deadline[P](attrgetter(reads), spec.entity, duty, rated, summary)

    def cooldown(params: P) -> Duration | None:
        own: Duration | None = getattr(params, "cooldown", None)
        return own

    def retention(params: P) -> tuple[Duration, ...]:
        return (params.deadline,)  # type: ignore[attr-defined]

    return RuleDefinition(
        rule_id=rule_id,
        version=version,
        description=description,
        source=source,
        subject_type=subject_type,
        input_event_types=on,
        params_model=params_model,
        reads=frozenset({reads}),
        evaluate=no_findings,
        cooldown=cooldown,
        retention=retention,
        deadline=DeadlineSpec(clock_topic=clock_topic, due=deadline.due, pending=deadline.pending),
    )
