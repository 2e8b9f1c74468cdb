"""The static report for people without Grafana: every dashboard's panels, run on the store with the same SQL,
rendered to one self-contained HTML page (inline CSS, charts as inline SVG drawn here; no script, no network),
so it opens from a file or an e-mail attachment in any browser, offline.

`collect` runs the queries (I/O); `render` is pure: frames in, HTML out.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from dashboards.catalogue import DASHBOARDS, TZ
from dashboards.england import EnglandFigure
from dashboards.macros import QueryContext
from dashboards.model import Dashboard, Panel
from dashboards.query import Client, Frame, PanelQueryError, run_panel
from dashboards.suppression import SMALL_MAX, SMALL_MIN, SUPPRESSED, display

LOCAL = ZoneInfo(TZ)
# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000", "#999999")
WIDTH, HEIGHT = 760, 280
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 64, 16, 16, 56


@dataclass(frozen=True)
class PanelResult:
    panel: Panel
    frame: Frame | None
    error: str | None = None


@dataclass(frozen=True)
class DashboardResult:
    dashboard: Dashboard
    panels: tuple[PanelResult, ...]


def collect(
    client: Client, ctx: QueryContext, *, suppress: bool, dashboards: Sequence[Dashboard] = DASHBOARDS
) -> list[DashboardResult]:
    """Run every panel; a failing panel is reported on the page instead of stopping the report."""
    results = []
    for spec in dashboards:
        panels = []
        for panel in spec.panels:
            try:
                panels.append(PanelResult(panel, run_panel(client, panel, ctx, suppress=suppress)))
            except PanelQueryError as exc:
                panels.append(PanelResult(panel, None, str(exc)))
        results.append(DashboardResult(spec, tuple(panels)))
    return results


# --- values and labels --------------------------------------------------------------------------------------------


def _local(value: datetime) -> datetime:
    """clickhouse-connect returns naive UTC datetimes; the report speaks local (partnership) time."""
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return aware.astimezone(LOCAL)


def _time_labels(times: Sequence[datetime]) -> list[str]:
    local = [_local(t) for t in times]
    if all((t.day, t.hour, t.minute) == (1, 0, 0) for t in local):
        return [t.strftime("%b %Y") for t in local]
    if all((t.hour, t.minute) == (0, 0) for t in local):
        return [t.strftime("%d %b %Y") for t in local]
    return [t.strftime("%d %b %H:%M") for t in local]


def _cell(value: Any) -> str:
    if isinstance(value, datetime):
        local = _local(value)
        if (local.day, local.hour, local.minute, local.second) == (1, 0, 0, 0):
            return local.strftime("%b %Y")  # a calendar month
        return local.strftime("%Y-%m-%d %H:%M")
    return display(value)


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10.0 ** math.floor(math.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 or float(value).is_integer() else f"{value:,.1f}"


def _title(column: str) -> str:
    return column.replace("_", " ")


# --- charts -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Series:
    name: str
    values: tuple[float | None, ...]


def _time_series(frame: Frame) -> tuple[list[datetime], list[_Series]]:
    """Long frames (time, series, values...) or wide ones (time, values...) as one series per line."""
    times = sorted({r[0] for r in frame.rows})
    index = {t: i for i, t in enumerate(times)}
    has_label = len(frame.columns) > 1 and frame.columns[1] == "series"
    value_columns = [c for c in frame.columns[(2 if has_label else 1) :]]
    series: dict[str, list[float | None]] = {}
    for record in frame.records():
        for column in value_columns:
            if has_label:
                name = str(record["series"]) if len(value_columns) == 1 else f"{record['series']} {_title(column)}"
            else:
                name = _title(column)
            values = series.setdefault(name, [None] * len(times))
            value = record[column]
            values[index[record[frame.columns[0]]]] = None if value is None else float(value)
    return times, [_Series(name, tuple(values)) for name, values in series.items()]


def _axes(y_max: float, labels: Sequence[str], unit: str) -> list[str]:
    plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    plot_h = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    parts = []
    for i in range(5):
        value = y_max * i / 4
        y = MARGIN_TOP + plot_h - plot_h * i / 4
        parts.append(f'<line class="grid" x1="{MARGIN_LEFT}" x2="{WIDTH - MARGIN_RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(
            f'<text class="tick" x="{MARGIN_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_number(value)}</text>'
        )
    step = max(1, math.ceil(len(labels) / 12))
    slot = plot_w / max(len(labels), 1)
    for i, label in enumerate(labels):
        if i % step:
            continue
        x = MARGIN_LEFT + slot * (i + 0.5)
        parts.append(
            f'<text class="tick" x="{x:.1f}" y="{HEIGHT - MARGIN_BOTTOM + 16}" text-anchor="middle">'
            f"{html.escape(label)}</text>"
        )
    if unit and unit != "short":
        parts.append(f'<text class="unit" x="6" y="{MARGIN_TOP + 4}">{html.escape(unit)}</text>')
    return parts


def _legend(names: Sequence[str]) -> str:
    items = "".join(
        f'<span class="key"><i style="background:{PALETTE[i % len(PALETTE)]}"></i>{html.escape(n)}</span>'
        for i, n in enumerate(names)
    )
    return f'<div class="legend">{items}</div>'


def _svg(panel: Panel, body: list[str]) -> str:
    return (
        f'<svg class="chart" data-panel="{html.escape(panel.key)}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{html.escape(panel.title)}" '
        f'xmlns="http://www.w3.org/2000/svg">{"".join(body)}</svg>'
    )


def time_chart(panel: Panel, frame: Frame) -> str:
    """Stacked bars (`bars`) or lines with points (`timeseries`) over time, as SVG; suppressed values are gaps."""
    times, series = _time_series(frame)
    labels = _time_labels(times)
    plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    plot_h = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    slot = plot_w / max(len(times), 1)
    stacked = panel.kind == "bars"
    if stacked:
        totals = [sum(s.values[i] or 0.0 for s in series) for i in range(len(times))]
        y_max = _nice_max(max(totals, default=0.0))
    else:
        y_max = _nice_max(max((v for s in series for v in s.values if v is not None), default=0.0))

    def y_of(value: float) -> float:
        return MARGIN_TOP + plot_h - plot_h * value / y_max

    body = _axes(y_max, labels, panel.unit)
    if stacked:
        base = [0.0] * len(times)
        bar_w = max(slot * 0.7, 1.0)
        for n, s in enumerate(series):
            colour = PALETTE[n % len(PALETTE)]
            for i, value in enumerate(s.values):
                if not value:
                    continue
                top, bottom = y_of(base[i] + value), y_of(base[i])
                x = MARGIN_LEFT + slot * i + (slot - bar_w) / 2
                body.append(
                    f'<rect class="mark" x="{x:.1f}" y="{top:.1f}" width="{bar_w:.1f}" height="{bottom - top:.1f}" '
                    f'fill="{colour}"><title>{html.escape(s.name)}, {html.escape(labels[i])}: '
                    f"{_number(value)}</title></rect>"
                )
                base[i] += value
    else:
        for n, s in enumerate(series):
            colour = PALETTE[n % len(PALETTE)]
            segment: list[str] = []
            segments: list[list[str]] = [segment]
            for i, value in enumerate(s.values):
                if value is None:
                    segment = []
                    segments.append(segment)
                    continue
                x, y = MARGIN_LEFT + slot * (i + 0.5), y_of(value)
                segment.append(f"{x:.1f},{y:.1f}")
                body.append(
                    f'<circle class="mark" cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"><title>'
                    f"{html.escape(s.name)}, {html.escape(labels[i])}: {_number(value)}</title></circle>"
                )
            for points in segments:
                if len(points) > 1:
                    body.append(
                        f'<polyline class="line" fill="none" stroke="{colour}" stroke-width="2" '
                        f'points="{" ".join(points)}"/>'
                    )
    return _svg(panel, body) + _legend([s.name for s in series])


def bar_chart(panel: Panel, frame: Frame) -> str:
    """One horizontal bar per category (first column), length the first count column."""
    label_column, value_column = frame.columns[0], frame.columns[1]
    rows = [(str(r[label_column]), r[value_column]) for r in frame.records()]
    y_max = _nice_max(max((float(v) for _, v in rows if v is not None), default=0.0))
    left, plot_w = 120, WIDTH - 120 - MARGIN_RIGHT - 60
    band = (HEIGHT - MARGIN_TOP - 16) / max(len(rows), 1)
    body = []
    for i, (label, value) in enumerate(rows):
        y = MARGIN_TOP + band * i
        body.append(
            f'<text class="tick" x="{left - 8}" y="{y + band / 2 + 4:.1f}" text-anchor="end">'
            f"{html.escape(label)}</text>"
        )
        shown = display(value)
        if value is not None and value:
            w = plot_w * float(value) / y_max
            body.append(
                f'<rect class="mark" x="{left}" y="{y + band * 0.15:.1f}" width="{w:.1f}" height="{band * 0.7:.1f}" '
                f'fill="{PALETTE[0]}"><title>{html.escape(label)}: {shown}</title></rect>'
            )
        else:
            w = 0.0
        body.append(f'<text class="value" x="{left + w + 6:.1f}" y="{y + band / 2 + 4:.1f}">{shown}</text>')
    return _svg(panel, body)


def data_table(frame: Frame, panel: Panel) -> str:
    """The frame as a table; an England column is headed with its year (`England 2023/24`)."""
    england = panel.england_columns
    head = "".join(f"<th>{html.escape(england[c].heading if c in england else _title(c))}</th>" for c in frame.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>" for row in frame.rows)
    return (
        f'<table class="data" data-panel="{html.escape(panel.key)}">'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


def england_reference(figure: EnglandFigure) -> str:
    """The England figure beside a panel's local measure, with its year and source. The address is text, not a
    link: the page fetches and links to nothing, so it stays an offline document."""
    parts = [
        f"<strong>{html.escape(figure.heading)}: {html.escape(figure.shown)}</strong> ({html.escape(figure.label)}).",
        f"Source: {html.escape(figure.source)}" + (f", {html.escape(figure.url)}." if figure.url else "."),
    ]
    if figure.note:
        parts.append(html.escape(figure.note))
    return f'<p class="england" data-measure="{html.escape(figure.measure)}">{" ".join(parts)}</p>'


def _panel_html(result: PanelResult) -> str:
    panel, frame = result.panel, result.frame
    parts = [f'<figure class="panel {panel.kind}" id="{html.escape(panel.key)}">']
    parts.append(f"<figcaption><h3>{html.escape(panel.title)}</h3><p>{html.escape(panel.description)}</p></figcaption>")
    if result.error is not None or frame is None:
        parts.append(f'<p class="error">This panel could not be computed: {html.escape(result.error or "")}</p>')
    elif not frame.rows:
        parts.append('<p class="empty">No data in this period.</p>')
    elif panel.kind == "table":
        parts.append(data_table(frame, panel))
    else:
        parts.append(time_chart(panel, frame) if panel.kind in ("timeseries", "bars") else bar_chart(panel, frame))
        parts.append(f"<details><summary>Figures</summary>{data_table(frame, panel)}</details>")
    parts += [england_reference(figure) for figure in panel.england.values()]
    parts.append("</figure>")
    return "".join(parts)


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1b1b1b;background:#fafafa}
header,main{max-width:1600px;margin:0 auto;padding:0 24px}
header{padding-top:24px;border-bottom:1px solid #ddd}
h1{margin:0 0 4px}
.meta{color:#555;margin:4px 0 16px}
.notice{background:#fff4e5;border-left:4px solid #E69F00;padding:8px 12px}
nav a{margin-right:16px}
section{margin:32px 0}
.grid-panels{display:flex;flex-wrap:wrap;gap:16px}
figure.panel{background:#fff;border:1px solid #ddd;border-radius:6px;margin:0;padding:12px 16px;flex:1 1 700px;
  max-width:100%;overflow-x:auto}
figcaption h3{margin:0 0 4px;font-size:1.05em}
figcaption p{margin:0 0 8px;color:#555;font-size:.9em}
svg.chart{max-width:100%;height:auto;display:block}
svg .grid{stroke:#e5e5e5}
svg .tick,svg .value,svg .unit{font-size:11px;fill:#444}
.legend{font-size:.85em;margin:4px 0}
.key{margin-right:14px;white-space:nowrap}
.key i{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}
table.data{border-collapse:collapse;font-size:.9em;margin:6px 0}
table.data th,table.data td{border-bottom:1px solid #eee;padding:3px 10px;text-align:right}
table.data th:first-child,table.data td:first-child{text-align:left}
.england{margin:6px 0 0;font-size:.9em;color:#333;border-left:3px solid #0072B2;padding-left:8px}
.error{color:#b00020}
.empty{color:#777}
footer{max-width:1600px;margin:32px auto;padding:0 24px;color:#777;font-size:.85em}
"""


