"""Writes for studies: creation, import, metrics, tile pyramids, opening and closing."""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from studies import selectors
from studies.imaging import file_sha256, image_asset_store
from studies.importer import ImportPlan, opened_source, plan_import
from studies.models import ImageAsset, Method, Output, Scene, Study
from studies.scales import ScalePreset, levels_for

logger = logging.getLogger(__name__)


class StudyStateError(Exception):
    """An action the study's current state does not allow; the message says why."""


def study_create(
    *,
    title: str,
    slug: str,
    scale_preset: str = ScalePreset.AIM5,
    protocol: str = Study.Protocol.REFERENCE,
    **fields: object,
) -> Study:
    if scale_preset not in ScalePreset.values:
        raise ValueError(f"unknown scale preset {scale_preset!r}: choose one of {', '.join(ScalePreset.values)}")
    if protocol not in Study.Protocol.values:
        raise ValueError(f"unknown protocol {protocol!r}: choose one of {', '.join(Study.Protocol.values)}")
    study = Study(title=title, slug=slug, scale_preset=scale_preset, protocol=protocol, **fields)
    study.scale_levels = levels_for(scale_preset)
    study.full_clean()
    study.save()
    return study


@dataclass(frozen=True)
class ImportSummary:
    scenes: int
    methods: int
    outputs: int


def study_import(*, study: Study, source: Path) -> ImportSummary:
    """Import a folder or zip into ``study``: everything or, on any problem, nothing.

    Raises ImportProblems listing every problem found. Files are written only after the
    whole source validated; if writing fails halfway, the rows roll back and the files
    this import added are deleted.
    """
    if study.status != Study.Status.DRAFT:
        raise StudyStateError(f"'{study.title}' is {study.status}: images can only be imported into a draft study")
    with opened_source(Path(source)) as root:
        plan = plan_import(
            root,
            protocol=study.protocol,
            existing_scenes=set(study.scenes.values_list("name", flat=True)),
            existing_methods=set(study.methods.values_list("name", flat=True)),
        )
        written: list[str] = []
        try:
            summary = _write_plan(study=study, plan=plan, written=written)
        except BaseException:
            for name in written:
                default_storage.delete(name)
            raise
    return summary


@transaction.atomic
def _write_plan(*, study: Study, plan: ImportPlan, written: list[str]) -> ImportSummary:
    assets: list[ImageAsset] = []

    def store(info) -> ImageAsset:
        asset = image_asset_store(info=info, sha256=file_sha256(info.path), written=written)
        assets.append(asset)
        return asset

    scenes: dict[str, Scene] = {}
    for name, info in plan.references.items():
        scenes[name] = Scene.objects.create(
            study=study,
            name=name,
            reference=store(info),
            input=store(plan.inputs[name]) if name in plan.inputs else None,
            width=info.width,
            height=info.height,
        )
    outputs: list[Output] = []
    for method_plan in plan.methods.values():
        method = Method.objects.create(
            study=study,
            name=method_plan.name,
            kind=method_plan.kind,
            runtime_s=method_plan.runtime_s,
            framework=method_plan.framework,
        )
        for scene_name, info in method_plan.outputs.items():
            outputs.append(Output.objects.create(method=method, scene=scenes[scene_name], image=store(info)))

    from studies import tasks  # tasks import services; keep the cycle out of module load

    output_ids = [o.pk for o in outputs]
    asset_ids = [a.pk for a in assets]
    transaction.on_commit(lambda: [tasks.output_metrics_compute.delay(pk) for pk in output_ids])
    transaction.on_commit(lambda: [tasks.image_tiles_build.delay(pk) for pk in asset_ids])
    return ImportSummary(scenes=len(scenes), methods=len(plan.methods), outputs=len(outputs))


