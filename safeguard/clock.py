"""The wall clock, injected: code that needs the time takes a `Clock`; only the edge passes `system_clock`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """Now, timezone-aware (UTC)."""
    return datetime.now(UTC)
