"""The backtest report: a proposed rule catalogue beside the current one over history, as one offline HTML page.

Pure: a `streams.backtest.Backtest` in, HTML out. Same look and the same inline-SVG charts as `safeguard report`
(`dashboards.report`): no script, no network, so it opens from a file or an attachment. It shows subjects by
pseudonym and evidence by event id, type and time only; an event's own fields (source-system ids included) never
reach the page. It lists single alerts, so it is an operational document, not one to share.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

from dashboards.catalogue import TZ
from dashboards.model import Panel
from dashboards.query import Frame
from dashboards.report import _CSS as REPORT_CSS
from dashboards.report import LOCAL, time_chart
from schemas.alerts import AlertRaised
from schemas.types import Severity
from streams.backtest import Backtest, Change, EventRef

SEVERITIES: tuple[Severity, ...] = ("critical", "high", "medium", "info")
DEFAULT_MAX_ROWS = 1_000
"""Rows listed per table of single alerts; the page says how many more there are."""

ALERTS_PER_MONTH = Panel(
    key="backtest.alerts_per_month",
    title="Alerts per month",
    description="Alerts triggered each month under each catalogue.",
    kind="timeseries",
    sql="",
    order_by="time",
)
CHANGES_PER_MONTH = Panel(
    key="backtest.changes_per_month",
    title="Gained, lost and changed alerts per month",
    description="By the month the alert triggered (a changed one: when it triggered under the proposed catalogue).",
    kind="bars",
    sql="",
    order_by="time",
)
"""The charts, as panels of `dashboards.model` so that `dashboards.report` draws them (no SQL: the frames are
counted here)."""

_CSS = (
    REPORT_CSS
    + """
ul.evidence{margin:0;padding-left:16px;text-align:left;font-size:.85em}
table.data td.text,table.data th.text{text-align:left}
table.data td.changed{font-weight:600}
code{font-size:.85em;word-break:break-all}
"""
)


def month_of(moment: datetime) -> datetime:
    """The calendar month (partnership local time) holding `moment`, as its first local midnight."""
    local = moment.astimezone(LOCAL)
    return datetime(local.year, local.month, 1, tzinfo=LOCAL)


def months_between(start: datetime, end: datetime) -> list[datetime]:
    """Every local month overlapping [start, end)."""
    months, month = [], month_of(start)
    while month < end:
        months.append(month)
        month = datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=LOCAL)
    return months


def render_backtest(
    backtest: Backtest,
    *,
    title: str,
    current_name: str,
    proposed_name: str,
    source: str,
    generated_at: datetime,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> str:
    """The whole report as one HTML document."""
    b, cmp = backtest, backtest.comparison
    period = f"{_local(b.period.start)} to {_local(b.period.end)} ({TZ})"
    sections = [
        _section(
            "settings", "What the proposed catalogue changes", _settings_table(backtest, current_name, proposed_name)
        ),
        _section("summary", "Alerts under each catalogue", _summary(backtest)),
        _section("months", "Alerts per month", _month_charts(backtest)),
        _section("rules", "Alerts per rule", _count_table(backtest, "rule", lambda a: a.rule_id)),
        _section("severities", "Alerts per severity", _count_table(backtest, "severity", lambda a: a.severity)),
        _section("rule-months", "Alerts per rule and month", _rule_month_table(backtest)),
        _section(
            "gained",
            f"Gained: {len(cmp.gained):,} alerts under the proposed catalogue only",
            _alerts_table("gained", cmp.gained, b.evidence, max_rows),
        ),
        _section(
            "lost",
            f"Lost: {len(cmp.lost):,} alerts under the current catalogue only",
            _alerts_table("lost", cmp.lost, b.evidence, max_rows),
        ),
        _section(
            "changed",
            f"Changed: {len(cmp.changed):,} episodes alerted under both, differently",
            _changes_table(cmp.changed, b.evidence, max_rows),
        ),
    ]
    nav = "".join(
        f'<a href="#{key}">{label}</a>'
        for key, label in (("summary", "Summary"), ("months", "Months"), ("rules", "Rules"), ("gained", "Gained"),
                           ("lost", "Lost"), ("changed", "Changed"))
    )  # fmt: skip
    meta = (
        f"Period: {html.escape(period)} (alerts triggered in it). History replayed: {b.replayed:,} events from "
        f"{html.escape(source)}, {b.in_period:,} of them in the period; the earlier ones are history the rules look "
        f"back on. Deadline clocks closed at {html.escape(_local(b.closed_at))}. {b.partitions} partitions per "
        f"topic. Generated {html.escape(_local(generated_at))}."
    )
    notice = (
        '<p class="notice">Operational document: it lists single alerts by pseudonym and evidence by event id. '
        "Do not share beyond the operational team.</p>"
    )
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en-GB"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{_CSS}</style></head><body>"
        f"<header><h1>{html.escape(title)}</h1>"
        f'<p class="meta">Current: {html.escape(current_name)}. Proposed: {html.escape(proposed_name)}.</p>'
        f'<p class="meta">{meta}</p>{notice}<nav>{nav}</nav></header>'
        f"<main>{''.join(sections)}</main>"
        "<footer>Both catalogues ran through the stream worker's own rule step (streams/replay.py) over the same "
        "events in event-time order. Alerts are matched by alert id (rule, subject, triggering evidence); an alert "
        "of one catalogue only that shares rule, subject and evidence with one of the other is counted as changed, "
        "not as gained and lost (matched over the whole replay, so a change is listed when either of its alerts "
        "triggered in the period). Months are in UK local time.</footer>"
        "</body></html>\n"
    )


# --- sections -----------------------------------------------------------------------------------------------------


def _section(key: str, heading: str, body: str) -> str:
    return f'<section id="{key}"><h2>{html.escape(heading)}</h2>{body}</section>'


def _table(key: str, head: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A table of already-rendered cells; a heading is aligned as its column's cells (text left, numbers right)."""
    listed = list(rows)
    text = [cell.startswith('<td class="text') for cell in listed[0]] if listed else [False] * len(head)
    header = "".join(
        f'<th class="text">{html.escape(h)}</th>' if left else f"<th>{html.escape(h)}</th>"
        for h, left in zip(head, text, strict=True)
    )
    body = "".join("<tr>" + "".join(row) + "</tr>" for row in listed)
    return f'<table class="data" data-table="{key}"><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>'


