"""Small-number suppression: which values are hidden, how the SQL is wrapped, how the report prints them."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dashboards.catalogue import DASHBOARDS
from dashboards.suppression import NO_SHARE, Rate, display, is_small, suppress_row, suppress_sql


@pytest.mark.parametrize(
    ("value", "small"),
    [
        (0, False),
        (1, True),
        (5, True),
        (6, False),
        (3.0, True),
        (None, False),
        (True, False),
        ("3", False),
        (-2, False),
    ],
)
def test_only_counts_of_one_to_five_are_small(value: object, small: bool) -> None:
    assert is_small(value) is small


def test_a_rate_goes_with_its_counts() -> None:
    row = {"year": "2019/20", "referrals": 120, "re_referrals": 4, "rate": 3.3, "other": 2}
    out = suppress_row(row, ["referrals", "re_referrals"], [Rate("rate", ("re_referrals", "referrals"))])
    assert out == {"year": "2019/20", "referrals": 120, "re_referrals": None, "rate": None, "other": 2}
    assert row["re_referrals"] == 4  # the input is left alone


@given(st.dictionaries(st.sampled_from(["a", "b", "c"]), st.integers(min_value=0, max_value=20), min_size=3))
def test_nothing_small_survives_and_nothing_else_changes(row: dict[str, int]) -> None:
    out = suppress_row(dict(row), ["a", "b"], [Rate("c", ("a", "b"))])
    for column in ("a", "b"):
        assert out[column] == (None if 1 <= row[column] <= 5 else row[column])
    assert out["c"] == (None if any(1 <= row[k] <= 5 for k in ("a", "b")) else row["c"])


def test_sql_is_wrapped_with_replace_and_keeps_the_order() -> None:
    sql = suppress_sql("SELECT x, n, r FROM t ORDER BY x", ["n"], [Rate("r", ("n",))], "x")
    assert sql == (
        "SELECT * REPLACE (if(n BETWEEN 1 AND 5, NULL, n) AS n, if(n BETWEEN 1 AND 5, NULL, r) AS r)\n"
        "FROM (\nSELECT x, n, r FROM t ORDER BY x\n)\nORDER BY x"
    )
    assert suppress_sql("SELECT 1", [], []) == "SELECT 1"


def test_every_panel_of_children_or_cases_declares_its_counts() -> None:
    """Panels that count people or their cases must say which columns to suppress (pipeline panels count
    messages, not people, and are exempt)."""
    for dashboard in DASHBOARDS:
        for panel in dashboard.panels:
            if dashboard.uid == "safeguard-pipeline":
                assert not panel.counts
                continue
            if panel.key == "alerts.time_to_acknowledge_series":
                continue  # medians of minutes, no counts shown
            assert panel.counts, panel.key
            assert panel.query(suppress=True) != panel.query(suppress=False)


def test_display() -> None:
    assert display(None) == "c"
    assert display(26204) == "26,204"
    assert display(37.94) == "37.9"
    assert display(math.nan) == NO_SHARE
    assert display("2019/20") == "2019/20"
