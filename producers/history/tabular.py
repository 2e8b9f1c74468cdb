"""Importing CSV returns (SSDA903, SSD extracts): tables in, events to a target, an `ImportSummary` out.

What the census import does for XML, this does for tables: each file is read row by row (`tables.py`), each
row mapped to events by the table's `RowMapper`, every rejected cell reported with its file, line, row and
column, unknown columns counted as warnings, and an event whose id the import already produced (the same
episode in two years' returns, a contact and its referral in two tables) counted as a duplicate.

Unlike a census year, a table is in no useful order (a 903 missing table is by child, an SSD extract by
whatever the query returned), and the stream worker keeps each child's history by event time. So the events
kept are sorted by event time before they go to the target: the memory this takes grows with the events
(about 1 kB each), which for a partnership's returns is tens of megabytes.

Identifiers stay inside: the mappers pseudonymise them, rows never show their cells, and nothing here logs
or reports a child other than by the row it came from.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from producers.history.census import ByteCounter
from producers.history.codes import Problem
from producers.history.emit import Mapped, checked
from producers.history.errors import TableRefused
from producers.history.ids import event_id
from producers.history.quality import QualityGate, record_breaches
from producers.history.report import FileReport, Flagged, ImportSummary, Rejection
from producers.history.tables import Row, ShortRow, TableSpec, UnknownColumn, read_table
from producers.history.targets import ImportTarget, add_finding
from producers.pseudonymise import Pseudonymiser
from schemas.events import AgencyEvent
from schemas.limits import DEFAULT_WINDOW, EventTimeWindow
from schemas.quality import Breach, feeds, finding, finding_of_fields

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

_ORDER = {
    "contact.received": 0,
    "contact.decided": 1,
    "missing.reported": 0,
    "missing.found": 1,
    "missing.return_interview": 2,
    "cp_plan.started": 0,
    "cp_plan.ended": 1,
}


@dataclass
class RowResult:
    """What one row gave: events, rejections, notes (warnings that cost nothing), and what it counts as."""

    events: list[Mapped] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    notes: list[tuple[str, int]] = field(default_factory=list)
    unknown_codes: list[tuple[str, int]] = field(default_factory=list)
    findings: list[Flagged] = field(default_factory=list)
    """What the row shows by itself: a code not in the list, an end before the start (`producers.history.quality`)."""
    child_id: str | None = None
    counts: str | None = None
    """`contacts`, `referrals`, `plans` or `episodes`: the summary's count this row adds one to."""


@dataclass(frozen=True)
class MapperContext:
    """What a mapper of one file needs besides its rows."""

    file: str
    la_code: str
    agency_code: str
    pseudonymiser: Pseudonymiser
    reference: datetime
    window: EventTimeWindow


class RowMapper:
    """Maps the rows of one file to events; the helpers every table's mapping shares."""

    def __init__(self, context: MapperContext) -> None:
        self.context = context

    def row(self, row: Row) -> RowResult:  # pragma: no cover - every table overrides it
        raise NotImplementedError

    @staticmethod
    def path(row: Row, column: str | None = None) -> str:
        return f"row[{row.position}]/{column}" if column else f"row[{row.position}]"

    def reject(self, result: RowResult, row: Row, column: str | None, code: str, reason: str) -> None:
        rejection = Rejection(self.context.file, self.path(row, column), row.line, code, reason)
        if rejection not in result.rejections:  # an episode's two events break the same rule once
            result.rejections.append(rejection)

    def child(self, result: RowResult, row: Row, column: str) -> str | None:
        """The pseudonym of the row's child (and `result.child_id`), or None with the row rejected."""
        text = row.get(column)
        reason = f"no {column}: the row gives no event"
        if text is not None:
            try:
                result.child_id = self.context.pseudonymiser.pseudonym(text)
                return result.child_id
            except ValueError:  # nothing but spaces and hyphens
                reason = f"{column} has no letter or digit: the row gives no event"
        self.reject(result, row, column, "missing", reason)
        return None

    def envelope(
        self, name: str, event_type: str, agency: str, at: datetime, step: str | None = None
    ) -> dict[str, Any]:
        """The envelope of one of the entity's events; `step` tells apart events of one type (interview steps)."""
        return {
            "event_id": event_id(name, f"{event_type}/{step}" if step else event_type),
            "event_type": event_type,
            "schema_version": 1,
            "la_code": self.context.la_code,
            "agency_type": agency,
            "agency_code": self.context.agency_code,
            "occurred_at": at.isoformat(),
            "recorded_at": at.isoformat(),
        }

    def add(self, result: RowResult, fields: dict[str, Any], row: Row, column: str) -> bool:
        """Validate as every producer does; a failure is rejected at the cell the event's time came from."""
        event = checked(fields, reference=self.context.reference, window=self.context.window)
        if isinstance(event, Problem):
            self.reject(result, row, column, event.code, event.reason)
            return False
        result.events.append(Mapped(event, self.path(row, column), row.line))
        return True

    def held_back(
        self, result: RowResult, row: Row, column: str, opening: dict[str, Any], closing: dict[str, Any]
    ) -> bool:
        """The checks the row's closing event breaks against its opening one (an end before the start: 8925, 567),
        their findings noted. True when the closing event is held back (not imported; the row's opening event is)."""
        made = [checked(f, reference=self.context.reference, window=self.context.window) for f in (opening, closing)]
        first, second = made
        if isinstance(first, Problem) or isinstance(second, Problem):
            return False  # the closing event is added as usual, and rejected there if it is invalid
        breaches = record_breaches(first, second)
        fed = feeds(breaches)
        for breach in breaches:
            found = finding(breach, second, fed=fed, found_by="importer", found_at=self.context.reference)
            result.findings.append(Flagged(self.context.file, self.path(row, column), row.line, found))
        return not fed

    def flag_event(self, result: RowResult, row: Row, column: str, breaches: list[Breach], event_type: str) -> None:
        """Findings of the row's last event of `event_type` (made with a substitute for a code not in the list: fed);
        none when that event could not be made (its rejection says why)."""
        if not breaches:
            return
        made = next((m.event for m in reversed(result.events) if m.event.event_type == event_type), None)
        if made is None:
            return
        for breach in breaches:
            found = finding(breach, made, fed=True, found_by="importer", found_at=self.context.reference)
            result.findings.append(Flagged(self.context.file, self.path(row, column), row.line, found))

    def flag_fields(
        self, result: RowResult, row: Row, column: str, breaches: list[Breach], fields: dict[str, Any], event_id: str
    ) -> None:
        """Findings of a value check (a code not in the list) whose event could not be made: not imported."""
        for breach in breaches:
            made = finding_of_fields(
                breach, fields, event_id=event_id, fed=False, found_by="importer", found_at=self.context.reference
            )
            result.findings.append(Flagged(self.context.file, self.path(row, column), row.line, made))