def _td(value: object, css: str = "") -> str:
    text = f"{value:,}" if isinstance(value, int) else str(value)
    return f'<td class="{css}">{html.escape(text)}</td>' if css else f"<td>{html.escape(text)}</td>"


def _settings_table(backtest: Backtest, current_name: str, proposed_name: str) -> str:
    if not backtest.settings:
        return "<p>Nothing: every setting is the same in both catalogues.</p>"
    rows = [
        [_td(s.rule_id, "text"), _td(s.setting, "text"), _td(s.current), _td(s.proposed, "changed")]
        for s in backtest.settings
    ]
    return _table("settings", ["rule", "setting", f"current ({current_name})", f"proposed ({proposed_name})"], rows)


def _summary(backtest: Backtest) -> str:
    cmp = backtest.comparison
    rows = [
        ["alerts under the current catalogue", len(backtest.current)],
        ["alerts under the proposed catalogue", len(backtest.proposed)],
        ["the same alert under both", len(cmp.same)],
        ["changed (the same episode, alerted differently)", len(cmp.changed)],
        ["gained (proposed only)", len(cmp.gained)],
        ["lost (current only)", len(cmp.lost)],
    ]
    return _table("summary", ["", "alerts"], [[_td(label, "text"), _td(n)] for label, n in rows])


def _month_charts(backtest: Backtest) -> str:
    months = months_between(backtest.period.start, backtest.period.end)
    ours = Counter(month_of(a.triggered_at) for a in backtest.current)
    theirs = Counter(month_of(a.triggered_at) for a in backtest.proposed)
    cmp = backtest.comparison
    gained = Counter(month_of(a.triggered_at) for a in cmp.gained)
    lost = Counter(month_of(a.triggered_at) for a in cmp.lost)
    changed = Counter(month_of(c.proposed.triggered_at) for c in cmp.changed)
    totals = Frame(
        ("time", "series", "alerts"),
        tuple((m, name, counts[m]) for m in months for name, counts in (("current", ours), ("proposed", theirs))),
    )
    changes = Frame(
        ("time", "series", "alerts"),
        tuple(
            (m, name, counts[m])
            for m in months
            for name, counts in (("gained", gained), ("lost", lost), ("changed", changed))
        ),
    )
    parts = [_chart(ALERTS_PER_MONTH, totals, months), _chart(CHANGES_PER_MONTH, changes, months)]
    return f'<div class="grid-panels">{"".join(parts)}</div>'


def _chart(panel: Panel, frame: Frame, months: list[datetime]) -> str:
    """A chart drawn as `safeguard report` draws its panels, with its figures in a table below."""
    series = list(dict.fromkeys(str(row[1]) for row in frame.rows))
    return (
        f'<figure class="panel {panel.kind}" id="{html.escape(panel.key)}"><figcaption>'
        f"<h3>{html.escape(panel.title)}</h3><p>{html.escape(panel.description)}</p></figcaption>"
        f"{time_chart(panel, frame)}<details><summary>Figures</summary>"
        f"{_table(panel.key, ['month', *series], _month_rows(months, frame))}</details></figure>"
    )


def _month_rows(months: list[datetime], frame: Frame) -> list[list[str]]:
    by_month: dict[datetime, list[str]] = {m: [_td(f"{m:%b %Y}", "text")] for m in months}
    for month, _series, count in frame.rows:
        by_month[month].append(_td(count))
    return list(by_month.values())


