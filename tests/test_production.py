"""The production profile: gunicorn, nginx media hand-off, throttling behind a proxy,
Celery reliability settings. (The deploy check and the secret-key refusal are in
tests/test_settings.py.)"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.test import RequestFactory
from rest_framework.request import Request
from rest_framework.throttling import ScopedRateThrottle

from tests.factories import ImageAssetFactory

REPO = Path(__file__).resolve().parents[1]
SECRET = "p" * 20 + "9f8e7d6c5b4a3210zyxwvutsrqponmlkjihgfedcba"


def _clean_env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "CELERY_", "MOSAIC_"))}
    return {**base, "DJANGO_SETTINGS_MODULE": "config.settings", **extra}


@pytest.mark.django_db
def test_media_goes_to_nginx_by_x_accel_redirect_under_the_same_url(client, settings):
    asset = ImageAssetFactory(width=20, height=10)
    url = f"/img/{asset.token}.png"
    direct = client.get(url)
    assert direct.status_code == 200 and "X-Accel-Redirect" not in direct

    settings.MOSAIC_MEDIA_ACCEL_PREFIX = "/protected-media/"
    accel = client.get(url)
    assert accel.status_code == 200
    assert accel["X-Accel-Redirect"] == f"/protected-media/{asset.file.name}"
    assert accel.content == b""  # nginx sends the bytes
    assert accel["Content-Type"] == "image/png"
    assert "immutable" in accel["Cache-Control"]
    assert accel["X-Content-Type-Options"] == "nosniff"


@pytest.mark.django_db
def test_media_hand_off_cannot_leave_the_media_folder(client, settings):
    settings.MOSAIC_MEDIA_ACCEL_PREFIX = "/protected-media"
    from studies.media import media_response

    with pytest.raises(Exception, match="No such image"):
        media_response("../config/settings.py")


def _ident(settings, num_proxies: int, **meta: str) -> str:
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": num_proxies}
    request = Request(RequestFactory().get("/", **meta))
    return ScopedRateThrottle().get_ident(request)


def test_throttle_ignores_forwarded_for_without_a_proxy_and_reads_nginx_hop_behind_one(settings):
    spoofed = {"REMOTE_ADDR": "203.0.113.9", "HTTP_X_FORWARDED_FOR": "1.2.3.4"}
    assert _ident(settings, 0, **spoofed) == "203.0.113.9"
    # Behind nginx: the client's own X-Forwarded-For entries come first, nginx appends the
    # address it saw; only that last one counts.
    proxied = {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "1.2.3.4, 198.51.100.7"}
    assert _ident(settings, 1, **proxied) == "198.51.100.7"


def test_production_profile_trusts_one_proxy_and_uses_redis_for_throttling(tmp_path):
    code = (
        "from django.conf import settings as s; "
        "print(s.REST_FRAMEWORK['NUM_PROXIES'], s.CACHES['default']['BACKEND'].rsplit('.', 1)[1], "
        "s.CELERY_TASK_ALWAYS_EAGER, s.DATABASES['default']['CONN_MAX_AGE'] > 0, "
        "s.DATABASES['default']['CONN_HEALTH_CHECKS'])"
    )
    env = _clean_env(
        DJANGO_ENV="production",
        DJANGO_SECRET_KEY=SECRET,
        DJANGO_ALLOWED_HOSTS="mosaic.example.org",
        MOSAIC_VAR_DIR=str(tmp_path),
        DATABASE_URL="postgres://u:p@127.0.0.1:1/mosaic",
        CELERY_BROKER_URL="redis://127.0.0.1:1/0",
    )
    result = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "RedisCache", "False", "True", "True"]


def test_production_without_allowed_hosts_refuses_to_start(tmp_path):
    env = _clean_env(DJANGO_ENV="production", DJANGO_SECRET_KEY=SECRET, MOSAIC_VAR_DIR=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "DJANGO_ENV=production needs DJANGO_ALLOWED_HOSTS" in result.stderr


def test_celery_is_set_up_for_reliability(settings):
    assert settings.CELERY_TASK_ACKS_LATE and settings.CELERY_TASK_REJECT_ON_WORKER_LOST
    assert settings.CELERY_WORKER_PREFETCH_MULTIPLIER == 1
    assert settings.CELERY_TASK_SOFT_TIME_LIMIT < settings.CELERY_TASK_TIME_LIMIT
    # A task still running when the visibility timeout expires would be delivered twice.
    assert settings.CELERY_TASK_TIME_LIMIT < settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_gunicorn_serves_the_production_profile_with_the_deploy_config(tmp_path):
    port = _free_port()
    env = _clean_env(
        DJANGO_ENV="production",
        DJANGO_SECRET_KEY=SECRET,
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        MOSAIC_VAR_DIR=str(tmp_path),
        GUNICORN_BIND=f"127.0.0.1:{port}",
        GUNICORN_WORKERS="1",
    )
    log = (tmp_path / "gunicorn.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "config.wsgi"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/schema/", headers={"X-Forwarded-Proto": "https"})
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    status, body, headers = response.status, response.read(), response.headers
                break
            except OSError:
                assert process.poll() is None, (tmp_path / "gunicorn.log").read_text()
                assert time.monotonic() < deadline, "gunicorn did not answer in time"
                time.sleep(0.2)
        assert status == 200 and b"openapi" in body
        assert "max-age=31536000" in headers["Strict-Transport-Security"]
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


# The libraries of the analysis and of image processing: none of them serves a rater.
ANALYSIS_LIBRARIES = ("pandas", "numpy", "scipy", "statsmodels", "matplotlib", "skimage", "pyvips", "imageio")


def test_a_web_worker_starts_without_the_analysis_libraries():
    # What gunicorn loads into each worker (config.wsgi), plus every URL and so every view
    # module, in a fresh interpreter: the analysis and imaging libraries are left for the
    # views and tasks that use them (two thirds of a worker's start went to importing them).
    script = (
        "import sys, config.wsgi; from django.urls import get_resolver; get_resolver().url_patterns; "
        f"print(sorted(m for m in {ANALYSIS_LIBRARIES!r} if m in sys.modules))"
    )
    env = _clean_env(
        DJANGO_ENV="production",
        DJANGO_SECRET_KEY=SECRET,
        DJANGO_ALLOWED_HOSTS="mosaic.example.org",
        DATABASE_URL="postgres://mosaic:mosaic@127.0.0.1:1/mosaic",
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
