"""Child protection plans: the stock open on day one, the year's starts by category, ends, and repeat plans.

The stock open when the year begins is emitted with its real start dates (a backload), because "children on
a plan" and "plans over two years" can only be counted from events if the starts are in the stream.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from statistics import NormalDist

from producers.simulate.ids import Identities
from producers.simulate.scenarios import Scenario
from producers.simulate.timeline import DAY, Timeline, local_date, office_moment, strata
from schemas.types import PlanCategory

_MIN_DAYS = 42
_MAX_DAYS = 700  # natural plans end before two years; the long ones are planted on purpose
_SIGMA = 0.5
_TWO_YEARS = 731
_MIN_GAP_DAYS = 30  # between a plan's end and the same child's next plan
_PREVIOUS_COUNTS = (1, 2, 3)
_PREVIOUS_COUNT_WEIGHTS = (75, 20, 5)


@dataclass(slots=True)
class Plan:
    child: int
    category: PlanCategory
    start: int
    end: int | None  # None: still open when the year ends
    previous_plans: int
    previous_end: date | None
    backloaded: bool
    plan_id: str = ""


def plans(scenario: Scenario, timeline: Timeline, ids: Identities, rng: random.Random) -> list[Plan]:
    """Every plan open during the year (stock and new), in start order, with repeat-plan history set.

    Lengths and start days are drawn stratified (one draw per quantile band) so that "children on a plan",
    a stock-and-flow figure, lands close to its target for any seed.
    """
    figures = scenario.plans
    lengths = _Lengths(figures.median_days)
    result = _open_stock(scenario, timeline, rng, ids, lengths)
    categories = [category for category, count in figures.starts for _ in range(count)]
    rng.shuffle(categories)
    new: list[Plan] = []
    for category, u, v in zip(categories, strata(rng, len(categories)), strata(rng, len(categories)), strict=True):
        start = timeline.moment(rng, "office", u=u)
        end = office_moment(rng, local_date(start) + timedelta(days=round(lengths.days(v))), forward=True)
        new.append(Plan(ids.new("CHILD"), category, start, end if end < timeline.end else None, 0, None, False))
    new.sort(key=lambda p: p.start)
    first, last = figures.repeat_share_first_starts, figures.repeat_share_last_starts
    year = timeline.end - timeline.start
    _mark_repeats(rng, new, lambda p: first + (last - first) * (p.start - timeline.start) / year, recent=True)
    _mark_repeats(rng, new, lambda p: figures.older_repeat_share, recent=False)
    result.extend(new)
    result.sort(key=lambda p: p.start)
    _repeat_in_stream(scenario, timeline, rng, result)
    for n, plan in enumerate(result, start=1):
        plan.plan_id = f"CPP-{scenario.la_code}-{n:05d}"
    return result


class _Lengths:
    """Plan lengths in days: a log-normal truncated to [_MIN_DAYS, _MAX_DAYS], read through its quantiles."""

    def __init__(self, median_days: float) -> None:
        self._mu = math.log(median_days)
        self._normal = NormalDist()

    def days(self, u: float, *, length_biased: bool = False) -> float:
        """The u-quantile; length-biased for plans caught open on a given day (long plans are caught more often)."""
        mu = self._mu + (_SIGMA**2 if length_biased else 0.0)
        low = self._normal.cdf((math.log(_MIN_DAYS) - mu) / _SIGMA)
        high = self._normal.cdf((math.log(_MAX_DAYS) - mu) / _SIGMA)
        return math.exp(mu + _SIGMA * self._normal.inv_cdf(low + u * (high - low)))


def _open_stock(
    scenario: Scenario, timeline: Timeline, rng: random.Random, ids: Identities, lengths: _Lengths
) -> list[Plan]:
    """Plans open on day one, started before it: each caught at a uniform point of a length-biased plan."""
    figures = scenario.plans
    categories = [category for category, count in figures.starts for _ in range(count)]
    count = figures.open_at_start - figures.long_plans_at_end
    stock: list[Plan] = []
    for u, v in zip(strata(rng, count), strata(rng, count), strict=True):
        total = lengths.days(u, length_biased=True)
        elapsed = min(total - 2.0, max(1.0, v * total))
        start_day = scenario.first_day - timedelta(days=math.ceil(elapsed))
        end = office_moment(rng, start_day + timedelta(days=max(round(total), math.ceil(elapsed) + 1)), forward=True)
        start = office_moment(rng, start_day)
        stock.append(
            Plan(ids.new("CHILD"), rng.choice(categories), start, end if end < timeline.end else None, 0, None, True)
        )
    _mark_exactly(rng, stock, figures.repeat_share_open_at_start, figures.older_repeat_share)
    for _ in range(figures.long_plans_at_end):  # open at year end, started more than two years before it
        start = office_moment(rng, scenario.last_day - timedelta(days=_TWO_YEARS + rng.randrange(5, 250)))
        stock.append(Plan(ids.new("CHILD"), rng.choice(categories), start, None, 0, None, True))
    return stock


def _mark_exactly(rng: random.Random, plans: list[Plan], recent_share: float, older_share: float) -> None:
    """Exactly the given shares of `plans` follow a previous plan (within 24 months, or longer ago)."""
    chosen = rng.sample(plans, round((recent_share + older_share) * len(plans)))
    recent = round(recent_share * len(plans))
    for n, plan in enumerate(chosen):
        _previous(rng, plan, recent=n < recent)


def _mark_repeats(rng: random.Random, plans: list[Plan], share: Callable[[Plan], float], *, recent: bool) -> None:
    """Systematic sampling in start order: a time-varying share, met closely over any stretch of the year."""
    level = rng.random()
    for plan in plans:
        if plan.previous_plans:
            continue
        level += share(plan)
        if level >= 1.0:
            level -= 1.0
            _previous(rng, plan, recent=recent)


def _previous(rng: random.Random, plan: Plan, *, recent: bool) -> None:
    """What the source knows of the child's earlier plans: how many, and when the last one ended."""
    start_day = local_date(plan.start)
    gap = rng.randrange(_MIN_GAP_DAYS, _TWO_YEARS - 10) if recent else rng.randrange(_TWO_YEARS + 30, 6 * 365)
    plan.previous_plans = rng.choices(_PREVIOUS_COUNTS, _PREVIOUS_COUNT_WEIGHTS)[0]
    plan.previous_end = start_day - timedelta(days=gap)


def _repeat_in_stream(scenario: Scenario, timeline: Timeline, rng: random.Random, plans: list[Plan]) -> None:
    """Give some of the year's plans to a child whose earlier plan ended in the stream, for in-stream history."""
    earliest = timeline.start + 120 * DAY
    targets = [p for p in plans if p.start >= earliest]
    rng.shuffle(targets)
    used: set[int] = set()
    made = 0
    for plan in targets:
        if made == scenario.plans.in_stream_repeats:
            break
        sources = [
            p
            for p in plans
            if p.end is not None
            and timeline.start <= p.end <= plan.start - _MIN_GAP_DAYS * DAY
            and id(p) not in used
            and p.previous_plans == 0
        ]
        if not sources:
            continue
        source = rng.choice(sources)
        used.update((id(source), id(plan)))
        assert source.end is not None
        plan.child = source.child
        plan.previous_plans = source.previous_plans + 1
        plan.previous_end = local_date(source.end)
        made += 1
