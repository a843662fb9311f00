from __future__ import annotations

from django.db.models import Count, Q, QuerySet

from studies.models import ImageAsset, Method, Output, Scene, Study


def image_asset_by_token(*, token: str) -> ImageAsset | None:
    return ImageAsset.objects.filter(token=token).first()


def study_outputs(*, study: Study) -> QuerySet[Output]:
    return Output.objects.filter(method__study=study).select_related("method", "scene", "image")


def study_missing_outputs(*, study: Study) -> list[tuple[str, str]]:
    """(method, scene) pairs that have no output file: a study with any cannot open."""
    present = set(study_outputs(study=study).exclude(image=None).values_list("method__name", "scene__name"))
    methods = list(Method.objects.filter(study=study).values_list("name", flat=True))
    scenes = list(Scene.objects.filter(study=study).values_list("name", flat=True))
    return [(m, s) for m in methods for s in scenes if (m, s) not in present]


def study_metric_summary(*, study: Study) -> dict[str, int]:
    return study_outputs(study=study).aggregate(
        total=Count("id"),
        done=Count("id", filter=Q(metric_status=Output.MetricStatus.DONE)),
        failed=Count("id", filter=Q(metric_status=Output.MetricStatus.FAILED)),
        pending=Count("id", filter=Q(metric_status=Output.MetricStatus.PENDING)),
    )
