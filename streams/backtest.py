"""Backtests: a proposed rule catalogue over history beside the current one, and what would have changed.

Pure: events in, alerts and their differences out; reading the history (a JSONL file, the ClickHouse tables) and
writing the report are the caller's. Both catalogues run through the worker's own rule step (`streams.replay`)
over the same events in event-time order, the order the rules are defined in (rules.md "Event time"), so upload
delays in the history change nothing.

The period selects *alerts* (by `triggered_at`), not the history: every event before the period's end is
replayed, because rules look back (24 months for `repeat_cp_plan`, for ever with `alert_on_any_previous`). At the
end the deadline clocks are moved to the period's end, or to the newest event when the history stops earlier, so
a duty left unanswered by then is alerted; a deadline after that cannot be judged from the history.

Alerts are matched by `alert_id` (rule, subject and triggering evidence). An alert of one catalogue only is
*changed* rather than gained or lost when the other raised the same rule for the same subject on shared evidence:
the same episode of concern, alerted earlier or later (a lower threshold alerts on the second episode instead of
the third).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from schemas.alerts import AlertRaised
from schemas.codec import decode_event
from schemas.deadletter import safe_error
from schemas.errors import ContractError, SafeguardError
from schemas.events import AgencyEvent
from streams.replay import PartitionOf, Replay, kafka_partitions
from streams.rules import Catalogue, describe_catalogue

PROGRESS_EVERY = 2_000
"""Events between two progress reports: often enough for a bar, rare enough to cost nothing."""


class BacktestError(SafeguardError):
    """The backtest cannot run as asked: an empty period (the message says what the history holds), no events, a
    source it cannot read or a report it cannot write."""


@dataclass(frozen=True)
class Period:
    """[start, end): timezone-aware instants."""

    start: datetime
    end: datetime

    def __contains__(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


@dataclass(frozen=True)
class LineError:
    """A JSONL line that is not a contract event: its number and the reason, identifiers masked."""

    line: int
    reason: str


@dataclass(frozen=True)
class EventRef:
    """What the report shows of an evidence event: its id, type and time (never its fields)."""

    event_id: str
    event_type: str
    occurred_at: datetime


@dataclass(frozen=True)
class Change:
    """One episode of concern alerted under both catalogues, differently (time, evidence or severity)."""

    current: AlertRaised
    proposed: AlertRaised

    @property
    def what(self) -> str:
        """A few words for the report: earlier or later by how long, severity from and to."""
        parts = []
        shift = self.proposed.triggered_at - self.current.triggered_at
        if shift:
            days = abs(shift.total_seconds()) / 86_400
            span = f"{days:.0f} days" if days >= 2 else f"{abs(shift.total_seconds()) / 3600:.0f} hours"
            parts.append(f"{span} {'earlier' if shift.total_seconds() < 0 else 'later'}")
        if self.proposed.severity != self.current.severity:
            parts.append(f"{self.current.severity} to {self.proposed.severity}")
        if not parts:
            parts.append("other evidence")
        return ", ".join(parts)


@dataclass(frozen=True)
class Comparison:
    """The alerts of two catalogues side by side. Every alert is in exactly one of same, changed, gained, lost."""

    same: tuple[AlertRaised, ...]
    changed: tuple[Change, ...]
    gained: tuple[AlertRaised, ...]
    """Raised under the proposed catalogue only, with no counterpart under the current one."""
    lost: tuple[AlertRaised, ...]
    """Raised under the current catalogue only, with no counterpart under the proposed one."""

    def within(self, period: Period) -> Comparison:
        """The alerts triggered in `period`; a change when either of its alerts was (matched over all the history
        first, so an episode alerted just before the period under one catalogue and in it under the other is a
        change, not a gain)."""
        return Comparison(
            same=tuple(a for a in self.same if a.triggered_at in period),
            changed=tuple(
                c for c in self.changed if c.current.triggered_at in period or c.proposed.triggered_at in period
            ),
            gained=tuple(a for a in self.gained if a.triggered_at in period),
            lost=tuple(a for a in self.lost if a.triggered_at in period),
        )


@dataclass(frozen=True)
class SettingChange:
    """A setting whose effective value differs between the catalogues."""

    rule_id: str
    setting: str
    current: str
    proposed: str


@dataclass(frozen=True)
class Backtest:
    """Everything the report shows. `current` and `proposed` hold the alerts triggered in the period."""

    period: Period
    replayed: int
    """Events replayed: those before the period's end (earlier ones as history the rules look back on)."""
    in_period: int
    closed_at: datetime
    current: tuple[AlertRaised, ...]
    proposed: tuple[AlertRaised, ...]
    comparison: Comparison
    evidence: dict[str, EventRef]
    """The evidence events of every gained, lost and changed alert, by event id."""
    settings: tuple[SettingChange, ...]
    partitions: int


