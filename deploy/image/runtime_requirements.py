"""Print the runtime requirements of the project's wheel for the container image, one per line.

Used by the Dockerfile's build stage: `python runtime_requirements.py dist/*.whl > requirements.txt`. It reads the
wheel's own metadata (so the image follows pyproject.toml), drops optional extras (dev tools), and leaves out what
the deployed services never use:

- the embedded chDB engine (`clickhouse-connect[chdb]` becomes `clickhouse-connect`): in the image the sink talks to
  a ClickHouse server over HTTP, and chDB with pandas and pyarrow would add about half a gigabyte;
- testcontainers and its Docker client: the container test tier runs on a developer machine or CI, never in the image.

Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import re
import sys
import zipfile
from email.parser import Parser

LEFT_OUT = {"testcontainers"}
"""Distributions the image never needs (normalised names)."""
EXTRAS_DROPPED = {"clickhouse-connect": {"chdb"}}
"""Extras removed from a requirement that is kept."""

_REQUIREMENT = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[(?P<extras>[^\]]*)\])?\s*(?P<rest>.*)$")


def normalise(name: str) -> str:
    """PEP 503 normalised distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_requirements(requires_dist: list[str]) -> list[str]:
    """The `Requires-Dist` entries a deployed service needs, with extras the image does not want removed."""
    kept: list[str] = []
    for entry in requires_dist:
        spec, _, marker = entry.partition(";")
        if "extra" in marker:  # an optional extra of this project (dev tools): not in the image
            continue
        match = _REQUIREMENT.match(spec.strip())
        if match is None:
            raise ValueError(f"cannot read the requirement {entry!r}")
        name = normalise(match["name"])
        if name in LEFT_OUT:
            continue
        extras = [e.strip() for e in (match["extras"] or "").split(",") if e.strip()]
        extras = [e for e in extras if e not in EXTRAS_DROPPED.get(name, set())]
        requirement = match["name"] + (f"[{','.join(extras)}]" if extras else "") + match["rest"]
        kept.append(requirement + (f"; {marker.strip()}" if marker.strip() else ""))
    return kept


def wheel_requirements(path: str) -> list[str]:
    """The `Requires-Dist` entries of a wheel's METADATA."""
    with zipfile.ZipFile(path) as wheel:
        metadata = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
        message = Parser().parsestr(wheel.read(metadata).decode("utf-8"))
    return message.get_all("Requires-Dist") or []


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: runtime_requirements.py PROJECT.whl", file=sys.stderr)
        return 2
    for requirement in runtime_requirements(wheel_requirements(argv[0])):
        print(requirement)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
