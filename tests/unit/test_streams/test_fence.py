"""The offset fence: records applied in order from the committed offset; one past the next is held back and the
partition sought back, as often as it takes: never skipped."""

from __future__ import annotations

from streams.fence import OffsetFence, Verdict

APPLY, HOLD = Verdict.APPLY, Verdict.HOLD


def test_records_in_order_from_the_committed_offset_are_applied() -> None:
    fence: OffsetFence[str] = OffsetFence()
    assert [fence.admit("p0", offset, committed=10, now=0.0) for offset in (10, 11, 12)] == [APPLY] * 3
    assert fence.take_seeks() == {} and fence.held == 0


def test_without_a_committed_offset_the_first_record_starts_the_partition() -> None:
    fence: OffsetFence[str] = OffsetFence()
    assert fence.admit("p0", 7, committed=None, now=0.0) is APPLY
    assert fence.admit("p0", 9, committed=None, now=0.0) is HOLD
    assert fence.take_seeks() == {"p0": 8}


def test_a_record_past_the_next_is_held_and_the_partition_sought_back_once() -> None:
    """The rebalance of 2026-12-07: committed 1162, first record delivered 1526 (from the old position)."""
    fence: OffsetFence[str] = OffsetFence()
    assert fence.admit("p0", 1526, committed=1162, now=0.0) is HOLD
    assert fence.take_seeks() == {"p0": 1162}
    # Records still queued from the old position: held, without seeking again meanwhile.
    assert [fence.admit("p0", offset, committed=1162, now=1.0) for offset in (1527, 1528)] == [HOLD, HOLD]
    assert fence.take_seeks() == {}
    assert fence.held == 3
    # The seek took: the records come again from 1162, in order, and are applied (1526 too, this time).
    assert [fence.admit("p0", offset, committed=1162, now=1.5) for offset in range(1162, 1530)] == [APPLY] * 368


def test_records_already_applied_are_applied_again_for_the_state_to_dedupe() -> None:
    fence: OffsetFence[str] = OffsetFence()
    for offset in (5, 6, 7):
        fence.admit("p0", offset, committed=5, now=0.0)
    assert fence.admit("p0", 6, committed=5, now=0.0) is APPLY
    assert fence.admit("p0", 8, committed=5, now=0.0) is APPLY


def test_partitions_are_fenced_apart() -> None:
    fence: OffsetFence[str] = OffsetFence()
    assert fence.admit("p0", 3, committed=0, now=0.0) is HOLD
    assert fence.admit("p1", 0, committed=0, now=0.0) is APPLY
    assert fence.take_seeks() == {"p0": 0}


def test_a_partition_is_never_skipped_however_often_seeks_answer_past_the_next_offset() -> None:
    """Under load records queued before each seek kept answering past 2548 (2026-12-07); taking that for a gap in the
    log lost a contact. The fence seeks again every `retry_after_s` and holds on; it reports the stall instead."""
    fence: OffsetFence[str] = OffsetFence(retry_after_s=5.0)
    assert fence.admit("p0", 2600, committed=2548, now=0.0) is HOLD
    assert fence.take_seeks() == {"p0": 2548}
    assert fence.admit("p0", 2601, committed=2548, now=4.9) is HOLD  # too soon to seek again
    assert fence.take_seeks() == {}
    for n, now in enumerate((5.0, 10.0, 15.0, 20.0, 60.0), start=2):
        assert fence.admit("p0", 2600, committed=2548, now=now) is HOLD
        assert fence.take_seeks() == {"p0": 2548}
        assert fence.stalled(seeks=n) == {"p0": 2548} and fence.stalled(seeks=n + 1) == {}
    assert fence.admit("p0", 2548, committed=2548, now=61.0) is APPLY
    assert not fence.rewinding and fence.stalled(seeks=1) == {}


def test_a_seek_that_brings_nothing_is_repeated_by_the_timer_and_never_taken_for_a_gap() -> None:
    """The seek of 2026-12-07 made from the wrong thread: nothing came after it, and the partition stood still."""
    fence: OffsetFence[str] = OffsetFence(retry_after_s=5.0)
    assert fence.admit("p0", 1526, committed=1231, now=0.0) is HOLD
    assert fence.take_seeks() == {"p0": 1231}
    fence.overdue(now=4.0)
    assert fence.take_seeks() == {}
    for now in (5.0, 10.0, 15.0, 20.0):
        fence.overdue(now=now)
        assert fence.take_seeks() == {"p0": 1231}
    assert fence.rewinding
    assert fence.admit("p0", 1231, committed=1231, now=21.0) is APPLY
    assert not fence.rewinding


def test_a_rebalance_forgets_the_partitions_it_revoked() -> None:
    fence: OffsetFence[str] = OffsetFence()
    for tp in ("p0", "p1"):
        fence.admit(tp, 0, committed=0, now=0.0)
        fence.admit(tp, 5, committed=0, now=0.0)  # held, seek pending
    fence.forget({"p0"})
    assert fence.take_seeks() == {"p1": 1}
    # p0 starts again from its committed offset (another worker may have moved it on meanwhile).
    assert fence.admit("p0", 40, committed=40, now=1.0) is APPLY
    fence.forget()
    assert fence.admit("p1", 9, committed=9, now=1.0) is APPLY


def test_a_partition_nothing_came_from_is_sought_back_to_its_committed_offset() -> None:
    """Faust kept the position from before the rebalance (the end): records read but never committed would not come
    again until a new record showed the jump."""
    fence: OffsetFence[str] = OffsetFence()
    assert not fence.seen("p0")
    fence.rewind("p0", 30, now=0.0)
    assert fence.seen("p0") and fence.rewinding
    assert fence.take_seeks() == {"p0": 30}
    assert fence.admit("p0", 31, committed=30, now=1.0) is HOLD  # still queued from before: not yet
    assert fence.admit("p0", 30, committed=30, now=1.5) is APPLY
    assert fence.admit("p0", 31, committed=30, now=1.5) is APPLY
    assert not fence.rewinding
