"""Replay pacing with a fake publisher, a fake clock and a fake sleep; the JSONL writer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from producers.simulate import replay, to_jsonl
from schemas.codec import decode_event, encode, validate_event
from schemas.events import AgencyEvent, Envelope
from tests.unit.test_producers.helpers import missing_reported

T0 = datetime(2019, 6, 1, 12, 0, tzinfo=UTC)


def event(n: int, at: datetime) -> AgencyEvent:
    return validate_event(
        missing_reported(
            event_id=f"00000000-0000-4000-8000-{n:012d}",
            episode_id=f"MP-{n}",
            occurred_at=at.isoformat(),
            recorded_at=(at + timedelta(minutes=5)).isoformat(),
        )
    )


class FakeTime:
    """A wall clock that only moves when slept on (or when publishing is slow)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class FakePublisher:
    def __init__(self, time: FakeTime | None = None, cost: float = 0.0) -> None:
        self.published: list[tuple[float, Envelope]] = []
        self.time = time
        self.cost = cost

    def publish(self, event: Envelope) -> None:
        if self.time is not None:
            self.published.append((self.time.now, event))
            self.time.now += self.cost
        else:
            self.published.append((0.0, event))


EVENTS = [
    event(1, T0),
    event(2, T0 + timedelta(hours=1)),
    event(3, T0 + timedelta(hours=3)),
    event(4, T0 + timedelta(hours=3)),
]


def test_flat_out_publishes_everything_in_event_time_order_without_sleeping() -> None:
    fake = FakeTime()
    publisher = FakePublisher()
    shuffled = [EVENTS[2], EVENTS[0], EVENTS[3], EVENTS[1]]
    assert replay(shuffled, publisher, None, fake.sleep, clock=fake.clock) == 4
    assert [e.event_id for _, e in publisher.published] == [e.event_id for e in EVENTS]
    assert fake.sleeps == []


def test_speed_paces_by_event_time() -> None:
    fake = FakeTime()
    publisher = FakePublisher(fake)
    replay(EVENTS, publisher, 3600.0, fake.sleep, clock=fake.clock)  # an hour of event time per second
    assert fake.sleeps == pytest.approx([1.0, 2.0])
    assert [t - 1000.0 for t, _ in publisher.published] == pytest.approx([0.0, 1.0, 3.0, 3.0])


def test_slow_publishing_does_not_drift_the_schedule() -> None:
    fake = FakeTime()
    publisher = FakePublisher(fake, cost=0.25)
    replay(EVENTS, publisher, 3600.0, fake.sleep, clock=fake.clock)
    assert fake.sleeps == pytest.approx([0.75, 1.75])
    assert [t - 1000.0 for t, _ in publisher.published] == pytest.approx([0.0, 1.0, 3.0, 3.25])


def test_history_before_paced_from_goes_out_unpaced() -> None:
    fake = FakeTime()
    old = event(9, T0 - timedelta(days=700))
    replay([old, *EVENTS], FakePublisher(fake), 3600.0, fake.sleep, clock=fake.clock, paced_from=T0)
    assert fake.sleeps == pytest.approx([1.0, 2.0])


def test_progress_is_reported_after_each_event() -> None:
    seen: list[tuple[int, str]] = []
    replay(EVENTS, FakePublisher(), on_progress=lambda done, e: seen.append((done, e.event_id)))
    assert seen == [(n + 1, e.event_id) for n, e in enumerate(EVENTS)]


@pytest.mark.parametrize("speed", [0.0, -1.0])
def test_speed_must_be_positive(speed: float) -> None:
    with pytest.raises(ValueError, match="speed"):
        replay(EVENTS, FakePublisher(), speed)


def test_to_jsonl_writes_one_compact_event_per_line(tmp_path: Path) -> None:
    path = tmp_path / "year.jsonl"
    assert to_jsonl(EVENTS, path) == 4
    lines = path.read_bytes().splitlines()
    assert lines == [encode(e) for e in EVENTS]
    assert [decode_event(line) for line in lines] == EVENTS
