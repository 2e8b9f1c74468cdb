"""Every panel's SQL, with the plugin's macros expanded as the plugin expands them, run on chDB over a calibrated
simulated year, and the figures checked against counts made in Python from the generated events (expected.py)
and against the alerts the rule engine raised over them.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dashboards import catalogue as c
from dashboards.model import Panel
from dashboards.query import Frame, context, expanded_sql, run_panel
from dashboards.suppression import suppress_row
from schemas.events import ContactReceived, CpPlanEnded, CpPlanStarted, MissingReported
from tests.integration.test_dashboards import expected as x
from tests.integration.test_dashboards.conftest import DashboardStore, year_range
from tests.integration.test_dashboards.store import LoadedYear

pytestmark = pytest.mark.integration

ALL_PANELS = [p for d in c.DASHBOARDS for p in d.panels]


def run(
    client: Any,
    year: LoadedYear,
    panel: Panel,
    lo: datetime | None = None,
    hi: datetime | None = None,
    *,
    suppress: bool = False,
    interval: timedelta | None = None,
) -> Frame:
    default_lo, default_hi = year_range(year.scenario)
    client.database = year.database
    return run_panel(client, panel, context(lo or default_lo, hi or default_hi, interval), suppress=suppress)


# Columns a panel computes from now(): two runs of one query a moment apart may differ by the seconds between them.
_CLOCK_COLUMNS = {"seconds_since_ingest"}
_CLOCK_TOLERANCE_S = 30


def same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Row equality where NaN (a share of nothing) equals NaN, and a clock column may move on between two runs."""
    nan = {k for k, v in a.items() if isinstance(v, float) and math.isnan(v)}
    clock = {k for k in a if k in _CLOCK_COLUMNS and a[k] is not None and b.get(k) is not None}
    return (
        nan == {k for k, v in b.items() if isinstance(v, float) and math.isnan(v)}
        and all(a[k] == b[k] for k in a if k not in nan | clock)
        and all(abs(a[k] - b[k]) <= _CLOCK_TOLERANCE_S for k in clock)
        and a.keys() == b.keys()
    )


def utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@pytest.fixture(scope="module")
def leeds(dashboard_store: DashboardStore) -> LoadedYear:
    return dashboard_store.years["leeds"]


@pytest.fixture(scope="module")
def leicester(dashboard_store: DashboardStore) -> LoadedYear:
    return dashboard_store.years["leicester"]


# --- every panel, both variants -----------------------------------------------------------------------------------


@pytest.mark.parametrize("panel", ALL_PANELS, ids=lambda p: p.key)
def test_every_panel_runs_and_suppression_hides_exactly_the_small_counts(
    store_client: Any, dashboard_store: DashboardStore, panel: Panel
) -> None:
    for year in dashboard_store.years.values():
        plain = run(store_client, year, panel)
        shown = run(store_client, year, panel, suppress=True)
        assert plain.rows, f"{panel.key} shows nothing for {year.database}"
        assert plain.columns == shown.columns
        for column in (*panel.counts, *(r.column for r in panel.rates), *(n for r in panel.rates for n in r.counts)):
            assert column in plain.columns, f"{panel.key}: no column {column}"
        if panel.kind in ("timeseries", "bars"):
            assert plain.columns[0] == "time"
            assert all(isinstance(t, datetime) for t in plain.column("time"))
        assert len(plain.rows) == len(shown.rows)
        for before, after in zip(plain.records(), shown.records(), strict=True):
            assert same(after, suppress_row(before, panel.counts, panel.rates))


def test_suppression_has_small_numbers_to_hide(store_client: Any, leicester: LoadedYear) -> None:
    """The check above is only worth something if some counts really are 1-5."""
    frame = run(store_client, leicester, c.ALERTS_BY_RULE)
    assert any(1 <= n <= 5 for n in frame.column("alerts"))
    shown = run(store_client, leicester, c.ALERTS_BY_RULE, suppress=True)
    assert None in shown.column("alerts")


def test_no_template_variable_survives_expansion() -> None:
    lo, hi = datetime(2019, 4, 1, tzinfo=UTC), datetime(2020, 4, 1, tzinfo=UTC)
    for panel in ALL_PANELS:
        for suppress in (False, True):
            assert "$" not in expanded_sql(panel, context(lo, hi), suppress=suppress)


# --- Front Door ---------------------------------------------------------------------------------------------------


