"""The event-time clock of one partition of one topic, which decides when deadline rules fire.

rules.md ("Deadline rules"): the clock that matters is the progress of the input that would carry
the answer, on the subject's partition: the largest `occurred_at` seen so far there. Partitions and
topics progress at different speeds, so one global clock would fire deadlines early. When the
worker has caught up with that input and its newest event time is within `live_horizon` of the wall
clock, the clock also follows the wall clock minus `allowed_lateness`, so deadlines fire in live
running without waiting for more traffic. Replaying old event times never fires a deadline early.

A clock is protected from outliers: an event time more than `max_lead` after the wall clock (a typo of
2030 for 2020 that got past the contract's event-time window, or a clock persisted by an older version)
moves the clock only to the wall clock plus `max_lead`, never further, so one bad event can never fire
every deadline of a partition at once or hold the clock in the future.

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

    def observe(self, occurred_at: datetime, *, wall_clock: datetime, settings: DeadlineSettings) -> PartitionClock:
        """After applying an event from the partition: the clock is at least its event time, bounded by
        the wall clock plus `max_lead`."""
        at = utc(occurred_at)
        limit = wall_clock + settings.max_lead.exact
        if at > limit:
            at = utc(limit)
        newest = self.newest_event_at
        if newest is not None and at <= newest:
            if self.reading is not None and self.reading >= newest:
                return self  # nothing moves (an event no later than one already applied)
        else:
            newest = at
        return PartitionClock(newest, _latest(self.reading, newest))

    def bounded(self, wall_clock: datetime, settings: DeadlineSettings) -> PartitionClock:
        """This clock with nothing later than the wall clock plus `max_lead` (for a clock restored from storage)."""
        limit = utc(wall_clock) + settings.max_lead.exact

        def cap(moment: datetime | None) -> datetime | None:
            return None if moment is None else min(moment, limit)

        return PartitionClock(newest_event_at=cap(self.newest_event_at), reading=cap(self.reading))

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
