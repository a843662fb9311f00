"""Celery tasks of the analysis app: thin wrappers that reload by id and call a service."""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from analysis.services import analysis_run_execute


@shared_task(bind=True, acks_late=True, max_retries=3, soft_time_limit=14 * 60, time_limit=15 * 60)
def analysis_run_task(self, run_id: int) -> None:
    try:
        analysis_run_execute(run_id=run_id)
    except OperationalError as exc:
        # A locked or briefly unreachable database is worth another try; statistics
        # failures are stored on the run by the service and never reach here.
        raise self.retry(exc=exc, countdown=10) from exc
