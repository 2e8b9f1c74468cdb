"""Shared test set-up: the developer's shell never leaks into a test (no SAFEGUARD_* or faust variables)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

_LEAKY_PREFIXES = ("SAFEGUARD_", "BROKER", "STORE", "FAUST_", "KAFKA_")


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith(_LEAKY_PREFIXES):
            monkeypatch.delenv(name, raising=False)
    yield
