"""Test overlay: fast hashing, private media per test (see tests/conftest.py)."""

from __future__ import annotations

from config.settings import *  # noqa: F403
from config.settings import REST_FRAMEWORK

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
REST_FRAMEWORK = {
    **REST_FRAMEWORK,
    "DEFAULT_THROTTLE_RATES": {"session_start": "10000/minute", "vote": "100000/minute"},
}  # noqa: F405
