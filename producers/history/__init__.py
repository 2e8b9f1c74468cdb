"""History importers: a partnership's national returns turned into contract events, so the rules see
years of history from the first day.

    importer = CinImport(pseudonymiser=key, clock=system_clock, la_code="383")
    summary = importer.run([Path("cin-2019.xml"), Path("cin-2020.xml")], PublisherTarget(publisher))

Only the CIN census for now (`census.py` reads it, `cin.py` maps a child to events, `ids.py` names them
deterministically, `importer.py` runs files into a target, `cin_writer.py` writes one back for tests).
Raw identifiers are pseudonymised in the mapping and never leave this package. See docs/history-import.md.
"""

from producers.history.cin import CinOptions
from producers.history.cin_writer import ChildRecord, PlanRecord, ReferralRecord, write_census
from producers.history.errors import CensusRefused
from producers.history.importer import CinImport
from producers.history.report import ImportSummary, Rejection
from producers.history.targets import DryRun, ImportTarget, JsonlTarget, PublisherTarget

__all__ = [
    "CensusRefused",
    "ChildRecord",
    "CinImport",
    "CinOptions",
    "DryRun",
    "ImportSummary",
    "ImportTarget",
    "JsonlTarget",
    "PlanRecord",
    "PublisherTarget",
    "ReferralRecord",
    "Rejection",
    "write_census",
]
