"""The fast paths of pruning and date arithmetic give exactly what the plain computation gives.

`history.prune` keeps a record younger than its spans' floor without computing its expiry, drops the oldest records
of a list in place, and only bounds the next expiry; `Duration.after` remembers each day's shift. Each is checked
here against the straightforward computation it replaces, over many random states and moments.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from streams.rules import Catalogue, Duration
from streams.rules.durations import _shifted_day
from streams.rules.history import HISTORY, _expiry, prune
from streams.rules.state import (
    HISTORY_KINDS,
    AlertMark,
    ContactRecord,
    DaAnswer,
    DaContactDuty,
    MissingReport,
    ReferralRecord,
    ReturnInterviewDuty,
    SeenEvent,
    SubjectState,
)

_START = datetime(2019, 1, 1, tzinfo=UTC)
_SPAN_DAYS = 1400  # longer than every retention of the default catalogue


def _plain_after(span: Duration, moment: datetime) -> datetime:
    """Calendar months by replacing the date, then the exact part (what `Duration.after` did before its cache)."""
    utc = moment.astimezone(UTC)
    if span.calendar_months:
        year, month, day = _shifted_day(utc.year, utc.month, utc.day, span.calendar_months)
        utc = utc.replace(year=year, month=month, day=day)
    return utc + span.exact


@pytest.mark.parametrize("text", ["P1M", "P6M", "P12M", "P24M", "P12M180D", "P24M90D", "P1Y6M3DT5H", "P90D"])
def test_after_equals_replacing_the_date(text: str) -> None:
    span = Duration.parse(text)
    rng = random.Random(text)
    month_ends = [datetime(2020, m, 1, tzinfo=UTC) - timedelta(hours=h) for m in range(1, 13) for h in (1, 13, 23)]
    moments = month_ends + [_START + timedelta(seconds=rng.randrange(0, 40 * 365 * 86400)) for _ in range(3000)]
    for moment in moments * 2:  # the second pass reads the remembered shifts
        assert span.after(moment) == _plain_after(span, moment)
        assert span.after(moment).tzinfo is UTC


def test_after_out_of_range_raises_as_before() -> None:
    late = datetime(9999, 6, 1, tzinfo=UTC)
    with pytest.raises(ValueError):
        Duration(months=12).after(late)
    with pytest.raises(OverflowError):
        Duration(days=400).after(late)


def _reference_prune(state: SubjectState, catalogue: Catalogue, pending: frozenset[str]) -> None:
    """Pruning as it was written before its fast paths: every record's expiry computed, new lists built."""
    newest = state.newest_event_at
    assert newest is not None
    horizon = catalogue.horizon(state.subject_type)

    def suffix(records: list[Any], spans: tuple[Duration, ...]) -> list[Any]:
        start = 0
        while start < len(records) and _expiry(records[start].occurred_at, spans) < newest:
            start += 1
        return records[start:]

    state.keep_seen(suffix(list(state.seen), horizon))
    for spec in HISTORY:
        records = list(getattr(state, spec.kind))
        if spec.retention == "forever" or not records:
            continue
        if spec.retention == "window":
            spans = catalogue.kind_retention(spec.kind)
            assert spans is not None
            setattr(state, spec.kind, suffix(records, spans))
            continue
        kept = []
        for r in records:
            moment = spec.moment(r)
            if moment is None or spec.entity(r) in pending or _expiry(moment, horizon) >= newest:
                kept.append(r)
        setattr(state, spec.kind, kept)
    marks = catalogue.mark_retention(state.subject_type)
    state.alerts = [
        mark
        for mark in state.alerts
        if (spans := marks.get(mark.rule_id, horizon)) is None or _expiry(mark.triggered_at, spans) >= newest
    ]


