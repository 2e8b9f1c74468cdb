"""Errors of the history importers (subclasses of the project's tree, `schemas/errors.py`).

SafeguardError
 ├── CensusRefused      a whole census file cannot be read: not XML, a DTD of its own, no local authority code
 └── TableRefused       a whole CSV table cannot be read: no header, a required column absent, not CSV or text
"""

from __future__ import annotations

from schemas.errors import SafeguardError


class CensusRefused(SafeguardError):
    """A census file is refused as a whole (the import goes on with the next file); `line` says where."""

    def __init__(self, reason: str, *, line: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.line = line


class TableRefused(SafeguardError):
    """A CSV table is refused as a whole (the import goes on with the next file); `line` says where."""

    def __init__(self, reason: str, *, line: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.line = line
