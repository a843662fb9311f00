"""Per-client rate limits of the rater API, counted with one atomic cache increment."""

from __future__ import annotations

from typing import Any

from rest_framework.throttling import ScopedRateThrottle

from config.cache import count_hit

# Per scope: the window the process's leases belong to, and what is left of each client's
# lease. A lease left over at the end of its window is dropped, unused.
_leased: dict[str, tuple[int, dict[str, int]]] = {}


def _leases_of(scope: str, window: int) -> dict[str, int]:
    """What this process has left of each client's lease in ``scope`` and ``window``."""
    book = _leased.get(scope)
    if book is None or book[0] != window:
        book = _leased[scope] = (window, {})
    return book[1]


class WindowRateThrottle(ScopedRateThrottle):
    """DRF's scoped throttle (the same scopes, rates and per-client buckets), counted per
    fixed window of the rate's period.

    DRF's own keeps every request's timestamp in one cache entry, read and written back
    whole: two round trips to Redis on every vote, and two concurrent requests of a client
    can each write back a history without the other. One increment per request is atomic
    and costs one round trip; in exchange a client may spend two windows' worth of
    requests across a window boundary, which bounds abuse just as well.

    Votes take their budget in leases: a process adds four to the client's count at once
    and lets the client's next three votes that reach it through without asking Redis. A
    rater's votes then cost one round trip to Redis per process that serves them, where
    the round trip cost a vote a twentieth of its CPU (bench/load). The count never exceeds
    the rate, so a client never gets more; with its leases spread over the processes, it
    may be refused up to three requests per process early, which at 240 votes a minute
    against the few a person gives leaves every rater untouched.
    """

    # Per scope, the requests of one client a process takes from its budget at once.
    leases = {"vote": 4}

    def allow_request(self, request: Any, view: Any) -> bool:
        self.scope = getattr(view, self.scope_attr, None)
        if not self.scope:
            return True
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        if self.rate is None:
            return True
        now = self.timer()
        self.window = int(now // self.duration)
        self.key = self.get_cache_key(request, view)
        lease = self.leases.get(self.scope, 1)
        left = _leases_of(self.scope, self.window) if lease > 1 else {}
        # Taken out, then put back less one: two threads never spend the same request.
        remaining = left.pop(self.key, 0)
        if not remaining:
            count = count_hit(self.cache, self.key, self.duration, lease)
            # Of the ``lease`` requests just counted, those within the rate.
            remaining = min(lease, self.num_requests - (count - lease))
        if remaining > 0:
            if remaining > 1:
                left[self.key] = remaining - 1
            return True
        self.wait_seconds = (self.window + 1) * self.duration - now
        return False

    def get_cache_key(self, request: Any, view: Any) -> str:
        # DRF's key for the client and scope, one counter per window.
        return f"{super().get_cache_key(request, view)}_{self.window}"

    def wait(self) -> float:
        return self.wait_seconds


def forget_leases() -> None:
    """Drop this process's leases (tests that reset the counts reset these too)."""
    _leased.clear()
