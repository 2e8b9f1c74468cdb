"""SSDA903 (children looked after) CSVs as missing episodes: `missing.reported`, and `missing.found` once ended.

The 903's Missing table has a row per episode of a looked-after child: CHILD, DOB, MISSING (`M` missing from
care, whereabouts unknown; `A` away from placement without authorisation, whereabouts known), MIS_START and,
once the child is back, MIS_END (dd/mm/yyyy). The Header table (CHILD, UPN, ...) says which children the
return holds and gives the UPN for `--child-id-from upn`; the Episodes table (CHILD, DECOM, DEC, ...) gives
each child's periods of care, against which every missing episode is checked.

- every episode is `looked_after` true (the 903 holds no other children) and `absence_type` `missing` (M)
  or `away` (A), as the contract defines them;
- the 903 has no police risk grading, which the contract requires: `LacOptions.risk_level` (default `low`)
  is written instead; any level but `high` reads the same in every rule;
- dates are days: each event happens, and is recorded, at local midnight of its day;
- an episode is named by its child, its start day and its type, and its order among the child's episodes of
  that type starting that day (`ids.py`); a later year that repeats it with the end added adds only the end.

`EpisodeMapper` is also the SSD's `ssd_missing` mapping (the 903's missing module by another name).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

from producers.history.codes import Problem, parse_uk_date, shown
from producers.history.emit import midnight
from producers.history.ids import entity_name, event_id, record_id
from producers.history.tables import Column, Row, TableSpec
from producers.history.tabular import MapperContext, RowMapper, RowResult, TableFile
from schemas.quality import value_breaches
from schemas.types import AbsenceType, InterviewStep, RiskLevel

LacChildKey = Literal["child", "upn"]

HEADER = TableSpec(
    "Header",
    (Column("CHILD", required=True), Column("UPN")),
    unread=frozenset({"SEX", "DOB", "ETHNIC", "MOTHER", "MC_DOB"}),
)
EPISODES = TableSpec(
    "Episodes",
    (Column("CHILD", required=True), Column("DECOM", required=True), Column("DEC")),
    unread=frozenset(
        {"RNE", "LS", "CIN", "PLACE", "PLACE_PROVIDER", "REC", "REASON_PLACE_CHANGE", "HOME_POST", "PL_POST", "URN"}
    ),
)
MISSING = TableSpec(
    "Missing",
    (
        Column("CHILD", required=True),
        Column("MISSING", required=True),
        Column("MIS_START", required=True),
        Column("MIS_END"),
    ),
    unread=frozenset({"DOB"}),
)

ABSENCES: dict[str, AbsenceType] = {"M": "missing", "A": "away"}
"""The 903's episode types (validator rule 1006: M or A) as the contract's `absence_type`."""


@dataclass(frozen=True)
class LacOptions:
    agency_code: str = "SSDA903"
    """`agency_code` of every imported event: the return, so imported history can be told apart."""
    child_key: LacChildKey = "child"
    """Which identifier the child's pseudonym is made from: CHILD (the LA's own id) or the Header's UPN."""
    risk_level: RiskLevel = "low"
    """The police risk grading the contract requires and neither the 903 nor the SSD holds."""


@dataclass
class LacChildren:
    """What the Header and Episodes tables say, by child pseudonym (no identifier kept)."""

    upn: dict[str, str | None] = field(default_factory=dict)
    care: dict[str, list[tuple[date, date | None]]] = field(default_factory=dict)
    headers_read: bool = False
    episodes_read: bool = False

    def in_care(self, child_id: str, on: date) -> bool:
        return any(start <= on and (end is None or on <= end) for start, end in self.care.get(child_id, ()))


@dataclass(frozen=True, slots=True)
class Episode:
    """One missing or away episode as read from a row, ready to become events."""

    child_id: str
    absence: AbsenceType
    type_code: str
    start_day: date
    start: datetime
    end: datetime | None
    start_column: str
    end_column: str
    interviews: tuple[InterviewStep, ...] = ()
    interview_column: str = ""


class EpisodeMapper(RowMapper):
    """The events of a missing episode; counts the child's episodes per start day and type within the file."""

    def __init__(self, context: MapperContext, risk_level: RiskLevel) -> None:
        super().__init__(context)
        self._risk_level = risk_level
        self._same_day: Counter[tuple[str, date, str]] = Counter()

    def absence(self, result: RowResult, row: Row, column: str) -> tuple[AbsenceType, str] | None:
        text = row.get(column)
        if text is None:
            self.reject(result, row, column, "missing", "no episode type (M or A): the row gives no event")
            return None
        code = text.upper()
        if code not in ABSENCES:
            reason = f"{shown(text)} is not M (missing) or A (away) (validator rule 1006): the row gives no event"
            self.reject(result, row, column, "unknown_code", reason)
            return None
        return ABSENCES[code], code

    def episode(self, result: RowResult, row: Row, episode: Episode) -> None:
        key = (episode.child_id, episode.start_day, episode.type_code)
        self._same_day[key] += 1
        n = self._same_day[key]
        qualifier = episode.type_code if n == 1 else f"{episode.type_code}/{n}"
        name = entity_name(self.context.la_code, "903", episode.child_id, "missing", episode.start_day, qualifier)
        common: dict[str, Any] = {
            "episode_id": record_id(name, "903", "missing"),
            "child_id": episode.child_id,
            "looked_after": True,
            "absence_type": episode.absence,
            "risk_level": self._risk_level,
        }
        agency = "local_authority"
        reported = {**self.envelope(name, "missing.reported", agency, episode.start), **common}
        if self.add(result, reported, row, episode.start_column):
            result.counts = "episodes"
        if episode.end is None:
            return
        found = {**self.envelope(name, "missing.found", agency, episode.end), **common}
        if episode.end < episode.start and self.held_back(result, row, episode.end_column, reported, found):
            if episode.interviews:  # 567: flagged, and the episode imported as still open
                result.notes.append(
                    ("a return interview of an episode ending before it starts (not imported)", row.line)
                )
            return
        self.add(result, found, row, episode.end_column)
        for step in episode.interviews:
            interview = {
                **self.envelope(name, "missing.return_interview", agency, episode.end, step=step),
                **common,
                "interview": step,
            }
            self.add(result, interview, row, episode.interview_column)

    def flag_absence(
        self, result: RowResult, row: Row, column: str, child_id: str, start_day: date, at: datetime
    ) -> None:
        """1006: a row whose type is neither M nor A (rejected: it gives no event) is also flagged, under the id its
        `missing.reported` would have had, so the finding is stored with the national rule."""
        text = row.get(column)
        if text is None:
            return
        name = entity_name(self.context.la_code, "903", child_id, "missing", start_day, text.upper())
        fields = {
            "event_type": "missing.reported",
            "absence_type": text,
            "child_id": child_id,
            "la_code": self.context.la_code,
            "occurred_at": at.isoformat(),
        }
        self.flag_fields(result, row, column, value_breaches(fields), fields, event_id(name, "missing.reported"))


