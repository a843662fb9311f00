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


@pytest.mark.skipif(not os.environ.get("CELERY_BROKER_URL"), reason="needs a broker: the PostgreSQL CI pass")
def test_worker_process_computes_metrics_and_tiles_queued_on_commit(celery_worker, settings, tmp_path):
    settings.MEDIA_ROOT = celery_worker.media_root  # the worker reads and writes the same files
    _import_small_study(tmp_path)
    deadline = time.monotonic() + TIMEOUT_S
    while not _complete():
        assert time.monotonic() < deadline, "tasks not done in time; worker log:\n" + celery_worker.log()
        time.sleep(0.2)
    _assert_results_complete(celery_worker.media_root)
    log = celery_worker.log()
    assert "studies.tasks.output_metrics_compute" in log and "succeeded" in log


@pytest.mark.skipif(bool(os.environ.get("CELERY_BROKER_URL")), reason="the embedded default's in-process path")
def test_embedded_default_computes_metrics_and_tiles_in_process_on_commit(media_root, tmp_path):
    _import_small_study(tmp_path)
    assert _complete()
    _assert_results_complete(media_root)
