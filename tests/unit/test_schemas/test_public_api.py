"""`schemas` is the contract package: its public names exist, and importing it pulls in nothing else of the project."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import schemas

REPO = Path(__file__).resolve().parents[3]
PROJECT_PACKAGES = {"safeguard", "producers", "streams", "sinks", "dashboards"}
# A producer toolkit in an agency should not need Kafka, ClickHouse or CLI libraries just to build events.
HEAVY_THIRD_PARTY = {"kafka", "aiokafka", "faust", "mode", "clickhouse_connect", "chdb", "grafana_client", "click"}


def test_every_name_in_all_exists() -> None:
    missing = [name for name in schemas.__all__ if not hasattr(schemas, name)]
    assert missing == []


def test_all_has_no_duplicates() -> None:
    assert len(set(schemas.__all__)) == len(schemas.__all__)


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from schemas import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(schemas.__all__)


def _modules_after_importing_schemas() -> set[str]:
    code = "import json, sys; import schemas; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return {name.split(".")[0] for name in json.loads(out)}


def test_importing_schemas_imports_no_other_project_package() -> None:
    top_level = _modules_after_importing_schemas()
    assert "schemas" in top_level
    assert top_level & PROJECT_PACKAGES == set()
    assert top_level & HEAVY_THIRD_PARTY == set()
