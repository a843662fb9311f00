from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def media_root(tmp_path: Path, settings) -> Path:
    """Every test writes its files to a private MEDIA_ROOT."""
    root = tmp_path / "media"
    root.mkdir()
    settings.MEDIA_ROOT = root
    return root


@pytest.fixture(autouse=True)
def celery_in_process(request: pytest.FixtureRequest) -> Iterator[None]:
    """Tasks run in-process, with a broker configured too, except where a test asks for
    the real worker (``celery_worker``): most tests check a task's effect right after the
    commit that queued it, inside a transaction a worker process could not see.
    """
    from config.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = "celery_worker" not in request.fixturenames
    yield
    app.conf.task_always_eager = previous


@dataclass(frozen=True)
class CeleryWorker:
    name: str
    media_root: Path
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _database_url(db: dict) -> str:
    user = quote(db.get("USER") or "", safe="")
    password = quote(db.get("PASSWORD") or "", safe="")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{auth}{db.get('HOST') or ''}{port}/{quote(str(db['NAME']), safe='')}"


# The worker runs under coreutils' timeout: it ends by itself after this long even if the
# test process dies before stopping it.
WORKER_LIFETIME_S = 600


def _worker_ready(process: subprocess.Popen, log_path: Path, name: str, *, pinged: bool) -> bool:
    from config.celery import app

    if pinged:
        return bool(app.control.ping(destination=[name], timeout=0.5))
    time.sleep(0.2)
    return f"{name} ready." in log_path.read_text(errors="replace")


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, tmp_path_factory) -> Iterator[CeleryWorker]:
    """A real ``celery -A config worker`` process on the test database and broker.

    With CELERY_BROKER_URL set (the PostgreSQL CI pass): Redis and PostgreSQL. Without it,
    the embedded default: kombu's filesystem transport, in a broker folder of this session's
    own (a demo worker of the same checkout must not take these messages), and the SQLite
    test database file. The worker uses the test database pytest-django created, so a test
    using it must commit its data (``django_db(transaction=True)``) and share
    ``worker.media_root``. It opens no port: it connects to Redis on 127.0.0.1 in CI, and
    the filesystem transport is files only.
    """
    from django.conf import settings
    from django.db import connection

    from config.celery import app

    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings_test"}
    redis = bool(os.environ.get("CELERY_BROKER_URL"))
    if redis:
        if connection.vendor != "postgresql":
            pytest.fail("the celery_worker fixture with a broker needs DATABASE_URL to point to PostgreSQL")
        env["DATABASE_URL"] = _database_url(connection.settings_dict)
    else:
        if connection.vendor != "sqlite":
            pytest.fail("the celery_worker fixture without CELERY_BROKER_URL runs on the SQLite test database")
        env["DATABASE_URL"] = f"sqlite:///{Path(connection.settings_dict['NAME']).resolve()}"
        # The run's own broker folders (config/settings_test.py), which the worker inherits
        # through the environment: whatever an earlier test left there is not for it.
        for message in Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"]).glob("*"):
            message.unlink()
    media = tmp_path_factory.mktemp("worker-media")
    log_path = tmp_path_factory.mktemp("worker-log") / "worker.log"
    name = f"mosaic-test-{uuid.uuid4().hex[:8]}@127.0.0.1"
    env["MOSAIC_MEDIA_ROOT"] = str(media)
    if redis:
        app.control.purge()  # nothing left over from an earlier run reaches this worker
    command = [sys.executable, "-m", "celery", "-A", "config", "worker", "--loglevel=INFO"]
    command += ["--concurrency=2", "-n", name, "--without-gossip", "--without-mingle"]
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            ["timeout", "--kill-after=10", str(WORKER_LIFETIME_S), *command],
            cwd=REPO,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 90
        while not _worker_ready(process, log_path, name, pinged=redis):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("the Celery worker did not start:\n" + log_path.read_text(errors="replace"))
        yield CeleryWorker(name=name, media_root=media, log_path=log_path)
    finally:
        process.terminate()  # timeout passes it on: warm shutdown, the task at hand finishes
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            # timeout leads a process group of its own: the worker and its pool go with it.
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
