"""Reading a CIN census XML file as a stream of children, in constant memory, without trusting the file.

The census is one `Message`: a `Header` (collection year, `Source/LEA`) and `Children/Child*`, each with
its identifiers, characteristics and one `CINdetails` per referral, holding its assessments, section 47
enquiries and child protection plans. Every year's layout from 2017-18 on is the same tree with a few
elements added or renamed (`CINPlanDates` from 2020-21, `Sex` for `GenderCurrent` from 2024-25), so one
reader takes them all: it reads the elements it needs by name, and reports any element it does not know
(a later year's addition, a typo) as an `UnknownElement` instead of stopping.

Safety: lxml's incremental parser with entities left unexpanded, no network, no DTD loaded, libxml2's
size limits on; a file that declares a DTD of its own (the only way to define entities, a census never
does) is refused before anything is read from it. Each `Child` is turned into plain records and then
cleared with everything before it, so memory stays flat whatever the file's size.

The records hold the elements' text as written (`Value`), with the line of each element, so that whoever
maps them can say exactly which element was wrong. The identifiers in them never appear in a repr.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO

from lxml import etree

from producers.history.errors import CensusRefused
from schemas.deadletter import safe_error

LAYOUT: dict[str, frozenset[str]] = {
    "Message": frozenset({"Header", "Children"}),
    "Header": frozenset({"CollectionDetails", "Source"}),
    "CollectionDetails": frozenset({"Collection", "Year", "ReferenceDate"}),
    "Source": frozenset({"SourceLevel", "LEA", "SoftwareCode", "Release", "SerialNo", "DateTime"}),
    "Children": frozenset({"Child"}),
    "Child": frozenset({"ChildIdentifiers", "ChildCharacteristics", "CINdetails"}),
    "ChildIdentifiers": frozenset(
        {
            "LAchildID",
            "UPN",
            "FormerUPN",
            "UPNunknown",
            "PersonBirthDate",
            "ExpectedPersonBirthDate",
            "GenderCurrent",
            "Sex",
            "PersonDeathDate",
        }
    ),
    "ChildCharacteristics": frozenset({"Ethnicity", "Disabilities"}),
    "Disabilities": frozenset({"Disability"}),
    "CINdetails": frozenset(
        {
            "CINreferralDate",
            "ReferralSource",
            "PrimaryNeedCode",
            "CINclosureDate",
            "ReasonForClosure",
            "DateOfInitialCPC",
            "Assessments",
            "CINPlanDates",
            "Section47",
            "ReferralNFA",
            "ChildProtectionPlans",
        }
    ),
    "Assessments": frozenset(
        {
            "AssessmentActualStartDate",
            "AssessmentInternalReviewDate",
            "AssessmentAuthorisationDate",
            "FactorsIdentifiedAtAssessment",
        }
    ),
    "FactorsIdentifiedAtAssessment": frozenset({"AssessmentFactors"}),
    "CINPlanDates": frozenset({"CINPlanStartDate", "CINPlanEndDate"}),
    "Section47": frozenset({"S47ActualStartDate", "InitialCPCtarget", "DateOfInitialCPC", "ICPCnotRequired"}),
    "ChildProtectionPlans": frozenset(
        {
            "CPPstartDate",
            "CPPendDate",
            "InitialCategoryOfAbuse",
            "LatestCategoryOfAbuse",
            "NumberOfPreviousCPP",
            "Reviews",
        }
    ),
    "Reviews": frozenset({"CPPreviewDate"}),
}
"""Which elements each element of the census may hold, in any year's layout from 2017-18 on (the XSDs);
an element not listed here holds text only."""

CHILD_PATH = "Message/Children/Child"


@dataclass(frozen=True, slots=True)
class Value:
    """An element's text as written (stripped; None when the element is absent or empty) and its line."""

    text: str | None
    line: int


@dataclass(frozen=True, slots=True)
class CensusHeader:
    line: int
    lea: Value
    year: Value
    reference_date: Value


@dataclass(frozen=True, slots=True)
class CensusPlan:
    """One `ChildProtectionPlans` element; `position` counts from 1 within its `CINdetails`."""

    position: int
    line: int
    start: Value
    end: Value
    initial_category: Value
    latest_category: Value
    previous_plans: Value


