"""The production cache (config.cache.ReusingRedisCache) against a real Redis server.

Starts its own redis-server on a free loopback port (Debian's redis-server, installed by
.ci/run) and stops it by its PID; skipped where redis-server is not installed.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.contrib.auth.models import AnonymousUser
from rest_framework.test import APIRequestFactory

from config.cache import ReusingRedisCache, count_hit
from raters.throttling import WindowRateThrottle
from tests.test_nginx import _running
from tests.test_production import _free_port

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")


def _redis_args(port: int, folder: Path) -> list[str]:
    return ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--dir", str(folder)]


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    with _running(_redis_args(port, tmp_path), tmp_path / "redis.log", port):
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


def test_each_client_keeps_one_connection_and_gets_a_new_one_after_a_redis_restart(tmp_path: Path) -> None:
    port = _free_port()
    cache = ReusingRedisCache(f"redis://127.0.0.1:{port}/0", {})
    with _running(_redis_args(port, tmp_path), tmp_path / "first.log", port):
        for n in range(20):
            assert count_hit(cache, "votes", 60) == n + 1
        client = cache._cache.get_client(write=True)
        pool = client.connection_pool
        assert len(pool._in_use_connections) == 1 and not pool._available_connections
        held = client.connection
    with _running(_redis_args(port, tmp_path), tmp_path / "second.log", port):
        # The held connection broke with the first server; the next command reconnects.
        assert count_hit(cache, "votes", 60) == 1, "a fresh server, a fresh count"
        assert cache._cache.get_client(write=True) is client and client.connection is held
        assert len(pool._in_use_connections) == 1


def test_vote_throttle_refuses_past_the_rate_with_the_redis_cache(redis_url: str) -> None:
    clock = [600.0 + 10.0]  # ten seconds into a minute window

    class VoteThrottle(WindowRateThrottle):
        cache = ReusingRedisCache(redis_url, {})
        THROTTLE_RATES = {"vote": "3/minute"}

        def timer(self) -> float:
            return clock[0]

    view = type("View", (), {"throttle_scope": "vote"})()
    factory = APIRequestFactory()

    def allowed(address: str) -> VoteThrottle | None:
        request = factory.post("/", REMOTE_ADDR=address)
        request.user = AnonymousUser()
        throttle = VoteThrottle()
        return None if throttle.allow_request(request, view) else throttle

    assert [allowed("203.0.113.1") for _ in range(3)] == [None, None, None]
    refused = allowed("203.0.113.1")
    assert refused is not None and refused.wait() == 50.0, "the fourth waits for the next window"
    assert allowed("203.0.113.2") is None, "another client has its own budget"
    clock[0] += 50.0
    assert allowed("203.0.113.1") is None, "a new window, a new budget"


def test_counter_is_atomic_across_threads(redis_url: str) -> None:
    cache = ReusingRedisCache(redis_url, {})
    with ThreadPoolExecutor(max_workers=8) as pool:
        counts = list(pool.map(lambda _: count_hit(cache, "hits", 60), range(200)))
    assert sorted(counts) == list(range(1, 201)), "no increment lost or seen twice"
    ttl = cache._cache.get_client(write=False).ttl(cache.make_key("hits"))
    assert 0 < ttl <= 60, "the counter expires with its window"


def test_throttle_counts_with_one_script_call_through_djangos_cache_proxy(redis_url: str, settings) -> None:
    from django.core.cache import cache, caches

    # Django's setting_changed receiver rebuilds the cache handlers, now and afterwards.
    settings.CACHES = {"default": {"BACKEND": "config.cache.ReusingRedisCache", "LOCATION": redis_url}}
    client = caches["default"]._cache.get_client(write=True)
    assert count_hit(cache, "proxied", 60) == 1  # loads the script into Redis, once
    before = client.info("commandstats")
    assert [count_hit(cache, "proxied", 60) for _ in range(3)] == [2, 3, 4]
    after = client.info("commandstats")

    def calls(stats: dict, command: str) -> int:
        return stats.get(f"cmdstat_{command}", {}).get("calls", 0)

    # One script call per hit (the add-then-incr fallback calls none).
    assert calls(after, "evalsha") - calls(before, "evalsha") + calls(after, "eval") - calls(before, "eval") == 3
