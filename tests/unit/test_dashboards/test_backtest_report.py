"""The backtest report (pure: a Backtest in, HTML out): the gained and lost tables with their evidence, the charts,
and nothing of an event but its id, type and time; subjects by pseudonym only."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from dashboards.backtest_report import months_between, render_backtest
from schemas.events import AgencyEvent
from schemas.identifiers import find_identifiers
from streams.backtest import Backtest, Period, run_backtest
from streams.rules import Catalogue
from tests.unit.test_streams.backtest_history import CHILDREN, HOUSEHOLD, PROPOSED, history
from tests.unit.test_streams.factories import T0

GENERATED = datetime(2027, 1, 1, tzinfo=UTC)
LONDON = ZoneInfo("Europe/London")
PERIOD = Period(T0 - timedelta(days=1), T0 + timedelta(days=400))
SOURCE_ID_FIELDS = ("episode_id", "incident_id", "contact_id", "plan_id", "linked_incident_id")


def _backtest(events: list[AgencyEvent], current: Catalogue, proposed: Catalogue) -> Backtest:
    return run_backtest(events, current, proposed, period=PERIOD, partitions=6, raised_at=GENERATED)


def _page(result: Backtest, max_rows: int = 1_000) -> str:
    return render_backtest(
        result,
        title="Rule backtest: proposed.toml",
        current_name="rules.md defaults",
        proposed_name="proposed.toml",
        source="history.jsonl",
        generated_at=GENERATED,
        max_rows=max_rows,
    )


def _table_rows(page: str, key: str) -> list[str]:
    table = page.split(f'data-table="{key}"', 1)[1].split("</table>", 1)[0]
    return re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>", 1)[1])


def test_the_gained_table_lists_each_gained_alert_with_its_evidence() -> None:
    events = history()
    result = _backtest(events, Catalogue.default(), PROPOSED)
    page = _page(result)
    rows = _table_rows(page, "gained")
    assert len(rows) == len(result.comparison.gained) == 4
    by_id = {e.event_id: e for e in events}
    for row, alert in zip(rows, result.comparison.gained, strict=True):
        assert alert.subject_id in row and "repeat_missing" in row
        for event_id in alert.evidence_event_ids:
            event = by_id[event_id]
            local = event.occurred_at.astimezone(LONDON)
            assert f"<code>{event_id}</code> {event.event_type}, {local:%Y-%m-%d %H:%M}</li>" in row
    assert (
        "Lost: 0 alerts" in page
        and '<section id="lost"><h2>Lost: 0 alerts under the current catalogue only</h2><p>None.</p>' in page
    )
    changed = _table_rows(page, "changed")
    assert len(changed) == 1 and CHILDREN["C"] in changed[0] and "30 days earlier" in changed[0]


def test_the_lost_table_lists_what_a_higher_threshold_would_not_raise() -> None:
    events = history()
    result = _backtest(events, PROPOSED, Catalogue.default())
    rows = _table_rows(_page(result), "lost")
    assert len(rows) == len(result.comparison.lost) == 4
    assert all(any(alert.subject_id in row for row in rows) for alert in result.comparison.lost)


def test_counts_per_rule_severity_and_month_and_the_settings_that_differ() -> None:
    result = _backtest(history(), Catalogue.default(), PROPOSED)
    page = _page(result)
    [missing] = [row for row in _table_rows(page, "by-rule") if ">repeat_missing<" in row]
    cells = re.findall(r"<td[^>]*>(.*?)</td>", missing)
    assert cells == ["repeat_missing", "1", "5", "+4", "0", "1", "4", "0"]
    settings = _table_rows(page, "settings")
    assert [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in settings] == [
        ["repeat_missing", "threshold", "3", "2"],
        ["repeat_missing", "looked_after.threshold", "3", "2"],
    ]
    assert page.count('<svg class="chart"') == 2
    assert 'data-panel="backtest.alerts_per_month"' in page and 'data-panel="backtest.changes_per_month"' in page
    months = months_between(PERIOD.start, PERIOD.end)
    assert len(_table_rows(page, "backtest.alerts_per_month")) == len(months)
    [severity_medium] = [row for row in _table_rows(page, "by-severity") if ">medium<" in row]
    assert re.findall(r"<td[^>]*>(.*?)</td>", severity_medium)[:4] == [
        "medium",
        str(sum(a.severity == "medium" for a in result.current)),
        str(sum(a.severity == "medium" for a in result.proposed)),
        "+4",
    ]


def test_no_event_field_but_id_type_and_time_and_no_identifier_reaches_the_page() -> None:
    events = history()
    page = _page(_backtest(events, Catalogue.default(), PROPOSED))
    for event in events:
        for name in SOURCE_ID_FIELDS:
            value = getattr(event, name, None)
            if value is not None:
                assert value not in page, f"{name} {value} is on the page"
    pseudonyms = set(CHILDREN.values()) | {HOUSEHOLD}
    assert set(re.findall(r"[0-9a-f]{64}", page)) <= pseudonyms
    text = re.sub(r"<[^>]+>", " ", page)
    assert find_identifiers(text, context="opaque") == []
    assert "<script" not in page and not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # offline


def test_long_tables_are_cut_at_max_rows_and_say_how_many_more() -> None:
    result = _backtest(history(), Catalogue.default(), PROPOSED)
    page = _page(result, max_rows=1)
    assert len(_table_rows(page, "gained")) == 1
    assert "… and 3 more not listed" in page


def test_months_are_local_calendar_months_across_the_year_end() -> None:
    months = months_between(datetime(2019, 11, 30, 23, 30, tzinfo=UTC), datetime(2020, 2, 1, tzinfo=LONDON))
    assert [f"{m:%Y-%m}" for m in months] == ["2019-11", "2019-12", "2020-01"]
    # 23:30 UTC on 31 March 2019 is 00:30 on 1 April in London (BST): April's.
    [april] = months_between(datetime(2019, 3, 31, 23, 30, tzinfo=UTC), datetime(2019, 4, 2, tzinfo=UTC))
    assert f"{april:%Y-%m}" == "2019-04"