def decode_jsonl(lines: Iterable[bytes]) -> Iterator[AgencyEvent | LineError]:
    """Each non-blank line as a contract event (`schemas.codec`, its limits included) or the reason it is not."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield decode_event(line.rstrip(b"\r\n"))
        except ContractError as exc:
            yield LineError(number, safe_error(str(exc)))


def in_event_time_order(events: Iterable[AgencyEvent]) -> list[AgencyEvent]:
    """By `occurred_at`; ties keep the order given (sorting is stable)."""
    return sorted(events, key=lambda event: event.occurred_at)


def run_backtest(
    events: Sequence[AgencyEvent],
    current: Catalogue,
    proposed: Catalogue,
    *,
    period: Period,
    partitions: int,
    raised_at: datetime,
    partition_of: PartitionOf | None = None,
    progress: Callable[[int], None] | None = None,
) -> Backtest:
    """Replay `events` (in event-time order) under both catalogues and compare the alerts triggered in `period`.

    `raised_at` stands for the wall clock (see `Replay`); `progress(done)` is told the events replayed now and then.
    Raises BacktestError when no event falls in the period.
    """
    if not events:
        raise BacktestError("the history holds no events")
    in_period = sum(1 for event in events if event.occurred_at in period)
    if not in_period:
        raise BacktestError(
            f"no events between {period.start.isoformat()} and {period.end.isoformat()}; the history holds events "
            f"from {events[0].occurred_at.isoformat()} to {events[-1].occurred_at.isoformat()}"
        )
    place = partition_of or kafka_partitions(partitions)
    replays = (
        Replay(current, partition_of=place, raised_at=raised_at),
        Replay(proposed, partition_of=place, raised_at=raised_at),
    )
    raised: tuple[list[AlertRaised], list[AlertRaised]] = ([], [])
    replayed = 0
    for event in events:
        if event.occurred_at >= period.end:
            break
        for replay, alerts in zip(replays, raised, strict=True):
            alerts += replay.apply(event)
        replayed += 1
        if progress is not None and replayed % PROGRESS_EVERY == 0:
            progress(replayed)
    closed_at = min(period.end, events[-1].occurred_at)
    for replay, alerts in zip(replays, raised, strict=True):
        alerts += replay.close(closed_at, range(partitions))
    if progress is not None:
        progress(replayed)
    comparison = compare(raised[0], raised[1]).within(period)
    return Backtest(
        period=period,
        replayed=replayed,
        in_period=in_period,
        closed_at=closed_at,
        current=tuple(_in_order(a for a in raised[0] if a.triggered_at in period)),
        proposed=tuple(_in_order(a for a in raised[1] if a.triggered_at in period)),
        comparison=comparison,
        evidence=evidence_of(events[:replayed], comparison),
        settings=setting_changes(current, proposed),
        partitions=partitions,
    )


def compare(current: Iterable[AlertRaised], proposed: Iterable[AlertRaised]) -> Comparison:
    """Match two catalogues' alerts by id, then pair the rest that share rule, subject and some evidence."""
    ours = {a.alert_id: a for a in current}
    theirs = {a.alert_id: a for a in proposed}
    same: list[AlertRaised] = []
    changed: list[Change] = []
    for alert_id, alert in ours.items():
        other = theirs.get(alert_id)
        if other is None:
            continue
        if other.severity == alert.severity:
            same.append(alert)
        else:
            changed.append(Change(alert, other))
    only_ours = _by_concern(a for i, a in ours.items() if i not in theirs)
    only_theirs = _by_concern(a for i, a in theirs.items() if i not in ours)
    lost: list[AlertRaised] = []
    gained: list[AlertRaised] = []
    for concern, alerts in only_ours.items():
        candidates = only_theirs.pop(concern, [])
        for alert in alerts:
            evidence = set(alert.evidence_event_ids)
            match = next((c for c in candidates if evidence.intersection(c.evidence_event_ids)), None)
            if match is None:
                lost.append(alert)
            else:
                candidates.remove(match)
                changed.append(Change(alert, match))
        gained += candidates
    for alerts in only_theirs.values():
        gained += alerts
    return Comparison(
        same=tuple(_in_order(same)),
        changed=tuple(sorted(changed, key=lambda c: _order(c.current))),
        gained=tuple(_in_order(gained)),
        lost=tuple(_in_order(lost)),
    )


def evidence_of(events: Iterable[AgencyEvent], comparison: Comparison) -> dict[str, EventRef]:
    """The id, type and time of every evidence event of the alerts that differ."""
    wanted = {
        event_id
        for alert in (
            *comparison.gained,
            *comparison.lost,
            *(c.current for c in comparison.changed),
            *(c.proposed for c in comparison.changed),
        )
        for event_id in alert.evidence_event_ids
    }
    return {e.event_id: EventRef(e.event_id, e.event_type, e.occurred_at) for e in events if e.event_id in wanted}


def setting_changes(current: Catalogue, proposed: Catalogue) -> tuple[SettingChange, ...]:
    """Every effective setting that differs (`safeguard rules show`'s rows), in catalogue order."""
    ours = {(row.rule_id, row.setting): row.value for row in describe_catalogue(current)}
    return tuple(
        SettingChange(row.rule_id, row.setting, ours.get((row.rule_id, row.setting), "-"), row.value)
        for row in describe_catalogue(proposed)
        if ours.get((row.rule_id, row.setting)) != row.value
    )


def _by_concern(alerts: Iterable[AlertRaised]) -> dict[tuple[str, str, str], list[AlertRaised]]:
    grouped: dict[tuple[str, str, str], list[AlertRaised]] = defaultdict(list)
    for alert in _in_order(alerts):
        grouped[(alert.rule_id, alert.subject_type, alert.subject_id)].append(alert)
    return grouped


def _order(alert: AlertRaised) -> tuple[datetime, str, str]:
    return (alert.triggered_at, alert.rule_id, alert.alert_id)


def _in_order(alerts: Iterable[AlertRaised]) -> list[AlertRaised]:
    return sorted(alerts, key=_order)
