"""Panels reading the summary tables (sinks/migrations/0003_dashboard_summaries.sql) return exactly what their
definition over the event tables (`Panel.reference`, the raw SQL they replace) returns: over the simulated years,
for ranges of whole months and ranges cut anywhere, in both variants; after a replayed batch and erasure
tombstones; and on a store that held its events before the summaries existed (the migration's backfill).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dashboards import catalogue as c
from dashboards.query import Frame, context, run_panel
from producers.simulate import LEICESTER_2019, generate
from safeguard.settings import ClickHouseSettings
from schemas.alerts import AlertLifecycle, AlertRaised
from schemas.codec import validate_event
from schemas.events import AgencyEvent
from sinks.mapping import TableRow, row_for_alert, row_for_lifecycle, rows_for_event
from sinks.migrate import migrate
from sinks.store import insert_rows
from sinks.summaries import SUMMARIES_MIGRATION, backfills, rebuild, summary_tables
from tests.integration.test_dashboards.conftest import LONDON, DashboardStore, year_range
from tests.integration.test_dashboards.store import acknowledgements, run_rules
from tests.unit.test_schemas import examples as ex

pytestmark = pytest.mark.integration

SUMMARY_PANELS = [p for d in c.DASHBOARDS for p in d.panels if p.reference]
RETENTION = {"retention_events": "forever", "retention_alerts": "forever", "retention_dead_letters": "forever"}


def test_the_slow_panels_read_the_summaries() -> None:
    """Every panel that grouped the events by month, child, household, episode or alert now reads a summary."""
    assert {p.key for p in SUMMARY_PANELS} == {
        "front_door.contacts_by_agency_month",
        "front_door.contacts_by_agency_year",
        "front_door.decisions_month",
        "front_door.referrals_month",
        "front_door.referral_rates_year",
        "missing.episodes_and_children",
        "missing.repeat_children",
        "missing.return_interviews_month",
        "domestic.incidents_month",
        "domestic.summary_year",
        "domestic.dash_month",
        "domestic.repeat_households",
        "cp.open_month_end",
        "cp.repeat_plans",
        "cp.open_at_end",
        "alerts.time_to_acknowledge",
        "alerts.time_to_acknowledge_series",
    }
    tables = set(summary_tables())
    for panel in SUMMARY_PANELS:
        assert any(f"{t} FINAL" in panel.sql for t in tables), panel.key
        assert not any(f"{t} FINAL" in panel.reference for t in tables), panel.key


def ranges(lo: datetime, hi: datetime) -> list[tuple[datetime, datetime]]:
    """The year; whole local months; a range cut mid-month at odd seconds; one ending at a month's last second;
    a few days inside one month; and everything since 2000 (plans open when the year began started years before)."""
    return [
        (lo, hi),
        (datetime(lo.year, 6, 1, tzinfo=LONDON), datetime(lo.year, 9, 1, tzinfo=LONDON)),
        (datetime(lo.year, 5, 17, 13, 5, 7, tzinfo=UTC), datetime(lo.year + 1, 1, 9, 8, 59, 59, tzinfo=UTC)),
        (datetime(lo.year, 10, 1, tzinfo=LONDON), datetime(lo.year, 12, 31, 23, 59, 59, tzinfo=LONDON)),
        (datetime(lo.year, 11, 3, 7, tzinfo=UTC), datetime(lo.year, 11, 12, 19, 30, tzinfo=UTC)),
        (datetime(2000, 1, 1, tzinfo=UTC), hi),
    ]


def rows_equal(a: Frame, b: Frame) -> bool:
    """Same columns and rows, NaN (a share of nothing) equal to NaN."""

    def cell(x: Any, y: Any) -> bool:
        if isinstance(x, float) and isinstance(y, float) and math.isnan(x):
            return math.isnan(y)
        return bool(x == y)

    return (
        a.columns == b.columns
        and len(a.rows) == len(b.rows)
        and all(
            len(r) == len(s) and all(cell(x, y) for x, y in zip(r, s, strict=True))
            for r, s in zip(a.rows, b.rows, strict=True)
        )
    )


def check_panels(client: Any, database: str, spans: list[tuple[datetime, datetime]], *, shared: bool = True) -> int:
    """Run every summary panel and its reference over `spans`; returns how many non-empty results agreed."""
    client.database = database
    agreed = 0
    for panel in SUMMARY_PANELS:
        for lo, hi in spans:
            ctx = context(lo, hi)
            for suppress in (False, True) if shared else (False,):
                got = run_panel(client, panel, ctx, suppress=suppress)
                want = run_panel(client, panel, ctx, suppress=suppress, reference=True)
                assert rows_equal(got, want), (
                    f"{panel.key} {database} {lo}..{hi} suppress={suppress}:\n"
                    f"summary   {got.rows[:4]}\nreference {want.rows[:4]}"
                )
                agreed += bool(want.rows)
    return agreed


@pytest.mark.parametrize("database", ["leeds", "leicester"])
def test_every_summary_panel_returns_what_its_reference_returns(
    store_client: Any, dashboard_store: DashboardStore, database: str
) -> None:
    year = dashboard_store.years[database]
    spans = ranges(*year_range(year.scenario))
    assert check_panels(store_client, database, spans) > len(SUMMARY_PANELS) * len(spans)


# --- replays, erasures and the backfill ---------------------------------------------------------------------------

REPLAY_DB = "summaries_replayed"
DAYS = 150


def _rows(
    events: list[AgencyEvent], alerts: list[AlertRaised], acks: list[AlertLifecycle], late: timedelta
) -> list[TableRow]:
    """The rows of `events`, `alerts` and `acks` as the sink would store them `late` after they were recorded."""
    rows = [r for e in events for r in rows_for_event(e, ingested_at=e.recorded_at + late)]
    rows += [row_for_alert(a, ingested_at=a.raised_at + late) for a in alerts]
    rows += [row_for_lifecycle(a, ingested_at=a.occurred_at + late) for a in acks]
    return rows


def _results(client: Any, spans: list[tuple[datetime, datetime]]) -> dict[tuple[str, datetime], Frame]:
    """Every summary panel's reference (the event tables read with FINAL) over `spans`."""
    return {
        (p.key, lo): run_panel(client, p, context(lo, hi), reference=True) for p in SUMMARY_PANELS for lo, hi in spans
    }


