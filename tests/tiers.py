"""A tier that must run in CI never skips there: a missing broker, Java, kcat or Chromium fails the run when `CI`
is set (and skips, with its reason, on a developer's machine). Only the container tier may skip in CI."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    return bool(os.environ.get("CI"))


def unavailable(reason: str) -> NoReturn:
    """Skip with `reason`, or fail with it when `CI` is set."""
    if in_ci():
        pytest.fail(f"{reason} (CI is set: this tier must run, not skip)", pytrace=False)
    pytest.skip(reason)