@dataclass(frozen=True, slots=True)
class CensusReferral:
    """One `CINdetails` element; `position` counts from 1 within its child."""

    position: int
    line: int
    referral_date: Value
    source: Value
    primary_need: Value
    nfa: Value
    factors: tuple[Value, ...]
    plans: tuple[CensusPlan, ...]


@dataclass(frozen=True, slots=True)
class CensusChild:
    """One `Child` element; `position` counts from 1 in the file. Identifiers are kept out of the repr."""

    position: int
    line: int
    la_child_id: Value = field(repr=False)
    upn: Value = field(repr=False)
    referrals: tuple[CensusReferral, ...]


@dataclass(frozen=True, slots=True)
class UnknownElement:
    """An element the census layouts do not have there: reported, skipped, never fatal."""

    path: str
    """Where, with positions: Message/Children/Child[3]/CINdetails[1]/Extra."""
    line: int

    @property
    def pattern(self) -> str:
        """The path without positions, to count the same unknown element across children."""
        return "/".join(part.split("[", 1)[0] for part in self.path.split("/"))


CensusItem = CensusHeader | CensusChild | UnknownElement


class ByteCounter:
    """A binary file that counts what has been read from it (for a progress bar)."""

    def __init__(self, raw: IO[bytes], on_read: Callable[[int], None] | None = None) -> None:
        self._raw = raw
        self._on_read = on_read
        self.read_bytes = 0

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self.read_bytes += len(data)
        if self._on_read is not None and data:
            self._on_read(len(data))
        return data


