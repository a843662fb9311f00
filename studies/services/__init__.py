"""Writes for studies: creation, import, metrics, tile pyramids, opening and closing.

The admin's upload jobs, which run imports on a worker, are in studies.services.jobs.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Protocol

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import models, transaction
from django.utils import timezone

from studies import selectors
from studies.imaging import ImageInfo, file_sha256, image_asset_store, inspect_image, with_padding
from studies.importer import (
    ImportPlan,
    ImportProblems,
    count_images,
    opened_source,
    plan_import,
    plan_replacement,
)
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


class ImportProgress(Protocol):
    """Receives an import's progress (studies.services.jobs.JobProgress records it on its job)."""

    def stage(self, name: str) -> None: ...

    def start_checking(self, total: int) -> None: ...

    def file_checked(self) -> None: ...


@dataclass(frozen=True)
class ImportSummary:
    scenes: int
    methods: int
    outputs: int


def study_import(
    *, study: Study, source: Path, source_name: str | None = None, progress: ImportProgress | None = None
) -> ImportSummary:
    """Import a folder or zip into the draft ``study``: everything or, on any problem, nothing.

    Into a study with scenes and methods already, new scenes need an output of every
    method and new methods one of every scene (studies.importer.plan_import). Raises
    ImportProblems listing every problem found. Files are written only after the whole
    source validated; if writing fails halfway, the rows roll back and the files this
    import added are deleted.
    """
    study_importable_check(study=study, scenes_allowed=True)
    return _import(study=study, source=source, source_name=source_name, scenes_allowed=True, progress=progress)


def study_methods_add(
    *, study: Study, source: Path, source_name: str | None = None, progress: ImportProgress | None = None
) -> ImportSummary:
    """Add methods (a late team) to a draft or open study from a folder or zip of
    ``methods/<method>/<scene>.*`` (and an optional methods.csv): one output per scene
    the study has, all or nothing, as study_import.

    In an open study the new outputs start with no votes; session starts give them the
    next trials until they have the study's votes per output (raters.assignment, rule 4).
    """
    study_importable_check(study=study, scenes_allowed=False)
    return _import(study=study, source=source, source_name=source_name, scenes_allowed=False, progress=progress)


def study_importable_check(*, study: Study, scenes_allowed: bool) -> None:
    """Raise StudyStateError unless the study takes an import now: scenes and methods while
    it is a draft, methods alone (a late team) while it is a draft or open."""
    if scenes_allowed and study.status != Study.Status.DRAFT:
        raise StudyStateError(f"'{study.title}' is {study.status}: images can only be imported into a draft study")
    if not scenes_allowed and study.status not in (Study.Status.DRAFT, Study.Status.OPEN):
        raise StudyStateError(
            f"'{study.title}' is {study.status}: methods can be added to a draft or open study (open it again first)"
        )


def _known_references(study: Study) -> dict[str, ImageInfo | None]:
    """Each scene of ``study`` with its stored reference (header only: checked at import)."""
    known: dict[str, ImageInfo | None] = {}
    for scene in study.scenes.select_related("reference"):
        asset = scene.reference
        known[scene.name] = (
            inspect_image(Path(asset.original.path), max_pixels=asset.width * asset.height, decode=False)
            if asset is not None
            else None
        )
    return known


def _import(
    *, study: Study, source: Path, source_name: str | None, scenes_allowed: bool, progress: ImportProgress | None
) -> ImportSummary:
    if progress is not None:
        progress.stage("unpacking")
    with opened_source(Path(source), name=source_name) as opened:
        if progress is not None:
            progress.start_checking(count_images(opened.root))
        plan = plan_import(
            opened.root,
            protocol=study.protocol,
            known_references=_known_references(study),
            existing_methods=set(study.methods.values_list("name", flat=True)),
            scenes_allowed=scenes_allowed,
            problems=opened.problems,
            on_file=progress.file_checked if progress is not None else None,
        )
        if progress is not None:
            progress.stage("storing the files")
        written: list[str] = []
        try:
            statuses = (Study.Status.DRAFT,) if scenes_allowed else (Study.Status.DRAFT, Study.Status.OPEN)
            summary = _write_plan(study=study, plan=plan, written=written, statuses=statuses)
        except BaseException:
            for name in written:
                default_storage.delete(name)
            raise
    return summary


