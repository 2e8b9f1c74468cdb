"""How `safeguard run` shows a `ViewState`: a rich view redrawn in place on a terminal, plain lines elsewhere.

Functions of the state, and `PlainProgress` that prints them; which is used, and when, `safeguard/run_cli.py`
decides.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from safeguard.run_view import SEVERITIES, AlertRow, Gauge, ViewState, severity_totals
from schemas.alerts import AlertRaised

SEVERITY_STYLE = {"critical": "bold white on red", "high": "bold red", "medium": "yellow", "info": "cyan"}


def duration(seconds: float | None) -> str:
    """`1:02:03`, `2:03` or `0:07`; `?` when unknown."""
    if seconds is None:
        return "?"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def gauge_text(gauge: Gauge) -> str:
    """`45,123 / 87,738 (2,311/s, 0:18 left)`; a finished gauge says `done`, one without a total only counts."""
    counted = f"{gauge.done:,}" if gauge.total is None else f"{gauge.done:,} / {gauge.total:,}"
    rate = "" if gauge.rate is None else f"{gauge.rate:,.0f}/s"
    if gauge.finished:
        return f"{counted} (done)"
    left = "" if gauge.total is None or gauge.rate is None else f"{duration(gauge.left_s)} left"
    details = ", ".join(part for part in (rate, left) if part)
    return f"{counted} ({details})" if details else counted


def progress_line(state: ViewState) -> str:
    """One plain line for logs: elapsed time, publishing, processing, alerts so far (high and critical named)."""
    parts = [duration(state.elapsed_s)]
    if state.published is not None:
        parts.append(f"published {gauge_text(state.published)}")
    parts.append("processed " + ("waiting for the worker" if state.processed is None else gauge_text(state.processed)))
    severities = state.by_severity()
    urgent = ", ".join(f"{severity} {severities[severity]:,}" for severity in ("critical", "high"))
    parts.append(f"alerts {state.alerts:,} ({urgent})")
    return " · ".join(parts)


def alert_line(alert: AlertRaised) -> str:
    """One alert as console markup: when it triggered, severity, rule and summary."""
    style = SEVERITY_STYLE.get(alert.severity, "")
    when = alert.triggered_at.strftime("%Y-%m-%d %H:%M")
    return f"{when}  [{style}]{alert.severity.upper():<8}[/{style}] {alert.rule_id:<30} {escape(alert.summary)}"


def alert_table(rows: tuple[AlertRow, ...], title: str) -> Table:
    """Alerts per rule and severity with a total row: the live view's table and the run's final summary."""
    table = Table(title=title, title_justify="left")
    table.add_column("rule")
    for severity in SEVERITIES:
        table.add_column(severity, justify="right")
    table.add_column("total", justify="right")
    for row in rows:
        table.add_row(row.rule_id, *(f"{count:,}" if count else "" for count in row.counts), f"{row.total:,}")
    by_severity = severity_totals(rows)
    totals = (f"[bold]{count:,}[/bold]" if count else "" for count in by_severity)
    table.add_row("[bold]total[/bold]", *totals, f"[bold]{sum(by_severity):,}[/bold]")
    return table


def summary_table(state: ViewState) -> Table:
    """The table `safeguard run` ends with, whichever way it showed the alerts meanwhile."""
    return alert_table(state.rows, "alerts raised in this run")


def live_view(state: ViewState, *, bar_width: int = 30) -> RenderableType:
    """The view redrawn in place: progress of both stages, alerts by rule and severity, the latest urgent ones."""
    rules = alert_table(state.rows, "alerts by rule and severity")
    return Group(_progress_grid(state, bar_width), rules, _recent_table(state))


def _progress_grid(state: ViewState, bar_width: int) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(width=bar_width)
    grid.add_column()
    if state.published is not None:
        at = "" if state.event_time is None else f" · event time {state.event_time:%Y-%m-%d %H:%M}"
        grid.add_row("published", _bar(state.published, bar_width), gauge_text(state.published) + at)
    if state.processed is None:
        grid.add_row("processed", _bar(None, bar_width), "waiting for the worker")
    else:
        grid.add_row("processed", _bar(state.processed, bar_width), gauge_text(state.processed))
    grid.add_row("elapsed", "", duration(state.elapsed_s))
    return grid


def _bar(gauge: Gauge | None, width: int) -> ProgressBar:
    if gauge is None or gauge.total is None:
        return ProgressBar(total=None, width=width)  # pulses: how far is not known yet
    return ProgressBar(total=max(gauge.total, 1), completed=min(gauge.done, gauge.total), width=width)


def _recent_table(state: ViewState) -> RenderableType:
    if not state.recent:
        return Text("no high or critical alerts yet", style="dim")
    return Group(Text("latest high and critical alerts", style="italic"), *map(_one_line, state.recent))


def _one_line(alert: AlertRaised) -> Text:
    """An alert cut to the width of the screen: a redrawn view must never grow by wrapping."""
    line = Text.from_markup(alert_line(alert), overflow="ellipsis")
    line.no_wrap = True
    return line


class PlainProgress:
    """Prints `progress_line` without colour or redrawing; with `only_changes`, only when counts have moved
    (following live alerts would otherwise repeat the same line for hours)."""

    def __init__(self, console: Console, state: Callable[[], ViewState], *, only_changes: bool = False) -> None:
        self._console = console
        self._state = state
        self._only_changes = only_changes
        self._last: tuple[int | None, ...] | None = None

    def tick(self) -> None:
        state = self._state()
        moved = (
            None if state.published is None else state.published.done,
            None if state.processed is None else state.processed.done,
            state.alerts,
        )
        if self._only_changes and moved == self._last:
            return
        self._last = moved
        self._console.print(progress_line(state), markup=False, highlight=False, soft_wrap=True)
