"""The rule builders' window walk is rules.md's definition, found by bisection; pruning's lower bound is a bound."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.rules import Catalogue
from streams.rules.builders import Limit, _windows
from streams.rules.durations import Duration, within
from streams.rules.state import NO_RECORDS, HistoryKind, SubjectState

START = datetime(2024, 1, 29, tzinfo=UTC)  # near month ends, where calendar months are uneven


class Rec(NamedTuple):
    event_id: str
    occurred_at: datetime
    tag: bool


def _naive(
    records: Sequence[Rec], trigger: Rec, limits: tuple[Limit, ...]
) -> list[tuple[datetime, Limit, tuple[Rec, ...]]]:
    """rules.md as written: every window end τ at a record time with trigger ≤ τ ≤ trigger + W (W picked at τ)."""
    found = []
    for end in sorted({r.occurred_at for r in records if r.occurred_at >= trigger.occurred_at}):
        completing = [r for r in records if r.occurred_at == end]
        limit = limits[1] if len(limits) > 1 and any(r.tag for r in completing) else limits[0]
        if not within(trigger.occurred_at, end, limit.window):
            continue
        found.append((end, limit, tuple(r for r in records if within(r.occurred_at, end, limit.window))))
    return found


def _pick(completing: Sequence[Any], limits: tuple[Limit, ...]) -> Limit:
    return limits[1] if len(limits) > 1 and any(r.tag for r in completing) else limits[0]


windows = st.sampled_from(
    [Duration(days=1), Duration(days=3), Duration(days=30), Duration(months=1), Duration(months=2)]
)


@settings(max_examples=300, deadline=None)
@given(
    offsets=st.lists(st.tuples(st.integers(0, 24 * 120), st.booleans()), min_size=1, max_size=25),
    trigger_at=st.integers(0, 24),
    own=windows,
    other=st.none() | windows,
)
def test_the_window_walk_is_the_definition(
    offsets: list[tuple[int, bool]], trigger_at: int, own: Duration, other: Duration | None
) -> None:
    records = sorted(
        (Rec(f"e{i:03d}", START + timedelta(hours=hours), tag) for i, (hours, tag) in enumerate(offsets)),
        key=lambda r: (r.occurred_at, r.event_id),
    )
    trigger = records[trigger_at % len(records)]
    limits = (Limit(own, 2),) if other is None else (Limit(own, 2), Limit(other, 3, note=" other"))
    walked = [(w.end, w.limit, w.records) for w in _windows(records, trigger, limits, _pick, "label")]
    assert walked == _naive(records, trigger, limits)


def test_the_shared_empty_history_refuses_to_change() -> None:
    state = SubjectState.empty("child", "c" * 64)
    assert state.contacts == [] and state.contacts is NO_RECORDS
    with pytest.raises(TypeError):
        state.contacts.append(object())  # type: ignore[arg-type]
    assert NO_RECORDS == []


@settings(max_examples=200, deadline=None)
@given(moment=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)))
def test_pruning_is_never_tried_late(moment: datetime) -> None:
    """`earliest_expiry` is at or before every span pruning measures with, from any moment."""
    catalogue = Catalogue.default()
    for subject in ("child", "household"):
        spans = {*catalogue.horizon(subject)}
        kinds: tuple[HistoryKind, ...] = ("missing_reports", "referrals", "contacts", "incidents")
        spans |= {span for kind in kinds for span in catalogue.kind_retention(kind) or ()}
        spans |= {span for marks in catalogue.mark_retention(subject).values() for span in marks or ()}
        floor = catalogue.earliest_expiry(subject, moment)
        assert all(floor <= span.after(moment) for span in spans)