@transaction.atomic
def _write_plan(*, study: Study, plan: ImportPlan, written: list[str], statuses: tuple[str, ...]) -> ImportSummary:
    # Under the study's lock, which session starts take too: a start sees all of a new
    # method's outputs or none, and two imports of one name cannot both pass.
    locked = Study.objects.select_for_update().get(pk=study.pk)
    if locked.status not in statuses:
        raise StudyStateError(f"'{study.title}' is {locked.status} now: nothing was imported.")
    taken = set(Method.objects.filter(study=study, name__in=list(plan.methods)).values_list("name", flat=True))
    clashes = sorted(taken - {m.name for m in plan.methods.values() if m.existing})
    if clashes:
        raise ImportProblems([f"methods/{name}: method '{name}' already exists in this study" for name in clashes])
    assets: list[ImageAsset] = []

    def store(info) -> ImageAsset:
        asset = image_asset_store(info=info, sha256=file_sha256(info.path), written=written)
        assets.append(asset)
        return asset

    scenes: dict[str, Scene] = {scene.name: scene for scene in study.scenes.all()}
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
        if method_plan.existing:
            method = Method.objects.get(study=study, name=method_plan.name)
        else:
            method = Method.objects.create(
                study=study,
                name=method_plan.name,
                kind=method_plan.kind,
                runtime_s=method_plan.runtime_s,
                framework=method_plan.framework,
            )
        for scene_name, info in method_plan.outputs.items():
            outputs.append(Output.objects.create(method=method, scene=scenes[scene_name], image=store(info)))
    _queue_images(outputs=outputs, assets=assets)
    added = sum(not method_plan.existing for method_plan in plan.methods.values())
    return ImportSummary(scenes=len(plan.references), methods=added, outputs=len(outputs))


def _queue_images(*, outputs: list[Output], assets: list[ImageAsset]) -> None:
    """PSNR/SSIM of ``outputs`` and tile pyramids of ``assets``, once the transaction commits."""
    from studies import tasks  # tasks import services; keep the cycle out of module load

    output_ids = [o.pk for o in outputs]
    asset_ids = [a.pk for a in assets]
    transaction.on_commit(lambda: [tasks.output_metrics_compute.delay(pk) for pk in output_ids])
    transaction.on_commit(lambda: [tasks.image_tiles_build.delay(pk) for pk in asset_ids])


def output_replace(*, output: Output, source: Path, source_name: str) -> Output:
    """Replace the image of ``output`` (one method's result on one scene) before the study
    opens: the new file is checked like an import's, stored under a new token, its PSNR/SSIM
    and tiles computed again; the old asset and its files (those nothing else uses) go
    once the change has committed. Refused once the study has opened: votes were given on
    what raters saw.
    """
    study = output.method.study
    output_replaceable_check(output=output, study=study)
    reference = output.scene.reference
    known = (
        inspect_image(Path(reference.original.path), max_pixels=reference.width * reference.height, decode=False)
        if reference is not None
        else None
    )
    info = plan_replacement(source, label=source_name, reference=known)
    written: list[str] = []
    try:
        return _output_image_swap(output=output, info=info, written=written)
    except BaseException:
        for name in written:
            default_storage.delete(name)
        raise


def output_replaceable_check(*, output: Output, study: Study) -> None:
    from raters.models import Trial  # raters depends on studies, not the reverse, at import time

    if study.status != Study.Status.DRAFT:
        votes = Trial.objects.filter(output=output, rating__isnull=False).count()
        held = f": {votes} vote(s) were given on this image" if votes else ""
        raise StudyStateError(
            f"'{study.title}' is {study.status}: an output can only be replaced before the study opens{held}. "
            "Add the corrected result as a new method instead."
        )


