"""Round trip: the simulator's missing episodes of looked-after children, written as SSDA903 CSVs and imported,
give the same episodes (ids aside).

The 903 holds looked-after children only and days only, so the comparison is by (child, type, day reported,
day found); the import pseudonymises the CHILD ids the writer gave, and every child is followed through that
with the writer's mapping. What the 903 cannot carry is checked for what it becomes instead: times of day
(midnight), the police risk grading (the option's default), return interviews (none).
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from producers.history.lac import LacOptions, lac_tables
from producers.history.lac_writer import write_903
from producers.history.tabular import TableImport
from producers.pseudonymise import Pseudonymiser
from producers.simulate import LEICESTER_2019, generate
from producers.simulate.lac import lac_missing
from schemas.events import AgencyEvent, MissingFound, MissingReported

KEY = Pseudonymiser(b"round-trip key of the partnership")
LONDON = ZoneInfo("Europe/London")
Episode = tuple[str, str, date, date | None]


class Keep:
    def __init__(self) -> None:
        self.events: list[AgencyEvent] = []

    def add(self, event: AgencyEvent) -> bool | None:
        self.events.append(event)
        return True


def episodes(events: list[AgencyEvent], child: dict[str, str], *, looked_after_only: bool) -> Counter[Episode]:
    found = {e.episode_id: e.occurred_at.astimezone(LONDON).date() for e in events if isinstance(e, MissingFound)}
    return Counter(
        (child[e.child_id], e.absence_type, e.occurred_at.astimezone(LONDON).date(), found.get(e.episode_id))
        for e in events
        if isinstance(e, MissingReported) and (e.looked_after or not looked_after_only)
    )


@pytest.fixture(scope="module")
def round_trip(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[AgencyEvent], list[AgencyEvent], dict[str, str]]:
    simulated = generate(LEICESTER_2019, seed=7, days=120)
    records, child_ids = lac_missing(simulated)
    directory: Path = tmp_path_factory.mktemp("903")
    header, missing = write_903(directory, year=LEICESTER_2019.last_day.year, episodes=records)
    importer = TableImport(
        pseudonymiser=KEY, clock=lambda: datetime(2026, 1, 1, tzinfo=UTC), la_code="856", agency_code="SSDA903"
    )
    target = Keep()
    summary = importer.run(lac_tables(headers=[header], missing=[missing], options=LacOptions()), target)
    assert summary.rejected == 0 and not summary.unknown_elements and not summary.notes
    assert summary.duplicates == 0
    return simulated, target.events, child_ids


def test_the_same_missing_episodes(round_trip: tuple[list[AgencyEvent], list[AgencyEvent], dict[str, str]]) -> None:
    simulated, imported, child_ids = round_trip
    same = {e.child_id: e.child_id for e in simulated if isinstance(e, MissingReported)}
    back = {KEY.pseudonym(lac_id): child_id for child_id, lac_id in child_ids.items()}
    expected = episodes(simulated, same, looked_after_only=True)
    got = episodes(imported, back, looked_after_only=False)
    assert sum(expected.values()) > 250
    assert {absence for _, absence, _, _ in expected} == {"missing", "away"}
    assert None in {found for _, _, _, found in expected}, "an episode still open at the end stays open"
    assert got == expected
    same_day = Counter((key[0], key[1], key[2]) for key in expected.elements())
    assert max(same_day.values()) == 2, "two of a child's episodes of one type on one day stay two (by their order)"


def test_what_the_903_cannot_carry(round_trip: tuple[list[AgencyEvent], list[AgencyEvent], dict[str, str]]) -> None:
    _, imported, _ = round_trip
    reported = [e for e in imported if isinstance(e, MissingReported)]
    assert {(e.looked_after, e.risk_level, e.agency_code) for e in reported} == {(True, "low", "SSDA903")}
    assert {e.occurred_at.astimezone(LONDON).time().isoformat() for e in imported} == {"00:00:00"}
    assert {e.event_type for e in imported} == {"missing.reported", "missing.found"}