def _count_table(backtest: Backtest, name: str, key: Callable[[AlertRaised], str]) -> str:
    cmp = backtest.comparison
    counts = {
        column: Counter(key(a) for a in alerts)
        for column, alerts in (
            ("current", backtest.current),
            ("proposed", backtest.proposed),
            ("same", cmp.same),
            ("changed", [c.current for c in cmp.changed]),
            ("gained", cmp.gained),
            ("lost", cmp.lost),
        )
    }
    values = set().union(*(c.keys() for c in counts.values()))
    order = list(SEVERITIES) if name == "severity" else sorted(values)
    rows = []
    for value in (v for v in order if v in values):
        ours, theirs = counts["current"][value], counts["proposed"][value]
        rows.append(
            [
                _td(value, "text"),
                _td(ours),
                _td(theirs, "changed" if theirs != ours else ""),
                _td(f"{theirs - ours:+,}" if theirs != ours else "0"),
                *(_td(counts[column][value]) for column in ("same", "changed", "gained", "lost")),
            ]
        )
    if not rows:
        return "<p>No alerts under either catalogue in this period.</p>"
    head = [name, "current", "proposed", "difference", "same", "changed", "gained", "lost"]
    return _table(f"by-{name}", head, rows)


def _rule_month_table(backtest: Backtest) -> str:
    months = months_between(backtest.period.start, backtest.period.end)
    ours = Counter((a.rule_id, month_of(a.triggered_at)) for a in backtest.current)
    theirs = Counter((a.rule_id, month_of(a.triggered_at)) for a in backtest.proposed)
    rules = sorted({rule for rule, _ in ours} | {rule for rule, _ in theirs})
    if not rules:
        return "<p>No alerts under either catalogue in this period.</p>"
    rows = []
    for rule in rules:
        cells = [_td(rule, "text")]
        for month in months:
            a, b = ours[(rule, month)], theirs[(rule, month)]
            cells.append(_td(f"{a:,} → {b:,}", "changed") if a != b else _td(a))
        rows.append(cells)
    note = "<p>Each cell: alerts under the current catalogue, and under the proposed one where they differ.</p>"
    return note + _table("by-rule-month", ["rule", *(f"{m:%b %Y}" for m in months)], rows)


def _alerts_table(key: str, alerts: Sequence[AlertRaised], evidence: dict[str, EventRef], max_rows: int) -> str:
    if not alerts:
        return "<p>None.</p>"
    rows = [
        [
            _td(_local(a.triggered_at), "text"),
            _td(a.rule_id, "text"),
            _td(a.severity),
            _subject(a),
            _td(a.summary, "text"),
            _evidence(a.evidence_event_ids, evidence),
        ]
        for a in alerts[:max_rows]
    ]
    head = ["triggered", "rule", "severity", "subject (pseudonym)", "summary", "evidence (event id, type, time)"]
    return _table(key, head, rows) + _more(len(alerts), max_rows)


def _changes_table(changes: Sequence[Change], evidence: dict[str, EventRef], max_rows: int) -> str:
    if not changes:
        return "<p>None.</p>"
    rows = [
        [
            _td(c.current.rule_id, "text"),
            _subject(c.current),
            _td(f"{_local(c.current.triggered_at)}, {c.current.severity}", "text"),
            _td(f"{_local(c.proposed.triggered_at)}, {c.proposed.severity}", "text"),
            _td(c.what, "text changed"),
            _evidence(c.current.evidence_event_ids, evidence),
            _evidence(c.proposed.evidence_event_ids, evidence),
        ]
        for c in changes[:max_rows]
    ]
    head = ["rule", "subject (pseudonym)", "current", "proposed", "how", "current evidence", "proposed evidence"]
    return _table("changed", head, rows) + _more(len(changes), max_rows)


def _subject(alert: AlertRaised) -> str:
    return f'<td class="text">{alert.subject_type} <code>{html.escape(alert.subject_id)}</code></td>'


def _evidence(event_ids: Sequence[str], evidence: dict[str, EventRef]) -> str:
    items = []
    for event_id in event_ids:
        ref = evidence.get(event_id)
        described = f"{ref.event_type}, {_local(ref.occurred_at)}" if ref else "not in the replayed history"
        items.append(f"<li><code>{html.escape(event_id)}</code> {html.escape(described)}</li>")
    return f'<td class="text"><ul class="evidence">{"".join(items)}</ul></td>'


def _more(total: int, shown: int) -> str:
    return f'<p class="more">… and {total - shown:,} more not listed (--max-rows).</p>' if total > shown else ""


def _local(moment: datetime) -> str:
    return f"{moment.astimezone(LOCAL):%Y-%m-%d %H:%M}"
