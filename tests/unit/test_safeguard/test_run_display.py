"""Drawing the live view and the plain progress lines, on a terminal and on a console that is not one."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from rich.console import Console

from safeguard.run_display import (
    PlainProgress,
    alert_line,
    duration,
    gauge_text,
    live_view,
    progress_line,
    summary_table,
)
from safeguard.run_view import Gauge, RunView, ViewState
from tests.unit.test_notify.helpers import make_alert
from tests.unit.test_safeguard.test_run_view import EVENT_TIME, FakeMonotonic

ANSI_ESCAPE = "\x1b["


def _console(*, terminal: bool, width: int = 120) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=terminal, width=width), out


def _mid_run() -> ViewState:
    """Half the year published at 2,000/s, a quarter processed at 1,000/s, a few alerts."""
    clock = FakeMonotonic()
    view = RunView(clock, window_s=10.0)
    for second in range(11):
        view.published(2_000 * second, 40_000, EVENT_TIME)
        view.processed(1_000 * second, 2_000 * second)
        clock.advance(1.0)
    clock.now -= 1.0
    view.alert(make_alert(1, rule_id="repeat_missing", severity="high"))
    view.alert(make_alert(2, rule_id="repeat_domestic_abuse", severity="critical"))
    view.alert(make_alert(3, rule_id="contact_spike", severity="medium"))
    return view.state()


@pytest.mark.parametrize(
    ("seconds", "shown"), [(None, "?"), (0, "0:00"), (7.4, "0:07"), (125, "2:05"), (3_723, "1:02:03")]
)
def test_duration(seconds: float | None, shown: str) -> None:
    assert duration(seconds) == shown


@pytest.mark.parametrize(
    ("gauge", "shown"),
    [
        (Gauge(45_123, 87_738, 2_310.6, 18.4), "45,123 / 87,738 (2,311/s, 0:18 left)"),
        (Gauge(87_738, 87_738, 0.0, 0.0), "87,738 / 87,738 (done)"),
        (Gauge(500, None, 10.0, None), "500 (10/s)"),
        (Gauge(500, 1_000, None, None), "500 / 1,000"),
        (Gauge(500, 1_000, 0.0, None), "500 / 1,000 (0/s, ? left)"),
    ],
)
def test_gauge_text(gauge: Gauge, shown: str) -> None:
    assert gauge_text(gauge) == shown


def test_progress_line_says_how_far_each_stage_is_and_counts_urgent_alerts() -> None:
    line = progress_line(_mid_run())
    assert line == (
        "0:10 · published 20,000 / 40,000 (2,000/s, 0:10 left) · processed 10,000 / 40,000 (1,000/s, 0:30 left)"
        " · alerts 3 (critical 1, high 1)"
    )


def test_progress_line_before_the_worker_has_committed_anything() -> None:
    line = progress_line(RunView(FakeMonotonic()).state())
    assert line == "0:00 · processed waiting for the worker · alerts 0 (critical 0, high 0)"


def test_live_view_on_a_console_that_is_not_a_terminal_has_no_ansi_codes() -> None:
    console, out = _console(terminal=False)
    console.print(live_view(_mid_run()))
    text = out.getvalue()
    assert ANSI_ESCAPE not in text
    assert "20,000 / 40,000 (2,000/s, 0:10 left) · event time 2019-07-03 14:00" in text
    assert "10,000 / 40,000 (1,000/s, 0:30 left)" in text
    assert "alerts by rule and severity" in text
    table_rows = [line for line in text.splitlines() if line.startswith("│")]
    assert [row.split("│")[1].strip() for row in table_rows] == [
        "contact_spike",
        "repeat_domestic_abuse",
        "repeat_missing",
        "total",
    ]
    assert "latest high and critical alerts" in text
    recent = [line for line in text.splitlines() if "2025-06-02 10:00" in line]
    assert ["CRITICAL" in recent[0], "HIGH" in recent[1], len(recent)] == [True, True, 2], "newest first, no medium"


def test_long_alerts_are_cut_not_wrapped_so_the_view_keeps_its_height() -> None:
    view = RunView(FakeMonotonic())
    for n in range(3):
        alert = make_alert(n, rule_id="domestic_abuse_child_present", severity="high")
        view.alert(alert.model_copy(update={"summary": "A very long summary. " * 20}))
    console, out = _console(terminal=False, width=60)
    console.print(live_view(view.state()))
    lines = out.getvalue().splitlines()
    listed = [line for line in lines if "domestic_abuse_child_present" in line and "HIGH" in line]
    assert len(listed) == 3
    assert all(len(line) <= 60 and line.endswith("…") for line in listed)
    assert lines[-1] in listed, "nothing wrapped onto a line of its own"


def test_live_view_on_a_terminal_is_coloured() -> None:
    """The check above means something: the same view on a terminal does carry escape codes."""
    console, out = _console(terminal=True)
    console.print(live_view(_mid_run()))
    assert ANSI_ESCAPE in out.getvalue()


def test_live_view_before_anything_happened() -> None:
    console, out = _console(terminal=False)
    console.print(live_view(RunView(FakeMonotonic()).state()))
    text = out.getvalue()
    assert "waiting for the worker" in text and "no high or critical alerts yet" in text
    assert "published" not in text, "nothing is being published (yet)"


def test_summary_table_totals_each_severity() -> None:
    console, out = _console(terminal=False)
    console.print(summary_table(_mid_run()))
    lines = out.getvalue().splitlines()
    assert lines[0].strip() == "alerts raised in this run"
    total = next(line for line in lines if "total" in line and "│" in line)
    assert total.split("│")[1:-1] == [
        " total                 ",
        "        1 ",
        "    1 ",
        "      1 ",
        "      ",
        "     3 ",
    ]


def test_alert_line_is_one_line_per_alert() -> None:
    alert = make_alert(1, rule_id="repeat_missing", severity="critical", at=datetime(2019, 5, 1, 9, 30, tzinfo=UTC))
    console, out = _console(terminal=False, width=200)
    console.print(alert_line(alert), highlight=False)
    assert out.getvalue() == (f"2019-05-01 09:30  CRITICAL repeat_missing                 {alert.summary}\n")


def test_an_alert_summary_is_text_not_markup() -> None:
    """A bracket in a summary must neither vanish nor stop the view's redraw with a markup error."""
    alert = make_alert(1, severity="high").model_copy(update={"summary": "Seen at [/] and [bold]here[/bold]."})
    console, out = _console(terminal=False, width=200)
    console.print(alert_line(alert), highlight=False)
    assert out.getvalue().rstrip().endswith("Seen at [/] and [bold]here[/bold].")
    view = RunView(FakeMonotonic())
    view.alert(alert)
    console.print(live_view(view.state()))
    assert "Seen at [/] and [bold]here[/bold]." in out.getvalue()


def test_plain_progress_prints_one_plain_line_per_tick() -> None:
    clock = FakeMonotonic()
    view = RunView(clock)
    console, out = _console(terminal=False, width=40)  # narrower than the line: it must not be wrapped
    printer = PlainProgress(console, view.state)
    printer.tick()
    view.processed(10, 100)
    printer.tick()
    printer.tick()
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert ANSI_ESCAPE not in out.getvalue()
    assert lines[0] == "0:00 · processed waiting for the worker · alerts 0 (critical 0, high 0)"
    assert lines[1] == lines[2] == "0:00 · processed 10 / 100 · alerts 0 (critical 0, high 0)"


def test_plain_progress_with_only_changes_is_quiet_until_something_moves() -> None:
    """Following live alerts for hours must not repeat the same line every few seconds."""
    clock = FakeMonotonic()
    view = RunView(clock)
    console, out = _console(terminal=False)
    printer = PlainProgress(console, view.state, only_changes=True)
    printer.tick()
    clock.advance(5)
    printer.tick()
    view.alert(make_alert(1, severity="high"))
    printer.tick()
    printer.tick()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[1].endswith("alerts 1 (critical 0, high 1)")
