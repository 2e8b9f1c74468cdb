"""The rule of tests/tiers.py: a missing tool skips on a developer's machine and fails the run in CI."""

from __future__ import annotations

import pytest

from tests.tiers import unavailable


def test_a_missing_tool_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="kcat is not installed"):
        unavailable("kcat is not installed")


def test_a_missing_tool_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match=r"kcat is not installed .*must run, not skip"):
        unavailable("kcat is not installed")
