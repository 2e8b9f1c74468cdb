"""PartitionClock: event time per partition, the live rule, and deadlines that never fire early on replay."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from schemas.alerts import AlertRaised
from schemas.events import MissingFound, MissingReported, MissingReturnInterview
from schemas.topics import MISSING_EPISODES
from streams.rules import DeadlineSettings, Duration, PartitionClock, SubjectState, advance, evaluate, next_deadline
from tests.unit.test_streams.factories import (
    DEFAULTS,
    OTHER_CHILD,
    RAISED_AT,
    day,
    missing_found,
    missing_reported,
    return_interview,
)

SETTINGS = DeadlineSettings()
TOPIC = MISSING_EPISODES.name
WALL = day(1000)
"""A wall clock long after the events of these tests (replaying history)."""


def test_the_reading_is_the_largest_event_time_and_never_goes_back() -> None:
    clock = (
        PartitionClock()
        .observe(day(5), wall_clock=WALL, settings=SETTINGS)
        .observe(day(2), wall_clock=WALL, settings=SETTINGS)
    )
    assert clock.newest_event_at == clock.reading == day(5)
    assert PartitionClock().reading is None


def test_an_event_far_ahead_of_the_wall_clock_moves_the_clock_only_to_the_bound() -> None:
    """A typo of 2030 for 2020 must not fire every deadline of the partition (a clock never runs ahead)."""
    wall = day(5)
    clock = PartitionClock().observe(day(4), wall_clock=wall, settings=SETTINGS)
    typo = clock.observe(day(5) + timedelta(days=3650), wall_clock=wall, settings=SETTINGS)
    assert typo.reading == typo.newest_event_at == wall + timedelta(minutes=15)
    later = typo.observe(day(6), wall_clock=day(6), settings=SETTINGS)
    assert later.reading == day(6), "once the wall clock passes the bound, true events move the clock again"


def test_a_restored_clock_in_the_future_is_brought_back_to_the_bound() -> None:
    persisted = PartitionClock(newest_event_at=day(3650), reading=day(3650))
    bounded = persisted.bounded(day(5), SETTINGS)
    assert bounded.reading == bounded.newest_event_at == day(5) + timedelta(minutes=15)
    assert PartitionClock(reading=day(4)).bounded(day(5), SETTINGS) == PartitionClock(reading=day(4))


def test_no_live_advance_unless_caught_up() -> None:
    clock = PartitionClock().observe(day(5), wall_clock=WALL, settings=SETTINGS)
    assert clock.tick(day(5, hours=2), caught_up=False, settings=SETTINGS) == clock


def test_live_advance_follows_the_wall_clock_minus_the_allowed_lateness() -> None:
    clock = (
        PartitionClock()
        .observe(day(5), wall_clock=WALL, settings=SETTINGS)
        .tick(day(5, hours=2), caught_up=True, settings=SETTINGS)
    )
    assert clock.reading == day(5, hours=2) - timedelta(minutes=10)
    assert clock.newest_event_at == day(5)


def test_live_horizon_is_inclusive() -> None:
    clock = PartitionClock().observe(day(5), wall_clock=WALL, settings=SETTINGS)
    assert clock.tick(day(6), caught_up=True, settings=SETTINGS).reading == day(6) - timedelta(minutes=10)
    assert clock.tick(day(6) + timedelta(seconds=1), caught_up=True, settings=SETTINGS).reading == day(5)


def test_a_partition_with_no_events_has_no_clock() -> None:
    assert PartitionClock().tick(day(0), caught_up=True, settings=SETTINGS).reading is None


def test_the_wall_clock_going_back_does_not_move_the_reading_back() -> None:
    clock = (
        PartitionClock()
        .observe(day(5), wall_clock=WALL, settings=SETTINGS)
        .tick(day(5, hours=6), caught_up=True, settings=SETTINGS)
    )
    assert clock.tick(day(5, hours=1), caught_up=True, settings=SETTINGS).reading == clock.reading


def test_settings_override() -> None:
    settings = DeadlineSettings(allowed_lateness=Duration(minutes=1), live_horizon=Duration(hours=1))
    clock = PartitionClock().observe(day(5), wall_clock=WALL, settings=SETTINGS)
    assert clock.tick(day(5, hours=1), caught_up=True, settings=settings).reading == day(5, hours=1) - timedelta(
        minutes=1
    )
    assert clock.tick(day(5, hours=2), caught_up=True, settings=settings).reading == day(5)


Delivery = tuple[MissingReported | MissingFound | MissingReturnInterview, datetime]
"""An event and the wall-clock time the worker reads it."""


def _worker(deliveries: Sequence[Delivery], *, caught_up: bool, final_wall_clock: datetime) -> list[AlertRaised]:
    """What the Faust worker will do for one partition, reduced to its pure calls."""
    clock = PartitionClock()
    states: dict[str, SubjectState] = {}
    alerts: list[AlertRaised] = []

    def fire_due() -> None:
        for key, state in states.items():
            deadline = next_deadline(state, DEFAULTS, clock_topic=TOPIC)
            if deadline is not None and clock.reading is not None and deadline <= clock.reading:
                result = advance(state, clock.reading, RAISED_AT, DEFAULTS, clock_topic=TOPIC)
                states[key] = result.state
                alerts.extend(result.alerts)

    for event, wall_clock in deliveries:
        result = evaluate(states.get(event.child_id), event, RAISED_AT, DEFAULTS)
        states[event.child_id] = result.state
        alerts += result.alerts
        clock = clock.observe(event.occurred_at, wall_clock=wall_clock, settings=SETTINGS).tick(
            wall_clock, caught_up=caught_up, settings=SETTINGS
        )
        fire_due()
    clock = clock.tick(final_wall_clock, caught_up=True, settings=SETTINGS)
    fire_due()
    return [alert for alert in alerts if alert.rule_id == "return_interview_overdue"]


def _history() -> list[MissingReported | MissingFound | MissingReturnInterview]:
    return [
        missing_reported(day(0), episode="MP-1"),
        missing_found(day(1), episode="MP-1"),  # deadline day 4
        missing_reported(day(1, hours=5), child=OTHER_CHILD, episode="MP-2"),
        missing_found(day(2), child=OTHER_CHILD, episode="MP-2"),  # deadline day 5
        return_interview(day(3), episode="MP-1"),  # in time
        missing_reported(day(6), child=OTHER_CHILD, episode="MP-3"),  # the clock passes day 5
        return_interview(day(6, hours=1), child=OTHER_CHILD, episode="MP-2"),  # too late
    ]


def test_replaying_old_event_times_fires_deadlines_by_event_time_only() -> None:
    replay_wall_clock = datetime(2027, 1, 1, tzinfo=UTC)  # years after the events
    deliveries = [(event, replay_wall_clock) for event in _history()]
    alerts = _worker(deliveries, caught_up=True, final_wall_clock=replay_wall_clock)
    assert [(a.subject_id, a.triggered_at) for a in alerts] == [(OTHER_CHILD, day(5))]


def test_replay_never_fires_a_deadline_before_the_partition_reaches_it() -> None:
    history = _history()[:4]  # both children found; nothing on the partition after day 2
    alerts = _worker(
        [(e, datetime(2027, 1, 1, tzinfo=UTC)) for e in history], caught_up=True, final_wall_clock=day(900)
    )
    assert alerts == []


def test_live_running_gives_the_same_alerts_as_replay() -> None:
    # Live: each event is read a minute after it happened, and a timer ticks at the end.
    history = _history()
    live = [(event, event.occurred_at + timedelta(minutes=1)) for event in history]
    live_alerts = _worker(live, caught_up=True, final_wall_clock=day(6, hours=2))
    replay_wall_clock = datetime(2027, 1, 1, tzinfo=UTC)
    replay = _worker([(e, replay_wall_clock) for e in history], caught_up=True, final_wall_clock=replay_wall_clock)
    assert len(live_alerts) == 1
    assert [a.alert_id for a in live_alerts] == [a.alert_id for a in replay]


def test_live_running_fires_without_waiting_for_an_event_past_the_deadline() -> None:
    history = _history()[:2]  # child found on day 1; deadline day 4; then silence
    live = [(event, event.occurred_at + timedelta(minutes=1)) for event in history]
    assert _worker(live, caught_up=True, final_wall_clock=day(1, hours=23)) == []  # wall - 10 min < deadline
    # Within the live horizon the clock follows the wall clock: with events stopping on day 1, only a
    # tick within a day of them advances it (rules.md), so the deadline on day 4 needs more traffic.
    assert _worker(live, caught_up=True, final_wall_clock=day(4, hours=1)) == []
    recent = [*live, (missing_reported(day(3, hours=20), child=OTHER_CHILD), day(3, hours=20))]
    [alert] = _worker(recent, caught_up=True, final_wall_clock=day(4, hours=1))
    assert alert.triggered_at == day(4)


def test_a_lagging_worker_does_not_follow_the_wall_clock() -> None:
    history = _history()[:2]
    live = [(event, event.occurred_at + timedelta(minutes=1)) for event in history]
    assert _worker(live, caught_up=False, final_wall_clock=day(1)) == []
