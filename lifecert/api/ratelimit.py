"""Per-agency token buckets (one process; each server replica limits on its own)."""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass
class TokenBucket:
    rate: float  # tokens added per second
    burst: float  # most tokens held
    tokens: float
    updated: float

    @classmethod
    def full(cls, rate: float, burst: float) -> TokenBucket:
        return cls(rate, burst, burst, time.monotonic())

    def take(self, cost: float, now: float | None = None) -> float:
        """Take ``cost`` tokens: 0.0 when taken, else the seconds to wait before the
        bucket could give them (nothing is taken then). A cost above the burst is
        served from a full bucket (the bucket goes negative), so a large batch waits
        longer instead of never passing."""
        now = time.monotonic() if now is None else now
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= min(cost, self.burst):
            self.tokens -= cost
            return 0.0
        return (min(cost, self.burst) - self.tokens) / self.rate


class RateLimiter:
    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale
        self._buckets: dict[str, TokenBucket] = {}

    def take(self, agency: str, rate: float, burst: float, cost: float) -> float:
        bucket = self._buckets.get(agency)
        if bucket is None:
            bucket = TokenBucket.full(rate * self.scale, burst * self.scale)
            self._buckets[agency] = bucket
        return bucket.take(cost)
