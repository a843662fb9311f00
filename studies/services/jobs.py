"""Upload jobs: an import, a late team or a replaced output, uploaded in the admin and run
by a Celery worker.

The request only saves the upload and queues its job (:func:`job_create`); the worker
checks every file and writes all or nothing (:func:`job_run`), recording its progress and,
if it fails, every problem on the job's row, which the study's Jobs page in the admin polls.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import time
from pathlib import Path

from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile
from django.db import OperationalError, transaction
from django.utils import timezone

from studies.importer import ImportProblems
from studies.models import Job, Output, Study
from studies.services import (
    StudyStateError,
    output_replace,
    output_replaceable_check,
    study_import,
    study_importable_check,
    study_methods_add,
)

logger = logging.getLogger(__name__)

UPLOAD_FOLDER = "uploads"
# A job's progress is written at most this often: a row update per small file would cost
# more than checking the file.
PROGRESS_INTERVAL_S = 0.5


def job_create(*, study: Study, kind: str, upload: UploadedFile, user=None, output: Output | None = None) -> Job:
    """Save ``upload`` and queue its job; return at once, a worker does the rest.

    The study's state is checked here too (and again by the worker, under the study's
    lock), so an upload the study cannot take now is refused at once and nothing is saved.
    """
    if kind == Job.Kind.OUTPUT_REPLACE:
        if output is None:
            raise ValueError("a replacement job needs its output")
        output_replaceable_check(output=output, study=study)
    else:
        study_importable_check(study=study, scenes_allowed=kind == Job.Kind.IMPORT)
    suffix = Path(upload.name).suffix.lower()
    # A random name: nothing in it says which study or team it is. On the same file system
    # as the upload's temporary file (FILE_UPLOAD_TEMP_DIR), saving it is a rename.
    name = default_storage.save(f"{UPLOAD_FOLDER}/{secrets.token_hex(16)}{suffix}", upload)
    try:
        return _job_queue(study=study, kind=kind, upload=name, source_name=upload.name, user=user, output=output)
    except BaseException:
        default_storage.delete(name)
        raise


@transaction.atomic
def _job_queue(*, study: Study, kind: str, upload: str, source_name: str, user, output: Output | None) -> Job:
    from studies import tasks  # tasks import services; keep the cycle out of module load

    job = Job.objects.create(
        study=study,
        kind=kind,
        output=output,
        upload=upload,
        source_name=source_name[: Job._meta.get_field("source_name").max_length],
        created_by=user if user is not None and user.is_authenticated else None,
    )
    transaction.on_commit(lambda: tasks.job_run.delay(job.pk))
    return job


class JobProgress:
    """Records an import's progress on its job (studies.services.ImportProgress).

    Each write commits by itself: the import's own transaction starts only once every
    file has been checked, so the Jobs page sees the count grow.
    """

    def __init__(self, job: Job) -> None:
        self.job = job
        self._written = 0.0

    def stage(self, name: str) -> None:
        self.job.stage = name
        self._write(force=True)

    def start_checking(self, total: int) -> None:
        self.job.stage, self.job.files_done, self.job.files_total = "checking the files", 0, total
        self._write(force=True)

    def file_checked(self) -> None:
        self.job.files_done += 1
        self._write(force=self.job.files_done >= self.job.files_total)

    def _write(self, *, force: bool) -> None:
        now = time.monotonic()
        if force or now - self._written >= PROGRESS_INTERVAL_S:
            Job.objects.filter(pk=self.job.pk).update(
                stage=self.job.stage, files_done=self.job.files_done, files_total=self.job.files_total
            )
            self._written = now


def job_run(*, job_id: int) -> Job | None:
    """Run a queued job (the worker's side) and record how it ended; its upload is then deleted.

    A refused import stores every problem on the job and changes nothing (imports are all
    or nothing). A database error is raised for the task to retry: the job and its upload
    stay as they are until then.
    """
    job = _job_start(job_id=job_id)
    if job is None:
        return None
    source = Path(default_storage.path(job.upload))
    progress = JobProgress(job)
    try:
        if job.kind == Job.Kind.OUTPUT_REPLACE:
            summary = _output_replace(job=job, source=source, progress=progress)
        else:
            service = study_import if job.kind == Job.Kind.IMPORT else study_methods_add
            result = service(study=job.study, source=source, source_name=job.source_name, progress=progress)
            summary = dataclasses.asdict(result)
    except ImportProblems as exc:
        return _job_end(job=job, status=Job.Status.FAILED, problems=exc.problems)
    except StudyStateError as exc:
        return _job_end(job=job, status=Job.Status.FAILED, problems=[str(exc)])
    except OperationalError:
        raise
    except Exception as exc:  # noqa: BLE001 - the organizer must learn that the job ended
        logger.exception("job %s failed", job.pk)
        problem = f"The job stopped on an unexpected error ({type(exc).__name__}: {exc}); nothing was changed."
        return _job_end(job=job, status=Job.Status.FAILED, problems=[problem])
    return _job_end(job=job, status=Job.Status.DONE, summary=summary)


def _output_replace(*, job: Job, source: Path, progress: JobProgress) -> dict[str, object]:
    output = (
        Output.objects.select_related("method__study", "scene__reference", "image").filter(pk=job.output_id).first()
    )
    if output is None:
        raise StudyStateError("The output was deleted after the upload: nothing was replaced.")
    progress.start_checking(1)
    output_replace(output=output, source=source, source_name=job.source_name)
    progress.file_checked()
    return {"output": str(output)}


@transaction.atomic
def _job_start(*, job_id: int) -> Job | None:
    job = Job.objects.select_for_update().select_related("study").filter(pk=job_id).first()
    if job is None or job.ended:  # deleted, or a redelivered task of a job that has ended
        return None
    # Running already: its worker died (the task is acknowledged late) or it is retried
    # after a database error. Either way nothing of the earlier attempt was committed.
    job.status, job.started_at = Job.Status.RUNNING, timezone.now()
    job.save(update_fields=["status", "started_at"])
    return job


def _job_end(*, job: Job, status: str, problems: list[str] | None = None, summary: dict | None = None) -> Job:
    upload = job.upload
    job.status, job.finished_at, job.upload = status, timezone.now(), ""
    job.problems, job.summary = problems or [], summary or {}
    if status == Job.Status.DONE:
        job.stage, job.files_done = "", job.files_total
    job.save(update_fields=["status", "finished_at", "upload", "problems", "summary", "stage", "files_done"])
    if upload:
        default_storage.delete(upload)
    return job
