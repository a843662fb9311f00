"""Import -> PSNR/SSIM and tile pyramids, computed by a real Celery worker process.

With CELERY_BROKER_URL set (the PostgreSQL CI pass) the tasks queued on commit travel
through Redis to a separate ``celery -A config worker`` process; in the embedded default
they run in-process on commit. Either way the import's results must be complete.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from studies.models import ImageAsset, Output
from studies.services import study_create, study_import
from tests.studies.conftest import make_study_folder

pytestmark = pytest.mark.django_db(transaction=True)

TIMEOUT_S = 120


def _complete() -> bool:
    return (
        not Output.objects.exclude(metric_status=Output.MetricStatus.DONE).exists()
        and not ImageAsset.objects.exclude(tile_status=ImageAsset.TileStatus.DONE).exists()
    )


def _import_small_study(tmp_path: Path) -> None:
    folder = make_study_folder(tmp_path / "study", scenes=("beach", "city"), methods=("A", "B"), size=(300, 200))
    study = study_create(title="Worker", slug="worker")
    study_import(study=study, source=folder)  # commits: the tasks are queued on commit


def _assert_results_complete(media_root: Path) -> None:
    outputs = list(Output.objects.all())
    assert len(outputs) == 4
    for output in outputs:
        assert output.psnr is not None and output.ssim is not None
    for asset in ImageAsset.objects.all():
        assert (media_root / asset.tiles_dir / "pyramid.dzi").is_file()


def test_metrics_and_tiles_queued_on_commit_are_computed(request, settings, media_root, tmp_path):
    if not os.environ.get("CELERY_BROKER_URL"):
        # The embedded default: the tasks ran in-process when the import committed.
        _import_small_study(tmp_path)
        assert _complete()
        _assert_results_complete(media_root)
        return

    from config.celery import app

    worker = request.getfixturevalue("celery_worker")
    app.conf.task_always_eager = False  # restored by the autouse celery_in_process fixture
    settings.MEDIA_ROOT = worker.media_root  # the worker reads and writes the same files
    _import_small_study(tmp_path)
    deadline = time.monotonic() + TIMEOUT_S
    while not _complete():
        assert time.monotonic() < deadline, "tasks not done in time; worker log:\n" + worker.log()
        time.sleep(0.2)
    _assert_results_complete(worker.media_root)
    log = worker.log()
    assert "studies.tasks.output_metrics_compute" in log and "succeeded" in log
