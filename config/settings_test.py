"""Test overlay: fast hashing, private media per test (see tests/conftest.py)."""

from __future__ import annotations

import os
import tempfile

# The embedded broker's folders, private to this test run: a demo worker of the same
# checkout must not take the tests' messages, nor the tests its. A worker started by the
# tests (tests/conftest.py) inherits this variable and reads the same folders.
os.environ.setdefault("MOSAIC_BROKER_DIR", os.path.join(tempfile.gettempdir(), f"mosaic-test-broker-{os.getpid()}"))

from config.settings import *  # noqa: E402, F403
from config.settings import REST_FRAMEWORK

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
REST_FRAMEWORK = {
    **REST_FRAMEWORK,
    "DEFAULT_THROTTLE_RATES": {"session_start": "10000/minute", "vote": "100000/minute", "session": "100000/minute"},
}  # noqa: F405

# The SQLite test database lives on disk, not in memory: concurrency tests need real
# file locking (an in-memory database shared between threads reports "table is locked"
# instead of waiting on the busy timeout).
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": os.path.join(tempfile.gettempdir(), f"mosaic-test-{os.getpid()}.sqlite3")
    }

# Tasks run in-process on commit, for speed: most tests check a task's effect right after
# the commit that queued it. tests/test_celery_worker.py runs a real worker on the
# embedded filesystem transport (and on Redis when CELERY_BROKER_URL is set).
CELERY_TASK_ALWAYS_EAGER = True
