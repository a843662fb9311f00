"""The production cache (config.cache.ReusingRedisCache) against a real Redis server.

Starts its own redis-server on a free loopback port (Debian's redis-server, installed by
.ci/run) and stops it by its PID; skipped where redis-server is not installed.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import AnonymousUser
from rest_framework.test import APIRequestFactory
from rest_framework.throttling import ScopedRateThrottle

from config.cache import ReusingRedisCache
from tests.test_nginx import _running
from tests.test_production import _free_port

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    args = ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--dir", str(tmp_path)]
    with _running(args, tmp_path / "redis.log", port):
        yield f"redis://127.0.0.1:{port}/0"


def test_reusing_cache_keeps_one_client_and_behaves_like_djangos(redis_url: str) -> None:
    cache = ReusingRedisCache(redis_url, {})
    assert cache._cache.get_client(write=True) is cache._cache.get_client(write=False)
    cache.set("answer", {"score": 4}, 30)
    assert cache.get("answer") == {"score": 4}
    assert cache.add("answer", "other", 30) is False
    assert cache.add("count", 1, 30) is True
    assert cache.incr("count") == 2
    cache.delete("answer")
    assert cache.get("answer", "gone") == "gone"


def test_vote_throttle_refuses_past_the_rate_with_the_redis_cache(redis_url: str) -> None:
    class VoteThrottle(ScopedRateThrottle):
        cache = ReusingRedisCache(redis_url, {})
        THROTTLE_RATES = {"vote": "3/minute"}

    view = type("View", (), {"throttle_scope": "vote"})()
    factory = APIRequestFactory()

    def allowed(address: str) -> bool:
        request = factory.post("/", REMOTE_ADDR=address)
        request.user = AnonymousUser()
        return VoteThrottle().allow_request(request, view)

    assert [allowed("203.0.113.1") for _ in range(4)] == [True, True, True, False]
    assert allowed("203.0.113.2"), "another client has its own budget"