@dataclass(frozen=True)
class TableFile:
    """One file to read as `spec`, with the mapper of its rows (made per file: some count within a file)."""

    path: Path
    spec: TableSpec
    mapper: Callable[[MapperContext], RowMapper]


@dataclass(frozen=True)
class TableImport:
    """The settings of one import of CSV tables: the partnership's key, the clock, the window, the LA."""

    pseudonymiser: Pseudonymiser
    clock: Clock
    la_code: str
    agency_code: str
    window: EventTimeWindow = DEFAULT_WINDOW

    def run(
        self,
        files: Sequence[TableFile],
        target: ImportTarget,
        summary: ImportSummary | None = None,
        on_bytes: Callable[[int], None] | None = None,
    ) -> ImportSummary:
        """Read every file in the order given, then send the events kept to `target` in event-time order."""
        summary = summary if summary is not None else ImportSummary()
        reference = self.clock()
        seen: set[int] = set()
        children: set[str] = set()
        kept: list[tuple[float, int, int, AgencyEvent, str, str, int]] = []
        fold = _Fold(summary, seen, children, kept)
        for table in files:
            report = FileReport(table.path.name, la_code=self.la_code, table=table.spec.name)
            summary.files.append(report)
            context = MapperContext(
                table.path.name, self.la_code, self.agency_code, self.pseudonymiser, reference, self.window
            )
            with table.path.open("rb") as raw:
                try:
                    _read(ByteCounter(raw, on_bytes), table, table.mapper(context), report, fold)
                except TableRefused as exc:
                    report.refused = exc.reason
                    summary.reject(Rejection(report.name, table.spec.name, exc.line, "file_refused", exc.reason))
            log.info("read %s: %d rows%s", report.name, report.rows, " (refused)" if report.refused else "")
        summary.children = len(children)
        kept.sort(key=lambda item: item[:3])
        gate = QualityGate(reference)
        for flagged in fold.findings:
            if summary.flag(flagged):
                add_finding(target, flagged.finding)
        for _, _, _, event, file, path, line in kept:
            findings, fed = gate.check(event)
            for found in findings:
                if summary.flag(Flagged(file, path, line, found)):
                    add_finding(target, found)
            if fed:
                summary.delivered(target.add(event))
        return summary


@dataclass
class _Fold:
    """Where the rows' results go: the summary, the ids seen, the children, the events kept."""

    summary: ImportSummary
    seen: set[int]
    children: set[str]
    kept: list[tuple[float, int, int, AgencyEvent, str, str, int]]
    findings: list[Flagged] = field(default_factory=list)

    def add(self, result: RowResult, file: str) -> None:
        summary = self.summary
        self.findings += result.findings
        for rejection in result.rejections:
            summary.reject(rejection)
        for what, line in result.notes:
            summary.note(file, what, line)
        for what, line in result.unknown_codes:
            summary.unknown(file, what, line)
        if result.child_id is not None and result.events:
            self.children.add(result.child_id)
        if result.counts is not None and result.events:
            setattr(summary, result.counts, getattr(summary, result.counts) + 1)
        for mapped in result.events:
            event = mapped.event
            summary.generated += 1
            summary.generated_by_type[event.event_type] += 1
            key = uuid.UUID(event.event_id).int
            if key in self.seen:
                summary.duplicates += 1
                continue
            self.seen.add(key)
            order = _ORDER.get(event.event_type, 9)
            self.kept.append(
                (event.occurred_at.timestamp(), order, len(self.kept), event, file, mapped.path, mapped.line)
            )


def _read(source: ByteCounter, table: TableFile, mapper: RowMapper, report: FileReport, fold: _Fold) -> None:
    summary = fold.summary
    for item in read_table(source, table.spec):
        if isinstance(item, UnknownColumn):
            summary.unknown(report.name, item.pattern, 1)
            continue
        report.rows += 1
        summary.rows += 1
        if isinstance(item, ShortRow):
            reason = f"{item.cells} cells where the header has {item.columns}: the row gives no event"
            summary.reject(Rejection(report.name, f"row[{item.position}]", item.line, "bad_row", reason))
            continue
        fold.add(mapper.row(item), report.name)
