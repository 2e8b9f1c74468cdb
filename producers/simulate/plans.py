"""Child protection plans: the stock open on day one, the year's starts by category, ends, and repeat plans.

The stock open when the year begins is emitted with its real start dates (a backload), because "children on
a plan" and "plans over two years" can only be counted from events if the starts are in the stream.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import date, timedelta

from producers.simulate.ids import Identities
from producers.simulate.scenarios import Scenario
from producers.simulate.timeline import DAY, Timeline, local_date, office_moment
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
    """Every plan open during the year (stock and new), in start order, with repeat-plan history set."""
    figures = scenario.plans
    result: list[Plan] = []
    categories = _categories(scenario)
    for _ in range(figures.open_at_start - figures.long_plans_at_end):
        start, end = _open_stock_dates(scenario, timeline, rng)
        result.append(_plan(scenario, timeline, rng, ids, rng.choice(categories), start, end, figures.repeat_share_open_at_start))
    for _ in range(figures.long_plans_at_end):
        start_day = scenario.last_day - timedelta(days=_TWO_YEARS + rng.randrange(5, 250))
        result.append(_plan(scenario, timeline, rng, ids, rng.choice(categories), office_moment(rng, start_day), None, 0.0))
    for category, count in figures.starts:
        for _ in range(count):
            start = timeline.moment(rng, "office")
            end = _end(scenario, timeline, rng, start)
            progress = (start - timeline.start) / (timeline.end - timeline.start)
            share = figures.repeat_share_first_starts + progress * (
                figures.repeat_share_last_starts - figures.repeat_share_first_starts
            )
            result.append(_plan(scenario, timeline, rng, ids, category, start, end, share))
    result.sort(key=lambda p: p.start)
    _repeat_in_stream(scenario, timeline, rng, result)
    for n, plan in enumerate(result, start=1):
        plan.plan_id = f"CPP-{scenario.la_code}-{n:05d}"
    return result


def _categories(scenario: Scenario) -> list[PlanCategory]:
    """Categories weighted as the year's starts, for plans whose start the figures do not cover."""
    return [category for category, count in scenario.plans.starts for _ in range(count)]


def _length_days(scenario: Scenario, rng: random.Random) -> float:
    days = scenario.plans.median_days * math.exp(rng.gauss(0.0, _SIGMA))
    return min(_MAX_DAYS, max(_MIN_DAYS, days))


def _open_stock_dates(scenario: Scenario, timeline: Timeline, rng: random.Random) -> tuple[int, int | None]:
    """A plan open on day one: length-biased (long plans are more likely to be open), started before it."""
    while True:
        length = _length_days(scenario, rng)
        if rng.random() * _MAX_DAYS > length:
            continue
        elapsed = rng.uniform(1.0, length - 1.0)
        start_day = scenario.first_day - timedelta(days=math.ceil(elapsed))
        start = office_moment(rng, start_day)
        end = office_moment(rng, start_day + timedelta(days=round(length)))
        if end > timeline.start + DAY:
            return start, end if end < timeline.end else None


def _end(scenario: Scenario, timeline: Timeline, rng: random.Random, start: int) -> int | None:
    """The plan's end, or None while it is still open when the year ends."""
    end = office_moment(rng, local_date(start) + timedelta(days=round(_length_days(scenario, rng))))
    return end if end < timeline.end else None


def _plan(
    scenario: Scenario,
    timeline: Timeline,
    rng: random.Random,
    ids: Identities,
    category: PlanCategory,
    start: int,
    end: int | None,
    repeat_share: float,
) -> Plan:
    """A plan of a new child; `repeat_share` of them had a plan ending in the 24 months before this one."""
    previous_plans, previous_end = 0, None
    draw = rng.random()
    start_day = local_date(start)
    if draw < repeat_share:
        previous_plans = rng.choices(_PREVIOUS_COUNTS, _PREVIOUS_COUNT_WEIGHTS)[0]
        previous_end = start_day - timedelta(days=rng.randrange(_MIN_GAP_DAYS, _TWO_YEARS - 10))
    elif draw < repeat_share + scenario.plans.older_repeat_share:
        previous_plans = rng.choices(_PREVIOUS_COUNTS, _PREVIOUS_COUNT_WEIGHTS)[0]
        previous_end = start_day - timedelta(days=rng.randrange(_TWO_YEARS + 30, 6 * 365))
    return Plan(ids.new("CHILD"), category, start, end, previous_plans, previous_end, start < timeline.start)


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
