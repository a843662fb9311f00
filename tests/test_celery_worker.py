"""Admin upload -> import job -> PSNR/SSIM and tile pyramids, run by a real Celery worker
process.

Without CELERY_BROKER_URL (the embedded default) the tasks travel through kombu's
filesystem transport to a ``celery -A config worker`` process on the SQLite test database;
with it (the PostgreSQL CI pass) through Redis. Either way nothing runs in this process:
the job, then the tasks its import queues on commit, must complete in the worker.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from studies.models import ImageAsset, Job, Output
from studies.services import study_create, study_import
from studies.services.jobs import job_create
from tests.studies.conftest import make_study_folder, zip_folder

pytestmark = pytest.mark.django_db(transaction=True)

TIMEOUT_S = 120


def _complete() -> bool:
    return (
        Output.objects.exists()
        and not Output.objects.exclude(metric_status=Output.MetricStatus.DONE).exists()
        and not ImageAsset.objects.exclude(tile_status=ImageAsset.TileStatus.DONE).exists()
    )


def _wait(condition, worker) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        assert time.monotonic() < deadline, "tasks not done in time; worker log:\n" + worker.log()
        time.sleep(0.2)


def _assert_results_complete(media_root: Path) -> None:
    outputs = list(Output.objects.all())
    assert len(outputs) == 4
    for output in outputs:
        assert output.psnr is not None and output.ssim is not None
    for asset in ImageAsset.objects.all():
        assert (media_root / asset.tiles_dir / "pyramid.dzi").is_file()


@pytest.fixture
def worker(celery_worker, settings):
    from config.celery import app

    app.conf.task_always_eager = False  # restored by the autouse celery_in_process fixture
    settings.MEDIA_ROOT = celery_worker.media_root  # the worker reads and writes the same files
    return celery_worker


def test_metrics_and_tiles_queued_on_commit_are_computed_by_the_worker(worker, tmp_path):
    folder = make_study_folder(tmp_path / "study", scenes=("beach", "city"), methods=("A", "B"), size=(300, 200))
    study = study_create(title="Worker", slug="worker")
    study_import(study=study, source=folder)  # commits: the tasks are queued on commit
    assert not _complete()  # nothing ran in this process
    _wait(_complete, worker)
    _assert_results_complete(worker.media_root)
    log = worker.log()
    assert "studies.tasks.output_metrics_compute" in log and "succeeded" in log


def test_an_uploaded_import_is_run_by_the_worker(worker, tmp_path, django_user_model):
    folder = make_study_folder(tmp_path / "study", scenes=("beach", "city"), methods=("A", "B"), size=(300, 200))
    archive = zip_folder(folder, tmp_path / "study.zip")
    study = study_create(title="Uploaded", slug="uploaded")
    job = job_create(study=study, kind=Job.Kind.IMPORT, upload=SimpleUploadedFile("study.zip", archive.read_bytes()))
    assert Job.objects.get(pk=job.pk).status == Job.Status.QUEUED and not study.scenes.exists()
    _wait(lambda: Job.objects.get(pk=job.pk).ended and _complete(), worker)
    job.refresh_from_db()
    assert job.status == Job.Status.DONE, job.problems
    assert (job.files_done, job.files_total) == (6, 6)
    assert sorted(study.scenes.values_list("name", flat=True)) == ["beach", "city"]
    _assert_results_complete(worker.media_root)
    assert not (worker.media_root / job.upload).is_file() and job.upload == ""  # the upload is gone
    assert "studies.tasks.job_run" in worker.log()