def read_census(source: IO[bytes] | ByteCounter) -> Iterator[CensusItem]:
    """The header, then each child, of one census file, with any unknown element reported just before
    the child (or at the end, for elements outside every child).

    Raises CensusRefused for a file that declares a DTD, and for one that is not well-formed XML (the
    children before the fault have been yielded by then).
    """
    parser = etree.iterparse(
        source,
        events=("end",),
        tag=("{*}Header", "{*}Child"),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    checked = False
    children = 0
    try:
        for _event, element in parser:
            if not checked:
                _refuse_dtd(element)
                checked = True
            name = _local(element.tag)
            if name == "Header":
                yield from _unknown_inside(element, "Message/Header")
                yield _header(element)
                element.clear()
            elif name == "Child":
                children += 1
                path = f"{CHILD_PATH}[{children}]"
                yield from _dropped_siblings(element)
                yield from _unknown_inside(element, path)
                yield _child(element, children)
                element.clear()
        root = parser.root
    except etree.XMLSyntaxError as exc:
        line = exc.lineno or 0
        detail = safe_error(str(exc.msg or exc))
        raise CensusRefused(f"not well-formed XML at line {line} ({detail})", line=line) from None
    if root is None:
        raise CensusRefused("the file is empty", line=0)
    if not checked:
        _refuse_dtd(root)
    yield from _unknown_outside(root)


def _refuse_dtd(element: etree._Element) -> None:
    """A census has no DTD; one declared in the file could define entities (expansion bombs, external files)."""
    info = element.getroottree().docinfo
    if info.internalDTD is not None or info.system_url or info.public_id:
        raise CensusRefused(
            "the file declares a DTD (document type declaration with entities or an external reference): "
            "refused, a CIN census has none and entities are never expanded",
            line=1,
        )


def _local(tag: object) -> str:
    """The element name without its namespace ('' for anything that is not an element)."""
    if not isinstance(tag, str):
        return ""
    return tag.rpartition("}")[2]


def _elements(element: etree._Element) -> Iterator[tuple[str, etree._Element]]:
    for sub in element:
        name = _local(sub.tag)
        if name:
            yield name, sub


def _text(element: etree._Element | None, parent_line: int) -> Value:
    if element is None:
        return Value(None, parent_line)
    text = element.text.strip() if element.text else ""
    return Value(text or None, element.sourceline or parent_line)


def _first(element: etree._Element, name: str) -> etree._Element | None:
    for found, sub in _elements(element):
        if found == name:
            return sub
    return None


def _value(element: etree._Element | None, name: str, line: int) -> Value:
    return _text(None if element is None else _first(element, name), line)


def _header(element: etree._Element) -> CensusHeader:
    line = element.sourceline or 0
    details = _first(element, "CollectionDetails")
    source = _first(element, "Source")
    return CensusHeader(
        line=line,
        lea=_value(source, "LEA", line),
        year=_value(details, "Year", line),
        reference_date=_value(details, "ReferenceDate", line),
    )


def _child(element: etree._Element, position: int) -> CensusChild:
    line = element.sourceline or 0
    identifiers = _first(element, "ChildIdentifiers")
    referrals = [sub for name, sub in _elements(element) if name == "CINdetails"]
    return CensusChild(
        position=position,
        line=line,
        la_child_id=_value(identifiers, "LAchildID", line),
        upn=_value(identifiers, "UPN", line),
        referrals=tuple(_referral(sub, n) for n, sub in enumerate(referrals, start=1)),
    )


def _referral(element: etree._Element, position: int) -> CensusReferral:
    line = element.sourceline or 0
    factors: list[Value] = []
    plans: list[CensusPlan] = []
    for name, sub in _elements(element):
        if name == "Assessments":
            found = _first(sub, "FactorsIdentifiedAtAssessment")
            if found is not None:
                factors += [_text(f, line) for n, f in _elements(found) if n == "AssessmentFactors"]
        elif name == "ChildProtectionPlans":
            plans.append(_plan(sub, len(plans) + 1))
    return CensusReferral(
        position=position,
        line=line,
        referral_date=_value(element, "CINreferralDate", line),
        source=_value(element, "ReferralSource", line),
        primary_need=_value(element, "PrimaryNeedCode", line),
        nfa=_value(element, "ReferralNFA", line),
        factors=tuple(factors),
        plans=tuple(plans),
    )


def _plan(element: etree._Element, position: int) -> CensusPlan:
    line = element.sourceline or 0
    return CensusPlan(
        position=position,
        line=line,
        start=_value(element, "CPPstartDate", line),
        end=_value(element, "CPPendDate", line),
        initial_category=_value(element, "InitialCategoryOfAbuse", line),
        latest_category=_value(element, "LatestCategoryOfAbuse", line),
        previous_plans=_value(element, "NumberOfPreviousCPP", line),
    )


def _unknown_inside(element: etree._Element, path: str) -> Iterator[UnknownElement]:
    """Every element under `element` that its layout does not have, depth first."""
    allowed = LAYOUT.get(_local(element.tag), frozenset())
    counts: dict[str, int] = {}
    for name, sub in _elements(element):
        counts[name] = counts.get(name, 0) + 1
        if name not in allowed:
            yield UnknownElement(f"{path}/{name}", sub.sourceline or 0)
        elif name in LAYOUT:
            yield from _unknown_inside(sub, f"{path}/{name}[{counts[name]}]")


def _dropped_siblings(element: etree._Element) -> Iterator[UnknownElement]:
    """Free what came before this child (children already read, anything else is reported first)."""
    parent = element.getparent()
    if parent is None:
        return
    inside = _local(parent.tag) == "Children"
    while (previous := element.getprevious()) is not None:
        name = _local(previous.tag)
        if name and name != "Child":
            where = f"Message/Children/{name}" if inside else f"{_local(parent.tag)}/{name}"
            yield UnknownElement(where, previous.sourceline or 0)
        parent.remove(previous)


def _unknown_outside(root: etree._Element) -> Iterator[UnknownElement]:
    """Elements left in the (cleared) tree at the end that no layout has: outside every child."""
    if _local(root.tag) != "Message":
        yield UnknownElement(_local(root.tag) or "?", root.sourceline or 0)
        return
    for name, sub in _elements(root):
        if name not in LAYOUT["Message"]:
            yield UnknownElement(f"Message/{name}", sub.sourceline or 0)
        elif name == "Children":
            for inner, item in _elements(sub):
                if inner != "Child":
                    yield UnknownElement(f"Message/Children/{inner}", item.sourceline or 0)
