"""Reading the CSV returns (SSDA903 tables, SSD extract tables) row by row, without trusting the file.

A table is declared once (`TableSpec`): the columns read, each with the other names exports give it, and
the columns known but not read (dates of birth, sex, postcodes: personal data the import has no use for).
Column names match whatever their case and surrounding spaces. A column the table does not know is an
`UnknownColumn` (a warning, never an error); a required column that is absent refuses the file, because
no row of it could give an event.

Each `Row` holds its cells as written (stripped; blank and SQL's `NULL` read as absent), with the row's
position among the data rows and the line it starts on, so a mapping can say exactly which cell was wrong.
Rows are read one at a time (constant memory); the cells, which hold identifiers, never appear in a repr.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO

from producers.history.census import ByteCounter
from producers.history.errors import TableRefused

_ABSENT = frozenset({"", "NULL"})


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    required: bool = False
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class TableSpec:
    """A table of a return: its name, the columns read and the columns known but left unread."""

    name: str
    columns: tuple[Column, ...]
    unread: frozenset[str] = frozenset()

    def lookup(self) -> dict[str, str]:
        """Every accepted spelling (upper case) to the column's own name."""
        names: dict[str, str] = {}
        for column in self.columns:
            for spelling in (column.name, *column.aliases):
                names[spelling.upper()] = column.name
        return names


@dataclass(frozen=True, slots=True)
class Row:
    """One data row: `position` among the data rows (1 is the first after the header), `line` where it starts."""

    position: int
    line: int
    cells: dict[str, str | None] = field(repr=False)

    def get(self, column: str) -> str | None:
        return self.cells.get(column)


@dataclass(frozen=True, slots=True)
class UnknownColumn:
    table: str
    column: str

    @property
    def pattern(self) -> str:
        return f"{self.table}: column {self.column!r}"


@dataclass(frozen=True, slots=True)
class ShortRow:
    """A row with more cells than the header has columns (a stray comma, a broken quote): not read."""

    position: int
    line: int
    cells: int
    columns: int


TableItem = Row | UnknownColumn | ShortRow


def read_table(source: IO[bytes] | ByteCounter, spec: TableSpec) -> Iterator[TableItem]:
    """The unknown columns (first), then every row of one CSV table.

    UTF-8 (with or without a byte-order mark) or, failing that, Windows-1252 as Excel writes it. Raises
    TableRefused for a file without a header, without a required column, or that is not CSV at all (the
    rows before the fault have been yielded by then).
    """
    lines = _text_lines(source)
    reader = csv.reader(lines, strict=True)
    previous_end = 0
    try:
        header = next(reader, None)
        if header is None or not any(cell.strip() for cell in header):
            raise TableRefused(f"no header row: the first line must name the {spec.name} columns", line=1)
        previous_end = reader.line_num
        columns = _columns(header, spec)
        for name in [c.strip() for c in header if c.strip() and c.strip().upper() not in spec.lookup()]:
            if name.upper() not in {u.upper() for u in spec.unread}:
                yield UnknownColumn(spec.name, name if len(name) <= 40 else f"{name[:40]}…")
        position = 0
        for cells in reader:
            start, previous_end = previous_end + 1, reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            position += 1
            if len(cells) > len(columns):
                yield ShortRow(position, start, len(cells), len(columns))
                continue
            row: dict[str, str | None] = {}
            for column, cell in zip(columns, cells, strict=False):
                if column is not None:
                    text = cell.strip()
                    row[column] = None if text.upper() in _ABSENT else text
            yield Row(position, start, row)
    except csv.Error as exc:
        raise TableRefused(f"not CSV at line {reader.line_num}: {_csv_reason(exc)}", line=reader.line_num) from None
    except UnicodeDecodeError:
        raise TableRefused("not text: neither UTF-8 nor Windows-1252", line=previous_end + 1) from None


def _columns(header: list[str], spec: TableSpec) -> list[str | None]:
    """The column each position holds (None: not read); refuses a header without a required column."""
    lookup = spec.lookup()
    columns = [lookup.get(cell.strip().upper()) for cell in header]
    absent = [c.name for c in spec.columns if c.required and c.name not in columns]
    if absent:
        raise TableRefused(f"no {', '.join(absent)} column: not a {spec.name} table as expected", line=1)
    return columns


def _text_lines(source: IO[bytes] | ByteCounter) -> Iterator[str]:
    """Lines of text, each decoded as UTF-8 or, failing that, as Windows-1252 (Excel's CSV); a byte-order mark
    at the start is dropped."""
    pending = b""
    first = True
    while chunk := source.read(1 << 16):
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for raw in complete:
            yield _decode(raw[3:] if first and raw.startswith(codecs.BOM_UTF8) else raw) + "\n"
            first = False
    if pending:
        yield _decode(pending[3:] if first and pending.startswith(codecs.BOM_UTF8) else pending)


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252")


def _csv_reason(exc: csv.Error) -> str:
    text = str(exc)
    return "a cell is too large" if "field larger" in text else "a broken quote or line"
