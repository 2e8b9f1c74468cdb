"""Round trip: the simulator's history written as a CIN census and imported gives the same referrals and plans.

Ids aside: the census has LAchildIDs (the writer numbers the simulated children), the import pseudonymises
them with the partnership's key and names referrals and plans by their dates; every child is followed
through that with the writer's mapping. What a census cannot carry is left out of the comparison and
checked for what it becomes instead: times of day (the census has dates), `agency_code`, whether a
referral was a strategy discussion, `previous_plan_ended_at` (no such element), and the second of two
referrals of a child on one day (one CIN episode per child and referral date).
"""

from __future__ import annotations

import io
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from producers.history import CinImport
from producers.history.cin_writer import write_census
from producers.pseudonymise import Pseudonymiser
from producers.simulate import LEICESTER_2019, generate
from producers.simulate.census import UNKNOWN_SOURCE, census_children
from schemas.events import AgencyEvent, ContactDecided, ContactReceived, CpPlanEnded, CpPlanStarted
from schemas.types import REFERRAL_OUTCOMES

KEY = Pseudonymiser(b"round-trip key of the partnership")
Referral = tuple[str, date, str, str, str | None, frozenset[str]]
Plan = tuple[str, date, date | None, str, int | None]


class Keep:
    def __init__(self) -> None:
        self.events: list[AgencyEvent] = []

    def add(self, event: AgencyEvent) -> bool | None:
        self.events.append(event)
        return True


def referrals(events: list[AgencyEvent], child: dict[str, str]) -> Counter[Referral]:
    """(child, day, source, agency type, primary need, concerns) of every referral."""
    received = {e.contact_id: e for e in events if isinstance(e, ContactReceived)}
    found: Counter[Referral] = Counter()
    for e in events:
        if isinstance(e, ContactDecided) and e.outcome in REFERRAL_OUTCOMES:
            r = received[e.contact_id]
            day, concerns = e.occurred_at.date(), frozenset(r.concerns)
            found[(child[e.child_id], day, r.contact_source, r.agency_type, e.primary_need, concerns)] += 1
    return found


def plans(events: list[AgencyEvent], child: dict[str, str]) -> Counter[Plan]:
    """(child, start day, end day, category, previous plans) of every plan."""
    ends = {e.plan_id: e.occurred_at.date() for e in events if isinstance(e, CpPlanEnded)}
    return Counter(
        (child[e.child_id], e.occurred_at.date(), ends.get(e.plan_id), e.category, e.previous_plans)
        for e in events
        if isinstance(e, CpPlanStarted)
    )


@pytest.fixture(scope="module")
def round_trip(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[AgencyEvent], list[AgencyEvent], dict[str, str]]:
    simulated = generate(LEICESTER_2019, seed=7, days=120)
    records, la_child_ids = census_children(simulated, LEICESTER_2019.first_day)
    path: Path = tmp_path_factory.mktemp("census") / "cin-2019-20.xml"
    buffer = io.BytesIO()
    write_census(buffer, la_code=LEICESTER_2019.la_code, year=LEICESTER_2019.last_day.year, children=records)
    path.write_bytes(buffer.getvalue())
    target = Keep()
    summary = CinImport(pseudonymiser=KEY, clock=lambda: datetime(2026, 1, 1, tzinfo=UTC), la_code="856").run(
        [path], target
    )
    assert summary.rejected == 0 and not summary.unknown_elements
    return simulated, target.events, la_child_ids


def test_the_same_plans(round_trip: tuple[list[AgencyEvent], list[AgencyEvent], dict[str, str]]) -> None:
    simulated, imported, la_child_ids = round_trip
    same = {child_id: child_id for child_id in la_child_ids}
    back = {KEY.pseudonym(la_child_id): child_id for child_id, la_child_id in la_child_ids.items()}
    expected, got = plans(simulated, same), plans(imported, back)
    assert sum(expected.values()) > 300
    assert got == expected
    previous_end = [e for e in imported if isinstance(e, CpPlanStarted) and e.previous_plan_ended_at is not None]
    assert not previous_end, "the census has no previous plan's end date"


def test_the_same_referrals(round_trip: tuple[list[AgencyEvent], list[AgencyEvent], dict[str, str]]) -> None:
    simulated, imported, la_child_ids = round_trip
    same = {child_id: child_id for child_id in la_child_ids}
    back = {KEY.pseudonym(la_child_id): child_id for child_id, la_child_id in la_child_ids.items()}
    expected = referrals(simulated, same)
    first_day = LEICESTER_2019.first_day
    in_year = Counter({key: n for key, n in referrals(imported, back).items() if key[1] >= first_day})
    before = [key for key in referrals(imported, back) if key[1] < first_day]
    # One CIN episode per child and referral date: a second referral of a child on the same day is the same one.
    per_day = Counter((key[0], key[1]) for key in expected.elements())
    merged = sum(n - 1 for n in per_day.values())
    assert merged <= 3
    assert {(k[0], k[1]) for k in in_year} == set(per_day)
    assert sum(in_year.values()) == sum(expected.values()) - merged > 500
    alone = {key for key in expected if per_day[(key[0], key[1])] == 1}
    assert alone <= set(in_year), "every referral alone on its day comes back with the same source, need and concerns"
    # Before the year: only the referral written to hold a plan whose referral the simulation never made.
    assert before and all(key[2] == UNKNOWN_SOURCE for key in before)
    outcomes = {e.outcome for e in imported if isinstance(e, ContactDecided)}
    assert outcomes == {"referral"}, "the census does not say which referrals went to a strategy discussion"


def test_agency_types_agree_with_the_simulator(
    round_trip: tuple[list[AgencyEvent], list[AgencyEvent], dict[str, str]],
) -> None:
    simulated, imported, _ = round_trip
    pairs = {(e.contact_source, e.agency_type) for e in simulated if isinstance(e, ContactReceived)}
    pairs_imported = {(e.contact_source, e.agency_type) for e in imported if isinstance(e, ContactReceived)}
    assert pairs_imported - {(UNKNOWN_SOURCE, "other")} <= pairs


def test_simulate_writes_a_census_that_imports_cleanly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from safeguard.cli import cli

    monkeypatch.setenv("SAFEGUARD_PSEUDONYM_KEY", "round-trip key of the partnership")
    census = tmp_path / "leicester-cin.xml"
    args = ["simulate", "--scenario", "leicester-2019", "--days", "5", "--cin-out", str(census)]
    made = CliRunner().invoke(cli, args)
    assert made.exit_code == 0, made.output
    assert "CIN census" in made.output
    imported = CliRunner().invoke(cli, ["import", "cin", "--dry-run", str(census)])
    assert imported.exit_code == 0, imported.output
    assert "LA 856" in imported.output and "rejected elements" in imported.output
