"""File ingestion: every line of a JSONL or CSV file becomes a validated event or a dead letter with its reason.

Pure apart from reading the file: the caller decides what to do with each outcome (publish it, or just report
in a dry run). A bad line never stops the file; accepted + rejected always equals the records read.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic_core import from_json

from producers.pseudonymise import Pseudonymiser
from schemas.codec import decode_event, parse_json_object, validate_event
from schemas.deadletter import ORIGINAL_CAP, DeadLetter, dead_letter_from_file
from schemas.errors import ContractError, DecodeError, InvalidEvent, Issue
from schemas.events import AgencyEvent
from schemas.identifiers import is_pseudonym
from schemas.limits import DEFAULT_WINDOW, LIMITS, EventTimeWindow, check_size, event_time_issues

FileFormat = Literal["jsonl", "csv"]
Clock = Callable[[], Any]

# CSV cells are text; these fields hold numbers or lists in the contract.
_INT_FIELDS = frozenset({"schema_version", "dash_score", "previous_plans"})
_BOOL_FIELDS = frozenset({"purge", "looked_after", "is_crime", "marac_referral"})
_BOOLEANS = {"true": True, "false": False}
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
        window: EventTimeWindow = DEFAULT_WINDOW,
    ) -> None:
        if pseudonymise_fields and pseudonymiser is None:
            raise ValueError("pseudonymising fields needs a pseudonymiser (a key)")
        self._clock = clock
        self._window = window
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
        """One record's outcome. Never raises: whatever the line holds, it is accepted or rejected with a reason."""
        try:
            if isinstance(parsed, DecodeError):
                raise parsed
            if parsed is None:  # JSONL: decode the raw bytes ourselves for precise errors
                if self._fields:
                    event = validate_event(self._pseudonymise(parse_json_object(original)))
                else:
                    event = decode_event(original)
            else:
                event = validate_event(self._pseudonymise(parsed))
            issues = event_time_issues(event, reference=self._clock(), window=self._window)
            if issues:
                raise InvalidEvent(issues)
            return Accepted(line, event)
        except ContractError as exc:
            return Rejected(line, self._dead_letter(path, line, original, exc.reason_code, exc.reason))
        except (ValueError, TypeError, RecursionError, OverflowError) as exc:  # e.g. an empty id to pseudonymise
            return Rejected(line, self._dead_letter(path, line, original, "invalid", str(exc) or type(exc).__name__))

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
    def _jsonl_records(
        path: Path, summary: IngestSummary | None
    ) -> Iterator[tuple[int, bytes, dict[str, Any] | DecodeError | None]]:
        """Lines of the file, each read with bounded memory: a line over the message limit is not held whole,
        only its first bytes (what a dead letter keeps) and its length."""
        limit = LIMITS.max_message_bytes
        with path.open("rb") as fh:
            number = 0
            while True:
                raw = fh.readline(limit + 2)
                if not raw:
                    return
                number += 1
                size = len(raw)
                if not raw.endswith(b"\n") and size > limit:
                    kept = raw[:ORIGINAL_CAP]
                    while raw and not raw.endswith(b"\n"):  # skip the rest of the over-long line
                        raw = fh.readline(1 << 20)
                        size += len(raw)
                    too_large = _too_large(size - (1 if raw.endswith(b"\n") else 0))
                    yield number, kept, too_large
                    continue
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
            try:
                header = next(reader, None)
            except csv.Error as exc:
                yield 1, b"", DecodeError([Issue("", f"the header row cannot be read as CSV ({exc})", "bad_csv_row")])
                return
            if header is None:
                return
            names = [h.strip() for h in header]
            while True:
                try:
                    row = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:  # e.g. a cell over the csv module's field size limit
                    yield (
                        reader.line_num,
                        b"",
                        DecodeError([Issue("", f"the row is not valid CSV ({exc})", "bad_csv_row")]),
                    )
                    continue
                if not any(cell.strip() for cell in row):
                    continue
                original = _csv_line(row)
                try:
                    check_size(original)
                except DecodeError as exc:
                    yield reader.line_num, original[:ORIGINAL_CAP], exc
                    continue
                if len(row) != len(names):
                    problem = f"the row has {len(row)} cells but the header has {len(names)} columns"
                    yield reader.line_num, original, DecodeError([Issue("", problem, "bad_csv_row")])
                    continue
                yield reader.line_num, original, _csv_row_to_object(dict(zip(names, row, strict=True)))


def _too_large(size: int) -> DecodeError:
    return DecodeError(
        [
            Issue(
                "",
                f"the line has {size:,} bytes; the contract allows at most {LIMITS.max_message_bytes:,} "
                "(one event per line)",
                "too_large",
            )
        ]
    )


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
        if name in _INT_FIELDS and value.lstrip("-").isdigit() and len(value) <= 20:
            obj[name] = int(value)
        elif name in _BOOL_FIELDS and value.lower() in _BOOLEANS:
            obj[name] = _BOOLEANS[value.lower()]
        elif name in _LIST_FIELDS:
            obj[name] = _csv_list(value)
        else:
            obj[name] = value
    return obj


def _csv_list(value: str) -> Any:
    if value.startswith("["):
        try:
            return from_json(value)  # bounded: the parser refuses nesting past its recursion limit
        except ValueError:
            return value  # let validation say it is not a list
    return [part.strip() for part in value.split(";") if part.strip()]
