"""ISO 8601 durations with calendar months and years, as rules.md defines them.

Months and years are calendar units: adding P1M to 31 January gives the last day of February
(month-end clamping), and P24M after 2023-01-31 is 2025-01-31. Days, hours, minutes and seconds
are exact (a day is 24 hours). Calendar arithmetic is done in UTC, so the same instant written
with different offsets always gives the same answer.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

from pydantic import GetCoreSchemaHandler
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

_ISO_DURATION = re.compile(
    r"P(?!$)(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?"
)


_Day = TypeVar("_Day", date, datetime)


class InvalidDuration(ValueError):
    """A text that is not an ISO 8601 duration this project understands."""

    def __init__(self, text: object) -> None:
        super().__init__(f"{text!r} is not an ISO 8601 duration such as P90D")


@dataclass(frozen=True)
class Duration:
    """A non-negative ISO 8601 duration: a calendar part (years, months) and an exact part."""

    years: int = 0
    months: int = 0
    days: int = 0
    hours: int = 0
    minutes: int = 0
    seconds: int = 0

    def __post_init__(self) -> None:
        if min(self.years, self.months, self.days, self.hours, self.minutes, self.seconds) < 0:
            raise ValueError("a duration cannot be negative")
        # Computed once: rules add durations to times for every event they see.
        exact = timedelta(days=self.days, hours=self.hours, minutes=self.minutes, seconds=self.seconds)
        object.__setattr__(self, "_exact", exact)
        object.__setattr__(self, "_calendar_months", 12 * self.years + self.months)
        object.__setattr__(self, "_shift_by_day", {})

    @classmethod
    def parse(cls, text: str) -> Duration:
        """Parse `P[nY][nM][nW][nD][T[nH][nM][nS]]` (whole numbers; weeks become 7 days)."""
        match = _ISO_DURATION.fullmatch(text) if isinstance(text, str) else None
        if match is None:
            raise InvalidDuration(text)
        parts = {name: int(value) for name, value in match.groupdict().items() if value is not None}
        weeks = parts.pop("weeks", 0)
        parts["days"] = parts.get("days", 0) + 7 * weeks
        return cls(**parts)

    @property
    def calendar_months(self) -> int:
        months: int = self.__dict__["_calendar_months"]
        return months

    @property
    def exact(self) -> timedelta:
        """The part of the duration that is a fixed length of time."""
        exact: timedelta = self.__dict__["_exact"]
        return exact

    @property
    def is_zero(self) -> bool:
        return self.calendar_months == 0 and not self.exact

    def after(self, moment: datetime) -> datetime:
        """`moment` plus this duration: calendar months first (clamped to month end), then the exact part."""
        utc = moment if moment.tzinfo is UTC else moment.astimezone(UTC)
        d = self.__dict__
        if not d["_calendar_months"]:
            exact: datetime = utc + d["_exact"]
            return exact
        # Months move the date only (the time of day stays), so the whole shift is a number of days that depends
        # on the date alone: remembered per day (a few thousand distinct days), one addition instead of `replace`.
        day = utc.toordinal()
        shifts: dict[int, timedelta] = d["_shift_by_day"]
        shift = shifts.get(day)
        if shift is None:
            year, month, dom = _shifted_day(utc.year, utc.month, utc.day, d["_calendar_months"])
            shift = timedelta(days=date(year, month, dom).toordinal() - day) + d["_exact"]
            if len(shifts) >= _SHIFTS_HELD:
                shifts.clear()
            shifts[day] = shift
        shifted: datetime = utc + shift
        return shifted

    def dominates(self, other: Duration) -> bool:
        """True when this duration is at least `other` at every moment (no fewer months, no less exact time)."""
        return self.calendar_months >= other.calendar_months and self.exact >= other.exact

    def after_date(self, day: date) -> date:
        """`day` plus the calendar months and whole days of this duration (any time part is ignored)."""
        moved = _add_months(day, self.calendar_months) if self.calendar_months else day
        return moved + timedelta(days=self.exact.days)

    def __add__(self, other: object) -> Duration:
        if not isinstance(other, Duration):
            return NotImplemented
        return Duration(
            self.years + other.years,
            self.months + other.months,
            self.days + other.days,
            self.hours + other.hours,
            self.minutes + other.minutes,
            self.seconds + other.seconds,
        )

    def __str__(self) -> str:
        calendar_part = "".join(
            f"{n}{unit}" for n, unit in ((self.years, "Y"), (self.months, "M"), (self.days, "D")) if n
        )
        time_part = "".join(
            f"{n}{unit}" for n, unit in ((self.hours, "H"), (self.minutes, "M"), (self.seconds, "S")) if n
        )
        if not calendar_part and not time_part:
            return "PT0S"
        return "P" + calendar_part + (f"T{time_part}" if time_part else "")

    def describe(self) -> str:
        """Words for a manager: `90 days`, `12 months`, `72 hours`, `1 year 6 months`."""
        units = (
            (self.years, "year"),
            (self.months, "month"),
            (self.days, "day"),
            (self.hours, "hour"),
            (self.minutes, "minute"),
            (self.seconds, "second"),
        )
        words = [f"{n} {unit}" if n == 1 else f"{n} {unit}s" for n, unit in units if n]
        return " ".join(words) if words else "0 seconds"

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_plain_validator_function(
            _validate_duration, serialization=core_schema.plain_serializer_function_ser_schema(str)
        )


def _validate_duration(value: object) -> Duration:
    if isinstance(value, Duration):
        return value
    if isinstance(value, str):
        try:
            return Duration.parse(value)
        except InvalidDuration:
            pass
    raise PydanticCustomError("iso_duration", "{text} is not an ISO 8601 duration such as P90D", {"text": repr(value)})


def within(earlier: datetime, later: datetime, span: Duration) -> bool:
    """True when `later` is at or after `earlier` and at most `span` after it (closed interval)."""
    return earlier <= later <= span.after(earlier)


def reaches(moment: datetime, spans: tuple[Duration, ...], newest: datetime) -> bool:
    """True when `moment` plus the longest of `spans` (compared at that moment) is at or after `newest`."""
    return any(span.after(moment) >= newest for span in spans)


def longest(spans: tuple[Duration, ...]) -> tuple[Duration, ...]:
    """`spans` without those another one dominates: the same `reaches` and `max(after)` with fewer additions.

    Months and days do not compare in general (P1M vs P30D), so more than one may remain.
    """
    kept: list[Duration] = []
    for span in dict.fromkeys(spans):
        if any(other.dominates(span) for other in kept):
            continue
        kept = [other for other in kept if not span.dominates(other)] + [span]
    return tuple(kept)


_SHIFTED: dict[tuple[int, int, int, int], tuple[int, int, int]] = {}
_SHIFTS_HELD = 100_000
"""Days whose shift one `Duration` remembers (about 270 years of days): bounded, forgotten all at once when full."""


def _shifted_day(year: int, month: int, day: int, months: int) -> tuple[int, int, int]:
    """(year, month, day) `months` calendar months later, clamped to month end; remembered (few distinct days)."""
    key = (year, month, day, months)
    found = _SHIFTED.get(key)
    if found is None:
        index = year * 12 + (month - 1) + months
        new_year, new_month = divmod(index, 12)
        found = (new_year, new_month + 1, min(day, calendar.monthrange(new_year, new_month + 1)[1]))
        if len(_SHIFTED) < 1_000_000:  # about 30 years of days for a few month counts: bounded
            _SHIFTED[key] = found
    return found


def _add_months(moment: _Day, months: int) -> _Day:
    index = moment.year * 12 + (moment.month - 1) + months
    year, month = divmod(index, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)
