"""File ingestion: every line of a JSONL or CSV file becomes a validated event or a dead letter with its reason.

Pure apart from reading the file: the caller decides what to do with each outcome (publish it, or just report
in a dry run). A bad line never stops the file; accepted + rejected always equals the records read.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from producers.pseudonymise import Pseudonymiser
from schemas.codec import decode_event, validate_event
from schemas.deadletter import DeadLetter, dead_letter_from_file
from schemas.errors import ContractError, DecodeError, Issue
from schemas.events import AgencyEvent
from schemas.identifiers import is_pseudonym

FileFormat = Literal["jsonl", "csv"]
Clock = Callable[[], Any]

# CSV cells are text; these fields hold numbers or lists in the contract.
_INT_FIELDS = frozenset({"schema_version", "dash_score", "previous_plans"})
_LIST_FIELDS = frozenset({"concerns", "children"})


@dataclass(frozen=True)
class Accepted:
    line: int
    event: AgencyEvent


@dataclass(frozen=True)
class Rejected:
    line: int
    dead_letter: DeadLetter


@dataclass
class IngestSummary:
    """Counts of one file: every record read is accepted or rejected."""

    read: int = 0
    accepted: int = 0
    rejected: int = 0
    blank_lines: int = 0
    accepted_by_type: Counter[str] = field(default_factory=Counter)
    rejected_by_reason: Counter[str] = field(default_factory=Counter)

    def count(self, outcome: Accepted | Rejected) -> None:
        self.read += 1
        if isinstance(outcome, Accepted):
            self.accepted += 1
            self.accepted_by_type[outcome.event.event_type] += 1
        else:
            self.rejected += 1
            self.rejected_by_reason[outcome.dead_letter.reason_code] += 1


def detect_format(path: Path) -> FileFormat:
    """jsonl for .jsonl/.ndjson/.json, csv for .csv; anything else is an error the user can fix with --format."""
    suffix = path.suffix.lower()
    if suffix in {".jsonl", ".ndjson", ".json"}:
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    raise ValueError(f"cannot tell the format of {path.name!r} from its extension: pass --format jsonl or --format csv")


class Ingestor:
    """Validates the records of one file, optionally pseudonymising named raw-identifier fields first."""

    def __init__(
        self,
        *,
        clock: Clock,
        pseudonymiser: Pseudonymiser | None = None,
        pseudonymise_fields: frozenset[str] = frozenset(),
    ) -> None:
        if pseudonymise_fields and pseudonymiser is None:
            raise ValueError("pseudonymising fields needs a pseudonymiser (a key)")
        self._clock = clock
        self._pseudonymiser = pseudonymiser
        self._fields = pseudonymise_fields

    def ingest(
        self, path: Path, fmt: FileFormat, summary: IngestSummary | None = None
    ) -> Iterator[Accepted | Rejected]:
        """Yield one outcome per record of the file, in file order."""
        records = self._jsonl_records(path, summary) if fmt == "jsonl" else self._csv_records(path)
        for line, original, parsed in records:
            outcome = self._validate(path, line, original, parsed)
            if summary is not None:
                summary.count(outcome)
            yield outcome

    def _validate(
        self, path: Path, line: int, original: bytes, parsed: dict[str, Any] | DecodeError | None
    ) -> Accepted | Rejected:
        try:
            if isinstance(parsed, DecodeError):
                raise parsed
            if parsed is None:  # JSONL: decode the raw bytes ourselves for precise errors
                if self._fields:
                    parsed = _json_object(original)
                else:
                    return Accepted(line, decode_event(original))
            return Accepted(line, validate_event(self._pseudonymise(parsed)))
        except ContractError as exc:
            return Rejected(line, self._dead_letter(path, line, original, exc.reason_code, exc.reason))
        except ValueError as exc:  # e.g. an empty identifier to pseudonymise
            return Rejected(line, self._dead_letter(path, line, original, "invalid", str(exc)))

    def _dead_letter(self, path: Path, line: int, original: bytes, code: str, error: str) -> DeadLetter:
        return dead_letter_from_file(
            file=path.name, line=line, original=original, reason_code=code, error=error, at=self._clock()
        )

    def _pseudonymise(self, obj: dict[str, Any]) -> dict[str, Any]:
        if not self._fields or self._pseudonymiser is None:
            return obj
        out = dict(obj)
        for name in self._fields & out.keys():
            out[name] = self._hash(out[name])
        if "child_id" in self._fields and isinstance(out.get("children"), list):
            out["children"] = [
                {**c, "child_id": self._hash(c["child_id"])} if isinstance(c, dict) and "child_id" in c else c
                for c in out["children"]
            ]
        return out

    def _hash(self, value: Any) -> Any:
        if isinstance(value, str) and not is_pseudonym(value) and self._pseudonymiser is not None:
            return self._pseudonymiser.pseudonym(value)
        return value

    @staticmethod
    def _jsonl_records(path: Path, summary: IngestSummary | None) -> Iterator[tuple[int, bytes, None]]:
        with path.open("rb") as fh:
            for number, raw in enumerate(fh, start=1):
                text = raw.rstrip(b"\r\n")
                if not text.strip():
                    if summary is not None:
                        summary.blank_lines += 1
                    continue
                yield number, text, None

    @staticmethod
    def _csv_records(path: Path) -> Iterator[tuple[int, bytes, dict[str, Any] | DecodeError | None]]:
        with path.open("r", encoding="utf-8", newline="", errors="surrogateescape") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                return
            names = [h.strip() for h in header]
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                original = _csv_line(row)
                if len(row) != len(names):
                    problem = f"the row has {len(row)} cells but the header has {len(names)} columns"
                    yield reader.line_num, original, DecodeError([Issue("", problem, "bad_csv_row")])
                    continue
                yield reader.line_num, original, _csv_row_to_object(dict(zip(names, row, strict=True)))


def _json_object(original: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(original)
    except UnicodeDecodeError:
        raise DecodeError([Issue("", "the line is not UTF-8 text", "not_utf8")]) from None
    except ValueError as exc:
        raise DecodeError([Issue("", f"the line is not valid JSON ({exc})", "not_json")]) from None
    if not isinstance(obj, dict):
        raise DecodeError([Issue("", "the line must be a JSON object, one event per line", "not_object")])
    return obj


def _csv_line(row: list[str]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(row)
    return buffer.getvalue().encode("utf-8", "surrogateescape")


def _csv_row_to_object(row: dict[str, str]) -> dict[str, Any]:
    """A CSV row as a JSON-like object: empty cells left out, numbers and lists parsed."""
    obj: dict[str, Any] = {}
    for name, cell in row.items():
        value = cell.strip()
        if not value:
            continue
        if name in _INT_FIELDS and value.lstrip("-").isdigit():
            obj[name] = int(value)
        elif name in _LIST_FIELDS:
            obj[name] = _csv_list(value)
        else:
            obj[name] = value
    return obj


def _csv_list(value: str) -> Any:
    if value.startswith("["):
        try:
            return json.loads(value)
        except ValueError:
            return value  # let validation say it is not a list
    return [part.strip() for part in value.split(";") if part.strip()]
