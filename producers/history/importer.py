"""`CinImport`: census files in, events to a target, an `ImportSummary` out.

Files are read oldest census year first, whatever order they are given in: the stream worker keeps each
child's history by event time, and a year read after a later one could arrive past a child's horizon.
An event whose id this import has already produced (the same referral or plan repeated by an overlapping
year) is counted as a duplicate and not sent again; the ids are kept as 128-bit integers, the only thing
that grows with the import (about 100 bytes an event), while the XML is read in constant memory.

Identifiers stay inside: the pseudonymiser is applied in the mapping, and nothing here logs or reports
a child other than by position.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from producers.history.census import ByteCounter, CensusChild, CensusHeader, UnknownElement, read_census
from producers.history.cin import CinMapper, CinOptions
from producers.history.errors import CensusRefused
from producers.history.quality import QualityGate
from producers.history.report import FileReport, Flagged, ImportSummary, Rejection
from producers.history.targets import ImportTarget, add_finding
from producers.pseudonymise import Pseudonymiser
from schemas.events import AgencyEvent
from schemas.limits import DEFAULT_WINDOW, EventTimeWindow

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class CinImport:
    """The settings of one import: the partnership's key, the clock, the contract's window, the options."""

    pseudonymiser: Pseudonymiser
    clock: Clock
    window: EventTimeWindow = DEFAULT_WINDOW
    options: CinOptions = field(default_factory=CinOptions)
    la_code: str | None = None
    """The partnership's local authority (SAFEGUARD_LA_CODE): used for a file whose header has no LEA, and
    compared with every header's LEA (a file of another authority is imported under its own code, with a
    warning)."""

    def run(
        self,
        paths: Sequence[Path],
        target: ImportTarget,
        summary: ImportSummary | None = None,
        on_bytes: Callable[[int], None] | None = None,
    ) -> ImportSummary:
        """Import every file into `target`; `summary` (new if not given) is filled as the import goes, so a
        caller that catches a PublishError still has the counts up to it."""
        summary = summary if summary is not None else ImportSummary()
        reference = self.clock()
        seen: set[int] = set()
        gate = QualityGate(reference)
        for path in census_order(paths):
            report = FileReport(path.name)
            summary.files.append(report)
            with path.open("rb") as raw:
                try:
                    for mapper, child in self._children(ByteCounter(raw, on_bytes), report, summary, reference):
                        self._child(mapper, child, target, summary, seen, gate)
                except CensusRefused as exc:
                    report.refused = exc.reason
                    summary.reject(Rejection(path.name, "Message", exc.line, "file_refused", exc.reason))
            log.info("read %s: %d children%s", path.name, report.children, " (refused)" if report.refused else "")
        return summary

    def _children(
        self, source: ByteCounter, report: FileReport, summary: ImportSummary, reference: datetime
    ) -> Iterator[tuple[CinMapper, CensusChild]]:
        mapper: CinMapper | None = None
        for item in read_census(source):
            if isinstance(item, UnknownElement):
                summary.unknown(report.name, item.pattern, item.line)
            elif isinstance(item, CensusHeader):
                report.year = item.year.text
                mapper = self._mapper(report, summary, reference, item)
            else:
                if mapper is None:
                    mapper = self._mapper(report, summary, reference, None)
                report.children += 1
                summary.children += 1
                yield mapper, item

    def _mapper(
        self, report: FileReport, summary: ImportSummary, reference: datetime, header: CensusHeader | None
    ) -> CinMapper:
        lea = header.lea.text if header is not None else None
        if header is not None and lea is not None and not (len(lea) == 3 and lea.isdigit()):
            raise CensusRefused("Header/Source/LEA is not a three-digit local authority code", line=header.lea.line)
        if lea is None:
            if self.la_code is None:
                raise CensusRefused("no Header/Source/LEA and no SAFEGUARD_LA_CODE: whose census is it?", line=1)
            summary.warnings.append(f"{report.name}: no Header/Source/LEA; imported as local authority {self.la_code}")
            lea = self.la_code
        elif self.la_code is not None and lea != self.la_code:
            summary.warnings.append(
                f"{report.name}: the census is local authority {lea}'s, the settings say {self.la_code}; "
                f"imported with la_code {lea}"
            )
        report.la_code = lea
        return CinMapper(
            file=report.name,
            la_code=lea,
            pseudonymiser=self.pseudonymiser,
            reference=reference,
            window=self.window,
            options=self.options,
        )

    @staticmethod
    def _child(
        mapper: CinMapper,
        child: CensusChild,
        target: ImportTarget,
        summary: ImportSummary,
        seen: set[int],
        gate: QualityGate,
    ) -> None:
        result = mapper.child(child)
        for flagged in result.findings:
            deliver_finding(flagged, target, summary)
        summary.referrals += result.referrals
        summary.plans += result.plans
        for rejection in result.rejections:
            summary.reject(rejection)
        for what, line in result.unknown_codes:
            summary.unknown(mapper.file, what, line)
        for mapped in result.events:
            event = mapped.event
            summary.generated += 1
            summary.generated_by_type[event.event_type] += 1
            key = uuid.UUID(event.event_id).int
            if key in seen:
                summary.duplicates += 1
                continue
            seen.add(key)
            if gated(gate, mapped.path, mapped.line, mapper.file, event, target, summary):
                summary.delivered(target.add(event))


def deliver_finding(flagged: Flagged, target: ImportTarget, summary: ImportSummary) -> None:
    """Count a finding, and publish it the first time this import makes it."""
    if summary.flag(flagged):
        add_finding(target, flagged.finding)


def gated(
    gate: QualityGate, path: str, line: int, file: str, event: AgencyEvent, target: ImportTarget, summary: ImportSummary
) -> bool:
    """Check an event against its child's history; its findings delivered; True when it goes on to the target."""
    findings, fed = gate.check(event)
    for found in findings:
        deliver_finding(Flagged(file, path, line, found), target, summary)
    return fed


def census_order(paths: Sequence[Path]) -> list[Path]:
    """The files by census year (header Year, else ReferenceDate), oldest first; unknown years last, in
    the order given."""
    years = {path: _year(path) for path in paths}
    return sorted(paths, key=lambda path: (years[path] is None, years[path] or ""))


def _year(path: Path) -> str | None:
    """The header's Year (or ReferenceDate) without reading past the header."""
    try:
        with path.open("rb") as raw:
            for item in read_census(raw):
                if isinstance(item, CensusHeader):
                    return (item.year.text or item.reference_date.text or "")[:4] or None
                if isinstance(item, CensusChild):
                    return None
    except (CensusRefused, OSError):
        return None
    return None
