"""Getting a simulated year out: a JSONL file for `safeguard publish`, or a paced replay into Kafka for demos."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Protocol, TypeVar

from schemas.codec import encode
from schemas.events import Envelope

E = TypeVar("E", bound=Envelope)


class Publishes(Protocol):
    """What replay needs of a publisher: `producers.publisher.EventPublisher` or a test's fake."""

    def publish(self, event: Envelope) -> None: ...


def to_jsonl(events: Iterable[Envelope], path: Path) -> int:
    """Write one compact JSON event per line (what `safeguard publish FILE` reads); returns the lines written."""
    written = 0
    with path.open("wb") as out:
        for event in events:
            out.write(encode(event) + b"\n")
            written += 1
    return written


def replay(
    events: Iterable[E],
    publisher: Publishes,
    speed: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    on_progress: Callable[[int, E], None] | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
    paced_from: datetime | None = None,
) -> int:
    """Publish events in `occurred_at` order; returns how many.

    `speed` is event-time seconds per wall second (86400: a day a second) and paces the stream so a demo
    unfolds live; None publishes as fast as possible. Events before `paced_from` (a backload of history)
    go out unpaced. The schedule is kept against the first paced event, so slow publishing never drifts.
    """
    if speed is not None and speed <= 0:
        raise ValueError(f"speed must be positive (event-time seconds per wall second), got {speed}")
    ordered = sorted(events, key=lambda e: e.occurred_at.timestamp())
    start_event: float | None = None
    start_wall = 0.0
    published = 0
    for event in ordered:
        if speed is not None and (paced_from is None or event.occurred_at >= paced_from):
            at = event.occurred_at.timestamp()
            if start_event is None:
                start_event, start_wall = at, clock()
            else:
                wait = start_wall + (at - start_event) / speed - clock()
                if wait > 0:
                    sleep(wait)
        publisher.publish(event)
        published += 1
        if on_progress is not None:
            on_progress(published, event)
    return published