def test_leeds_contacts_by_agency_per_year_are_the_generated_and_published_counts(
    store_client: Any, leeds: LoadedYear
) -> None:
    lo, hi = year_range(leeds.scenario)
    [row] = list(run(store_client, leeds, c.CONTACTS_BY_YEAR).records())
    counts = x.contacts_by_year(leeds.events, lo, hi)
    assert list(counts) == ["2019/20"]
    want = counts["2019/20"]
    total = sum(want.values())
    assert row == {
        "year": "2019/20",
        "police": want["Police"],
        "police_pct": x.pct(want["Police"], total),
        "health": want["Health"],
        "health_pct": x.pct(want["Health"], total),
        "education": want["Education"],
        "education_pct": x.pct(want["Education"], total),
        "other": want["Other"],
        "other_pct": x.pct(want["Other"], total),
        "total": total,
    }
    # calibration.md, Leeds 2019/20: 9,943 (37.9%) / 3,130 (11.9%) / 3,749 (14.3%) / 9,382 (35.8%) / 26,204
    assert (row["police"], row["health"], row["education"], row["other"], row["total"]) == (
        9_943,
        3_130,
        3_749,
        9_382,
        26_204,
    )
    assert (row["police_pct"], row["health_pct"], row["education_pct"], row["other_pct"]) == (37.9, 11.9, 14.3, 35.8)


@pytest.mark.parametrize("database", ["leeds", "leicester"])
def test_contacts_by_agency_per_month(store_client: Any, dashboard_store: DashboardStore, database: str) -> None:
    year = dashboard_store.years[database]
    lo, hi = year_range(year.scenario)
    frame = run(store_client, year, c.CONTACTS_BY_MONTH)
    got = {(utc(r["time"]), r["series"]): r["contacts"] for r in frame.records()}
    assert got == dict(x.contacts_by_month(year.events, lo, hi))
    assert len({t for t, _ in got}) == 12


def test_a_one_month_range_counts_the_month_inclusive_of_its_bounds(store_client: Any, leeds: LoadedYear) -> None:
    lo = datetime(2019, 10, 1, tzinfo=x.LONDON)
    hi = datetime(2019, 10, 31, 23, 59, 59, tzinfo=x.LONDON)
    frame = run(store_client, leeds, c.CONTACTS_BY_MONTH, lo, hi)
    got = {(utc(r["time"]), r["series"]): r["contacts"] for r in frame.records()}
    assert got == dict(x.contacts_by_month(leeds.events, lo, hi))
    # an instant exactly on the upper bound is inside the range
    first = next(e for e in x.of(leeds.events, ContactReceived) if e.occurred_at > lo + timedelta(days=3))
    bound = x.second(first.occurred_at)
    frame = run(store_client, leeds, c.CONTACTS_BY_MONTH, lo, bound)
    total = sum(frame.column("contacts"))
    assert total == sum(x.contacts_by_month(leeds.events, lo, bound).values())
    assert total == sum(1 for e in x.of(leeds.events, ContactReceived) if lo <= e.occurred_at <= bound)


@pytest.mark.parametrize("database", ["leeds", "leicester"])
def test_decisions_per_month(store_client: Any, dashboard_store: DashboardStore, database: str) -> None:
    year = dashboard_store.years[database]
    lo, hi = year_range(year.scenario)
    frame = run(store_client, year, c.DECISIONS_BY_MONTH)
    got = {(utc(r["time"]), r["series"]): r["decisions"] for r in frame.records()}
    assert got == dict(x.decisions_by_month(year.events, lo, hi))


@pytest.mark.parametrize("database", ["leeds", "leicester"])
def test_referrals_and_re_referrals(store_client: Any, dashboard_store: DashboardStore, database: str) -> None:
    year = dashboard_store.years[database]
    lo, hi = year_range(year.scenario)
    referrals = [(t, re) for t, re in x.referrals(year.events) if x.inside(t, lo, hi)]
    by_month: dict[datetime, list[int]] = {}
    for t, re in referrals:
        row = by_month.setdefault(x.month(t), [0, 0])
        row[0] += 1
        row[1] += re
    frame = run(store_client, year, c.REFERRALS_BY_MONTH)
    assert {utc(r["time"]): [r["referrals"], r["re_referrals"]] for r in frame.records()} == by_month

    [row] = list(run(store_client, year, c.REFERRAL_RATES).records())
    contacts = sum(1 for e in x.of(year.events, ContactReceived) if x.inside(e.occurred_at, lo, hi))
    n, re_n = len(referrals), sum(re for _, re in referrals)
    assert row == {
        "year": "2019/20",
        "contacts": contacts,
        "referrals": n,
        "referral_rate": x.pct(n, contacts),
        "re_referrals": re_n,
        "re_referral_rate": x.pct(re_n, n),
        "re_referral_rate_england": c.ENGLAND["re_referral_rate"].value,  # the published figure, beside the local
    }
    if database == "leicester":  # calibration.md: 15,403 contacts, 2,704 referrals, 332 (12.3%) re-referrals
        assert (row["contacts"], row["referrals"], row["re_referrals"], row["re_referral_rate"]) == (
            15_403,
            2_704,
            332,
            12.3,
        )


