"""Small-number suppression for figures shared beyond the operational team.

Counts of 1 to 5 could identify a child, so dashboards and reports for a wider audience show them as "c"
(the DfE's marker for confidential figures); 0 stays 0. A rate or share is suppressed with the counts it is
made of, so it cannot give a suppressed count back. This is primary suppression only: where a row also shows a
total, a single suppressed cell can still be worked out from the others (docs/dashboards.md says so).

The switch acts in SQL, so Grafana never receives the small numbers: a panel's query is wrapped in an outer
SELECT that replaces each suppressible column by NULL when it is small. Grafana shows NULL as "c" through a
value mapping; the report prints "c" itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

SMALL_MIN = 1
SMALL_MAX = 5
SUPPRESSED = "c"
"""What a suppressed figure is shown as."""
NO_SHARE = "\u2013"
"""What a share of nothing (0 / 0, NaN) is shown as: an en dash."""


@dataclass(frozen=True)
class Rate:
    """A derived column (a share, a rate, a median) suppressed whenever one of the counts it is made of is small."""

    column: str
    counts: tuple[str, ...]


def is_small(value: object) -> bool:
    """Whether a count must be suppressed (1 to 5; zero and larger counts are shown)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and SMALL_MIN <= value <= SMALL_MAX


def _small(column: str) -> str:
    return f"{column} BETWEEN {SMALL_MIN} AND {SMALL_MAX}"


def suppress_sql(sql: str, counts: Sequence[str], rates: Sequence[Rate] = (), order_by: str = "") -> str:
    """`sql` wrapped so that every column in `counts` is NULL when it is 1-5, and every rate is NULL when any of
    its counts is. Columns are kept in place (`SELECT * REPLACE`); the expressions read the inner, unsuppressed
    values. `order_by` is repeated outside, because a subquery's order is not guaranteed to survive."""
    if not counts and not rates:
        return sql
    replaced = [f"if({_small(c)}, NULL, {c}) AS {c}" for c in counts]
    replaced += [f"if({' OR '.join(_small(c) for c in r.counts)}, NULL, {r.column}) AS {r.column}" for r in rates]
    outer = f"SELECT * REPLACE ({', '.join(replaced)})\nFROM (\n{sql}\n)"
    return f"{outer}\nORDER BY {order_by}" if order_by else outer


def suppress_row(row: dict[str, object], counts: Sequence[str], rates: Sequence[Rate] = ()) -> dict[str, object]:
    """The same rule applied in Python to one result row (None = suppressed); for checking the SQL."""
    out = dict(row)
    for column in counts:
        if is_small(row[column]):
            out[column] = None
    for rate in rates:
        if any(is_small(row[c]) for c in rate.counts):
            out[rate.column] = None
    return out


def display(value: object, *, suppressed_as: str = SUPPRESSED) -> str:
    """How the report prints a figure: None (suppressed) as "c", whole numbers with thousands separators."""
    if value is None:
        return suppressed_as
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != value:  # NaN: a share of nothing
            return NO_SHARE
        return f"{value:,.1f}"
    return str(value)
