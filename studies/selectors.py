from __future__ import annotations

from pathlib import PurePosixPath

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


def _manifest_file(path: str, asset: ImageAsset) -> dict[str, object]:
    return {
        "path": path,
        "sha256": asset.sha256,
        "size_bytes": asset.size_bytes,
        "content_type": asset.content_type,
        "width": asset.width,
        "height": asset.height,
    }


def study_import_manifest(*, study: Study) -> dict[str, object]:
    """The import layout of the study as stored: every file under the path the importer
    reads it from (``references/<scene>``, ``inputs/<scene>``, ``methods/<method>/<scene>``)
    with the uploaded file's SHA-256 and size, and the ``methods.csv`` rows.

    Uploads are kept byte-exact, so the checksums identify the very files the study was
    built from (an import under the same checksums builds the same study). Three queries.
    """
    files: list[dict[str, object]] = []
    for scene in Scene.objects.filter(study=study).select_related("reference", "input").order_by("name"):
        for folder, asset in (("references", scene.reference), ("inputs", scene.input)):
            if asset is not None:
                files.append(_manifest_file(f"{folder}/{scene.name}{PurePosixPath(asset.original.name).suffix}", asset))
    outputs = (
        Output.objects.filter(method__study=study, image__isnull=False)
        .select_related("method", "scene", "image")
        .order_by("method__name", "scene__name")
    )
    for output in outputs:
        suffix = PurePosixPath(output.image.original.name).suffix
        files.append(_manifest_file(f"methods/{output.method.name}/{output.scene.name}{suffix}", output.image))
    methods = [
        {"method": name, "kind": kind, "runtime_s": runtime_s, "framework": framework}
        for name, kind, runtime_s, framework in Method.objects.filter(study=study)
        .order_by("name")
        .values_list("name", "kind", "runtime_s", "framework")
    ]
    return {
        "study": study.slug,
        "title": study.title,
        "protocol": study.protocol,
        "scale_preset": study.scale_preset,
        "scale_levels": study.scale_levels,
        "files": files,
        "methods_csv": methods,
    }
