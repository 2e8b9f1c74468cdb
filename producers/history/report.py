"""What an import did: counts, every rejected element with its path and reason, unknown elements.

Nothing in here names a child other than by its position in a file: no identifier, no pseudonym.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from schemas.quality import QualityFinding


@dataclass(frozen=True, slots=True)
class Rejection:
    """One element that gave no event (or lost a field), where it is and why.

    `path` is positional (Message/Children/Child[12]/CINdetails[2]/ChildProtectionPlans[1]/CPPendDate),
    `line` the element's line in the file; `code` a short reason category, `reason` the sentence.
    """

    file: str
    path: str
    line: int
    code: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {describe_path(self.path)}: {self.reason}"


def describe_path(path: str) -> str:
    """`Message/Children/Child[12]/CINdetails[2]/CPPendDate` as `child 12, CINdetails 2, CPPendDate`."""
    parts = []
    for part in path.split("/"):
        if part in ("Message", "Children"):
            continue
        name, _, rest = part.partition("[")
        position = rest.rstrip("]")
        if name == "Child":
            parts.append(f"child {position}" if position else "child")
        else:
            parts.append(f"{name} {position}" if position else name)
    return ", ".join(parts) or path


@dataclass(frozen=True, slots=True)
class Flagged:
    """An event a data-quality check flagged (`schemas.quality`), with the element or cell it came from."""

    file: str
    path: str
    line: int
    finding: QualityFinding

    def __str__(self) -> str:
        f = self.finding
        outcome = "imported" if f.fed else "not imported"
        where = f"{self.file}:{self.line}: {describe_path(self.path)}"
        return f"{where}: rule {f.rule_id} ({f.check_name}): {f.message}; {outcome}"


@dataclass
class FileReport:
    """One file: its census year (or CSV table) and local authority as read, its children (or rows), and
    whether it was read to the end."""

    name: str
    year: str | None = None
    la_code: str | None = None
    children: int = 0
    refused: str | None = None
    table: str | None = None
    rows: int = 0


@dataclass
class ImportSummary:
    """Counts of one import over all its files.

    Every event generated is either a duplicate within this import (the same referral or plan in two
    overlapping years, or twice in one file) or handed to the target; the target says whether it was
    new or already present when it can tell (`None`: it cannot, e.g. Kafka).
    """

    files: list[FileReport] = field(default_factory=list)
    children: int = 0
    referrals: int = 0
    plans: int = 0
    contacts: int = 0
    episodes: int = 0
    rows: int = 0
    generated: int = 0
    generated_by_type: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    sent: int = 0
    new: int | None = None
    already_present: int | None = None
    rejections: list[Rejection] = field(default_factory=list)
    rejected_by_code: Counter[str] = field(default_factory=Counter)
    unknown_elements: Counter[str] = field(default_factory=Counter)
    unknown_first_seen: dict[str, str] = field(default_factory=dict)
    notes: Counter[str] = field(default_factory=Counter)
    notes_first_seen: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    flagged_by_rule: Counter[str] = field(default_factory=Counter)
    """Data-quality findings by national rule id (one per rule and event, however often the event recurs)."""
    flagged: list[Flagged] = field(default_factory=list)
    max_rejections_kept: int = 1_000
    _finding_ids: set[str] = field(default_factory=set, repr=False)
    _held_ids: set[str] = field(default_factory=set, repr=False)

    @property
    def rejected(self) -> int:
        return sum(self.rejected_by_code.values())

    def reject(self, rejection: Rejection) -> None:
        self.rejected_by_code[rejection.code] += 1
        if len(self.rejections) < self.max_rejections_kept:
            self.rejections.append(rejection)

    @property
    def flagged_total(self) -> int:
        return sum(self.flagged_by_rule.values())

    @property
    def held(self) -> int:
        """Flagged events not imported (impossible dates, 8925 and 567; a code that leaves no event to make, 1006):
        listed in `flagged`, never lost silently."""
        return len(self._held_ids)

    def flag(self, flagged: Flagged) -> bool:
        """Count a finding (once per rule and event); True when it is new in this import (so it is published)."""
        finding_id = flagged.finding.finding_id
        if finding_id in self._finding_ids:
            return False
        self._finding_ids.add(finding_id)
        self.flagged_by_rule[flagged.finding.rule_id] += 1
        if not flagged.finding.fed:
            self._held_ids.add(flagged.finding.event_id)
        if len(self.flagged) < self.max_rejections_kept:
            self.flagged.append(flagged)
        return True

    def unknown(self, file: str, pattern: str, line: int) -> None:
        self.unknown_elements[pattern] += 1
        self.unknown_first_seen.setdefault(pattern, f"{file}:{line}")

    def note(self, file: str, what: str, line: int) -> None:
        """Something worth knowing that cost nothing (e.g. a 903 episode outside every period of care)."""
        self.notes[what] += 1
        self.notes_first_seen.setdefault(what, f"{file}:{line}")

    def delivered(self, verdict: bool | None) -> None:
        """Count one event handed to the target, with the target's verdict (new, already present, cannot tell)."""
        self.sent += 1
        if verdict is None:
            return
        self.new = (self.new or 0) + (1 if verdict else 0)
        self.already_present = (self.already_present or 0) + (0 if verdict else 1)