def same(a: dict[tuple[str, datetime], Frame], b: dict[tuple[str, datetime], Frame]) -> bool:
    return a.keys() == b.keys() and all(rows_equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def replayed(store_client: Any) -> Iterator[tuple[Any, list[AgencyEvent], list[tuple[datetime, datetime]]]]:
    """Leicester's first 150 days in a database of their own, alerts and acknowledgements included."""
    events = generate(LEICESTER_2019, 11, days=DAYS)
    alerts = run_rules(events)
    acks = acknowledgements(alerts, datetime(2019, 4, 1, 12, tzinfo=UTC))
    migrate(store_client, ClickHouseSettings(url="chdb://unused", database=REPLAY_DB, **RETENTION))
    erased_only = set(range(3, len(events), 97))  # events whose tombstone arrives, never the event (i % 97 == 3)
    insert_rows(
        store_client, REPLAY_DB, _rows([e for i, e in enumerate(events) if i not in erased_only], [], [], timedelta())
    )
    insert_rows(store_client, REPLAY_DB, _rows([], alerts, acks, timedelta(seconds=1)))
    store_client.database = REPLAY_DB
    lo = datetime(2019, 4, 1, tzinfo=LONDON)
    hi = lo + timedelta(days=DAYS) - timedelta(seconds=1)
    spans = [(lo, hi), (datetime(2019, 5, 1, tzinfo=LONDON), datetime(2019, 8, 1, tzinfo=LONDON)),
             (datetime(2019, 5, 20, 9, 30, 1, tzinfo=UTC), datetime(2019, 7, 2, 16, tzinfo=UTC)),
             (datetime(2000, 1, 1, tzinfo=UTC), hi)]  # fmt: skip
    try:
        yield store_client, events, spans
    finally:
        store_client.database = "leeds"


def test_a_replayed_batch_counts_nothing_twice(
    replayed: tuple[Any, list[AgencyEvent], list[tuple[datetime, datetime]]],
) -> None:
    """A crash after inserting and before committing: the sink reads a batch again and stores it again, later."""
    client, events, spans = replayed
    before = _results(client, spans)
    stored = [e for i, e in enumerate(events) if i % 97 != 3]
    middle = stored[len(stored) // 3 : 2 * len(stored) // 3]
    alerts = run_rules(events)
    again = _rows(middle, alerts[: len(alerts) // 2], [], timedelta(hours=6))
    insert_rows(client, REPLAY_DB, again, token="replay-1")
    insert_rows(client, REPLAY_DB, again, token="replay-2")  # and once more under another deduplication token
    assert same(_results(client, spans), before)
    check_panels(client, REPLAY_DB, spans, shared=False)


def test_erased_events_leave_the_summaries_as_they_leave_the_event_tables(
    replayed: tuple[Any, list[AgencyEvent], list[tuple[datetime, datetime]]],
) -> None:
    client, events, spans = replayed
    before = _results(client, spans)
    erased = [e.model_copy(update={"purge": True}) for i, e in enumerate(events) if i % 23 == 0 or i % 97 == 3]
    insert_rows(client, REPLAY_DB, _rows(erased, [], [], timedelta(days=2)))
    after = _results(client, spans)
    changed = {key for key, frame in after.items() if not rows_equal(frame, before[key])}
    # every panel's figures lose the erased events (the whole-history range of the alert panels sees no event)
    assert {key for key, _ in changed} >= {p.key for p in SUMMARY_PANELS if not p.key.startswith("alerts.")}
    check_panels(client, REPLAY_DB, spans)
    # the tombstones replayed as well
    insert_rows(client, REPLAY_DB, _rows(erased[::2], [], [], timedelta(days=3)))
    assert same(_results(client, spans), after)


def test_a_store_holding_events_before_the_summaries_gets_them_by_the_migration(
    replayed: tuple[Any, list[AgencyEvent], list[tuple[datetime, datetime]]],
) -> None:
    """An existing store upgraded: no summary, no view, 0003 not applied; `migrate` creates them and backfills."""
    client, _, spans = replayed
    before = _results(client, spans)
    for name, engine in client.query(
        "SELECT name, engine FROM system.tables WHERE database = {db:String} AND (name IN {tables:Array(String)} "
        "OR engine = 'MaterializedView')",
        parameters={"db": REPLAY_DB, "tables": summary_tables()},
    ).result_rows:
        client.command(f"DROP {'VIEW' if engine == 'MaterializedView' else 'TABLE'} `{REPLAY_DB}`.{name}")
    client.command(f"DELETE FROM `{REPLAY_DB}`.schema_migrations WHERE name = '{SUMMARIES_MIGRATION}'")
    settings = ClickHouseSettings(url="chdb://unused", database=REPLAY_DB, **RETENTION)
    assert migrate(client, settings) == [SUMMARIES_MIGRATION]
    assert same(_results(client, spans), before)
    check_panels(client, REPLAY_DB, spans, shared=False)
    # the backfill over rows already summarised, and a rebuild from empty, change nothing either
    assert rebuild(client, settings) == summary_tables()
    for _, statement in backfills(REPLAY_DB, settings):
        client.command(statement)
    assert same(_results(client, spans), before)


# --- edge cases -----------------------------------------------------------------------------------------------------

EDGE_DB = "summaries_edges"


def _event(kind: str, at: datetime, n: int, **fields: Any) -> AgencyEvent:
    """A valid `kind` event at `at` (recorded a minute later) with its own id and `fields` changed."""
    obj = ex.minimal(kind)
    obj.update(
        event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"edge/{kind}/{n}")),
        occurred_at=at.isoformat(),
        recorded_at=(at + timedelta(minutes=1)).isoformat(),
        **fields,
    )
    return validate_event(obj)


def _child(n: int) -> str:
    return f"{n:064x}"


def edge_events() -> list[AgencyEvent]:
    """Events at the instants where whole months, days and seconds meet: 29 February, the last (sub-)second of a
    month, two events of one subject in the same millisecond, plans ending at a month's last second."""
    events: list[AgencyEvent] = []
    n = iter(range(10_000))

    def local(*args: int, ms: int = 0) -> datetime:
        return datetime(*args, tzinfo=LONDON) + timedelta(milliseconds=ms)  # type: ignore[misc]

    # referrals 12 months apart by local date, across 29 February, and two in the same millisecond
    for child, days in (
        (1, [local(2020, 2, 29, 10), local(2021, 2, 28, 9)]),
        (2, [local(2020, 2, 29, 10), local(2021, 3, 1, 0)]),
        (3, [local(2020, 1, 31, 23, 59, 59, ms=999), local(2021, 1, 31, 0), local(2021, 1, 31, 0)]),
        (4, [local(2020, 3, 31, 23, 30), local(2021, 3, 31, 23, 59, 59, ms=500), local(2022, 4, 1)]),
    ):
        for at in days:
            events.append(_event("contact.decided", at, next(n), child_id=_child(child), outcome="referral"))
            events.append(_event("contact.received", at, next(n), child_id=_child(child), contact_source="6"))
    # incidents at the first instant of a month, in its last second, at the same millisecond
    for household, moments in (
        ("a" * 64, [local(2020, 6, 1), local(2020, 6, 30, 23, 59, 59, ms=400), local(2021, 6, 30, 23, 59, 59)]),
        ("b" * 64, [local(2020, 7, 31, 12), local(2020, 7, 31, 12), local(2021, 7, 31, 12, ms=1)]),
    ):
        for at in moments:
            events.append(_event("domestic_incident.recorded", at, next(n), household_id=household))
    # an episode found twice (once before the ranges below), its interview before the second finding
    episode = {"episode_id": "MP-EDGE-1", "child_id": _child(9)}
    events += [
        _event("missing.reported", local(2020, 5, 1), next(n), **episode),
        _event("missing.found", local(2020, 5, 2), next(n), **episode),
        _event("missing.return_interview", local(2020, 8, 31, 23, 59, 59, ms=700), next(n), **episode),
        _event("missing.found", local(2020, 9, 1, 0, 0, 0, ms=1), next(n), **episode),
        _event(
            "missing.reported", local(2020, 9, 30, 23, 59, 59, ms=10), next(n), **{**episode, "absence_type": "away"}
        ),
    ]
    # plans starting and ending in a month's last second, one ended before its start was seen, one open two years
    for plan, child, start, end in (
        ("P1", 20, local(2020, 6, 30, 23, 59, 59, ms=500), local(2020, 11, 30, 23, 59, 59)),
        ("P2", 20, local(2020, 12, 31, 23, 59, 59), None),
        ("P3", 21, None, local(2020, 7, 31, 23, 59, 59, ms=1)),
        ("P4", 21, local(2020, 8, 1), local(2021, 1, 31, 23, 59, 59, ms=999)),
        ("P5", 22, local(2018, 10, 31, 23, 59, 59, ms=200), None),
        ("P6", 22, local(2018, 10, 31, 23, 59, 58), local(2020, 10, 31, 23, 59, 59)),
    ):
        fields = {"plan_id": plan, "child_id": _child(child)}
        if start is not None:
            previous = {"previous_plan_ended_at": "2019-01-31"} if plan == "P4" else {}
            events.append(_event("cp_plan.started", start, next(n), **fields, **previous))
        if end is not None:
            events.append(_event("cp_plan.ended", end, next(n), **fields))
    return events


def test_edges_of_months_days_and_seconds(store_client: Any) -> None:
    events = edge_events()
    migrate(store_client, ClickHouseSettings(url="chdb://unused", database=EDGE_DB, **RETENTION))
    insert_rows(store_client, EDGE_DB, [r for e in events for r in rows_for_event(e)])
    bounds = [
        datetime(2019, 4, 1, tzinfo=LONDON),
        datetime(2020, 3, 1, tzinfo=LONDON),
        datetime(2020, 6, 30, 23, 59, 59, tzinfo=LONDON),
        datetime(2020, 7, 1, tzinfo=LONDON),
        datetime(2020, 9, 1, tzinfo=LONDON),
        datetime(2020, 11, 30, 23, 59, 59, tzinfo=LONDON),
        datetime(2021, 1, 31, tzinfo=LONDON),
        datetime(2021, 2, 28, 9, tzinfo=LONDON),
        datetime(2021, 7, 31, 12, tzinfo=LONDON),
        datetime(2022, 4, 1, tzinfo=LONDON),
    ]
    spans = [(lo, hi) for lo in bounds for hi in bounds if lo < hi]
    try:
        assert check_panels(store_client, EDGE_DB, spans, shared=False) > len(spans)
    finally:
        store_client.database = "leeds"
