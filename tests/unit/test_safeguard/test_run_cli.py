"""`safeguard run`'s display choice without a broker: the live view on a terminal, plain lines elsewhere."""

from __future__ import annotations

import io
import logging
import sys

from click.testing import CliRunner
from rich.console import Console

from safeguard.cli import cli
from safeguard.run_cli import run, show_progress
from safeguard.run_view import RunView, SharedView
from tests.unit.test_notify.helpers import make_alert
from tests.unit.test_safeguard.test_run_view import EVENT_TIME, FakeMonotonic

ANSI_ESCAPE = "\x1b["


def _view() -> tuple[SharedView, FakeMonotonic]:
    clock = FakeMonotonic()
    return SharedView(RunView(clock)), clock


def test_the_live_view_is_the_default_and_all_keeps_the_stream_of_alert_lines() -> None:
    alerts = next(param for param in run.params if param.name == "show")
    assert alerts.default == "live"
    assert list(alerts.type.choices) == ["live", "all", "high", "none"]  # type: ignore[attr-defined]
    result = CliRunner().invoke(cli, ["run", "--help"])
    assert result.exit_code == 0, result.output
    assert "live" in result.output and "not a terminal" in result.output


def test_not_a_terminal_prints_plain_progress_lines_and_no_alerts() -> None:
    view, clock = _view()
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=80)
    with show_progress(console, view, every_s=3_600):  # no tick within the block: only the closing line
        view.published(500, 1_000, EVENT_TIME)
        view.processed(200, 500)
        for n in range(50):
            view.alert(make_alert(n, severity="critical"))
        clock.advance(2)
    text = out.getvalue()
    assert ANSI_ESCAPE not in text
    assert text.splitlines() == [
        "0:02 · published 500 / 1,000 · processed 200 / 1,000 · alerts 50 (critical 50, high 0)"
    ]


def test_on_a_terminal_the_view_is_drawn_in_place_and_cleared_at_the_end() -> None:
    view, _ = _view()
    view.alert(make_alert(1, rule_id="repeat_missing", severity="high"))
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    with show_progress(console, view):
        view.processed(10, 100)
    text = out.getvalue()
    assert ANSI_ESCAPE in text
    assert "alerts by rule and severity" in text and "repeat_missing" in text
    assert "\x1b[2K" in text, "the transient view erases its lines as it ends, leaving room for the summary"


def test_log_records_go_above_the_live_view_while_it_is_drawn() -> None:
    """A handler holding the terminal's stderr from start-up would write across the view."""
    view, _ = _view()
    handler = logging.StreamHandler(io.StringIO())
    before = handler.stream
    logging.getLogger().addHandler(handler)
    try:
        console = Console(file=io.StringIO(), force_terminal=True, width=100)
        with show_progress(console, view):
            during = handler.stream
            redirected = sys.stderr
        assert during is redirected and during is not before
        assert handler.stream is before, "restored once the view is gone"
    finally:
        logging.getLogger().removeHandler(handler)
