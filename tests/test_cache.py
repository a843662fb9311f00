"""The production cache (config.cache.ReusingRedisCache) against a real Redis server.

Starts its own redis-server on a free loopback port (Debian's redis-server, installed by
.ci/run) and stops it by its PID; skipped where redis-server is not installed.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import AnonymousUser
from rest_framework.test import APIRequestFactory
from rest_framework.throttling import ScopedRateThrottle

from config.cache import ReusingRedisCache

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    server = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail("redis-server did not start")
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(timeout=20)


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
