"""Writing SSDA903 CSVs (the Header and Missing tables), for round-trip tests.

It writes what it is given, in the 903's layout: dates dd/mm/yyyy, MISSING `M` or `A`, MIS_END blank for an
episode still open. Columns the records do not have (SEX, DOB, ETHNIC, MOTHER, MC_DOB) are left blank: the
import does not read them.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from schemas.types import AbsenceType

_TYPES: dict[AbsenceType, str] = {"missing": "M", "away": "A"}
HEADER_COLUMNS = ("CHILD", "SEX", "DOB", "ETHNIC", "UPN", "MOTHER", "MC_DOB")
MISSING_COLUMNS = ("CHILD", "DOB", "MISSING", "MIS_START", "MIS_END")


@dataclass(frozen=True, slots=True)
class MissingRecord:
    child: str
    absence: AbsenceType
    start: date
    end: date | None


def uk_date(day: date | None) -> str:
    return day.strftime("%d/%m/%Y") if day is not None else ""


def write_903(directory: Path, *, year: int, episodes: Iterable[MissingRecord]) -> tuple[Path, Path]:
    """Write `header-<year>.csv` (every child of the episodes, in order of first appearance) and
    `missing-<year>.csv`; returns their paths."""
    header, missing = directory / f"header-{year}.csv", directory / f"missing-{year}.csv"
    children: dict[str, None] = {}
    with missing.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(MISSING_COLUMNS)
        for episode in episodes:
            children.setdefault(episode.child)
            writer.writerow([episode.child, "", _TYPES[episode.absence], uk_date(episode.start), uk_date(episode.end)])
    with header.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(HEADER_COLUMNS)
        for child in children:
            writer.writerow([child, "", "", "", "", "", ""])
    return header, missing
