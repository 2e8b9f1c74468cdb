"""The worker's rule step in one process (streams/replay.py): deadlines fire on the partition clocks, or at `close`."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from producers.simulate import LEEDS_2019, generate
from schemas.events import AgencyEvent
from schemas.topics import CONTACTS, DEFAULT_PARTITIONS, MISSING_EPISODES, topic_for
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


def test_a_topic_read_months_behind_the_others_raises_the_in_order_alerts() -> None:
    """A worker catching up reads each topic at its own pace (the SIGKILL year test, 2026-12-07): here 240 simulated
    days with the missing episodes read 180 days of event time behind every other topic. Histories pruned from each
    child's newest event lost five `repeat_missing` and raised two others; pruned from how far their own topic was
    read, the alerts are those of reading everything in event-time order."""
    events = generate(LEEDS_2019, seed=7, days=240)

    def alerts(behind: str | None) -> dict[str, str]:
        def read_at(event: AgencyEvent) -> datetime:
            lag = timedelta(days=180) if topic_for(event.event_type).name == behind else timedelta()
            return event.occurred_at + lag

        replay = Replay(Catalogue.default(), partition_of=kafka_partitions(DEFAULT_PARTITIONS), raised_at=RAISED_AT)
        return {alert.alert_id: alert.rule_id for event in sorted(events, key=read_at) for alert in replay.apply(event)}

    in_order = alerts(None)
    assert Counter(in_order.values())["repeat_missing"] > 50
    assert alerts(MISSING_EPISODES.name) == in_order
    assert alerts(CONTACTS.name) == in_order
