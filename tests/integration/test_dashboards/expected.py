"""The figures each panel should show, counted in plain Python from the generated events (and the alerts the
rule engine raised over them), independently of the SQL. Times are compared as the plugin's macros compare
them: `from <= t <= to` with both bounds in whole seconds.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from typing import TypeVar
from zoneinfo import ZoneInfo

from schemas.alerts import AlertLifecycle, AlertRaised
from schemas.events import (
    AgencyEvent,
    ContactDecided,
    ContactReceived,
    CpPlanEnded,
    CpPlanStarted,
    DomesticIncidentRecorded,
    MissingFound,
    MissingReported,
    MissingReturnInterview,
)

LONDON = ZoneInfo("Europe/London")
T = TypeVar("T")


def of(events: Iterable[AgencyEvent], kind: type[T]) -> list[T]:
    return [e for e in events if isinstance(e, kind)]


def second(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(microsecond=0)


def inside(moment: datetime, lo: datetime, hi: datetime) -> bool:
    """`$__timeFilter`: toDateTime(<unix s>) bounds, inclusive."""
    return second(lo) <= moment.astimezone(UTC) <= second(hi)


def month(moment: datetime) -> datetime:
    """The local calendar month of an instant, as the UTC instant of its first midnight (what the SQL returns)."""
    local = moment.astimezone(LONDON)
    return datetime(local.year, local.month, 1, tzinfo=LONDON).astimezone(UTC)


def fy(moment: datetime) -> str:
    local = moment.astimezone(LONDON)
    start = local.year if local.month >= 4 else local.year - 1
    return f"{start}/{str(start + 1)[2:]}"


def add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    year, month_ = divmod(index, 12)
    for last in (31, 30, 29, 28):
        try:
            return date(year, month_ + 1, min(day.day, last))
        except ValueError:
            continue
    raise AssertionError


def group(source: str) -> str:
    if source == "6":
        return "Police"
    if source.startswith("3"):
        return "Health"
    if source.startswith("2"):
        return "Education"
    return "Other"


def pct(part: int, whole: int) -> float:
    return round(100 * part / whole, 1)


# --- Front Door ---------------------------------------------------------------------------------------------------


def contacts_by_month(events: list[AgencyEvent], lo: datetime, hi: datetime) -> Counter[tuple[datetime, str]]:
    return Counter(
        (month(c.occurred_at), group(c.contact_source))
        for c in of(events, ContactReceived)
        if inside(c.occurred_at, lo, hi)
    )


def contacts_by_year(events: list[AgencyEvent], lo: datetime, hi: datetime) -> dict[str, Counter[str]]:
    years: dict[str, Counter[str]] = defaultdict(Counter)
    for c in of(events, ContactReceived):
        if inside(c.occurred_at, lo, hi):
            years[fy(c.occurred_at)][group(c.contact_source)] += 1
    return years


def decisions_by_month(events: list[AgencyEvent], lo: datetime, hi: datetime) -> Counter[tuple[datetime, str]]:
    return Counter(
        (month(d.occurred_at), d.outcome) for d in of(events, ContactDecided) if inside(d.occurred_at, lo, hi)
    )


def referrals(events: list[AgencyEvent]) -> list[tuple[datetime, bool]]:
    """Every referral with whether it is a re-referral (the child's previous referral within 12 local months)."""
    times: dict[str, list[datetime]] = defaultdict(list)
    for d in of(events, ContactDecided):
        if d.outcome in ("referral", "strategy_discussion"):
            times[d.child_id].append(d.occurred_at)
    out: list[tuple[datetime, bool]] = []
    for child_times in times.values():
        child_times.sort()
        out.append((child_times[0], False))
        for a, b in pairwise(child_times):
            local_a, local_b = a.astimezone(LONDON).date(), b.astimezone(LONDON).date()
            out.append((b, local_b <= add_months(local_a, 12)))
    return out


# --- Missing ------------------------------------------------------------------------------------------------------


def cohort(looked_after: bool) -> str:
    return "Looked after" if looked_after else "Not looked after"


def missing_reports(events: list[AgencyEvent], lo: datetime, hi: datetime) -> list[MissingReported]:
    return [r for r in of(events, MissingReported) if inside(r.occurred_at, lo, hi)]


def return_interviews(
    events: list[AgencyEvent], lo: datetime, hi: datetime
) -> dict[datetime, tuple[int, int, int, int]]:
    """Per month found: (found, first step within 72 h, later, none); steps seen up to `hi` + 72 h."""
    window_end = hi + timedelta(hours=72)
    steps: dict[str, list[datetime]] = defaultdict(list)
    for s in of(events, MissingReturnInterview):
        if inside(s.occurred_at, lo, window_end):
            steps[s.episode_id].append(s.occurred_at)
    months: dict[datetime, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for f in of(events, MissingFound):
        if not inside(f.occurred_at, lo, hi):
            continue
        row = months[month(f.occurred_at)]
        row[0] += 1
        if not steps.get(f.episode_id):
            row[3] += 1
        elif min(steps[f.episode_id]) <= f.occurred_at + timedelta(hours=72):
            row[1] += 1
        else:
            row[2] += 1
    return {m: (r[0], r[1], r[2], r[3]) for m, r in months.items()}


# --- Domestic abuse -----------------------------------------------------------------------------------------------


def incidents(events: list[AgencyEvent], lo: datetime, hi: datetime) -> list[DomesticIncidentRecorded]:
    return [i for i in of(events, DomesticIncidentRecorded) if inside(i.occurred_at, lo, hi)]


def repeat_incidents(events: list[AgencyEvent], lo: datetime, hi: datetime) -> int:
    """Incidents in range whose household had another incident within the 12 local months before."""
    times: dict[str, list[datetime]] = defaultdict(list)
    for i in of(events, DomesticIncidentRecorded):
        times[i.household_id].append(i.occurred_at)
    n = 0
    for household_times in times.values():
        household_times.sort()
        for a, b in pairwise(household_times):
            local_a, local_b = a.astimezone(LONDON).date(), b.astimezone(LONDON).date()
            if inside(b, lo, hi) and local_b <= add_months(local_a, 12):
                n += 1
    return n


# --- Child protection ---------------------------------------------------------------------------------------------


def plan_spans(events: list[AgencyEvent]) -> dict[str, tuple[CpPlanStarted, datetime | None]]:
    ends = {e.plan_id: e.occurred_at for e in of(events, CpPlanEnded)}
    return {s.plan_id: (s, ends.get(s.plan_id)) for s in of(events, CpPlanStarted)}


def month_ends(lo: datetime, hi: datetime) -> list[tuple[datetime, datetime]]:
    """(month start, last second of the month) for the local months from `lo`'s to `hi`'s ending by `hi`."""
    local = lo.astimezone(LONDON)
    first = date(local.year, local.month, 1)
    out = []
    while True:
        start = datetime(first.year, first.month, first.day, tzinfo=LONDON)
        nxt = add_months(first, 1)
        end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=LONDON) - timedelta(seconds=1)
        if start > hi:
            break
        if end <= hi:
            out.append((start.astimezone(UTC), end))
        first = nxt
    return out


def open_at(spans: dict[str, tuple[CpPlanStarted, datetime | None]], moment: datetime) -> list[CpPlanStarted]:
    return [s for s, end in spans.values() if s.occurred_at <= moment and (end is None or end > moment)]


def repeat_plan_alerts(alerts: list[AlertRaised]) -> dict[str, str]:
    """Start event id -> severity of the `repeat_cp_plan` alert raised for that plan's start."""
    return {a.evidence_event_ids[0]: a.severity for a in alerts if a.rule_id == "repeat_cp_plan"}


# --- Alerts -------------------------------------------------------------------------------------------------------


def alerts_in(alerts: list[AlertRaised], lo: datetime, hi: datetime) -> list[AlertRaised]:
    return [a for a in alerts if inside(a.triggered_at, lo, hi)]


def acknowledgement_minutes(
    alerts: list[AlertRaised], acks: list[AlertLifecycle], lo: datetime, hi: datetime
) -> dict[str, tuple[int, list[float]]]:
    """Per severity: alerts raised in range, and the minutes to acknowledge those acknowledged."""
    first_ack: dict[str, datetime] = {}
    for ack in acks:
        if ack.alert_id not in first_ack or ack.occurred_at < first_ack[ack.alert_id]:
            first_ack[ack.alert_id] = ack.occurred_at
    out: dict[str, tuple[int, list[float]]] = {}
    for a in alerts:
        if not inside(a.raised_at, lo, hi):
            continue
        n, minutes = out.get(a.severity, (0, []))
        if a.alert_id in first_ack:
            minutes = [*minutes, int((first_ack[a.alert_id] - a.raised_at).total_seconds()) / 60]
        out[a.severity] = (n + 1, minutes)
    return out


def resolution_minutes(
    alerts: list[AlertRaised], resolved: list[AlertLifecycle], lo: datetime, hi: datetime
) -> tuple[dict[str, tuple[int, list[float]]], dict[str, Counter[str]]]:
    """Per severity: alerts raised in range and the minutes from raising to resolution of those resolved; and per
    rule: alerts raised in range by outcome (`open` when not resolved)."""
    first: dict[str, AlertLifecycle] = {}
    for r in resolved:
        if r.alert_id not in first or r.occurred_at < first[r.alert_id].occurred_at:
            first[r.alert_id] = r
    times: dict[str, tuple[int, list[float]]] = {}
    outcomes: dict[str, Counter[str]] = {}
    for a in alerts:
        if not inside(a.raised_at, lo, hi):
            continue
        n, minutes = times.get(a.severity, (0, []))
        done = first.get(a.alert_id)
        if done is not None:
            minutes = [*minutes, int((done.occurred_at - a.raised_at).total_seconds()) / 60]
        times[a.severity] = (n + 1, minutes)
        outcomes.setdefault(a.rule_id, Counter())[(done.outcome or "") if done else "open"] += 1
    return times, outcomes
