"""What `safeguard run`'s live view shows, as plain data: counts, rates, time left and the latest urgent alerts.

Fed by the run's seams (each published event, each poll of the worker's consumer group, each alert of the feed)
and read with `state()`; the clock is injected, so the arithmetic is tested without a terminal or a broker.
`safeguard/run_display.py` renders it.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from schemas.alerts import AlertRaised
from schemas.types import Severity

SEVERITIES: tuple[Severity, ...] = ("critical", "high", "medium", "info")
"""The columns of every alert table, most urgent first."""
URGENT: frozenset[str] = frozenset({"critical", "high"})
"""The severities the view lists one by one; the others are only counted."""

Monotonic = Callable[[], float]
"""Seconds on a clock that never goes back (time.monotonic at the edge, a fake in tests)."""


@dataclass(frozen=True)
class Gauge:
    """How far one stage has got: `total` None while unknown, `rate` per second, `left_s` None while unknown."""

    done: int
    total: int | None
    rate: float | None
    left_s: float | None

    @property
    def finished(self) -> bool:
        """All done; an empty total (topics with nothing on them yet) is not a finish."""
        return self.total is not None and 0 < self.total <= self.done


@dataclass(frozen=True)
class AlertRow:
    """One rule's alerts, counted per severity in `SEVERITIES` order."""

    rule_id: str
    counts: tuple[int, ...]

    @property
    def total(self) -> int:
        return sum(self.counts)


@dataclass(frozen=True)
class ViewState:
    """One frame of the view; `published` is None when this run publishes nothing (or has not started yet)."""

    elapsed_s: float
    published: Gauge | None
    event_time: datetime | None
    processed: Gauge | None
    rows: tuple[AlertRow, ...]
    recent: tuple[AlertRaised, ...]
    """The latest high and critical alerts, newest first."""

    @property
    def alerts(self) -> int:
        return sum(row.total for row in self.rows)

    def by_severity(self) -> dict[str, int]:
        """Alerts per severity over all rules."""
        return dict(zip(SEVERITIES, severity_totals(self.rows), strict=True))


@dataclass
class Meter:
    """A growing count sampled over time; keeps only what the last `window_s` rate needs.

    Samples closer than `resolution_s` are merged, so feeding it every one of a year's events stays cheap.
    """

    window_s: float = 10.0
    resolution_s: float = 0.25
    samples: deque[tuple[float, int]] = field(default_factory=deque)

    def add(self, at: float, count: int) -> None:
        samples = self.samples
        if len(samples) >= 2 and at - samples[-2][0] < self.resolution_s:
            samples[-1] = (at, count)
        else:
            samples.append((at, count))
        while len(samples) > 2 and samples[1][0] <= at - self.window_s:
            samples.popleft()  # the newest sample at or before the window's start stays as its baseline

    @property
    def latest(self) -> int | None:
        return self.samples[-1][1] if self.samples else None

    def rate(self, now: float) -> float | None:
        """Per second over the last `window_s` up to `now` (a count that stopped growing decays to 0).

        None from a single sample: one count says nothing about how fast it grows.
        """
        if len(self.samples) < 2:
            return None
        base_at, base = self.samples[0]
        for at, count in self.samples:
            if at > now - self.window_s:
                break
            base_at, base = at, count
        latest = self.samples[-1][1]
        if now <= base_at:
            return None
        return (latest - base) / (now - base_at)


def time_left(done: int, total: int | None, rate: float | None) -> float | None:
    """Seconds until `done` reaches `total` at `rate`; 0 once there, None when it cannot be told."""
    if total is None:
        return None
    if done >= total:
        return 0.0
    if not rate or rate <= 0:
        return None
    return (total - done) / rate


class RunView:
    """The state of the live view, changed by the run's events; not thread-safe (`SharedView` adds a lock)."""

    def __init__(self, clock: Monotonic, *, window_s: float = 10.0, recent: int = 5) -> None:
        self._clock = clock
        self._started = clock()
        self._published = Meter(window_s)
        self._published_total: int | None = None
        self._event_time: datetime | None = None
        self._processed = Meter(window_s)
        self._processed_total: int | None = None
        self._raised: Counter[tuple[str, str]] = Counter()
        self._recent: deque[AlertRaised] = deque(maxlen=recent)

    def published(self, done: int, total: int, event_time: datetime) -> None:
        """The publisher has sent `done` of this run's `total` events; the last happened at `event_time`."""
        self._published.add(self._clock(), done)
        self._published_total, self._event_time = total, event_time

    def processed(self, done: int, total: int) -> None:
        """The worker's consumer group has committed `done` of the `total` records on the event topics."""
        self._processed.add(self._clock(), done)
        self._processed_total = total

    def alert(self, alert: AlertRaised) -> None:
        self._raised[(alert.rule_id, alert.severity)] += 1
        if alert.severity in URGENT:
            self._recent.append(alert)

    def state(self) -> ViewState:
        now = self._clock()
        published = self._gauge(self._published, self._published_total, now)
        still_to_publish = 0 if published is None or published.total is None else published.total - published.done
        processed_total = None if self._processed_total is None else self._processed_total + max(0, still_to_publish)
        return ViewState(
            elapsed_s=now - self._started,
            published=published,
            event_time=self._event_time,
            processed=self._gauge(self._processed, processed_total, now),
            rows=alert_rows(self._raised),
            recent=tuple(reversed(self._recent)),
        )

    @staticmethod
    def _gauge(meter: Meter, total: int | None, now: float) -> Gauge | None:
        done = meter.latest
        if done is None:
            return None
        rate = meter.rate(now)
        return Gauge(done, total, rate, time_left(done, total, rate))


def alert_rows(raised: Mapping[tuple[str, str], int]) -> tuple[AlertRow, ...]:
    """Counts by (rule, severity) as one row per rule, rules in name order."""
    rules = sorted({rule for rule, _ in raised})
    return tuple(AlertRow(rule, tuple(raised.get((rule, severity), 0) for severity in SEVERITIES)) for rule in rules)


def severity_totals(rows: tuple[AlertRow, ...]) -> tuple[int, ...]:
    """Alerts per severity over all rules, in `SEVERITIES` order."""
    return tuple(sum(row.counts[i] for row in rows) for i in range(len(SEVERITIES)))


class SharedView:
    """The run's view behind a lock: the publisher, the progress poller and the alert feed each feed it from
    their own thread while the display reads it from another."""

    def __init__(self, view: RunView) -> None:
        self._view = view
        self._lock = threading.Lock()

    def published(self, done: int, total: int, event_time: datetime) -> None:
        with self._lock:
            self._view.published(done, total, event_time)

    def processed(self, done: int, total: int) -> None:
        with self._lock:
            self._view.processed(done, total)

    def alert(self, alert: AlertRaised) -> None:
        with self._lock:
            self._view.alert(alert)

    def state(self) -> ViewState:
        with self._lock:
            return self._view.state()
