"""The ClickHouse datasource plugin's SQL macros, expanded in Python exactly as the plugin expands them.

Grafana sends a panel's `rawSql` to the plugin's backend, which expands `$__name(args)` macros before the query
reaches ClickHouse. Tests and the static report run the same SQL against chDB, so they need the same expansion,
byte for byte. This module replicates:

- the plugin's macros, grafana/clickhouse-datasource `pkg/macros/macros.go` (v4, built on sqlds v4):
  `$__fromTime`, `$__toTime`, `$__fromTime_ms`, `$__toTime_ms`, `$__timeFilter(c)`, `$__timeFilter_ms(c)`,
  `$__dateFilter(c)`, `$__dateTimeFilter(d, t)` (alias `$__dt`), `$__timeInterval(c)`, `$__timeInterval_ms(c)`,
  `$__interval_s`;
- the defaults every sqlds datasource gets, grafana-plugin-sdk-go `data/sqlutil/macros.go` (`DefaultMacros`):
  `$__interval`, `$__interval_ms`, `$__timeFrom(c)`, `$__timeTo(c)`, `$__timeGroup(c, period)`, `$__table`,
  `$__column` (the plugin's `timeFilter` overrides the default one);
- the matcher of that same file (`Interpolate`, `getMacroMatches`, `parseArgs`): macro names are tried longest
  first, each matched as `\\$__name\\b`; an argument list is parsed only when `(` follows the name immediately,
  brackets nest, commas split arguments only at the outer level, arguments are whitespace-trimmed, and every
  occurrence of the matched text is replaced (`strings.ReplaceAll`);
- `gtime.FormatInterval` (grafana-plugin-sdk-go `backend/gtime`) for `$__interval`.

Not replicated: Grafana's own template variables (`$var`, `${__from}`), which the frontend substitutes before the
plugin sees the SQL. The dashboards here use none; `leftover_variables` finds any that slip in.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from schemas.errors import SafeguardError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class MacroError(SafeguardError):
    """A macro could not be expanded (wrong argument count, missing bracket): the plugin fails the query too."""


@dataclass(frozen=True)
class QueryContext:
    """What the plugin knows about a query when it expands macros: Grafana's time range and interval.

    `zone` is the location of the plugin process, in which `$__dateFilter` formats its dates (Go's
    `time.Format` uses the time's own location; the official Grafana image runs in UTC).
    `table` and `column` are only set by the plugin's query builder, never for raw SQL.
    """

    time_from: datetime
    time_to: datetime
    interval: timedelta = timedelta(seconds=60)
    zone: tzinfo = UTC
    table: str = ""
    column: str = ""

    def __post_init__(self) -> None:
        for name in ("time_from", "time_to"):
            if getattr(self, name).tzinfo is None:
                raise ValueError(f"{name} must be timezone-aware")


MacroFunc = Callable[[QueryContext, list[str]], str]


def _unix(moment: datetime) -> int:
    """Go's `time.Unix()`: whole seconds, rounded down."""
    return (moment - _EPOCH) // timedelta(seconds=1)


def _unix_milli(moment: datetime) -> int:
    """Go's `time.UnixMilli()` (for times after 1970: whole milliseconds, rounded down)."""
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def _to_date(moment: datetime, zone: tzinfo) -> str:
    return f"toDate('{moment.astimezone(zone).strftime('%Y-%m-%d')}')"


def _to_datetime(moment: datetime) -> str:
    return f"toDateTime({_unix(moment)})"


def _to_datetime64(moment: datetime) -> str:
    return f"fromUnixTimestamp64Milli({_unix_milli(moment)})"


def _arity(args: list[str], expected: int) -> None:
    if len(args) != expected:
        noun = "argument" if expected == 1 else "arguments"
        raise MacroError(f"unexpected number of arguments: expected {expected} {noun}, received {len(args)}")


def _interval_seconds(ctx: QueryContext) -> int:
    """`int(math.Max(query.Interval.Seconds(), 1))`: Go's int() truncates toward zero."""
    return int(max(ctx.interval.total_seconds(), 1.0))


def _interval_milliseconds(ctx: QueryContext) -> int:
    """`query.Interval.Milliseconds()`: whole milliseconds, truncated toward zero."""
    return math.trunc(ctx.interval / timedelta(milliseconds=1))


# --- the plugin's macros (pkg/macros/macros.go) ---------------------------------------------------------------------


def _from_time(ctx: QueryContext, args: list[str]) -> str:
    return _to_datetime(ctx.time_from)


def _to_time(ctx: QueryContext, args: list[str]) -> str:
    return _to_datetime(ctx.time_to)


def _from_time_ms(ctx: QueryContext, args: list[str]) -> str:
    return _to_datetime64(ctx.time_from)


def _to_time_ms(ctx: QueryContext, args: list[str]) -> str:
    return _to_datetime64(ctx.time_to)


def _time_filter(ctx: QueryContext, args: list[str]) -> str:
    _arity(args, 1)
    column = args[0]
    return f"{column} >= {_to_datetime(ctx.time_from)} AND {column} <= {_to_datetime(ctx.time_to)}"


def _time_filter_ms(ctx: QueryContext, args: list[str]) -> str:
    _arity(args, 1)
    column = args[0]
    return f"{column} >= {_to_datetime64(ctx.time_from)} AND {column} <= {_to_datetime64(ctx.time_to)}"


def _date_filter(ctx: QueryContext, args: list[str]) -> str:
    _arity(args, 1)
    column = args[0]
    return f"{column} >= {_to_date(ctx.time_from, ctx.zone)} AND {column} <= {_to_date(ctx.time_to, ctx.zone)}"


def _date_time_filter(ctx: QueryContext, args: list[str]) -> str:
    _arity(args, 2)
    date_column, time_column = args
    date_part = (
        f"({date_column} >= {_to_date(ctx.time_from, ctx.zone)} AND {date_column} <= {_to_date(ctx.time_to, ctx.zone)})"
    )
    time_part = f"({time_column} >= {_to_datetime(ctx.time_from)} AND {time_column} <= {_to_datetime(ctx.time_to)})"
    return f"{date_part} AND {time_part}"


def _time_interval(ctx: QueryContext, args: list[str]) -> str:
    _arity(args, 1)
    return f"toStartOfInterval(toDateTime({args[0]}), INTERVAL {_interval_seconds(ctx)} second)"


def _time_interval_ms(ctx: QueryContext, args: list[str]) -> str:
    _arity(args, 1)
    milliseconds = max(_interval_milliseconds(ctx), 1)
    return f"toStartOfInterval(toDateTime64({args[0]}, 3), INTERVAL {milliseconds} millisecond)"


def _interval_s(ctx: QueryContext, args: list[str]) -> str:
    return str(_interval_seconds(ctx))


PLUGIN_MACROS: Mapping[str, MacroFunc] = {
    "fromTime": _from_time,
    "toTime": _to_time,
    "fromTime_ms": _from_time_ms,
    "toTime_ms": _to_time_ms,
    "timeFilter": _time_filter,
    "timeFilter_ms": _time_filter_ms,
    "dateFilter": _date_filter,
    "dateTimeFilter": _date_time_filter,
    "dt": _date_time_filter,
    "timeInterval": _time_interval,
    "timeInterval_ms": _time_interval_ms,
    "interval_s": _interval_s,
}


# --- sqlutil's defaults (data/sqlutil/macros.go) --------------------------------------------------------------------


def format_interval(interval: timedelta) -> str:
    """gtime.FormatInterval: the largest whole unit Grafana uses (`10m`, `1d`, `1y`; `1ms` at least)."""
    units = (
        ("y", timedelta(days=365)),
        ("d", timedelta(days=1)),
        ("h", timedelta(hours=1)),
        ("m", timedelta(minutes=1)),
        ("s", timedelta(seconds=1)),
        ("ms", timedelta(milliseconds=1)),
    )
    for suffix, unit in units:
        if interval >= unit:
            return f"{interval // unit}{suffix}"
    return "1ms"


def _utc_rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _default_interval(ctx: QueryContext, args: list[str]) -> str:
    return format_interval(ctx.interval)


def _default_interval_ms(ctx: QueryContext, args: list[str]) -> str:
    return str(_interval_milliseconds(ctx))


def _default_time_filter(ctx: QueryContext, args: list[str]) -> str:
    _arity(args, 1)
    column = args[0]
    return f"{column} >= '{_utc_rfc3339(ctx.time_from)}' AND {column} <= '{_utc_rfc3339(ctx.time_to)}'"


def _default_time_from(ctx: QueryContext, args: list[str]) -> str:
    _arity(args, 1)
    return f"{args[0]} >= '{_utc_rfc3339(ctx.time_from)}'"


def _default_time_to(ctx: QueryContext, args: list[str]) -> str:
    _arity(args, 1)
    return f"{args[0]} <= '{_utc_rfc3339(ctx.time_to)}'"


def _default_time_group(ctx: QueryContext, args: list[str]) -> str:
    if len(args) != 2:
        # sqlutil's message says "1 argument" here; kept as the plugin reports it.
        raise MacroError(f"unexpected number of arguments: expected 1 argument, received {len(args)}")
    column, period = args
    order = ["minute", "hour", "day", "month", "year"]
    if period not in order:
        return ""
    parts = [f"datepart({unit}, {column})" for unit in order[order.index(period) :]]
    return ",".join(parts)


def _default_table(ctx: QueryContext, args: list[str]) -> str:
    return ctx.table


def _default_column(ctx: QueryContext, args: list[str]) -> str:
    return ctx.column


DEFAULT_MACROS: Mapping[str, MacroFunc] = {
    "interval": _default_interval,
    "interval_ms": _default_interval_ms,
    "timeFilter": _default_time_filter,
    "timeFrom": _default_time_from,
    "timeGroup": _default_time_group,
    "timeTo": _default_time_to,
    "table": _default_table,
    "column": _default_column,
}

MACROS: Mapping[str, MacroFunc] = {**DEFAULT_MACROS, **PLUGIN_MACROS}
"""What the plugin's backend expands: sqlutil's defaults, overridden by the plugin's own."""


# --- the matcher (sqlutil.Interpolate) ------------------------------------------------------------------------------


def parse_args(text: str) -> tuple[list[str] | None, int]:
    """sqlutil `parseArgs`: a bracketed argument list at the very start of `text`.

    Returns (arguments, length of the bracketed text); (None, 0) when `text` does not start with `(`;
    (None, -1) when the bracket is never closed.
    """
    if not text.startswith("("):
        return None, 0
    args: list[str] = []
    depth = 0
    arg: list[str] = []
    for index, char in enumerate(text):
        if char == "(":
            depth += 1
            if depth == 1:
                continue
        elif char == ")":
            depth -= 1
            if depth == 0:
                args.append("".join(arg).strip())
                return args, index + 1
        elif char == "," and depth == 1:
            args.append("".join(arg).strip())
            arg = []
            continue
        arg.append(char)
    return None, -1


def _matches(sql: str, name: str) -> list[tuple[str, list[str]]]:
    """sqlutil `getMacroMatches`: every `$__name` (ASCII word boundary, as Go's RE2) with its arguments."""
    found: list[tuple[str, list[str]]] = []
    for match in re.finditer(rf"\$__{re.escape(name)}\b", sql, flags=re.ASCII):
        args, length = parse_args(sql[match.end() :])
        if length < 0:
            raise MacroError("failed to parse macro arguments (missing close bracket?)")
        found.append((sql[match.start() : match.end() + length], args or []))
    return found


def expand(sql: str, ctx: QueryContext, macros: Mapping[str, MacroFunc] = MACROS) -> str:
    """The SQL the plugin sends to ClickHouse for `sql` in the time range and interval of `ctx`."""
    # Longest names first, so a name that is a prefix of another never claims its text.
    for name in sorted(macros, key=len, reverse=True):
        for full, args in _matches(sql, name):
            sql = sql.replace(full, macros[name](ctx, args))
    return sql


_VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)[^}]*\}|\[\[(\w+)[^\]]*\]\]", flags=re.ASCII)


def leftover_variables(sql: str) -> list[str]:
    """Grafana template variables (`$name`, `${name}`, `[[name]]`) still in expanded SQL: the frontend would
    substitute these, so a query meant to run outside Grafana must have none."""
    return [m.group(0) for m in _VARIABLE.finditer(sql)]
