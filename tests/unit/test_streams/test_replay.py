"""The worker's rule step in one process (streams/replay.py): deadlines fire on the partition clocks, or at `close`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from streams.replay import Replay, kafka_partitions, replay_alerts
from streams.rules import Catalogue
from tests.unit.test_streams.factories import CHILD, OTHER_CHILD, day, missing_found, missing_reported

RAISED_AT = datetime(2027, 1, 1, tzinfo=UTC)
OVERDUE = "return_interview_overdue"


def _unanswered() -> list:  # a child found on day 1 with no return interview: due day 4
    return [missing_reported(day(0), episode="MP-1"), missing_found(day(1), episode="MP-1")]


def test_a_deadline_waits_for_its_partition_clock_or_the_close() -> None:
    events = _unanswered()
    assert not [a for a in replay_alerts(events, Catalogue.default(), partitions=6, raised_at=RAISED_AT)]
    early = replay_alerts(
        events, Catalogue.default(), partitions=6, raised_at=RAISED_AT, close_at=day(4) - timedelta(seconds=1)
    )
    assert not [a for a in early if a.rule_id == OVERDUE]
    [alert] = replay_alerts(events, Catalogue.default(), partitions=6, raised_at=RAISED_AT, close_at=day(4))
    assert (alert.rule_id, alert.subject_id, alert.triggered_at, alert.raised_at) == (OVERDUE, CHILD, day(4), RAISED_AT)


def test_a_later_event_on_the_same_partition_moves_the_clock_and_one_on_another_does_not() -> None:
    later = missing_reported(day(5), child=OTHER_CHILD, episode="MP-2")
    same = Replay(Catalogue.default(), partition_of=lambda _key: 0, raised_at=RAISED_AT)
    fired = [a for e in [*_unanswered(), later] for a in same.apply(e)]
    assert [a.rule_id for a in fired] == [OVERDUE]
    apart = Replay(Catalogue.default(), partition_of=lambda key: 0 if key == CHILD else 1, raised_at=RAISED_AT)
    assert not [a for e in [*_unanswered(), later] for a in apart.apply(e)]
    assert [a.rule_id for a in apart.close(day(5), range(2))] == [OVERDUE]
    assert apart.close(day(6), range(2)) == []  # fired once


def test_clocks_never_go_back_at_close() -> None:
    replay = Replay(Catalogue.default(), partition_of=lambda _key: 0, raised_at=RAISED_AT)
    for event in _unanswered():
        replay.apply(event)
    assert [a.rule_id for a in replay.close(day(10), range(1))] == [OVERDUE]
    assert replay.close(day(2), range(1)) == []


def test_keys_are_placed_as_kafka_places_them() -> None:
    from kafka.partitioner.default import murmur2

    place = kafka_partitions(6)
    for key in (CHILD, OTHER_CHILD):
        assert place(key) == (murmur2(key.encode()) & 0x7FFFFFFF) % 6