def _random_state(rng: random.Random) -> SubjectState:
    def at() -> datetime:
        return _START + timedelta(days=rng.uniform(0, _SPAN_DAYS))

    def some(make: Any) -> list[Any]:
        return [make(i) for i in range(rng.choice((0, 1, 3, 15, 17, 40)))]

    rules = ("repeat_missing", "re_referral", "multi_agency_concern", "return_interview_overdue", "repeat_cp_plan")
    state = SubjectState(
        "child",
        f"{rng.getrandbits(256):064x}",
        seen=some(lambda i: SeenEvent(f"seen-{i}", at())),
        missing_reports=some(lambda i: MissingReport(f"m-{i}", at(), "E08000035", f"ep-{i}", False, "missing", "low")),
        return_interviews=some(
            lambda i: ReturnInterviewDuty(f"ep-{i}", "E08000035", f"f-{i}", at() if rng.random() < 0.9 else None)
        ),
        referrals=some(lambda i: ReferralRecord(f"r-{i}", at(), "E08000035", f"c-{i}", "referral")),
        contacts=some(lambda i: ContactRecord(f"c-{i}", at(), "E08000035", f"c-{i}", "police")),
        da_contacts=some(
            lambda i: DaContactDuty(f"inc-{i}", f"o-{i}", at(), None, "E08000035", (DaAnswer(f"a-{i}", "c", at()),))
        ),
        alerts=some(lambda i: AlertMark(rng.choice(rules), f"{i:032x}", at(), None)),
    )
    newest = max((r.occurred_at for r in state.seen), default=_START + timedelta(days=_SPAN_DAYS))
    state.newest_event_at = newest + timedelta(days=rng.uniform(0, 400))
    return state


@pytest.mark.parametrize("seed", range(300))
def test_prune_keeps_exactly_what_the_plain_computation_keeps(seed: int) -> None:
    catalogue = Catalogue.default()
    rng = random.Random(seed)
    state = _random_state(rng)
    duties = [f"episode:{d.episode_id}" for d in state.return_interviews]
    duties += [f"incident:{d.incident_id}" for d in state.da_contacts]
    pending = frozenset(entity for entity in duties if rng.random() < 0.3)
    seen_before = [event.event_id for event in state.seen]
    expected = state.copy()
    _reference_prune(expected, catalogue, pending)

    prune(
        state,
        horizon=catalogue.horizon("child"),
        kind_retention=catalogue.kind_retention,
        pending_entities=lambda: pending,
        mark_retention=catalogue.mark_retention("child"),
    )

    assert state == expected
    for kind in (*HISTORY_KINDS, "seen", "alerts"):
        assert list(getattr(state, kind)) == list(getattr(expected, kind)), kind
    kept_ids = {event.event_id for event in expected.seen}
    for event_id in seen_before:
        assert state.has_seen(event_id) == (event_id in kept_ids)  # the set beside the list follows it
    # `prune_after` is a lower bound of every kept record's expiry: pruning is never late.
    assert state.prune_after is not None
    horizon = catalogue.horizon("child")
    for event in state.seen:
        assert _expiry(event.occurred_at, horizon) >= state.prune_after
    for mark in state.alerts:
        spans = catalogue.mark_retention("child").get(mark.rule_id, horizon)
        if spans is not None:
            assert _expiry(mark.triggered_at, spans) >= state.prune_after


@pytest.mark.parametrize("seed", range(50))
def test_seen_ids_kept_in_time_key_order_whatever_the_arrival_order(seed: int) -> None:
    """`add_seen` into the parallel lists gives the order a sorted list of `SeenEvent`s has (ties by event id)."""
    rng = random.Random(seed)
    state = SubjectState.empty("child", "c" * 64)
    added: list[SeenEvent] = []
    for i in range(rng.choice((3, 16, 17, 60))):
        moment = _START + timedelta(hours=rng.randrange(0, 30))  # many equal times
        event = SeenEvent(f"{rng.getrandbits(32):08x}-{i}", moment)
        state.add_seen(event.event_id, event.occurred_at)
        added.append(event)
        assert state.seen == sorted(added, key=lambda e: (e.occurred_at, e.event_id))
        assert all(state.has_seen(e.event_id) for e in added)
        assert not state.has_seen("never-applied")
    twin = state.copy()
    twin.forget_oldest_seen(len(added) // 2)
    assert twin.seen == state.seen[len(added) // 2 :]
    assert [twin.has_seen(e.event_id) for e in state.seen] == [i >= len(added) // 2 for i in range(len(added))]
