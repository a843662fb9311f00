from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.db import OperationalError

from studies import services
from studies.models import ImageAsset, Output
from studies.services import jobs

# Loading the row is inside the retry too: a database restart must delay a task, not lose it.


@shared_task(bind=True, acks_late=True, max_retries=5, default_retry_delay=5)
def output_metrics_compute(self, output_id: int) -> None:
    try:
        output = Output.objects.select_related("image", "scene__reference").filter(pk=output_id).first()
        if output is None:  # deleted since it was queued
            return
        services.output_metrics_compute(output=output)
    except Exception as exc:  # database hiccup: try again later
        raise self.retry(exc=exc) from exc


@shared_task(bind=True, acks_late=True, max_retries=5, default_retry_delay=5)
def image_tiles_build(self, asset_id: int) -> None:
    try:
        asset = ImageAsset.objects.filter(pk=asset_id).first()
        if asset is None:
            return
        services.image_tiles_build(asset=asset)
    except Exception as exc:
        raise self.retry(exc=exc) from exc


@shared_task(
    bind=True,
    acks_late=True,
    max_retries=5,
    default_retry_delay=10,
    time_limit=settings.MOSAIC_JOB_TIME_LIMIT,
    soft_time_limit=settings.MOSAIC_JOB_TIME_LIMIT - 60,
)
def job_run(self, job_id: int) -> None:
    """An upload job of the admin (an import, a late team, a replaced output)."""
    try:
        jobs.job_run(job_id=job_id)
    except OperationalError as exc:  # a locked or briefly unreachable database: try again later
        raise self.retry(exc=exc) from exc