# --- Missing ------------------------------------------------------------------------------------------------------


def test_leicester_missing_episodes_and_children_are_the_published_figures(
    store_client: Any, leicester: LoadedYear
) -> None:
    lo, hi = year_range(leicester.scenario)
    reports = x.missing_reports(leicester.events, lo, hi)
    want: dict[str, tuple[int, int]] = {}
    for name, chosen in (
        ("Looked after", [r for r in reports if r.absence_type == "missing" and r.looked_after]),
        ("Not looked after", [r for r in reports if r.absence_type == "missing" and not r.looked_after]),
        ("Away from placement", [r for r in reports if r.absence_type == "away"]),
    ):
        want[name] = (len(chosen), len({r.child_id for r in chosen}))
    frame = run(store_client, leicester, c.MISSING_COHORTS)
    got = {r["cohort"]: (r["episodes"], r["children"]) for r in frame.records()}
    assert got == want
    # calibration.md, Leicester 2019/20: 866 occasions for 97 looked-after children, 722 for 318 others
    assert got["Looked after"] == (866, 97)
    assert got["Not looked after"] == (722, 318)
    per_child = {r["cohort"]: r["episodes_per_child"] for r in frame.records()}
    assert (per_child["Looked after"], per_child["Not looked after"]) == (8.9, 2.3)


@pytest.mark.parametrize("database", ["leeds", "leicester"])
def test_missing_per_month_and_repeat_missing_children(
    store_client: Any, dashboard_store: DashboardStore, database: str
) -> None:
    year = dashboard_store.years[database]
    lo, hi = year_range(year.scenario)
    reports = [r for r in x.missing_reports(year.events, lo, hi) if r.absence_type == "missing"]
    frame = run(store_client, year, c.MISSING_BY_MONTH)
    got = {(utc(r["time"]), r["series"]): r["episodes"] for r in frame.records()}
    assert got == dict(Counter((x.month(r.occurred_at), x.cohort(r.looked_after)) for r in reports))

    per_child = Counter((x.cohort(r.looked_after), r.child_id) for r in reports)
    want = {}
    for name in ("Looked after", "Not looked after"):
        counts = [n for (cohort, _), n in per_child.items() if cohort == name]
        repeat = sum(1 for n in counts if n >= 2)
        want[name] = (len(counts), repeat, sum(1 for n in counts if n >= 3), x.pct(repeat, len(counts)))
    frame = run(store_client, year, c.REPEAT_MISSING)
    got_repeat = {
        r["cohort"]: (r["children"], r["repeat_children"], r["three_or_more"], r["repeat_share"])
        for r in frame.records()
    }
    assert got_repeat == want


@pytest.mark.parametrize("database", ["leeds", "leicester"])
def test_return_interviews_within_72_hours(store_client: Any, dashboard_store: DashboardStore, database: str) -> None:
    year = dashboard_store.years[database]
    lo, hi = year_range(year.scenario)
    frame = run(store_client, year, c.RETURN_INTERVIEWS)
    got = {utc(r["month"]): (r["found"], r["within_72h"], r["later"], r["none"]) for r in frame.records()}
    want = x.return_interviews(year.events, lo, hi)
    assert got == want
    found, within = sum(v[0] for v in want.values()), sum(v[1] for v in want.values())
    assert 0.85 < within / found < 0.95  # the generator's calibrated share


