from __future__ import annotations

from pathlib import PurePosixPath

from django.db.models import Count, Q, QuerySet

from studies.models import ImageAsset, Job, Method, Output, Scene, Study


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


LATE_METHOD_WARNING = (
    "This study is open: a method added now starts with no votes on its outputs (coverage at zero). New "
    "sessions favour it: its outputs get the next trials while the other methods, once they have their "
    "{target} votes per output, wait, until it has {target} votes per output too. Until then its MOS rests "
    "on fewer votes and its interval is wider."
)
# The newest jobs and analysis runs a study's Jobs page lists.
PROGRESS_LIMIT = 10


def job_report(*, job: Job, study: Study) -> dict[str, object]:
    """One upload job as the Jobs page shows it (and its JSON gives it)."""
    summary = job.summary
    message, warning = "", ""
    if job.status == Job.Status.QUEUED:
        message = "Waiting for a worker."
    elif job.status == Job.Status.RUNNING:
        message = f"Running: {job.stage or 'starting'}."
    elif job.status == Job.Status.FAILED:
        verb = "replaced" if job.kind == Job.Kind.OUTPUT_REPLACE else "imported"
        message = f"Nothing was {verb}: {len(job.problems)} problem(s) to fix, then upload again."
    elif job.kind == Job.Kind.OUTPUT_REPLACE:
        message = (
            f"The image of {summary.get('output', 'the output')} was replaced. "
            "PSNR/SSIM and its tiles are computed again (below)."
        )
    else:
        message = (
            f"Imported {summary.get('scenes', 0)} scene(s), {summary.get('methods', 0)} method(s) and "
            f"{summary.get('outputs', 0)} output(s). PSNR/SSIM and tile pyramids are computed next (below)."
        )
        if summary.get("methods") and study.status == Study.Status.OPEN:
            warning = LATE_METHOD_WARNING.format(target=study.ratings_per_output)
    return {
        "id": job.pk,
        "kind": job.get_kind_display(),
        "source_name": job.source_name,
        "status": job.status,
        "status_label": job.get_status_display(),
        "stage": job.stage,
        "done": job.files_done,
        "total": job.files_total,
        "message": message,
        "warning": warning,
        "problems": list(job.problems),
        "created_at": job.created_at.isoformat(),
    }


def study_progress(*, study: Study) -> dict[str, object]:
    """Everything long-running of a study, as its Jobs page shows it: the newest upload jobs
    (files checked n/N, every problem of a failed one), PSNR/SSIM and tile pyramids n/N, and
    the newest analysis runs with their stage. Four queries."""
    from analysis.models import AnalysisRun  # analysis depends on studies, not the reverse

    jobs = [job_report(job=job, study=study) for job in Job.objects.filter(study=study)[:PROGRESS_LIMIT]]
    metrics = study_metric_summary(study=study)
    scenes = Scene.objects.filter(study=study)
    assets = ImageAsset.objects.filter(
        Q(pk__in=scenes.values("reference"))
        | Q(pk__in=scenes.values("input"))
        | Q(pk__in=Output.objects.filter(method__study=study).values("image"))
    ).aggregate(
        total=Count("id"),
        done=Count("id", filter=Q(tile_status=ImageAsset.TileStatus.DONE)),
        failed=Count("id", filter=Q(tile_status=ImageAsset.TileStatus.FAILED)),
    )
    runs = []
    for run in AnalysisRun.objects.filter(study=study).only("number", "status", "stage", "error")[:PROGRESS_LIMIT]:
        step = {AnalysisRun.Status.DONE: len(AnalysisRun.STAGES), AnalysisRun.Status.PENDING: 0}.get(
            run.status, AnalysisRun.STAGES.index(run.stage) if run.stage in AnalysisRun.STAGES else 0
        )
        runs.append(
            {
                "number": run.number,
                "status": run.status,
                "status_label": run.get_status_display(),
                "stage": run.stage if run.status == AnalysisRun.Status.RUNNING else "",
                "done": step,
                "total": len(AnalysisRun.STAGES),
                "error": run.error if run.status == AnalysisRun.Status.FAILED else "",
            }
        )
    active = (
        any(job["status"] in (Job.Status.QUEUED, Job.Status.RUNNING) for job in jobs)
        or metrics["pending"] > 0
        or assets["done"] + assets["failed"] < assets["total"]
        or any(run["status"] in (AnalysisRun.Status.PENDING, AnalysisRun.Status.RUNNING) for run in runs)
    )
    return {
        "jobs": jobs,
        "metrics": {"done": metrics["done"], "failed": metrics["failed"], "total": metrics["total"]},
        "tiles": {"done": assets["done"], "failed": assets["failed"], "total": assets["total"]},
        "analysis": runs,
        "active": active,
    }