def output_metrics_compute(*, output: Output) -> Output:
    """Compute PSNR and SSIM against the scene's reference; a failure is stored, not raised."""
    if output.image is None or output.scene.reference is None:
        output.metric_status = Output.MetricStatus.FAILED
        output.metric_error = "No image to compare: the output or its scene's reference is missing."
    else:
        # Here, not at the top: every web worker imports this module (the admin does) and
        # none computes a metric, and scikit-image brings SciPy with it.
        from studies.metrics import compute_metrics, load_pixels

        try:
            reference = load_pixels(Path(output.scene.reference.file.path))
            result = load_pixels(Path(output.image.file.path))
            psnr, ssim, metric_settings = compute_metrics(reference, result)
        except Exception as exc:  # noqa: BLE001 - any failure becomes a readable error on the row
            logger.warning("metrics failed for output %s: %s", output.pk, exc)
            output.metric_status = Output.MetricStatus.FAILED
            output.metric_error = f"{type(exc).__name__}: {exc}"
        else:
            output.psnr, output.ssim, output.metric_settings = psnr, ssim, metric_settings
            output.metric_status = Output.MetricStatus.DONE
            output.metric_error = ""
    output.save(update_fields=["psnr", "ssim", "metric_settings", "metric_status", "metric_error"])
    return output


TILE_SIZE = 256


def image_tiles_build(*, asset: ImageAsset) -> ImageAsset:
    """Build the lossless Deep Zoom pyramid (PNG tiles) of an image, once per content.

    The pyramid is written to a temporary folder and moved into place in one rename, so
    a worker killed halfway leaves no half-built pyramid and a rerun starts clean.
    """
    relative = f"tiles/{asset.sha256}"
    target = Path(settings.MEDIA_ROOT) / relative
    try:
        if not (target / "pyramid.dzi").is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            scratch = Path(tempfile.mkdtemp(prefix=f".{asset.sha256[:8]}-", dir=target.parent))
            try:
                import pyvips  # here, for the same reason as the metrics' imports

                image = pyvips.Image.new_from_file(asset.file.path, access="sequential")
                image.dzsave(
                    str(scratch / "pyramid"),
                    suffix=".png[compression=6]",
                    tile_size=TILE_SIZE,
                    overlap=1,
                    layout="dz",
                )
                try:
                    scratch.rename(target)
                except OSError:
                    if not (target / "pyramid.dzi").is_file():
                        raise
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
    except Exception as exc:  # noqa: BLE001 - stored for the organizer; the viewer falls back to the file
        logger.warning("tiles failed for asset %s: %s", asset.pk, exc)
        asset.tile_status, asset.tile_error = ImageAsset.TileStatus.FAILED, f"{type(exc).__name__}: {exc}"
    else:
        asset.tile_status, asset.tile_error, asset.tiles_dir = ImageAsset.TileStatus.DONE, "", relative
    asset.save(update_fields=["tile_status", "tile_error", "tiles_dir"])
    return asset


@transaction.atomic
def study_open(*, study: Study) -> Study:
    study = Study.objects.select_for_update().get(pk=study.pk)
    if study.status == Study.Status.OPEN:
        return study
    problems: list[str] = []
    if not study.scenes.exists():
        problems.append("it has no scenes")
    if not study.methods.exists():
        problems.append("it has no methods")
    missing = selectors.study_missing_outputs(study=study)
    if missing:
        shown = ", ".join(f"{m} / {s}" for m, s in missing[:10])
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        problems.append(f"{len(missing)} output(s) are missing: {shown}{more}")
    if problems:
        raise StudyStateError(f"'{study.title}' cannot be opened: " + "; ".join(problems) + ".")
    study.status = Study.Status.OPEN
    study.opened_at = study.opened_at or timezone.now()
    study.save(update_fields=["status", "opened_at"])
    return study


@transaction.atomic
def study_close(*, study: Study) -> Study:
    study = Study.objects.select_for_update().get(pk=study.pk)
    if study.status != Study.Status.OPEN:
        raise StudyStateError(f"'{study.title}' is {study.status}: only an open study can be closed.")
    study.status = Study.Status.CLOSED
    study.closed_at = timezone.now()
    study.save(update_fields=["status", "closed_at"])
    return study
