"""A small hand-made history for the backtest tests, and the repeat_missing reference they check it against.

Children (missing episodes on these days after T0, absence `missing`, medium risk unless said):
  A 10, 40        two within 30 days        K=2 alerts on day 40; K=3 never
  B 5, 120        115 days apart            never
  C 20, 50, 80    three within 60 days      K=3 alerts on day 80, K=2 on day 50 (day 80 is in its cooldown)
  D 60            once                      never
  E 30 (high)     high risk                 high_risk_missing under both
  F 150, 170      two within 20 days        K=2 alerts on day 170
  G 100           found day 101, no return interview: return_interview_overdue due day 104 under both
  W 95, 105       two within 10 days        K=2 alerts on day 105 (its evidence starts before day 100)
  Z 190, 210      two within 20 days        K=2 alerts on day 210
and household H: an incident on day 15 with a child present and no contact (domestic_abuse_child_present, and
da_contact_overdue due day 16, under both).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from schemas.events import AgencyEvent, MissingReported
from streams.backtest import in_event_time_order
from streams.rules import alert_id, catalogue_from_mapping
from tests.unit.test_streams.factories import day, incident, missing_found, missing_reported

PROPOSED_TOML = "[repeat_missing]\nthreshold = 2\n"
PROPOSED = catalogue_from_mapping({"repeat_missing": {"threshold": 2}}, source="proposed.toml")


def pseudonym(name: str) -> str:
    return hashlib.sha256(f"backtest-test:{name}".encode()).hexdigest()


EPISODE_DAYS: dict[str, tuple[float, ...]] = {
    "A": (10, 40),
    "B": (5, 120),
    "C": (20, 50, 80),
    "D": (60,),
    "F": (150, 170),
    "W": (95, 105),
    "Z": (190, 210),
}
CHILDREN = {name: pseudonym(name) for name in (*EPISODE_DAYS, "E", "G", "P")}
HOUSEHOLD = pseudonym("H")


def history() -> list[AgencyEvent]:
    """Every event of the module docstring, in event-time order."""
    events: list[AgencyEvent] = []
    for name, days in EPISODE_DAYS.items():
        for n in days:
            events.append(missing_reported(day(n), child=CHILDREN[name], episode=f"MP-{name}-{n:g}"))
    events.append(missing_reported(day(30), child=CHILDREN["E"], episode="MP-E-30", risk_level="high"))
    events.append(missing_reported(day(100), child=CHILDREN["G"], episode="MP-G-100"))
    events.append(missing_found(day(101), child=CHILDREN["G"], episode="MP-G-100"))
    events.append(incident(day(15), household=HOUSEHOLD, incident_id="DI-H-15", children=[(CHILDREN["P"], True)]))
    return in_event_time_order(events)


@dataclass(frozen=True)
class Expected:
    """An alert the reference semantics predict: its id, trigger time and evidence."""

    alert_id: str
    child: str
    triggered_at: datetime
    evidence: frozenset[str]


def repeat_missing_reference(events: Sequence[AgencyEvent], threshold: int, window_days: int) -> list[Expected]:
    """rules.md for repeat_missing in event-time order, by brute force (arrival-order guarantee 4d): at each report,
    the reports of the closed window ending there; alert when at least `threshold`, unless the child's previous
    alert is within the cooldown (the window)."""
    window = timedelta(days=window_days)
    by_child: dict[str, list[MissingReported]] = {}
    for event in events:
        if isinstance(event, MissingReported) and event.absence_type == "missing":
            by_child.setdefault(event.child_id, []).append(event)
    expected: list[Expected] = []
    for child, reports in by_child.items():
        last: datetime | None = None
        for report in reports:
            at = report.occurred_at
            inside = [r for r in reports if at - window <= r.occurred_at <= at]
            if len(inside) >= threshold and (last is None or at - last > window):
                evidence = tuple(r.event_id for r in inside)
                expected.append(
                    Expected(alert_id("repeat_missing", "child", child, evidence), child, at, frozenset(evidence))
                )
                last = at
    return expected