class HeaderMapper(RowMapper):
    """The Header table: which children the return holds, and each one's UPN (pseudonymised)."""

    def __init__(self, context: MapperContext, children: LacChildren) -> None:
        super().__init__(context)
        self._children = children
        children.headers_read = True

    def row(self, row: Row) -> RowResult:
        result = RowResult()
        child_id = self.child(result, row, "CHILD")
        if child_id is not None:
            upn = row.get("UPN")
            try:
                self._children.upn[child_id] = self.context.pseudonymiser.pseudonym(upn) if upn else None
            except ValueError:
                self._children.upn[child_id] = None
        return result


class PeriodsMapper(RowMapper):
    """The Episodes table: each child's periods of care (DECOM to DEC, open without a DEC)."""

    def __init__(self, context: MapperContext, children: LacChildren) -> None:
        super().__init__(context)
        self._children = children
        children.episodes_read = True

    def row(self, row: Row) -> RowResult:
        result = RowResult()
        child_id = self.child(result, row, "CHILD")
        start = _day(self, result, row, "DECOM", "the period of care is not read")
        end = _day(self, result, row, "DEC", "the period of care is read as still open")
        if child_id is not None and start is not None:
            self._children.care.setdefault(child_id, []).append((start, end))
        return result


class MissingMapper(EpisodeMapper):
    """The Missing table: an episode per row."""

    def __init__(self, context: MapperContext, options: LacOptions, children: LacChildren) -> None:
        super().__init__(context, options.risk_level)
        self._options = options
        self._children = children

    def row(self, row: Row) -> RowResult:
        result = RowResult()
        child_id = self._child(result, row)
        absence = self.absence(result, row, "MISSING")
        start = _day(self, result, row, "MIS_START", "the row gives no event", required=True)
        end = _day(self, result, row, "MIS_END", "imported as still open")
        if absence is None and child_id is not None and start is not None:
            self.flag_absence(result, row, "MISSING", child_id, start, midnight(start))
        if child_id is None or absence is None or start is None:
            return result
        if self._children.headers_read and child_id not in self._children.upn:
            result.notes.append(("Missing: a child in no Header file (imported)", row.line))
        if self._children.episodes_read and not self._children.in_care(child_id, start):
            result.notes.append(("Missing: an episode starting outside every period of care (imported)", row.line))
        started, ended = midnight(start), midnight(end) if end is not None else None
        self.episode(
            result, row, Episode(child_id, absence[0], absence[1], start, started, ended, "MIS_START", "MIS_END")
        )
        return result

    def _child(self, result: RowResult, row: Row) -> str | None:
        child_id = self.child(result, row, "CHILD")
        if child_id is None or self._options.child_key == "child":
            return child_id
        result.child_id = self._children.upn.get(child_id)
        if result.child_id is None:
            self.reject(result, row, "CHILD", "missing", "no UPN for this child in the Header files: no event")
        return result.child_id


def _day(
    mapper: RowMapper, result: RowResult, row: Row, column: str, consequence: str, *, required: bool = False
) -> date | None:
    parsed = parse_uk_date(row.get(column))
    if isinstance(parsed, Problem):
        mapper.reject(result, row, column, parsed.code, f"{parsed.reason}; {consequence}")
        return None
    if parsed is None and required:
        mapper.reject(result, row, column, "missing", f"no {column}; {consequence}")
    return parsed


def lac_tables(
    *, headers: Sequence[Path], missing: Sequence[Path], episodes: Sequence[Path] = (), options: LacOptions
) -> list[TableFile]:
    """The files of one 903 import in the order they must be read: Header and Episodes tables first (they
    say who the children are and when they were in care), then the Missing tables that give the events."""
    children = LacChildren()
    return [
        *(TableFile(path, HEADER, lambda c: HeaderMapper(c, children)) for path in headers),
        *(TableFile(path, EPISODES, lambda c: PeriodsMapper(c, children)) for path in episodes),
        *(TableFile(path, MISSING, lambda c: MissingMapper(c, options, children)) for path in missing),
    ]
