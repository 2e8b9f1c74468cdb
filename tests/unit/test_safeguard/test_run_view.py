"""The live view's state without a terminal or a broker: rates, time left, alert counts and the latest alerts."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from safeguard.run_view import AlertRow, Meter, RunView, SharedView, alert_rows, severity_totals, time_left
from schemas.alerts import AlertRaised
from tests.unit.test_notify.helpers import make_alert

EVENT_TIME = datetime(2019, 7, 3, 14, 0, tzinfo=UTC)


@dataclass
class FakeMonotonic:
    """Seconds the test moves by hand."""

    now: float = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# ------------------------------------------------------------------------------------------------ Meter


def test_rate_is_over_the_window_not_the_whole_run() -> None:
    meter = Meter(window_s=10.0)
    for second in range(31):  # 100/s for 20 s, then 1,000/s for 10 s
        meter.add(float(second), 100 * min(second, 20) + 1_000 * max(0, second - 20))
    assert meter.rate(30.0) == pytest.approx(1_000.0)


def test_a_count_that_stopped_growing_decays_to_zero() -> None:
    meter = Meter(window_s=10.0)
    for second in range(11):
        meter.add(float(second), 50 * second)
    assert meter.rate(10.0) == pytest.approx(50.0)
    assert meter.rate(15.0) == pytest.approx(250 / 10)  # the last 10 s grew from 250 (t=5) to 500 (t=10)
    assert meter.rate(30.0) == 0.0


def test_no_rate_before_time_has_passed() -> None:
    meter = Meter()
    assert meter.rate(5.0) is None and meter.latest is None
    meter.add(5.0, 10)
    assert meter.rate(5.0) is None and meter.rate(9.0) is None, "one count says nothing about a rate"
    assert meter.latest == 10


def test_samples_closer_than_the_resolution_are_merged_so_a_year_of_events_stays_small() -> None:
    meter = Meter(window_s=10.0, resolution_s=0.25)
    for n in range(100_000):  # 100,000 events at 2,000/s: 50 s
        meter.add(n / 2_000, n + 1)
    assert len(meter.samples) <= 10.0 / 0.25 + 3
    assert meter.latest == 100_000
    assert meter.rate(50.0) == pytest.approx(2_000.0, rel=0.03)


@pytest.mark.parametrize(
    ("done", "total", "rate", "left"),
    [
        (50, 100, 10.0, 5.0),
        (100, 100, None, 0.0),
        (120, 100, 0.0, 0.0),
        (50, None, 10.0, None),
        (50, 100, None, None),
        (50, 100, 0.0, None),
    ],
)
def test_time_left(done: int, total: int | None, rate: float | None, left: float | None) -> None:
    assert time_left(done, total, rate) == left


# ------------------------------------------------------------------------------------------------ RunView


def test_nothing_known_yet() -> None:
    clock = FakeMonotonic()
    state = RunView(clock).state()
    assert state.published is None and state.processed is None and state.event_time is None
    assert state.rows == () and state.recent == () and state.alerts == 0
    assert state.elapsed_s == 0.0


def test_publishing_progress_rate_and_time_left() -> None:
    clock = FakeMonotonic()
    view = RunView(clock, window_s=10.0)
    for second in range(5):
        view.published(1_000 * second, 10_000, EVENT_TIME)
        clock.advance(1.0)
    clock.now -= 1.0  # read at the moment of the last sample
    state = view.state()
    assert state.published is not None
    assert (state.published.done, state.published.total) == (4_000, 10_000)
    assert state.published.rate == pytest.approx(1_000.0)
    assert state.published.left_s == pytest.approx(6.0)
    assert not state.published.finished
    assert state.event_time == EVENT_TIME
    assert state.elapsed_s == pytest.approx(4.0)


def test_processing_expects_the_events_still_to_be_published() -> None:
    """The topics hold only what has been sent so far; time left counts the rest of the year too."""
    clock = FakeMonotonic()
    view = RunView(clock)
    view.published(3_000, 10_000, EVENT_TIME)
    view.processed(1_000, 3_000)
    clock.advance(2.0)
    view.processed(2_000, 3_000)
    state = view.state()
    assert state.processed is not None
    assert state.processed.total == 10_000
    assert state.processed.rate == pytest.approx(500.0)
    assert state.processed.left_s == pytest.approx(16.0)


def test_empty_topics_are_not_a_finish() -> None:
    """Before anything is published the worker's group has committed 0 of 0: nothing is done yet."""
    view = RunView(FakeMonotonic())
    view.processed(0, 0)
    state = view.state()
    assert state.processed is not None and not state.processed.finished


def test_processing_without_publishing_counts_what_the_topics_hold() -> None:
    view = RunView(FakeMonotonic())
    view.processed(87_738, 87_738)
    state = view.state()
    assert state.published is None
    assert state.processed is not None and state.processed.finished and state.processed.left_s == 0.0


def test_alerts_are_counted_by_rule_and_severity_in_rule_order() -> None:
    view = RunView(FakeMonotonic())
    for n, (rule, severity) in enumerate(
        [("repeat_missing", "high"), ("contact_spike", "medium"), ("repeat_missing", "high"), ("da", "critical")]
    ):
        view.alert(make_alert(n, rule_id=rule, severity=severity))
    state = view.state()
    assert state.rows == (
        AlertRow("contact_spike", (0, 0, 1, 0)),
        AlertRow("da", (1, 0, 0, 0)),
        AlertRow("repeat_missing", (0, 2, 0, 0)),
    )
    assert state.alerts == 4
    assert state.by_severity() == {"critical": 1, "high": 2, "medium": 1, "info": 0}


def test_only_the_latest_high_and_critical_alerts_are_listed_newest_first() -> None:
    view = RunView(FakeMonotonic(), recent=3)
    severities = ["high", "high", "critical", "info", "high", "medium", "critical", "info"]
    alerts = [make_alert(n, severity=severity) for n, severity in enumerate(severities)]
    for alert in alerts:
        view.alert(alert)
    recent = view.state().recent
    assert recent == (alerts[6], alerts[4], alerts[2])
    assert view.state().alerts == len(severities), "every alert is counted, listed or not"


def test_alert_rows_and_severity_totals() -> None:
    rows = alert_rows({("b_rule", "info"): 2, ("a_rule", "critical"): 1, ("b_rule", "high"): 3})
    assert rows == (AlertRow("a_rule", (1, 0, 0, 0)), AlertRow("b_rule", (0, 3, 0, 2)))
    assert [row.total for row in rows] == [1, 5]
    assert severity_totals(rows) == (1, 3, 0, 2)


def test_shared_view_keeps_every_count_when_fed_from_threads_while_read() -> None:
    """The feed, the publisher and the poller call from their own threads while the display reads."""
    shared = SharedView(RunView(FakeMonotonic()))
    alerts = [make_alert(n, rule_id=f"rule_{n % 7}", severity="high") for n in range(2_000)]
    reading = threading.Event()

    def feed(part: list[AlertRaised]) -> None:
        for alert in part:
            shared.alert(alert)

    def read() -> None:
        while not reading.is_set():
            shared.state()

    reader = threading.Thread(target=read)
    reader.start()
    feeders = [threading.Thread(target=feed, args=(alerts[i::4],)) for i in range(4)]
    for thread in feeders:
        thread.start()
    for done in range(1, 1_001):
        shared.published(done, 1_000, EVENT_TIME)
    for thread in feeders:
        thread.join()
    reading.set()
    reader.join()
    state = shared.state()
    assert state.alerts == 2_000
    assert state.published is not None and state.published.done == 1_000
