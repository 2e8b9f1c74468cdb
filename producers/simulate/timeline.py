"""The simulated year as epoch seconds, with day and hour profiles, so events fall when they would in life.

Times are kept as integer epoch seconds while the world is simulated (cheap to compare and sort) and become
Europe/London datetimes only when events are built, so every offset is the one a clock in England showed.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from datetime import date, datetime, timedelta, timezone
from itertools import accumulate
from typing import Literal
from zoneinfo import ZoneInfo

LONDON = ZoneInfo("Europe/London")
_FIXED: dict[timedelta, timezone] = {}
MINUTE = 60
HOUR = 3_600
DAY = 86_400

Profile = Literal["office", "school", "police", "evening", "hospital"]
"""When something tends to happen: office hours, school days, police incidents, missing (evening), A&E."""

# Relative weight of each hour of the (local) day, 00:00 to 23:00.
_HOURS: dict[Profile, tuple[float, ...]] = {
    "office": (0.2, 0.1, 0.1, 0.1, 0.1, 0.2, 0.4, 1.5, 5, 9, 10, 10, 8, 9, 9, 8, 6, 3, 1.5, 1, 0.8, 0.6, 0.4, 0.3),
    "school": (0, 0, 0, 0, 0, 0, 0, 1, 6, 10, 10, 9, 7, 8, 9, 5, 2, 1, 0.3, 0, 0, 0, 0, 0),
    "police": (5, 4, 3, 2, 1.5, 1, 1, 1.5, 2, 2.5, 3, 3, 3.5, 3.5, 4, 4.5, 5, 6, 7, 8, 8.5, 8.5, 8, 6.5),
    "evening": (3, 2, 1.5, 1, 0.7, 0.5, 0.5, 0.7, 1, 1.5, 2, 2.5, 3, 3.5, 4.5, 5.5, 6.5, 7, 7.5, 8, 8, 7, 6, 4.5),
    "hospital": (2, 1.5, 1, 1, 1, 1, 1.5, 2.5, 4, 5, 5.5, 5.5, 5, 5, 5, 5, 5, 5, 5, 4.5, 4, 3.5, 3, 2.5),
}


def local_epoch(day: date, seconds: int = 0) -> int:
    """Epoch seconds of local midnight on `day` in England, plus `seconds`."""
    return int(datetime(day.year, day.month, day.day, tzinfo=LONDON).timestamp()) + seconds


def to_datetime(epoch: int) -> datetime:
    """The England wall-clock time of an epoch second with a fixed offset (+00:00 in winter, +01:00 in summer).

    A fixed offset rather than the ZoneInfo: Python compares two datetimes sharing one tzinfo by wall time,
    so in the repeated hour of October 01:34 (GMT) would sort before 01:51 (BST) although it is later.
    """
    local = datetime.fromtimestamp(epoch, LONDON)
    offset = local.utcoffset()
    assert offset is not None
    fixed = _FIXED.get(offset)
    if fixed is None:
        fixed = _FIXED[offset] = timezone(offset)
    return local.replace(tzinfo=fixed, fold=0)


def local_date(epoch: int) -> date:
    return to_datetime(epoch).date()


def lognormal(rng: random.Random, median: float, sigma: float, low: float, high: float) -> float:
    """A right-skewed duration around `median`, clamped to [low, high]: how long most waits in life look."""
    return min(high, max(low, median * math.exp(rng.gauss(0.0, sigma))))


class Timeline:
    """The days of a scenario with cumulative weights per profile, for fast weighted sampling of moments."""

    def __init__(
        self,
        first_day: date,
        last_day: date,
        school_holidays: tuple[tuple[date, date], ...],
        bank_holidays: tuple[date, ...],
    ) -> None:
        count = (last_day - first_day).days + 1
        self.days = [first_day + timedelta(days=n) for n in range(count)]
        self.midnights = [local_epoch(first_day + timedelta(days=n)) for n in range(count + 1)]
        self.start = self.midnights[0]
        self.end = self.midnights[-1]  # exclusive: local midnight after the last day
        holidays = {d for lo, hi in school_holidays for d in _dates(lo, hi)}
        bank = set(bank_holidays)
        self._day_cum: dict[Profile, list[float]] = {}
        for profile in _HOURS:
            weights = [_day_weight(profile, d, d in bank, d in holidays) for d in self.days]
            self._day_cum[profile] = list(accumulate(weights))
        self._day_max = {
            p: max(b - a for a, b in zip([0.0, *cum], cum, strict=False)) for p, cum in self._day_cum.items()
        }
        self._hour_cum = {profile: list(accumulate(hours)) for profile, hours in _HOURS.items()}

    def day_index(self, epoch: int) -> int:
        """Index of the day holding `epoch`, clamped to the year."""
        return min(len(self.days) - 1, max(0, bisect_right(self.midnights, epoch) - 1))

    def moment(
        self,
        rng: random.Random,
        profile: Profile,
        low: int | None = None,
        high: int | None = None,
        *,
        u: float | None = None,
    ) -> int:
        """A moment in [low, high) (default: the whole year), weighted by the profile's days and hours.

        `u` in [0, 1) picks the day by quantile instead of at random (for stratified draws).
        """
        lo = self.start if low is None else max(low, self.start)
        hi = self.end if high is None else min(high, self.end)
        if hi - lo <= 2 * DAY:
            return lo + rng.randrange(max(1, hi - lo))
        cum = self._day_cum[profile]
        first, last = self.day_index(lo), self.day_index(hi - 1)
        base = cum[first - 1] if first else 0.0
        hours = self._hour_cum[profile]
        for _ in range(8):
            draw = rng.random() if u is None else u
            u = None
            day = min(last, bisect_right(cum, base + draw * (cum[last] - base)))
            hour = min(23, bisect_right(hours, rng.random() * hours[-1]))
            at = self.midnights[day] + hour * HOUR + rng.randrange(HOUR)
            if lo <= at < hi:
                return at
        return lo + rng.randrange(hi - lo)

    def cluster(self, rng: random.Random, profile: Profile, count: int, span: int) -> list[int]:
        """`count` sorted moments within a stretch of `span` seconds placed anywhere in the year.

        The stretch wraps round the year's end, so the first and last weeks are as busy as any other
        (a stretch clamped inside the year would thin out both ends).
        """
        year = self.end - self.start
        span = max(1, min(span, year))
        low = rng.randrange(year)
        hours = self._hour_cum[profile]
        cum = self._day_cum[profile]
        most = self._day_max[profile]
        moments = []
        for _ in range(count):
            while True:
                day = self.day_index(self.start + (low + rng.randrange(span)) % year)
                if rng.random() * most <= cum[day] - (cum[day - 1] if day else 0.0):
                    break
            hour = min(23, bisect_right(hours, rng.random() * hours[-1]))
            moments.append(min(self.end - 1, self.midnights[day] + hour * HOUR + rng.randrange(HOUR)))
        return sorted(moments)


def office_moment(rng: random.Random, day: date, *, forward: bool = False) -> int:
    """A weekday office-hours moment on `day`; a weekend moves to the Friday before (or Monday after)."""
    while day.weekday() >= 5:
        day += timedelta(days=1 if forward else -1)
    return local_epoch(day, rng.randrange(9 * HOUR, 17 * HOUR))


def strata(rng: random.Random, count: int) -> list[float]:
    """`count` uniforms in [0, 1), one in each band of width 1/count, in random order: low-variance sampling."""
    bands = list(range(count))
    rng.shuffle(bands)
    return [(band + rng.random()) / count for band in bands]


def _dates(lo: date, hi: date) -> list[date]:
    return [lo + timedelta(days=n) for n in range((hi - lo).days + 1)]


def _day_weight(profile: Profile, day: date, bank_holiday: bool, school_holiday: bool) -> float:
    weekend = day.weekday() >= 5
    if profile == "office":
        return 0.06 if weekend or bank_holiday else 1.0
    if profile == "school":
        if weekend or bank_holiday:
            return 0.02
        return 0.12 if school_holiday else 1.0
    if profile == "police":
        festive = (day.month == 12 and day.day >= 24) or (day.month == 1 and day.day == 1)
        return (1.3 if weekend else 1.0) * (1.25 if festive else 1.0)
    if profile == "hospital":
        return 0.9 if weekend else 1.0
    return 1.0
