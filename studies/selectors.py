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


def study_open_warnings(*, study: Study) -> list[str]:
    """What is likely wrong with a study that can open: it opens anyway, the organizer is told."""
    warnings = []
    kinds = set(Method.objects.filter(study=study).values_list("kind", flat=True))
    if study.control_rate > 0 and not kinds & set(Method.CONTROL_KINDS):
        warnings.append(
            f"The control rate is {study.control_rate:g} but the study has no hidden-reference or low-anchor "
            "method: sessions get no controls, and the control screening flags nobody."
        )
    rated = Output.objects.filter(method__study=study, image__isnull=False)
    ratable = rated.exclude(method__kind__in=Method.CONTROL_KINDS).count()
    if study.trials_per_session > ratable:
        warnings.append(
            f"A session has {study.trials_per_session} trials but the study has only {ratable} outputs to rate: "
            "raters will see some outputs twice."
        )
    return warnings
