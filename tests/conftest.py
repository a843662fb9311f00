from __future__ import annotations

import os
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


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, tmp_path_factory) -> Iterator[CeleryWorker]:
    """A real ``celery -A config worker`` process on the test database and broker.

    Only with CELERY_BROKER_URL set (the PostgreSQL CI pass). The worker uses the test
    database pytest-django created, so a test using it must commit its data
    (``django_db(transaction=True)``) and share ``worker.media_root``.
    """
    from django.conf import settings
    from django.db import connection

    from config.celery import app

    if not settings.CELERY_BROKER_URL:
        pytest.fail("the celery_worker fixture needs CELERY_BROKER_URL (see .ci/run)")
    if connection.vendor != "postgresql":
        pytest.fail("the celery_worker fixture needs DATABASE_URL to point to PostgreSQL")
    media = tmp_path_factory.mktemp("worker-media")
    log_path = tmp_path_factory.mktemp("worker-log") / "worker.log"
    name = f"mosaic-test-{uuid.uuid4().hex[:8]}@127.0.0.1"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "DATABASE_URL": _database_url(connection.settings_dict),
        "MOSAIC_MEDIA_ROOT": str(media),
    }
    app.control.purge()  # nothing left over from an earlier run reaches this worker
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--loglevel=INFO",
                "--concurrency=2",
                "-n",
                name,
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=REPO,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 90
        while not app.control.ping(destination=[name], timeout=0.5):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("the Celery worker did not start:\n" + log_path.read_text(errors="replace"))
        yield CeleryWorker(name=name, media_root=media, log_path=log_path)
    finally:
        process.terminate()  # warm shutdown: finishes the task at hand, closes its connections
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
