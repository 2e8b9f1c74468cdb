"""Where imported events go, and whether the target can tell an event it already holds.

`add` answers True (new), False (already present) or None (cannot tell: Kafka keeps no index of ids;
the worker and the sink drop a repeated `event_id` themselves).
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Protocol, runtime_checkable

from pydantic_core import from_json

from producers.publisher import EventPublisher
from schemas.codec import encode
from schemas.events import AgencyEvent
from schemas.quality import QualityFinding
from schemas.topics import QUALITY_FINDINGS


class ImportTarget(Protocol):
    def add(self, event: AgencyEvent) -> bool | None: ...


@runtime_checkable
class FindingTarget(Protocol):
    """A target that also takes the import's data-quality findings (Kafka: `safeguarding.quality-findings.v1`)."""

    def add_finding(self, finding: QualityFinding) -> None: ...


def add_finding(target: ImportTarget, finding: QualityFinding) -> None:
    """Hand a finding to the target when it takes findings (a dry run and a JSONL file of events do not: the
    import's summary lists them)."""
    if isinstance(target, FindingTarget):
        target.add_finding(finding)


class DryRun:
    """Publishes nothing: the import is parsed, validated and reported only."""

    def add(self, event: AgencyEvent) -> bool | None:
        return None


class PublisherTarget:
    """The contract topics, keyed and encoded by the project's publisher (acks=all, idempotent)."""

    def __init__(self, publisher: EventPublisher) -> None:
        self._publisher = publisher

    def add(self, event: AgencyEvent) -> bool | None:
        self._publisher.publish(event)
        return None

    def add_finding(self, finding: QualityFinding) -> None:
        self._publisher.send(QUALITY_FINDINGS.name, finding.event_id.encode("utf-8"), encode(finding))


class JsonlTarget:
    """A JSONL file of events (e.g. for `rules backtest --source FILE`), appended to.

    It can tell: the ids already in the file are read first, and an event with one of them is not written
    again, so importing the same years into the same file twice leaves it as it was.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._ids: set[str] = set()
        if path.exists():
            with path.open("rb") as existing:
                for line in existing:
                    if line.strip():
                        self._ids.add(str(from_json(line).get("event_id")))
        self._out: IO[bytes] = path.open("ab")

    def add(self, event: AgencyEvent) -> bool | None:
        if event.event_id in self._ids:
            return False
        self._ids.add(event.event_id)
        self._out.write(encode(event) + b"\n")
        return True

    def close(self) -> None:
        self._out.close()