@transaction.atomic
def _output_image_swap(*, output: Output, info, written: list[str]) -> Output:
    study = Study.objects.select_for_update().get(pk=output.method.study_id)
    output = Output.objects.select_for_update(of=("self",)).select_related("image").get(pk=output.pk)
    output_replaceable_check(output=output, study=study)
    old = output.image
    new = image_asset_store(info=info, sha256=file_sha256(info.path), written=written)
    output.image = new
    output.psnr = output.ssim = None
    output.metric_status, output.metric_error, output.metric_settings = Output.MetricStatus.PENDING, "", {}
    output.save(update_fields=["image", "psnr", "ssim", "metric_status", "metric_error", "metric_settings"])
    if old is not None:
        files = [old.original.name, old.file.name]
        tiles = old.tiles_dir or (f"tiles/{Path(old.file.name).stem}" if old.file else "")
        old.delete()
        transaction.on_commit(lambda: _asset_files_remove(names=files, tiles_dir=tiles))
    _queue_images(outputs=[output], assets=[new])
    return output


def _asset_files_remove(*, names: list[str], tiles_dir: str) -> None:
    """Delete the files of a removed asset that no other asset refers to (an original is
    shared by every asset of the same bytes, e.g. the hidden reference's and the reference's)."""
    for name in names:
        in_use = ImageAsset.objects.filter(models.Q(original=name) | models.Q(file=name)).exists()
        if name and not in_use:
            default_storage.delete(name)
    if tiles_dir and not ImageAsset.objects.filter(tiles_dir=tiles_dir).exists():
        shutil.rmtree(Path(settings.MEDIA_ROOT) / tiles_dir, ignore_errors=True)


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
            # The rater copies: the pixels raters judge, as PNG whatever was uploaded.
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
TILE_OVERLAP = 1
# How libvips writes each tile format. Lossless WebP at effort 2: a third fewer bytes
# than PNG on the study's photographs; higher efforts cost several times the time for
# under 1% fewer bytes. exact: the colour under fully transparent pixels is kept too.
TILE_SUFFIXES = {"png": ".png[compression=6]", "webp": ".webp[lossless=true,exact=true,effort=2]"}


