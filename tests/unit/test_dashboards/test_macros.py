"""The macro expander against the plugin's own expectations.

Vectors marked "plugin" are the inputs and outputs of grafana/clickhouse-datasource `pkg/macros/macros_test.go`;
"sqlutil" ones follow grafana-plugin-sdk-go `data/sqlutil/macros_test.go` (the matcher the plugin runs).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dashboards.macros import MacroError, QueryContext, expand, format_interval, leftover_variables, parse_args

FROM = datetime(2014, 11, 12, 11, 45, 26, 123000, tzinfo=UTC)
TO = datetime(2015, 11, 12, 11, 45, 26, 456000, tzinfo=UTC)
CTX = QueryContext(FROM, TO, interval=timedelta(seconds=20))


@pytest.mark.parametrize(
    ("sql", "want"),
    [
        # plugin: TestInterpolate
        (
            "select * from foo where $__timeFilter(cast(sth as timestamp))",
            "select * from foo where cast(sth as timestamp) >= toDateTime(1415792726) AND "
            "cast(sth as timestamp) <= toDateTime(1447328726)",
        ),
        (
            "select * from foo where $__timeFilter(cast(sth as timestamp) )",
            "select * from foo where cast(sth as timestamp) >= toDateTime(1415792726) AND "
            "cast(sth as timestamp) <= toDateTime(1447328726)",
        ),
        (
            "select * from foo where $__timeFilter_ms(cast(sth as timestamp))",
            "select * from foo where cast(sth as timestamp) >= fromUnixTimestamp64Milli(1415792726123) AND "
            "cast(sth as timestamp) <= fromUnixTimestamp64Milli(1447328726456)",
        ),
        (
            "select * from foo where ( date >= $__fromTime and date <= $__toTime ) limit 100",
            "select * from foo where ( date >= toDateTime(1415792726) and date <= toDateTime(1447328726) ) limit 100",
        ),
        (
            "select * from foo where ( date >= $__fromTime ) and ( date <= $__toTime ) limit 100",
            "select * from foo where ( date >= toDateTime(1415792726) ) and ( date <= toDateTime(1447328726) ) "
            "limit 100",
        ),
        (
            "select * from foo where ( date >= $__fromTime_ms and date <= $__toTime_ms ) limit 100",
            "select * from foo where ( date >= fromUnixTimestamp64Milli(1415792726123) and "
            "date <= fromUnixTimestamp64Milli(1447328726456) ) limit 100",
        ),
        # plugin: TestMacroDateFilter, TestMacroDateTimeFilter (and the `dt` alias)
        ("$__dateFilter(dateCol)", "dateCol >= toDate('2014-11-12') AND dateCol <= toDate('2015-11-12')"),
        (
            "$__dateTimeFilter(dateCol, timeCol)",
            "(dateCol >= toDate('2014-11-12') AND dateCol <= toDate('2015-11-12')) AND "
            "(timeCol >= toDateTime(1415792726) AND timeCol <= toDateTime(1447328726))",
        ),
        (
            "$__dt(dateCol, timeCol)",
            "(dateCol >= toDate('2014-11-12') AND dateCol <= toDate('2015-11-12')) AND "
            "(timeCol >= toDateTime(1415792726) AND timeCol <= toDateTime(1447328726))",
        ),
        # plugin: TestMacroTimeInterval, TestMacroTimeIntervalMs, TestMacroIntervalSeconds (interval 20 s)
        (
            "select $__timeInterval(col) from foo",
            "select toStartOfInterval(toDateTime(col), INTERVAL 20 second) from foo",
        ),
        (
            "select $__timeInterval_ms(col) from foo",
            "select toStartOfInterval(toDateTime64(col, 3), INTERVAL 20000 millisecond) from foo",
        ),
        (
            "select toStartOfInterval(col, INTERVAL $__interval_s second) AS time from foo",
            "select toStartOfInterval(col, INTERVAL 20 second) AS time from foo",
        ),
        # sqlutil defaults the plugin inherits
        ("group by bin(time, $__interval)", "group by bin(time, 20s)"),
        ("select count(*) / $__interval_ms * 1000", "select count(*) / 20000 * 1000"),
        ("where $__timeFrom(time)", "where time >= '2014-11-12T11:45:26Z'"),
        ("where $__timeTo(time)", "where time <= '2015-11-12T11:45:26Z'"),
        ("where $__timeGroup(time, month)", "where datepart(month, time),datepart(year, time)"),
        ("select $__column from $__table", "select  from "),
        # sqlutil matcher: nesting, spaces, prefixes, repeats
        (
            "where $__timeFilter(toDateTime(x, 'UTC'))",
            "where toDateTime(x, 'UTC') >= toDateTime(1415792726) AND toDateTime(x, 'UTC') <= toDateTime(1447328726)",
        ),
        ("select $__interval_s (1)", "select 20 (1)"),  # args only when "(" follows at once (sqlds issue 82)
        ("select $__interval_s*(a + b)", "select 20*(a + b)"),
        ("$__fromTime$__fromTime", "toDateTime(1415792726)toDateTime(1415792726)"),
        ("$__timeFilterEpoch(x)", "$__timeFilterEpoch(x)"),  # not a macro: left for ClickHouse to reject
        ("no macros here", "no macros here"),
    ],
)
def test_expansion_matches_the_plugin(sql: str, want: str) -> None:
    assert expand(sql, CTX) == want


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("where $__timeFilter", "expected 1 argument, received 0"),
        ("where $__timeInterval", "expected 1 argument, received 0"),
        ("where $__timeFilter(a, b)", "expected 1 argument, received 2"),
        ("where $__dateTimeFilter(a)", "expected 2 arguments, received 1"),
        ("where $__timeFilter(a", "missing close bracket"),
        ("where $__timeFilter(f(a, b) > $__toTime", "missing close bracket"),
    ],
)
def test_errors_are_the_plugins(sql: str, message: str) -> None:
    with pytest.raises(MacroError, match=message):
        expand(sql, CTX)


def test_an_empty_argument_list_is_one_empty_argument_as_in_go() -> None:
    assert parse_args("()") == ([""], 2)
    assert expand("$__timeFilter()", CTX) == " >= toDateTime(1415792726) AND  <= toDateTime(1447328726)"


def test_parse_args_as_sqlutil() -> None:
    assert parse_args("foo bar") == (None, 0)
    assert parse_args(" (bar)") == (None, 0)
    assert parse_args("(bar)") == (["bar"], 5)
    assert parse_args("(bar, baz, quux)") == (["bar", "baz", "quux"], 16)
    assert parse_args("(bar(some,thing))") == (["bar(some,thing)"], 17)
    assert parse_args("(arg1, arg2), not_an_arg, nope") == (["arg1", "arg2"], 12)
    assert parse_args("(arg1, arg2") == (None, -1)


@pytest.mark.parametrize(
    ("interval", "want_s", "want_ms", "formatted"),
    [
        (timedelta(seconds=20), "20", "20000", "20s"),
        (timedelta(milliseconds=500), "1", "500", "500ms"),  # interval_s is at least 1
        (timedelta(seconds=20.9), "20", "20900", "20s"),  # Go's int() truncates
        (timedelta(0), "1", "0", "1ms"),
        (timedelta(minutes=10), "600", "600000", "10m"),
        (timedelta(hours=36), "129600", "129600000", "1d"),
        (timedelta(days=400), "34560000", "34560000000", "1y"),
    ],
)
def test_intervals(interval: timedelta, want_s: str, want_ms: str, formatted: str) -> None:
    ctx = QueryContext(FROM, TO, interval=interval)
    assert expand("$__interval_s", ctx) == want_s
    assert expand("$__interval_ms", ctx) == want_ms
    assert expand("$__interval", ctx) == formatted == format_interval(interval)
    step = max(int(want_ms), 1)
    assert expand("$__timeInterval_ms(t)", ctx) == f"toStartOfInterval(toDateTime64(t, 3), INTERVAL {step} millisecond)"


def test_date_filter_uses_the_plugin_process_zone() -> None:
    late = datetime(2019, 3, 31, 23, 30, tzinfo=UTC)  # 00:30 on 1 April in London (BST)
    utc_ctx = QueryContext(late, late)
    london_ctx = QueryContext(late, late, zone=ZoneInfo("Europe/London"))
    assert expand("$__dateFilter(d)", utc_ctx) == "d >= toDate('2019-03-31') AND d <= toDate('2019-03-31')"
    assert expand("$__dateFilter(d)", london_ctx) == "d >= toDate('2019-04-01') AND d <= toDate('2019-04-01')"
    # instants do not depend on the zone they are given in
    assert (
        expand("$__fromTime", QueryContext(late.astimezone(ZoneInfo("Asia/Tokyo")), late)) == "toDateTime(1554075000)"
    )


def test_times_before_a_whole_second_round_down_like_go() -> None:
    ctx = QueryContext(datetime(2020, 1, 1, 0, 0, 0, 999999, tzinfo=UTC), datetime(2020, 1, 1, tzinfo=UTC))
    assert expand("$__fromTime $__fromTime_ms", ctx) == "toDateTime(1577836800) fromUnixTimestamp64Milli(1577836800999)"


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        QueryContext(datetime(2020, 1, 1), TO)


def test_leftover_variables() -> None:
    assert leftover_variables("where la = '$la' and x = ${agency:csv} and [[old]]") == [
        "$la",
        "${agency:csv}",
        "[[old]]",
    ]
    assert leftover_variables(expand("where $__timeFilter(t)", CTX)) == []


@given(
    st.lists(
        st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789 '.", min_size=1, max_size=12).filter(
            lambda s: s.strip() != ""
        ),
        min_size=1,
        max_size=4,
    )
)
def test_arguments_come_back_trimmed(args: list[str]) -> None:
    text = "(" + ", ".join(args) + ") tail"
    parsed, length = parse_args(text)
    assert parsed == [a.strip() for a in args]
    assert text[length:] == " tail"