# --- Domestic abuse -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("database", ["leeds", "leicester"])
def test_domestic_incidents_child_present_dash_and_repeats(
    store_client: Any, dashboard_store: DashboardStore, database: str
) -> None:
    year = dashboard_store.years[database]
    lo, hi = year_range(year.scenario)
    incidents = x.incidents(year.events, lo, hi)
    present = [i for i in incidents if any(child.present for child in i.children)]

    frame = run(store_client, year, c.INCIDENTS_BY_MONTH)
    got = {utc(r["time"]): (r["incidents"], r["child_present"]) for r in frame.records()}
    months = Counter(x.month(i.occurred_at) for i in incidents)
    months_present = Counter(x.month(i.occurred_at) for i in present)
    assert got == {m: (n, months_present[m]) for m, n in months.items()}

    [row] = list(run(store_client, year, c.INCIDENTS_SUMMARY).records())
    assert row == {
        "year": "2019/20",
        "incidents": len(incidents),
        "child_present": len(present),
        "child_present_pct": x.pct(len(present), len(incidents)),
        "crimes": sum(1 for i in incidents if i.is_crime),
        "marac_referrals": sum(1 for i in incidents if i.marac_referral),
    }
    if database == "leeds":  # calibration.md: about 21,531 incidents, 26.8% with a child present
        assert row["incidents"] == pytest.approx(21_531, rel=0.01)
        assert row["child_present_pct"] == pytest.approx(26.8, abs=0.5)

    frame = run(store_client, year, c.DASH_BY_MONTH)
    got_dash = {(utc(r["time"]), r["series"]): r["incidents"] for r in frame.records()}
    assert got_dash == dict(Counter((x.month(i.occurred_at), i.dash_risk) for i in incidents))

    per_household = Counter(i.household_id for i in incidents)
    repeat = x.repeat_incidents(year.events, lo, hi)
    [row] = list(run(store_client, year, c.REPEAT_HOUSEHOLDS).records())
    assert row == {
        "households": len(per_household),
        "repeat_households": sum(1 for n in per_household.values() if n >= 2),
        "three_or_more": sum(1 for n in per_household.values() if n >= 3),
        "incidents": len(incidents),
        "repeat_incidents": repeat,
        "repeat_incident_pct": x.pct(repeat, len(incidents)),
    }


# --- Child protection ---------------------------------------------------------------------------------------------


def test_leeds_plan_categories_are_the_published_initial_categories(store_client: Any, leeds: LoadedYear) -> None:
    lo, hi = year_range(leeds.scenario)
    frame = run(store_client, leeds, c.CATEGORIES)
    got = {r["category"]: r["plans"] for r in frame.records()}
    assert got == dict(
        Counter(s.category for s in x.of(leeds.events, CpPlanStarted) if x.inside(s.occurred_at, lo, hi))
    )
    assert (got["EMO"], got["NEG"], got["PHY"], got["SAB"]) == (327, 145, 84, 34)  # calibration.md


@pytest.mark.parametrize("database", ["leeds", "leicester"])
def test_plans_started_ended_and_open_at_each_month_end(
    store_client: Any, dashboard_store: DashboardStore, database: str
) -> None:
    year = dashboard_store.years[database]
    lo, hi = year_range(year.scenario)
    frame = run(store_client, year, c.PLANS_BY_MONTH)
    got = {utc(r["time"]): (r["started"], r["ended"]) for r in frame.records()}
    starts = Counter(
        x.month(s.occurred_at) for s in x.of(year.events, CpPlanStarted) if x.inside(s.occurred_at, lo, hi)
    )
    ends = Counter(x.month(e.occurred_at) for e in x.of(year.events, CpPlanEnded) if x.inside(e.occurred_at, lo, hi))
    assert got == {m: (starts[m], ends[m]) for m in starts | ends}

    spans = x.plan_spans(year.events)
    high = {eid for eid, severity in x.repeat_plan_alerts(year.alerts).items() if severity == "high"}
    want = {}
    for start, end in x.month_ends(lo, hi):
        open_plans = x.open_at(spans, end)
        cutoff = x.add_months(end.date(), -24)
        over_two = [
            s
            for s in open_plans
            if s.occurred_at
            < datetime(cutoff.year, cutoff.month, cutoff.day, end.hour, end.minute, end.second, tzinfo=x.LONDON)
        ]
        want[start] = (len(open_plans), sum(1 for s in open_plans if s.event_id in high), len(over_two))
    frame = run(store_client, year, c.OPEN_AT_MONTH_END)
    assert {utc(r["time"]): (r["open"], r["repeat_24m_open"], r["over_two_years"]) for r in frame.records()} == want
    if database == "leeds":  # calibration.md: 519 on a plan on average at month ends
        assert sum(v[0] for v in want.values()) / 12 == pytest.approx(519, rel=0.03)


