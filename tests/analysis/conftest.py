from __future__ import annotations

import pytest


@pytest.fixture
def eager_celery(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run queued tasks in-process even on the CI pass that has a real broker."""
    from config.celery import app

    monkeypatch.setitem(app.conf, "task_always_eager", True)
