"""CIN census referral-source codes (the contract's `contact_source`) and the kind of agency each one is.

One mapping for every producer, so a contact from the simulator, from a file and from an imported census
year counts the same kinds of agency (the `multi_agency_concern` rule counts distinct `agency_type`s).
"""

from __future__ import annotations

from typing import get_args

from schemas.types import AgencyType, ContactSource

REFERRAL_SOURCES: frozenset[str] = frozenset(get_args(ContactSource))
"""1A-1D individuals, 2A/2B education, 3A-3F health, 4 housing, 5A-5D the LA's services, 6 police,
7 other legal agency, 8 other, 9 anonymous, 10 unknown."""


def agency_type(source: ContactSource) -> AgencyType:
    """The contract's agency type of a referral source: police 6, health 3x, education 2x, the LA 4 and 5x."""
    if source == "6":
        return "police"
    if source.startswith("3"):
        return "health"
    if source.startswith("2"):
        return "education"
    if source in ("4", "5A", "5B", "5C", "5D"):
        return "local_authority"
    return "other"