@pytest.mark.parametrize("database", ["leeds", "leicester"])
@pytest.mark.parametrize("whole_history", [False, True], ids=["year", "whole-history"])
def test_repeat_plans_equal_the_rules_alerts(
    store_client: Any, dashboard_store: DashboardStore, database: str, whole_history: bool
) -> None:
    """`repeat_cp_plan` alerts: high = within 24 months of the previous plan's end, any = second or subsequent."""
    year = dashboard_store.years[database]
    lo, hi = year_range(year.scenario)
    if whole_history:  # the backload of plans open at the start of the year began years before it
        lo = datetime(2000, 1, 1, tzinfo=UTC)
    alerts = [a for a in x.alerts_in(year.alerts, lo, hi) if a.rule_id == "repeat_cp_plan"]
    started = [s for s in x.of(year.events, CpPlanStarted) if x.inside(s.occurred_at, lo, hi)]
    [row] = list(run(store_client, year, c.REPEAT_PLANS, lo, hi).records())
    assert row["started"] == len(started)
    assert row["repeat_within_24_months"] == sum(1 for a in alerts if a.severity == "high")
    assert row["repeat_ever"] == len(alerts)
    assert row["repeat_within_24_months"] > 0 and row["repeat_ever"] > row["repeat_within_24_months"]


def test_leeds_plans_open_over_two_years_at_year_end(store_client: Any, leeds: LoadedYear) -> None:
    _, hi = year_range(leeds.scenario)
    spans = x.plan_spans(leeds.events)
    open_plans = x.open_at(spans, x.second(hi))
    cutoff = x.add_months(hi.date(), -24)
    over_two = [
        s for s in open_plans if s.occurred_at < datetime(cutoff.year, cutoff.month, cutoff.day, tzinfo=x.LONDON)
    ]
    high = {eid for eid, severity in x.repeat_plan_alerts(leeds.alerts).items() if severity == "high"}
    [row] = list(run(store_client, leeds, c.OVER_TWO_YEARS).records())
    assert row == {
        "open": len(open_plans),
        "over_two_years": len(over_two),
        "repeat_within_24_months": sum(1 for s in open_plans if s.event_id in high),
    }
    assert row["over_two_years"] == 5  # calibration.md: plans lasting more than two years at year end


# --- Alerts -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("database", ["leeds", "leicester"])
def test_alerts_per_rule_and_severity(store_client: Any, dashboard_store: DashboardStore, database: str) -> None:
    year = dashboard_store.years[database]
    lo, hi = year_range(year.scenario)
    alerts = x.alerts_in(year.alerts, lo, hi)
    by_rule = Counter((a.rule_id, a.severity) for a in alerts)
    frame = run(store_client, year, c.ALERTS_TABLE)
    got = {
        (r["rule_id"], severity): r[severity]
        for r in frame.records()
        for severity in ("critical", "high", "medium", "info")
        if r[severity]
    }
    assert got == dict(by_rule)
    assert {r["rule_id"]: r["total"] for r in frame.records()} == dict(Counter(a.rule_id for a in alerts))

    for panel, key in ((c.ALERTS_BY_RULE, "rule_id"), (c.ALERTS_BY_SEVERITY, "severity")):
        frame = run(store_client, year, panel, interval=timedelta(days=7))
        totals: Counter[str] = Counter()
        for r in frame.records():
            totals[r["series"]] += r["alerts"]
            assert utc(r["time"]).timestamp() % (7 * 86400) == 0  # $__timeInterval buckets
        assert totals == Counter(getattr(a, key) for a in alerts)


@pytest.mark.parametrize("database", ["leeds", "leicester"])
def test_time_to_acknowledge(store_client: Any, dashboard_store: DashboardStore, database: str) -> None:
    year = dashboard_store.years[database]
    lo, hi = year_range(year.scenario)
    want = x.acknowledgement_minutes(year.alerts, year.acknowledgements, lo, hi)
    frame = run(store_client, year, c.TIME_TO_ACK)
    for r in frame.records():
        n, minutes = want[r["severity"]]
        assert (r["alerts"], r["acknowledged"]) == (n, len(minutes))
        ordered = sorted(minutes)
        assert ordered, f"no acknowledged {r['severity']} alert in the year"
        # quantileExact(level) is the element at index floor(level * n) of the sorted values
        assert r["median_minutes"] == round(ordered[int(0.5 * len(ordered))], 1)
        assert r["p90_minutes"] == round(ordered[int(0.9 * len(ordered))], 1)
    assert {r["severity"] for r in frame.records()} == set(want)
    assert sum(r["acknowledged"] for r in frame.records()) > 0


