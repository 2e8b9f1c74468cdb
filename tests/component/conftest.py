"""The component tier runs the worker on the memory store: no files, no RocksDB (the worker's default is rocksdb://;
the RocksDB store has its own tests: tests/unit/test_streams/test_tables.py, tests/integration/test_worker_rocksdb.py).
"""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def memory_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings built in a component test read `memory://` from the environment (after tests/conftest.py cleaned it)."""
    monkeypatch.setenv("SAFEGUARD_STREAMS__STORE_URL", "memory://")