def expected_tiles(width: int, height: int, tile_size: int = TILE_SIZE, *, fmt: str = "png") -> list[str]:
    """Every tile file (``<level>/<col>_<row>.<fmt>``) of a Deep Zoom pyramid of that size,
    down to the one-pixel level."""
    top = max(width, height) - 1
    levels = top.bit_length()  # ceil(log2(max side)); level 0 is one pixel
    names = []
    for level in range(levels + 1):
        scale = 2 ** (levels - level)
        w, h = -(-width // scale), -(-height // scale)
        names += [f"{level}/{c}_{r}.{fmt}" for c in range(-(-w // tile_size)) for r in range(-(-h // tile_size))]
    return names


def _pyramid_complete(folder: Path, width: int, height: int, fmt: str) -> bool:
    files = folder / "pyramid_files"
    return (folder / "pyramid.dzi").is_file() and all(
        (files / n).is_file() for n in expected_tiles(width, height, fmt=fmt)
    )


def tile_format_for(*, asset: ImageAsset) -> str:
    """The format of the asset's new pyramid: the configured one, except that a 16-bit
    image keeps PNG tiles (WebP holds 8 bits per channel)."""
    import pyvips  # here, for the same reason as the metrics' imports

    if settings.MOSAIC_TILE_FORMAT == "webp" and pyvips.Image.new_from_file(asset.file.path).format == "uchar":
        return "webp"
    return "png"


def image_tiles_build(*, asset: ImageAsset) -> ImageAsset:
    """Build the lossless Deep Zoom pyramid (WebP or PNG tiles, see
    :func:`tile_format_for`) of an asset's rater copy.

    Each asset has its own pyramid, each tile padded with random bytes like the copy
    (studies.imaging.with_padding), so the hidden reference's tiles never equal the
    reference's. The pyramid is written to a temporary folder, checked to hold every tile,
    and moved into place in one rename; only then is it marked done. A worker killed
    halfway leaves no half-built pyramid and a rerun starts clean. A complete pyramid of
    the same format already in place is kept.
    """
    relative = f"tiles/{Path(asset.file.name).stem}"
    target = Path(settings.MEDIA_ROOT) / relative
    try:
        if not asset.file:
            raise ValueError("the asset has no rater copy to tile")
        fmt = tile_format_for(asset=asset)
        if not _pyramid_complete(target, asset.width, asset.height, fmt):
            target.parent.mkdir(parents=True, exist_ok=True)
            scratch = Path(tempfile.mkdtemp(prefix=f".{target.name[:8]}-", suffix=".part", dir=target.parent))
            try:
                _dzsave(Path(asset.file.path), scratch, asset.width, asset.height, fmt)
                shutil.rmtree(target, ignore_errors=True)  # an incomplete or other-format pyramid
                try:
                    scratch.rename(target)
                except OSError:
                    if not _pyramid_complete(target, asset.width, asset.height, fmt):
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


def _dzsave(source: Path, scratch: Path, width: int, height: int, fmt: str) -> None:
    import pyvips  # here, for the same reason as the metrics' imports

    # fail_on: a damaged file must fail, not become grey tiles marked done.
    image = pyvips.Image.new_from_file(str(source), access="sequential", fail_on="error")
    # keep=icc: the tiles carry the colour profile, no other metadata.
    image.dzsave(
        str(scratch / "pyramid"),
        suffix=TILE_SUFFIXES[fmt],
        tile_size=TILE_SIZE,
        overlap=TILE_OVERLAP,
        layout="dz",
        keep="icc",
    )
    for tile in (scratch / "pyramid_files").rglob(f"*.{fmt}"):
        tile.write_bytes(with_padding(tile.read_bytes()))  # inside the scratch folder: no rename needed
    if not _pyramid_complete(scratch, width, height, fmt):
        raise ValueError("libvips did not write every tile of the pyramid")


def study_tiles_rebuild(*, study: Study) -> int:
    """Rebuild the study's tile pyramids that are not in the format new ones get (PNG
    pyramids built before WebP), and return how many were rebuilt.

    Not while the study is open: a pyramid being replaced is missing for a moment. Each
    rebuilt asset gets a new token, as its URLs are cached as immutable.
    """
    if study.status == Study.Status.OPEN:
        raise StudyStateError(
            f"'{study.title}' is open: close it before rebuilding its tiles (raters would miss tiles meanwhile)"
        )
    scenes = study.scenes.values_list("reference_id", "input_id")
    ids = {pk for pair in scenes for pk in pair}
    ids |= set(Output.objects.filter(method__study=study).values_list("image_id", flat=True))
    rebuilt = 0
    for asset in ImageAsset.objects.filter(pk__in=ids - {None}, tile_status=ImageAsset.TileStatus.DONE).order_by("pk"):
        folder = Path(settings.MEDIA_ROOT) / asset.tiles_dir
        if _pyramid_complete(folder, asset.width, asset.height, tile_format_for(asset=asset)):
            continue
        asset.token = secrets.token_urlsafe(24)
        asset.save(update_fields=["token"])
        image_tiles_build(asset=asset)
        rebuilt += 1
    return rebuilt


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


MANAGED_FOLDERS = ("images", "public", "tiles")


def media_orphans_remove(*, older_than: timedelta, dry_run: bool = False) -> list[str]:
    """Remove the files (and tile pyramids) under images/, public/ and tiles/ that no
    asset refers to, and the temporary files and folders of writes that never finished,
    when they are older than ``older_than``; return their names relative to MEDIA_ROOT.

    A killed import or worker leaves such files behind: its rows rolled back, or it died
    between writing a file and renaming it into place. The age keeps the files of an
    import still running (written before its transaction commits) out of reach.
    """
    root = Path(settings.MEDIA_ROOT)
    referenced: set[str] = set()
    for original, copy, tiles in ImageAsset.objects.values_list("original", "file", "tiles_dir").iterator():
        referenced.update(name for name in (original, copy, tiles) if name)
        if copy:
            referenced.add(f"tiles/{Path(copy).stem}")  # the pyramid a pending build makes
    cutoff = time.time() - older_than.total_seconds()
    removed: list[str] = []

    def old(path: Path) -> bool:
        return path.lstat().st_mtime < cutoff

    for folder in MANAGED_FOLDERS:
        base = root / folder
        if not base.is_dir():
            continue
        if folder == "tiles":
            candidates = list(base.iterdir())
        else:
            candidates = [p for p in base.rglob("*") if p.is_file() or p.is_symlink()]
        for path in sorted(candidates):
            name = path.relative_to(root).as_posix()
            if name in referenced or not old(path):
                continue
            removed.append(name)
            if not dry_run:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
    return removed