@pytest.mark.parametrize("database", ["leeds", "leicester"])
def test_time_to_resolve_and_outcomes_per_rule(
    store_client: Any, dashboard_store: DashboardStore, database: str
) -> None:
    year = dashboard_store.years[database]
    lo, hi = year_range(year.scenario)
    times, outcomes = x.resolution_minutes(year.alerts, year.resolutions, lo, hi)
    frame = run(store_client, year, c.TIME_TO_RESOLVE)
    for r in frame.records():
        n, minutes = times[r["severity"]]
        assert (r["alerts"], r["resolved"]) == (n, len(minutes))
        ordered = sorted(minutes)
        assert ordered, f"no resolved {r['severity']} alert in the year"
        assert r["median_minutes"] == round(ordered[int(0.5 * len(ordered))], 1)
        assert r["p90_minutes"] == round(ordered[int(0.9 * len(ordered))], 1)
    assert {r["severity"] for r in frame.records()} == set(times)
    frame = run(store_client, year, c.OUTCOMES_BY_RULE)
    columns = ("contact_made", "strategy_discussion", "no_further_action", "duplicate", "open")
    got = {r["rule_id"]: {k: r[k] for k in columns if r[k]} for r in frame.records()}
    assert got == {rule: dict(counts) for rule, counts in outcomes.items()}
    assert all(r["alerts"] == sum(r[k] for k in columns) for r in frame.records())
    assert sum(r["duplicate"] for r in frame.records()) > 0


# --- Pipeline health ----------------------------------------------------------------------------------------------


def test_dead_letters_and_data_quality_findings_by_reason(store_client: Any, leeds: LoadedYear) -> None:
    frame = run(store_client, leeds, c.DEAD_LETTERS_TABLE)
    assert {r["reason"]: r["dead_letters"] for r in frame.records()} == leeds.dead_letter_reasons
    frame = run(store_client, leeds, c.DEAD_LETTERS, interval=timedelta(days=1))
    assert dict(Counter({r["series"]: r["dead_letters"] for r in frame.records()})) == leeds.dead_letter_reasons
    frame = run(store_client, leeds, c.FINDINGS)
    assert {r["reason"]: (r["findings"], r["stored_anyway"]) for r in frame.records()} == {
        reason: (n, n if reason == "wrong_key" else 0) for reason, n in leeds.finding_reasons.items()
    }


def test_rows_per_second_times_the_interval_gives_back_the_rows(store_client: Any, leeds: LoadedYear) -> None:
    """`$__interval_s` as the plugin expands it: the rate over each bucket, summed, is the row count."""
    lo, hi = year_range(leeds.scenario)
    interval = timedelta(hours=6)
    frame = run(store_client, leeds, c.INGEST_RATE, interval=interval)
    rows: Counter[str] = Counter()
    for r in frame.records():
        rows[r["series"]] += r["rows_per_second"] * interval.total_seconds()
    # loaded without Kafka, rows are ingested at the events' recorded_at
    want: Counter[str] = Counter()
    for e in leeds.events:
        if x.inside(e.recorded_at, lo, hi):
            topic = {
                "contact": "contacts",
                "missing": "missing-episodes",
                "domestic_incident": "domestic-incidents",
                "cp_plan": "cp-plans",
            }[e.event_type.split(".")[0]]
            want[f"safeguarding.{topic}.v1"] += 1
    assert {k: round(v) for k, v in rows.items()} == dict(want)
    frame = run(store_client, leeds, c.FRESHNESS)
    assert {r["topic"]: r["rows"] for r in frame.records()} == dict(want)
    frame = run(store_client, leeds, c.INGEST_DELAY, interval=interval)
    assert set(frame.column("delay_p95_s")) == {0.0}


def test_missing_reported_events_feed_the_missing_panels(leicester: LoadedYear) -> None:
    """Guard for the fixture: the Leicester year has both cohorts and away episodes to show."""
    reported = x.of(leicester.events, MissingReported)
    assert {r.absence_type for r in reported} == {"missing", "away"}
