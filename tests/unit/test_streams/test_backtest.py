"""Backtests (streams/backtest.py): a proposed catalogue beside the current one over a hand-made history, checked
against the rules.md semantics computed independently here; the period; JSONL decoding."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from schemas.codec import encode
from schemas.events import AgencyEvent
from streams.backtest import (
    Backtest,
    BacktestError,
    LineError,
    Period,
    compare,
    decode_jsonl,
    in_event_time_order,
    run_backtest,
)
from streams.rules import Catalogue
from tests.unit.test_streams.backtest_history import (
    CHILDREN,
    HOUSEHOLD,
    PROPOSED,
    history,
    repeat_missing_reference,
)
from tests.unit.test_streams.factories import T0, day

RAISED_AT = datetime(2027, 1, 1, tzinfo=UTC)
EVERYTHING = Period(T0 - timedelta(days=1), T0 + timedelta(days=400))


def backtest(events: list[AgencyEvent], period: Period = EVERYTHING, **catalogues: Catalogue) -> Backtest:
    return run_backtest(
        events,
        catalogues.get("current", Catalogue.default()),
        catalogues.get("proposed", PROPOSED),
        period=period,
        partitions=6,
        raised_at=RAISED_AT,
    )


def test_a_lower_threshold_gains_exactly_the_alerts_the_rules_predict_and_loses_none() -> None:
    events = history()
    current = repeat_missing_reference(events, threshold=3, window_days=90)
    proposed = repeat_missing_reference(events, threshold=2, window_days=90)
    # An episode alerted under both (shared evidence) is changed, not gained: only the rest is extra.
    extra = [p for p in proposed if not any(p.child == c.child and p.evidence & c.evidence for c in current)]
    moved = [p for p in proposed if p not in extra]

    result = backtest(events)

    cmp = result.comparison
    assert {a.alert_id for a in cmp.gained} == {p.alert_id for p in extra}
    assert {a.subject_id for a in cmp.gained} == {CHILDREN[n] for n in "AFWZ"}  # what the docstring says, by hand
    assert all(a.rule_id == "repeat_missing" for a in cmp.gained)
    assert [(a.triggered_at, set(a.evidence_event_ids)) for a in cmp.gained] == [
        (p.triggered_at, set(p.evidence)) for p in sorted(extra, key=lambda p: p.triggered_at)
    ]
    assert cmp.lost == ()
    assert [(c.current.alert_id, c.proposed.alert_id) for c in cmp.changed] == [
        (next(c.alert_id for c in current if c.child == p.child), p.alert_id) for p in moved
    ]
    [change] = cmp.changed
    assert change.current.subject_id == CHILDREN["C"] and change.what == "30 days earlier"
    # Everything else is the same alert under both: the immediate ones, the deadlines closed at the end.
    assert {a.rule_id for a in cmp.same} == {
        "high_risk_missing",
        "domestic_abuse_child_present",
        "da_contact_overdue",
        "return_interview_overdue",
    }
    assert len(result.proposed) - len(result.current) == len(extra)
    assert result.settings[0].rule_id == "repeat_missing" and (
        result.settings[0].current,
        result.settings[0].proposed,
    ) == ("3", "2")


def test_the_same_catalogue_changes_nothing() -> None:
    result = backtest(history(), proposed=Catalogue.default())
    assert result.comparison.gained == result.comparison.lost == result.comparison.changed == ()
    assert len(result.comparison.same) == len(result.current) == len(result.proposed) > 0
    assert result.settings == ()


def test_a_higher_threshold_loses_what_the_lower_one_gained() -> None:
    events = history()
    lowered = backtest(events)
    raised = backtest(events, current=PROPOSED, proposed=Catalogue.default())
    assert {a.alert_id for a in raised.comparison.lost} == {a.alert_id for a in lowered.comparison.gained}
    assert raised.comparison.gained == ()
    assert [c.what for c in raised.comparison.changed] == ["30 days later"]


def test_the_period_selects_alerts_while_earlier_history_still_counts_and_later_events_are_not_replayed() -> None:
    events = history()
    result = backtest(events, Period(day(100), day(200)))
    gained = {a.subject_id: a for a in result.comparison.gained}
    assert set(gained) == {CHILDREN["F"], CHILDREN["W"]}  # A (day 40) before, Z (day 210) after the period
    w = gained[CHILDREN["W"]]
    assert w.triggered_at == day(105)
    assert {result.evidence[i].occurred_at for i in w.evidence_event_ids} == {day(95), day(105)}  # day 95: warm-up
    assert result.replayed == sum(1 for e in events if e.occurred_at < day(200))
    assert result.in_period == sum(1 for e in events if day(100) <= e.occurred_at < day(200))
    assert all(day(100) <= a.triggered_at < day(200) for a in (*result.current, *result.proposed))
    assert result.closed_at == day(200)


def test_a_change_straddling_the_start_of_the_period_is_a_change_not_a_loss() -> None:
    result = backtest(history(), Period(day(60), day(100)))  # C: proposed alerts day 50, current day 80
    assert result.comparison.lost == ()
    [change] = result.comparison.changed
    assert (change.proposed.triggered_at, change.current.triggered_at) == (day(50), day(80))


def test_deadlines_are_closed_at_the_end_of_the_period_or_of_the_history() -> None:
    events = history()
    overdue = "return_interview_overdue"  # G found on day 101, due day 104 09:00
    before = backtest(events, Period(day(90), day(104)))
    assert not [a for a in before.current if a.rule_id == overdue]
    assert before.closed_at == day(104)
    after = backtest(events, Period(day(90), day(105)))
    [alert] = [a for a in after.current if a.rule_id == overdue]
    assert alert.triggered_at == day(104)
    whole = backtest(events)
    assert whole.closed_at == events[-1].occurred_at == day(210)
    households = {a.subject_id for a in whole.current if a.rule_id == "domestic_abuse_child_present"}
    assert households == {HOUSEHOLD}


def test_an_empty_period_is_refused_with_what_the_history_holds() -> None:
    with pytest.raises(BacktestError, match=r"no events between .* the history holds events from 2025-01-06"):
        backtest(history(), Period(day(300), day(330)))
    with pytest.raises(BacktestError, match="no events"):
        backtest([], EVERYTHING)


def test_compare_pairs_only_alerts_that_share_evidence() -> None:
    events = history()
    ours = backtest(events).current
    assert compare(ours, ours).same == tuple(sorted(ours, key=lambda a: (a.triggered_at, a.rule_id, a.alert_id)))
    theirs = backtest(events, proposed=PROPOSED).proposed
    result = compare(ours, theirs)
    assert len(result.same) + len(result.changed) + len(result.lost) == len(ours)
    assert len(result.same) + len(result.changed) + len(result.gained) == len(theirs)


def test_jsonl_lines_decode_to_the_same_events_and_bad_lines_say_why() -> None:
    events = history()
    lines = [encode(e) + b"\n" for e in events]
    lines[3:3] = [b"\n", b'{"event_type": "missing.reported"}\n', b"not json\n"]
    decoded = list(decode_jsonl(lines))
    assert [d for d in decoded if not isinstance(d, LineError)] == events
    errors = [d for d in decoded if isinstance(d, LineError)]
    assert [e.line for e in errors] == [5, 6]
    assert "event_id" in errors[0].reason and "not valid JSON" in errors[1].reason


def test_event_time_order_keeps_the_order_of_ties() -> None:
    events = history()
    shuffled = list(reversed(events))
    assert [e.occurred_at for e in in_event_time_order(shuffled)] == sorted(e.occurred_at for e in events)
