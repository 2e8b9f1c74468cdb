"""ISO 8601 durations: parsing, calendar-month arithmetic with month-end clamping, exact days."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from streams.rules import Duration, InvalidDuration
from streams.rules.durations import reaches, within


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("P90D", Duration(days=90)),
        ("P24M", Duration(months=24)),
        ("P1Y", Duration(years=1)),
        ("PT72H", Duration(hours=72)),
        ("PT10M", Duration(minutes=10)),
        ("P1Y2M3DT4H5M6S", Duration(1, 2, 3, 4, 5, 6)),
        ("P2W", Duration(days=14)),
        ("PT0S", Duration()),
    ],
)
def test_parse(text: str, expected: Duration) -> None:
    assert Duration.parse(text) == expected


@pytest.mark.parametrize("text", ["P90", "P", "PT", "90D", "P1DT", "P-1D", "P1.5D", "p90d", "P90D ", ""])
def test_parse_rejects(text: str) -> None:
    with pytest.raises(InvalidDuration, match="is not an ISO 8601 duration such as P90D"):
        Duration.parse(text)


@pytest.mark.parametrize("text", ["P90D", "P24M", "P1Y", "PT72H", "P1Y2M3DT4H5M6S", "PT0S", "P1DT12H"])
def test_text_round_trip(text: str) -> None:
    assert str(Duration.parse(text)) == text


@pytest.mark.parametrize(
    ("start", "duration", "expected"),
    [
        # rules.md: P24M after 2023-01-31 is 2025-01-31.
        (datetime(2023, 1, 31, tzinfo=UTC), "P24M", datetime(2025, 1, 31, tzinfo=UTC)),
        # Month-end clamping, including leap years.
        (datetime(2023, 1, 31, tzinfo=UTC), "P1M", datetime(2023, 2, 28, tzinfo=UTC)),
        (datetime(2024, 1, 31, tzinfo=UTC), "P1M", datetime(2024, 2, 29, tzinfo=UTC)),
        (datetime(2024, 2, 29, tzinfo=UTC), "P12M", datetime(2025, 2, 28, tzinfo=UTC)),
        (datetime(2024, 2, 29, tzinfo=UTC), "P1Y", datetime(2025, 2, 28, tzinfo=UTC)),
        (datetime(2024, 2, 29, tzinfo=UTC), "P4Y", datetime(2028, 2, 29, tzinfo=UTC)),
        (datetime(2023, 3, 31, 10, tzinfo=UTC), "P1M", datetime(2023, 4, 30, 10, tzinfo=UTC)),
        (datetime(2023, 11, 30, tzinfo=UTC), "P3M", datetime(2024, 2, 29, tzinfo=UTC)),
        # Months first, then the exact part.
        (datetime(2023, 1, 31, tzinfo=UTC), "P1M1D", datetime(2023, 3, 1, tzinfo=UTC)),
        # Days are 24 hours, even across the UK clock change (26 March 2023).
        (datetime(2023, 3, 25, 12, tzinfo=UTC), "P1D", datetime(2023, 3, 26, 12, tzinfo=UTC)),
        (datetime(2025, 1, 1, tzinfo=UTC), "P90D", datetime(2025, 4, 1, tzinfo=UTC)),
        (datetime(2025, 1, 1, tzinfo=UTC), "PT72H", datetime(2025, 1, 4, tzinfo=UTC)),
    ],
)
def test_after(start: datetime, duration: str, expected: datetime) -> None:
    assert Duration.parse(duration).after(start) == expected


def test_calendar_arithmetic_is_in_utc_whatever_the_offset() -> None:
    # The same instant written in UTC and in BST gives the same answer.
    in_utc = datetime(2023, 1, 30, 23, 30, tzinfo=UTC)
    in_bst = in_utc.astimezone(timezone(timedelta(hours=1)))
    assert (
        Duration(months=1).after(in_utc)
        == Duration(months=1).after(in_bst)
        == datetime(2023, 2, 28, 23, 30, tzinfo=UTC)
    )


def test_after_date() -> None:
    assert Duration(months=24).after_date(date(2023, 1, 31)) == date(2025, 1, 31)
    assert Duration(months=1, days=1).after_date(date(2023, 1, 31)) == date(2023, 3, 1)


def test_within_is_a_closed_interval() -> None:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    window = Duration(days=90)
    assert within(start, start + timedelta(days=90), window)
    assert not within(start, start + timedelta(days=90, seconds=1), window)
    assert within(start, start, window)
    assert not within(start, start - timedelta(seconds=1), window)


def test_reaches_takes_the_longest_span_at_that_moment() -> None:
    start = datetime(2025, 1, 31, tzinfo=UTC)
    # P1M from 31 January reaches only 28 February; P30D reaches 2 March.
    assert not reaches(start, (Duration(months=1),), datetime(2025, 3, 1, tzinfo=UTC))
    assert reaches(start, (Duration(months=1), Duration(days=30)), datetime(2025, 3, 1, tzinfo=UTC))


def test_sum_is_componentwise() -> None:
    assert Duration(days=90) + Duration(days=90) == Duration(days=180)
    assert str(Duration(months=12) + Duration(months=12)) == "P24M"


@pytest.mark.parametrize(
    ("text", "words"),
    [("P90D", "90 days"), ("P1D", "1 day"), ("P12M", "12 months"), ("P1Y6M", "1 year 6 months"), ("PT72H", "72 hours")],
)
def test_describe(text: str, words: str) -> None:
    assert Duration.parse(text).describe() == words


def test_negative_components_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        Duration(days=-1)
