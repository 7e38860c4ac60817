"""A per-upstream circuit breaker: closed → open after N consecutive failures → half-open after a pause.

Written here rather than taken from a library: the async breakers on PyPI (aiobreaker, purgatory) wrap a
coroutine call and raise their own exceptions, while the proxy needs to ask "may I send?" before it streams a
request and to report the outcome afterwards; these forty lines do exactly that.
"""

from __future__ import annotations

import time


class CircuitBreaker:
    def __init__(self, failure_threshold: int, reset_seconds: float) -> None:
        self.failure_threshold = failure_threshold
        self.reset_seconds = reset_seconds
        self.failures = 0
        self.opened_at: float | None = None
        self._trial_in_flight = False

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half-open" if time.monotonic() - self.opened_at >= self.reset_seconds else "open"

    def allow(self) -> bool:
        state = self.state
        if state == "closed":
            return True
        if state == "half-open" and not self._trial_in_flight:
            self._trial_in_flight = True  # one trial request; the others still get 503 until it answers
            return True
        return False

    def retry_after(self) -> int:
        if self.opened_at is None:
            return 0
        return max(1, int(self.reset_seconds - (time.monotonic() - self.opened_at) + 0.999))

    def release(self) -> None:
        """The call ended with no verdict on the upstream (the client went away): free the trial slot."""
        self._trial_in_flight = False

    def success(self) -> None:
        self.failures = 0
        self.opened_at = None
        self._trial_in_flight = False

    def failure(self) -> None:
        self.failures += 1
        self._trial_in_flight = False
        if self.opened_at is not None or self.failures >= self.failure_threshold:
            self.opened_at = time.monotonic()
