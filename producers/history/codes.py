"""The CIN census's code lists as the contract reads them, and the parsing of its dates, flags and counts.

Each parser returns the value or a `Problem` saying what is wrong in words that never repeat the text
unless it has the shape of a code or a date (an identifier typed into the wrong element stays unseen).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import get_args

from schemas.types import Concern, PlanCategory, PrimaryNeed

CATEGORIES: frozenset[str] = frozenset(get_args(PlanCategory))
PRIMARY_NEEDS: frozenset[str] = frozenset(get_args(PrimaryNeed))
CONCERN_ORDER: tuple[Concern, ...] = get_args(Concern)

FACTOR_CONCERNS: dict[str, Concern] = {
    **dict.fromkeys(("3A", "3B", "3C"), "domestic_abuse"),
    **dict.fromkeys(("4A", "4B", "4C", "15A"), "mental_health"),
    "10A": "missing",
    **dict.fromkeys(("11A", "12A", "13A", "24A"), "exploitation"),
    "16A": "neglect",
    "17A": "emotional_abuse",
    **dict.fromkeys(("18A", "18B", "18C"), "physical_abuse"),
    **dict.fromkeys(("19A", "19B", "19C"), "sexual_abuse"),
}
"""Assessment factors (FactorsIdentifiedAtAssessment) that name a concern of the contract: domestic
abuse 3A-3C, mental health 4A-4C and self-harm 15A, going missing 10A, sexual and criminal exploitation,
trafficking and gangs 11A/12A/13A/24A, and the four abuse-or-neglect categories 16A-19C."""

OTHER_FACTORS: frozenset[str] = frozenset(
    {"1A", "1B", "1C", "2A", "2B", "2C", "5A", "5B", "5C", "6A", "6B", "6C", "7A"}
    | {"8B", "8C", "8D", "8E", "8F", "9A", "14A", "20", "22A", "23A"}
)
"""Factors the contract has no concern for (alcohol, drugs, disability, young carer, private fostering,
UASC, behaviour, other, FGM, faith-linked abuse): `other`."""

NO_FACTORS = "21"
"""'No factors identified'."""

CATEGORY_CONCERNS: dict[str, Concern] = {
    "NEG": "neglect",
    "PHY": "physical_abuse",
    "SAB": "sexual_abuse",
    "EMO": "emotional_abuse",
}
"""A plan's category of abuse as the concern of the referral it came from, when no assessment says more."""

_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:T[0-9:.]+)?(?:Z|[+-]\d{2}:\d{2})?$")
_DATE_SHAPE = re.compile(r"^[0-9]{1,4}[-/.][0-9]{1,2}[-/.][0-9]{1,4}(?:[ T][0-9:.]{1,15})?$")
_CODE_SHAPE = re.compile(r"^[A-Za-z0-9]{1,4}$")
_TRUE = frozenset({"true", "1"})
_FALSE = frozenset({"false", "0"})


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a value was not taken: `code` for counting, `reason` for a person."""

    code: str
    reason: str


def shown(text: str) -> str:
    """The text itself when it is shaped like a code or a date, else only its length."""
    if _CODE_SHAPE.match(text) or _DATE_SHAPE.match(text):
        return repr(text)
    return f"a value of {len(text)} characters"


def parse_date(text: str | None) -> date | Problem | None:
    """An xs:date (YYYY-MM-DD, a time or zone after it ignored); None when absent."""
    if text is None:
        return None
    match = _DATE.match(text)
    if match is None:
        return Problem("bad_date", f"{shown(text)} is not a date (YYYY-MM-DD)")
    try:
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return Problem("bad_date", f"{shown(text)} is not a day of the calendar")


def parse_flag(text: str | None) -> bool | Problem | None:
    """The census's yes/no: true, false, 1, 0 (any case, as some years allowed TRUE/FALSE)."""
    if text is None:
        return None
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    return Problem("bad_flag", f"{shown(text)} is not true, false, 1 or 0")


def parse_count(text: str | None) -> int | Problem | None:
    """A whole number >= 0 (NumberOfPreviousCPP)."""
    if text is None:
        return None
    if text.isascii() and text.isdigit() and len(text) <= 4:
        return int(text)
    return Problem("bad_number", f"{shown(text)} is not a whole number of at most four digits")


