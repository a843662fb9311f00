from __future__ import annotations

from celery import shared_task

from studies import services
from studies.models import ImageAsset, Output


@shared_task(bind=True, acks_late=True, max_retries=3, default_retry_delay=10)
def output_metrics_compute(self, output_id: int) -> None:
    output = Output.objects.select_related("image", "scene__reference").filter(pk=output_id).first()
    if output is None:  # deleted since it was queued
        return
    try:
        services.output_metrics_compute(output=output)
    except Exception as exc:  # database hiccup: try again later
        raise self.retry(exc=exc) from exc


@shared_task(bind=True, acks_late=True, max_retries=3, default_retry_delay=10)
def image_tiles_build(self, asset_id: int) -> None:
    asset = ImageAsset.objects.filter(pk=asset_id).first()
    if asset is None:
        return
    try:
        services.image_tiles_build(asset=asset)
    except Exception as exc:
        raise self.retry(exc=exc) from exc