def render(
    results: Sequence[DashboardResult],
    *,
    title: str,
    time_from: datetime,
    time_to: datetime,
    generated_at: datetime,
    suppressed: bool,
    source: str,
) -> str:
    """The whole report as one HTML document."""
    period = f"{_local(time_from):%d %b %Y %H:%M} to {_local(time_to):%d %b %Y %H:%M} ({TZ})"
    nav = "".join(f'<a href="#{html.escape(r.dashboard.uid)}">{html.escape(r.dashboard.title)}</a>' for r in results)
    notice = (
        f'<p class="notice">Counts of {SMALL_MIN} to {SMALL_MAX} are shown as "{SUPPRESSED}" (suppressed), with the '
        "shares made from them, so that no child can be identified. Fit for sharing beyond the operational team.</p>"
        if suppressed
        else '<p class="notice">Operational report: figures are not suppressed. Do not share beyond the operational '
        "team; run <code>safeguard report --suppress</code> for a shareable version.</p>"
    )
    sections = []
    for result in results:
        panels = "".join(_panel_html(p) for p in result.panels)
        sections.append(
            f'<section id="{html.escape(result.dashboard.uid)}"><h2>{html.escape(result.dashboard.title)}</h2>'
            f"<p>{html.escape(result.dashboard.description)}</p>"
            f'<div class="grid-panels">{panels}</div></section>'
        )
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en-GB"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{_CSS}</style></head><body>"
        f"<header><h1>{html.escape(title)}</h1>"
        f'<p class="meta">Period: {html.escape(period)}. Generated {_local(generated_at):%d %b %Y %H:%M} '
        f"from {html.escape(source)}.</p>{notice}<nav>{nav}</nav></header>"
        f"<main>{''.join(sections)}</main>"
        "<footer>The same queries as the Grafana dashboards (dashboards/catalogue.py), run on the store. "
        "Months and financial years (April to March) are in UK local time.</footer>"
        "</body></html>\n"
    )