def parse_code(text: str | None, codes: frozenset[str], what: str) -> str | Problem | None:
    """One of `codes` (case-insensitive); None when absent."""
    if text is None:
        return None
    code = text.upper()
    if code in codes:
        return code
    return Problem("unknown_code", f"{shown(text)} is not a {what}")


def concerns(factors: list[str], categories: list[str]) -> list[Concern]:
    """The contract's concerns of a referral: from its assessment factors, else its plans' categories,
    else `other` (the contract needs at least one). In the contract's order, each once."""
    found: set[Concern] = set()
    for factor in factors:
        if factor in FACTOR_CONCERNS:
            found.add(FACTOR_CONCERNS[factor])
        elif factor != NO_FACTORS:
            found.add("other")
    if not found:
        found = {CATEGORY_CONCERNS.get(category, "other") for category in categories}
    return [concern for concern in CONCERN_ORDER if concern in found] or ["other"]


def known_factor(factor: str) -> bool:
    return factor in FACTOR_CONCERNS or factor in OTHER_FACTORS or factor == NO_FACTORS


_UK_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")
_MOMENT = re.compile(
    r"^(?:(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})|(?P<dd>\d{1,2})/(?P<mm>\d{1,2})/(?P<yy>\d{4}))"
    r"(?:[T ](?P<H>\d{1,2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.\d{1,9})?)?)?"
    r"(?P<zone>Z|[+-]\d{2}:?\d{2})?$"
)
_YES = frozenset({"Y", "YES", "TRUE", "1"})
_NO = frozenset({"N", "NO", "FALSE", "0"})
_NOT_APPLICABLE = frozenset({"NA", "N/A"})


def parse_uk_date(text: str | None) -> date | Problem | None:
    """A date of the SSDA903 CSVs: dd/mm/yyyy (a YYYY-MM-DD written by some exports is taken too)."""
    if text is None:
        return None
    match = _UK_DATE.match(text)
    if match is None:
        iso = parse_date(text) if _DATE.match(text) and "T" not in text else None
        if isinstance(iso, date | Problem):
            return iso
        return Problem("bad_date", f"{shown(text)} is not a date (dd/mm/yyyy)")
    try:
        return date(int(match[3]), int(match[2]), int(match[1]))
    except ValueError:
        return Problem("bad_date", f"{shown(text)} is not a day of the calendar")


@dataclass(frozen=True, slots=True)
class Moment:
    """A date with, when the source had one, a time of day (wall clock in England unless `offset` says)."""

    day: date
    hour: int = 0
    minute: int = 0
    second: int = 0
    offset: str | None = None


def parse_moment(text: str | None) -> Moment | Problem | None:
    """An SSD datetime as SQL Server exports write it: YYYY-MM-DD or dd/mm/yyyy, then optionally a time
    (HH:MM[:SS[.fff]], after a space or T) and an offset; without an offset the time is England's wall clock."""
    if text is None:
        return None
    match = _MOMENT.match(text)
    if match is None:
        return Problem("bad_date", f"{shown(text)} is not a date or date and time (YYYY-MM-DD HH:MM:SS)")
    if match["y"]:
        year, month, day = int(match["y"]), int(match["m"]), int(match["d"])
    else:
        year, month, day = int(match["yy"]), int(match["mm"]), int(match["dd"])
    try:
        on = date(year, month, day)
    except ValueError:
        return Problem("bad_date", f"{shown(text)} is not a day of the calendar")
    hour, minute, second = int(match["H"] or 0), int(match["M"] or 0), int(match["S"] or 0)
    if hour > 23 or minute > 59 or second > 59:
        return Problem("bad_date", f"{shown(text)} is not a time of day")
    return Moment(on, hour, minute, second, match["zone"])


def parse_yes_no(text: str | None) -> bool | Problem | None:
    """Y/N as the SSD writes its flags (Yes/No, 1/0, true/false too); NA and blank are None (not known)."""
    if text is None:
        return None
    upper = text.upper()
    if upper in _YES:
        return True
    if upper in _NO:
        return False
    if upper in _NOT_APPLICABLE:
        return None
    return Problem("bad_flag", f"{shown(text)} is not Y, N or NA")
