"""Per-client rate limits of the rater API, counted with one atomic cache increment."""

from __future__ import annotations

from typing import Any

from rest_framework.throttling import ScopedRateThrottle

from config.cache import count_hit


class WindowRateThrottle(ScopedRateThrottle):
    """DRF's scoped throttle (the same scopes, rates and per-client buckets), counted per
    fixed window of the rate's period.

    DRF's own keeps every request's timestamp in one cache entry, read and written back
    whole: two round trips to Redis on every vote, and two concurrent requests of a client
    can each write back a history without the other. One increment per request is atomic
    and costs one round trip; in exchange a client may spend two windows' worth of
    requests across a window boundary, which bounds abuse just as well.
    """

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
        if count_hit(self.cache, self.key, self.duration) <= self.num_requests:
            return True
        self.wait_seconds = (self.window + 1) * self.duration - now
        return False

    def get_cache_key(self, request: Any, view: Any) -> str:
        # DRF's key for the client and scope, one counter per window.
        return f"{super().get_cache_key(request, view)}_{self.window}"

    def wait(self) -> float:
        return self.wait_seconds
