"""RuleProcessor: which state a rule call reads and writes, partition clocks, the deadline index, held-back writes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from schemas.topics import CONTACTS, MISSING_EPISODES
from streams.processor import RuleProcessor
from streams.rules import Catalogue, decode_state
from tests.unit.test_streams.factories import (
    CHILD,
    OTHER_CHILD,
    RAISED_AT,
    contact_received,
    day,
    missing_found,
    missing_reported,
)

MISSING = MISSING_EPISODES.name


def _processor(children: dict[str, Any] | None = None) -> RuleProcessor:
    return RuleProcessor(
        Catalogue.default(), children={} if children is None else children, households={}, partition_of=lambda _: 0
    )


def _found_without_interview(processor: RuleProcessor) -> None:
    processor.apply(missing_reported(day(0), episode="E1"), topic=MISSING, partition=0, raised_at=RAISED_AT)
    processor.apply(missing_found(day(1), episode="E1"), topic=MISSING, partition=0, raised_at=RAISED_AT)


def test_states_reach_the_tables_only_on_flush() -> None:
    children: dict[str, Any] = {}
    processor = _processor(children)
    processor.apply(missing_reported(day(0)), topic=MISSING, partition=0, raised_at=RAISED_AT)
    assert children == {} and processor.pending_writes == 1
    assert processor.flush() == 1
    assert processor.pending_writes == 0
    assert [r.occurred_at for r in decode_state("child", CHILD, children[CHILD]).missing_reports] == [day(0)]


def test_a_deadline_fires_when_the_partition_clock_passes_it_on_that_partition_only() -> None:
    processor = _processor()
    _found_without_interview(processor)
    # Another child's event on the same partition a minute after the deadline (72 hours after the find).
    late = processor.apply(
        missing_reported(day(4, hours=0) + timedelta(minutes=1), child=OTHER_CHILD),
        topic=MISSING,
        partition=0,
        raised_at=RAISED_AT,
    )
    assert [a.rule_id for a in late.alerts] == ["return_interview_overdue"]
    other_partition = _processor()
    _found_without_interview(other_partition)
    step = other_partition.apply(
        missing_reported(day(10), child=OTHER_CHILD), topic=MISSING, partition=1, raised_at=RAISED_AT
    )
    assert step.alerts == [], "a clock of another partition must not fire this child's deadline"


def test_contacts_time_does_not_move_the_missing_clock() -> None:
    processor = _processor()
    _found_without_interview(processor)
    step = processor.apply(
        contact_received(day(30), child=OTHER_CHILD), topic=CONTACTS.name, partition=0, raised_at=RAISED_AT
    )
    assert step.alerts == []


def test_the_live_clock_follows_the_wall_clock_only_when_caught_up_and_recent() -> None:
    processor = _processor()
    _found_without_interview(processor)  # found on day 1: the interview is due by day 4
    recent = missing_reported(day(3, hours=20), child=OTHER_CHILD)  # the partition's newest event
    assert processor.apply(recent, topic=MISSING, partition=0, raised_at=RAISED_AT).alerts == []
    after_deadline = day(4, hours=1)  # minus the allowed lateness (10 minutes): still past the deadline
    assert processor.tick(after_deadline, caught_up=lambda topic, partition: False) == []
    assert processor.tick(day(400), caught_up=lambda topic, partition: True) == [], "old data is not live"
    [alert] = processor.tick(after_deadline, caught_up=lambda topic, partition: True)
    assert alert.rule_id == "return_interview_overdue"
    assert processor.tick(after_deadline + timedelta(hours=1), caught_up=lambda topic, partition: True) == []


def test_after_a_restart_the_deadline_index_is_rebuilt_from_the_tables() -> None:
    children: dict[str, Any] = {}
    before = _processor(children)
    _found_without_interview(before)
    before.flush()
    after = _processor(children)  # a new worker: same tables (recovered from the changelog), no memory
    step = after.apply(missing_reported(day(5), child=OTHER_CHILD), topic=MISSING, partition=0, raised_at=RAISED_AT)
    assert [a.rule_id for a in step.alerts] == ["return_interview_overdue"]
    assert after.pending_deadlines == 0


@pytest.mark.parametrize("deadline_rules", ["enabled", "disabled"])
def test_a_stream_read_months_behind_the_childs_others_still_raises_its_window_alerts(deadline_rules: str) -> None:
    """Topics are read at their own speeds: a worker catching up after a stop read a child's missing reports (or an
    incident's obligation) five months ahead of its contacts. Pruned from that newest event, the first contact was
    gone when the third came, and `multi_agency_concern` was never raised (the SIGKILL year test, 2026-12-07). The
    contacts are pruned from how far the contacts were read instead, whether or not a deadline rule has a clock on
    the contacts topic."""
    catalogue = Catalogue.default()
    if deadline_rules == "disabled":
        for rule_id in ("da_contact_overdue", "return_interview_overdue"):
            catalogue = catalogue.with_params(rule_id, catalogue.params[rule_id].model_copy(update={"enabled": False}))
        assert catalogue.clock_topics("child") == ()
    processor = RuleProcessor(catalogue, children={}, households={}, partition_of=lambda _: 0)

    def contact(at: int, agency: Any) -> list[str]:
        step = processor.apply(
            contact_received(day(at), agency_type=agency), topic=CONTACTS.name, partition=0, raised_at=RAISED_AT
        )
        return [alert.rule_id for alert in step.alerts]

    assert contact(0, "local_authority") == []
    # The missing-episodes topic, read ahead: a report 150 days on. The contacts stream is still at day 0.
    processor.apply(missing_reported(day(150)), topic=MISSING, partition=0, raised_at=RAISED_AT)
    assert contact(15, "police") == []
    assert contact(28, "health") == ["multi_agency_concern"]


def test_a_window_history_is_pruned_once_its_own_stream_has_moved_on() -> None:
    """Kept for a lagging stream, not for ever: once the contacts are read past their retention, they go."""
    children: dict[str, Any] = {}
    processor = _processor(children)
    processor.apply(contact_received(day(0)), topic=CONTACTS.name, partition=0, raised_at=RAISED_AT)
    processor.apply(missing_reported(day(150)), topic=MISSING, partition=0, raised_at=RAISED_AT)
    processor.flush()
    assert len(decode_state("child", CHILD, children[CHILD]).contacts) == 1, "the contacts stream is at day 0"
    # Another child's contact moves the contacts stream on; the next input of this child prunes.
    processor.apply(
        contact_received(day(149), child=OTHER_CHILD), topic=CONTACTS.name, partition=0, raised_at=RAISED_AT
    )
    processor.apply(missing_reported(day(151)), topic=MISSING, partition=0, raised_at=RAISED_AT)
    processor.flush()
    assert decode_state("child", CHILD, children[CHILD]).contacts == []
