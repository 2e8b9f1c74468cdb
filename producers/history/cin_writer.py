"""Writing a CIN census XML file (the layout of 2017-18 to 2023-24; `Sex` instead of `GenderCurrent` from
2024-25), one child at a time, for round-trip tests and benchmarks.

It writes what it is given and the census's own "not known" values where the layout needs an element
the records do not have: `GenderCurrent` 0 (not recorded) or `Sex` U, `Ethnicity` NOBT (not yet obtained).
A referral's concerns travel as the assessment factors they map to, in one assessment on the referral date.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import IO

from lxml import etree

from schemas.types import Concern

CONCERN_FACTORS: dict[Concern, str] = {
    "domestic_abuse": "3A",
    "mental_health": "4A",
    "missing": "10A",
    "exploitation": "24A",
    "neglect": "16A",
    "emotional_abuse": "17A",
    "physical_abuse": "18C",
    "sexual_abuse": "19C",
    "other": "20",
}
"""The assessment factor written for each concern; reading maps each back to the same concern."""

SEX_FROM_YEAR = 2025
"""The first collection year (2024-25) whose layout has `Sex` (M, F, U) instead of `GenderCurrent`."""


@dataclass(frozen=True, slots=True)
class PlanRecord:
    start: date
    end: date | None
    category: str
    latest_category: str | None = None
    previous_plans: int = 0


@dataclass(frozen=True, slots=True)
class ReferralRecord:
    referral_date: date
    source: str
    primary_need: str | None = None
    nfa: bool = False
    concerns: tuple[Concern, ...] = ()
    plans: tuple[PlanRecord, ...] = ()


@dataclass(frozen=True, slots=True)
class ChildRecord:
    la_child_id: str
    referrals: tuple[ReferralRecord, ...]
    upn: str | None = None


def write_census(out: Path | IO[bytes], *, la_code: str, year: int, children: Iterable[ChildRecord]) -> int:
    """Write the census of collection year `year` (the year of its 31 March) of `la_code`; returns the children
    written. Children are written as they come, so an iterator of any length takes constant memory."""
    written = 0
    with etree.xmlfile(str(out) if isinstance(out, Path) else out, encoding="utf-8") as xf:
        xf.write_declaration()
        with xf.element("Message"):
            xf.write("\n  ")
            xf.write(_indented(_header(la_code, year), 1))
            xf.write("\n  ")
            with xf.element("Children"):
                for child in children:
                    xf.write("\n    ")
                    xf.write(_indented(_child(child, year), 2))
                    written += 1
                xf.write("\n  ")
            xf.write("\n")
    return written


def _indented(element: etree._Element, level: int) -> etree._Element:
    etree.indent(element, space="  ", level=level)
    return element


def _add(parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
    element = etree.SubElement(parent, name)
    if text is not None:
        element.text = text
    return element


def _header(la_code: str, year: int) -> etree._Element:
    header = etree.Element("Header")
    details = _add(header, "CollectionDetails")
    _add(details, "Collection", "CIN")
    _add(details, "Year", str(year))
    _add(details, "ReferenceDate", f"{year}-03-31")
    source = _add(header, "Source")
    _add(source, "SourceLevel", "L")
    _add(source, "LEA", la_code)
    _add(source, "SoftwareCode", "safeguard")
    _add(source, "Release", "1")
    _add(source, "SerialNo", "001")
    _add(source, "DateTime", f"{year}-05-01T00:00:00")
    return header


def _child(record: ChildRecord, year: int) -> etree._Element:
    child = etree.Element("Child")
    identifiers = _add(child, "ChildIdentifiers")
    _add(identifiers, "LAchildID", record.la_child_id)
    if record.upn is not None:
        _add(identifiers, "UPN", record.upn)
    if year >= SEX_FROM_YEAR:
        _add(identifiers, "Sex", "U")
    else:
        _add(identifiers, "GenderCurrent", "0")
    characteristics = _add(child, "ChildCharacteristics")
    _add(characteristics, "Ethnicity", "NOBT")
    for referral in record.referrals:
        _referral(child, referral)
    return child


def _referral(child: etree._Element, record: ReferralRecord) -> None:
    details = _add(child, "CINdetails")
    _add(details, "CINreferralDate", record.referral_date.isoformat())
    _add(details, "ReferralSource", record.source)
    if record.primary_need is not None:
        _add(details, "PrimaryNeedCode", record.primary_need)
    if record.concerns:
        assessment = _add(details, "Assessments")
        _add(assessment, "AssessmentActualStartDate", record.referral_date.isoformat())
        factors = _add(assessment, "FactorsIdentifiedAtAssessment")
        for concern in record.concerns:
            _add(factors, "AssessmentFactors", CONCERN_FACTORS[concern])
    _add(details, "ReferralNFA", "true" if record.nfa else "false")
    for plan in record.plans:
        element = _add(details, "ChildProtectionPlans")
        _add(element, "CPPstartDate", plan.start.isoformat())
        if plan.end is not None:
            _add(element, "CPPendDate", plan.end.isoformat())
        _add(element, "InitialCategoryOfAbuse", plan.category)
        _add(element, "LatestCategoryOfAbuse", plan.latest_category or plan.category)
        _add(element, "NumberOfPreviousCPP", str(plan.previous_plans))
