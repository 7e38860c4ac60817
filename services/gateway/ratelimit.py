"""Per-key token buckets (in this gateway process): `rate` tokens a second, up to `burst` stored."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass


@dataclass(slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int  # until the bucket is full again
    retry_after: int  # until one request is allowed (0 when allowed)

    def headers(self) -> list[tuple[bytes, bytes]]:
        out = [
            (b"x-ratelimit-limit", str(self.limit).encode()),
            (b"x-ratelimit-remaining", str(self.remaining).encode()),
            (b"x-ratelimit-reset", str(self.reset_seconds).encode()),
        ]
        if not self.allowed:
            out.append((b"retry-after", str(self.retry_after).encode()))
        return out


class RateLimiter:
    def __init__(self, default_rate: float, default_burst: int) -> None:
        self.default_rate = default_rate
        self.default_burst = default_burst
        self._buckets: dict[object, list[float]] = {}  # key -> [tokens, last refill (monotonic)]

    def take(self, key: object, rate: float | None = None, burst: int | None = None) -> Decision:
        rate = rate or self.default_rate
        capacity = burst or self.default_burst
        now = time.monotonic()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = [float(capacity), now]
        tokens = min(float(capacity), bucket[0] + (now - bucket[1]) * rate)
        bucket[1] = now
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        bucket[0] = tokens
        return Decision(
            allowed=allowed,
            limit=capacity,
            remaining=int(tokens),
            reset_seconds=math.ceil((capacity - tokens) / rate),
            retry_after=0 if allowed else max(1, math.ceil((1.0 - tokens) / rate)),
        )
