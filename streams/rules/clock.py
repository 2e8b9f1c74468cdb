"""The event-time clock of one partition of one topic, which decides when deadline rules fire.

rules.md ("Deadline rules"): the clock that matters is the progress of the input that would carry
the answer, on the subject's partition: the largest `occurred_at` seen so far there. Partitions and
topics progress at different speeds, so one global clock would fire deadlines early. When the
worker has caught up with that input and its newest event time is within `live_horizon` of the wall
clock, the clock also follows the wall clock minus `allowed_lateness`, so deadlines fire in live
running without waiting for more traffic. Replaying old event times never fires a deadline early.

The wall clock is an argument: the worker reads it, this module never does.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from streams.rules.catalogue import DeadlineSettings
from streams.rules.definition import utc


@dataclass(frozen=True)
class PartitionClock:
    """`newest_event_at`: the largest event time applied from the partition; `reading`: the clock, never going back."""

    newest_event_at: datetime | None = None
    reading: datetime | None = None

    def observe(self, occurred_at: datetime) -> PartitionClock:
        """After applying an event from the partition: the clock is at least its event time."""
        at = utc(occurred_at)
        newest = at if self.newest_event_at is None else max(self.newest_event_at, at)
        return replace(self, newest_event_at=newest, reading=_latest(self.reading, newest))

    def tick(self, wall_clock: datetime, *, caught_up: bool, settings: DeadlineSettings) -> PartitionClock:
        """On a timer: follow the wall clock (minus the allowed lateness) if the partition is live.

        Live means the worker has caught up with the partition (`caught_up`: no lag) and the newest
        event time is at most `live_horizon` before `wall_clock`. Otherwise the reading stays where
        the events put it.
        """
        if not caught_up or self.newest_event_at is None:
            return self
        wall = utc(wall_clock)
        if settings.live_horizon.after(self.newest_event_at) < wall:
            return self
        return replace(self, reading=_latest(self.reading, wall - settings.allowed_lateness.exact))


def _latest(reading: datetime | None, candidate: datetime) -> datetime:
    return candidate if reading is None else max(reading, candidate)
