"""History importers: a partnership's national returns turned into contract events, so the rules see
years of history from the first day.

    importer = CinImport(pseudonymiser=key, clock=system_clock, la_code="383")
    summary = importer.run([Path("cin-2019.xml"), Path("cin-2020.xml")], PublisherTarget(publisher))

    tables = lac_tables(headers=[header], missing=[missing], options=LacOptions())
    summary = TableImport(pseudonymiser=key, clock=system_clock, la_code="383", agency_code="SSDA903").run(
        tables, JsonlTarget(Path("history.jsonl"))
    )

The CIN census XML (`census.py` reads it, `cin.py` maps a child to events, `importer.py` runs files into a
target, `cin_writer.py` writes one back for tests); CSV returns (`tables.py` reads a table, `tabular.py` runs
tables into a target, `lac.py` maps the SSDA903, `ssd.py` the Standard Safeguarding Dataset, `lac_writer.py`
writes a 903 back for tests). `ids.py` names every entity deterministically, `emit.py` checks every event as
producers do. Raw identifiers are pseudonymised in the mapping and never leave this package. See
docs/history-import.md.
"""

from producers.history.cin import CinOptions
from producers.history.cin_writer import ChildRecord, PlanRecord, ReferralRecord, write_census
from producers.history.errors import CensusRefused, TableRefused
from producers.history.importer import CinImport
from producers.history.lac import LacOptions, lac_tables
from producers.history.report import ImportSummary, Rejection
from producers.history.ssd import SsdOptions, ssd_tables
from producers.history.tabular import TableImport
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
    "LacOptions",
    "PlanRecord",
    "PublisherTarget",
    "ReferralRecord",
    "Rejection",
    "SsdOptions",
    "TableImport",
    "TableRefused",
    "lac_tables",
    "ssd_tables",
    "write_census",
]
