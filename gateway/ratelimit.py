"""Per-principal rate limit: a token bucket of events (a batch of 500 costs 500)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class EventRateLimiter:
    def __init__(self, *, rate_per_s: float, burst: int, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate_per_s
        self._burst = float(burst)
        self._now = monotonic
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, principal: str, events: int) -> float:
        """0 when `events` may go now (and they are counted); else the seconds to wait before trying again."""
        now = self._now()
        tokens, at = self._buckets.get(principal, (self._burst, now))
        tokens = min(self._burst, tokens + (now - at) * self._rate)
        cost = min(float(max(events, 1)), self._burst)  # a request larger than the burst waits for a full bucket
        if tokens >= cost:
            self._buckets[principal] = (tokens - cost, now)
            return 0.0
        self._buckets[principal] = (tokens, now)
        return max(1.0, math.ceil((cost - tokens) / self._rate))
