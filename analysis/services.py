"""Writes of the analysis app: importing outside votes, running and storing analyses."""

from __future__ import annotations

import logging
import secrets
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_slug
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from analysis import results as analysis_results
from analysis.frames import run_ratings_frame
from analysis.imports import ParsedVotes, Problem, RatingsImportError, VoteRow, parse_votes
from analysis.models import AnalysisRun
from analysis.selectors import study_methods_frame
from raters import selectors as rater_selectors
from raters.models import Rater, Rating, Session, Trial
from raters.services import output_loads_add
from studies.models import Method, Output, Scene, Study
from studies.scales import SCALE_LEVELS, ScalePreset
from studies.services import study_create

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImportSummary:
    study: Study
    study_created: bool
    scenes_created: int
    methods_created: int
    outputs_created: int
    raters_created: int
    votes: int


def _check_against_study(study: Study, rows: list[VoteRow]) -> list[Problem]:
    """Problems that need the stored study: unknown names, votes already stored."""
    problems: list[Problem] = []
    # A study with images was built by the image import: its scenes and methods are the
    # truth, and a name the CSV invents is a typo. A ratings-only study grows with the CSV.
    has_images = (
        Scene.objects.filter(study=study, reference__isnull=False).exists()
        or Output.objects.filter(method__study=study, image__isnull=False).exists()
    )
    if has_images:
        scenes = set(Scene.objects.filter(study=study).values_list("name", flat=True))
        methods = set(Method.objects.filter(study=study).values_list("name", flat=True))
        outputs = set(Output.objects.filter(method__study=study).values_list("method__name", "scene__name"))
        for row in rows:
            if row.scene not in scenes:
                problems.append(Problem(row.line, f"unknown scene {row.scene!r} in study {study.slug!r}"))
            if row.method not in methods:
                problems.append(Problem(row.line, f"unknown method {row.method!r} in study {study.slug!r}"))
            if row.scene in scenes and row.method in methods and (row.method, row.scene) not in outputs:
                problems.append(Problem(row.line, f"method {row.method!r} has no output for scene {row.scene!r}"))
    stored = set(
        Rating.objects.filter(
            trial__session__study=study, trial__session__rater__platform=Rater.Platform.IMPORTED
        ).values_list(
            "trial__session__rater__external_id",
            "trial__output__scene__name",
            "trial__output__method__name",
        )
    )
    for row in rows:
        if (row.rater, row.scene, row.method) in stored:
            problems.append(
                Problem(
                    row.line,
                    f"duplicate vote: rater {row.rater!r} already has a stored vote for method "
                    f"{row.method!r} on scene {row.scene!r}",
                )
            )
    return problems


@transaction.atomic
def ratings_import(
    *,
    study_slug: str,
    data: bytes | str,
    title: str = "",
    scale_preset: str = ScalePreset.AIM5,
    protocol: str = Study.Protocol.REFERENCE,
) -> ImportSummary:
    """Import votes collected elsewhere (CSV ``rater,scene,method,score[,response_ms]``).

    All or nothing: every problem in the file is collected and raised together as
    :class:`~analysis.imports.RatingsImportError`, and the transaction leaves no row
    behind. A new slug creates the study (with ``scale_preset``); scenes, methods and
    outputs the CSV names are created when the study has no images of its own.
    """
    study = Study.objects.select_for_update().filter(slug=study_slug).first()
    if study is None:
        try:
            validate_slug(study_slug)
        except ValidationError:
            message = f"{study_slug!r} is not a valid slug (letters, digits, - and _)"
            raise RatingsImportError([Problem(0, message)]) from None
        if scale_preset not in SCALE_LEVELS:
            raise RatingsImportError([Problem(0, f"unknown scale preset {scale_preset!r}")])
        scores = [score for score, _ in SCALE_LEVELS[scale_preset]]
    else:
        scores = study.scores
    parsed: ParsedVotes = parse_votes(data, scores=scores)
    problems = list(parsed.problems)
    if study is not None and parsed.rows:
        problems += _check_against_study(study, parsed.rows)
    if problems:
        raise RatingsImportError(problems)

    study_created = study is None
    if study is None:
        study = study_create(title=title or study_slug, slug=study_slug, scale_preset=scale_preset, protocol=protocol)
    return _write_votes(study, parsed.rows, study_created=study_created)


def _ids_creating_missing(queryset, keys: set, key_fields: tuple[str, ...], build) -> tuple[dict, int]:
    """Ids of ``queryset``'s rows by ``key_fields``, and how many rows were created: the
    ``keys`` it lacks are created first with ``build(key)``, in one bulk insert."""

    def read() -> dict:
        rows = queryset.values_list(*key_fields, "id")
        return {(row[:-1] if len(key_fields) > 1 else row[0]): row[-1] for row in rows}

    ids = read()
    missing = sorted(keys - ids.keys())
    if missing:
        queryset.model.objects.bulk_create([build(key) for key in missing])
        ids = read()
    return ids, len(missing)


def _write_votes(study: Study, rows: list[VoteRow], *, study_created: bool) -> ImportSummary:
    scenes, scenes_created = _ids_creating_missing(
        Scene.objects.filter(study=study), {r.scene for r in rows}, ("name",), lambda n: Scene(study=study, name=n)
    )
    methods, methods_created = _ids_creating_missing(
        Method.objects.filter(study=study), {r.method for r in rows}, ("name",), lambda n: Method(study=study, name=n)
    )
    outputs, outputs_created = _ids_creating_missing(
        Output.objects.filter(method__study=study),
        {(r.method, r.scene) for r in rows},
        ("method__name", "scene__name"),
        # No image, so no PSNR/SSIM can ever be computed: say so rather than leave the
        # output pending forever.
        lambda key: Output(
            method_id=methods[key[0]],
            scene_id=scenes[key[1]],
            metric_status=Output.MetricStatus.FAILED,
            metric_error="no image: imported ratings only",
        ),
    )
    # Rater ids are unique per platform, so a rater imported into two studies is one row
    # with a session in each.
    external_ids = {r.rater for r in rows}
    raters, raters_created = _ids_creating_missing(
        Rater.objects.filter(platform=Rater.Platform.IMPORTED, external_id__in=external_ids),
        external_ids,
        ("external_id",),
        lambda external_id: Rater(platform=Rater.Platform.IMPORTED, external_id=external_id),
    )
    now = timezone.now()
    sessions, _ = _ids_creating_missing(
        Session.objects.filter(study=study, rater_id__in=raters.values()),
        set(raters.values()),
        ("rater_id",),
        lambda rater_id: Session(
            rater_id=rater_id,
            study=study,
            token=secrets.token_urlsafe(32),
            status=Session.Status.COMPLETE,
            completed_at=now,
        ),
    )
    # Continue each session's positions after what an earlier import stored.
    next_position: dict[int, int] = defaultdict(int)
    for session_id, position in Trial.objects.filter(session_id__in=sessions.values()).values_list(
        "session_id", "position"
    ):
        next_position[session_id] = max(next_position[session_id], position + 1)

    trials: list[Trial] = []
    for row in rows:
        session_id = sessions[raters[row.rater]]
        trials.append(
            Trial(
                session_id=session_id,
                output_id=outputs[(row.method, row.scene)],
                position=next_position[session_id],
                kind=Trial.Kind.RATING,
                token=secrets.token_urlsafe(24),
            )
        )
        next_position[session_id] += 1
    # bulk_create sets primary keys on PostgreSQL and SQLite >= 3.35 (RETURNING).
    Trial.objects.bulk_create(trials, batch_size=2000)
    # Answered trials count towards coverage: a live study assigns around them.
    output_loads_add(trials=trials)
    Rating.objects.bulk_create(
        [
            Rating(trial_id=trial.pk, score=row.score, response_ms=row.response_ms)
            for trial, row in zip(trials, rows, strict=True)
        ],
        batch_size=2000,
    )
    return ImportSummary(
        study=study,
        study_created=study_created,
        scenes_created=scenes_created,
        methods_created=methods_created,
        outputs_created=outputs_created,
        raters_created=raters_created,
        votes=len(rows),
    )


def _versions() -> dict[str, str]:
    import numpy
    import pandas
    import scipy
    import statsmodels

    from analysis.stats.agreement import krippendorff_version

    return {
        "numpy": numpy.__version__,
        "pandas": pandas.__version__,
        "scipy": scipy.__version__,
        "statsmodels": statsmodels.__version__,
        "krippendorff": krippendorff_version(),
    }


@transaction.atomic
def analysis_run_create(*, study: Study, params: Mapping[str, Any] | None = None) -> AnalysisRun:
    """A pending run whose parameters are fixed now (defaults filled in, votes cut off).

    The cut-off is the newest rating id: ratings are append-only, so the run analyses
    exactly the votes stored at this moment, however late the task runs. The sessions
    excluded by hand now are stored with the run too, so that excluding one later
    changes the next run and never this one. The run's number (1, 2, 3 within the
    study) is taken under the study's row lock, so two runs started at once differ.
    """
    merged = analysis_results.params_with_defaults(params)
    Study.objects.select_for_update().filter(pk=study.pk).first()
    last = Rating.objects.filter(trial__session__study=study).order_by("-id").first()
    merged["upto_rating_id"] = last.pk if last else 0
    merged["scale_min"] = study.scale_min
    merged["scale_max"] = study.scale_max
    merged["manual_exclusions"] = list(rater_selectors.study_manual_exclusions(study=study).values())
    number = (AnalysisRun.objects.filter(study=study).aggregate(n=Max("number"))["n"] or 0) + 1
    return AnalysisRun.objects.create(study=study, number=number, params=merged)


def analysis_run_queue(*, study: Study, params: Mapping[str, Any] | None = None) -> AnalysisRun:
    """Create a run and hand it to Celery once the row is committed."""
    from analysis.tasks import analysis_run_task

    with transaction.atomic():
        run = analysis_run_create(study=study, params=params)
        # A worker must be able to read the run: queue only after the commit.
        transaction.on_commit(lambda: analysis_run_task.delay(run.pk))
    return run


def analysis_run_execute(*, run_id: int) -> AnalysisRun:
    """Compute a run's tables and store them; a failure is stored on the run.

    Statistics failures (no votes yet, a degenerate study) are deterministic, so they
    end the run as failed instead of being retried.
    """
    with transaction.atomic():
        run = AnalysisRun.objects.select_for_update().select_related("study").get(pk=run_id)
        if run.status == AnalysisRun.Status.DONE:
            return run  # a redelivered task (acks_late) must not compute twice
        run.status = AnalysisRun.Status.RUNNING
        run.stage = AnalysisRun.STAGES[0]
        run.save(update_fields=["status", "stage"])
    study = run.study
    try:
        every_vote = run_ratings_frame(run, include_excluded=True)
        votes = every_vote[every_vote["excluded_reason"] == ""].reset_index(drop=True)
        exclusions = run.params.get("manual_exclusions", [])
        if votes.empty and len(every_vote):
            raise ValueError(f"every vote is in a session excluded by hand ({len(exclusions)} sessions)")
        methods = study_methods_frame(study=study)
        _run_stage(run=run, stage=AnalysisRun.STAGES[1])
        computed = analysis_results.compute(votes, methods, run.params)
        computed.tables["manual_exclusions"] = analysis_results.manual_exclusions_table(every_vote, exclusions)
        if exclusions:
            computed.warnings.insert(
                0,
                f"{len(exclusions)} session{'s' if len(exclusions) != 1 else ''} excluded by hand "
                f"({len(every_vote) - len(votes)} votes): in no table of this run",
            )
    except Exception as exc:  # noqa: BLE001 - any failure is recorded for the organizer
        logger.exception("analysis run %s of %s failed", run.pk, study.slug)
        run.status = AnalysisRun.Status.FAILED
        run.error = f"{type(exc).__name__}: {exc}"
        run.finished_at = timezone.now()
        run.save(update_fields=["status", "error", "finished_at"])
        return run
    _run_stage(run=run, stage=AnalysisRun.STAGES[2])
    run.n_votes = len(votes)
    run.estimators = {
        "pipeline": analysis_results.PIPELINE,
        "tables": computed.estimators,
        "libraries": _versions(),
    }
    run.results = analysis_results.to_json(computed)
    run.status = AnalysisRun.Status.DONE
    run.error = ""
    run.finished_at = timezone.now()
    run.save(update_fields=["n_votes", "estimators", "results", "status", "error", "finished_at"])
    return run


def _run_stage(*, run: AnalysisRun, stage: str) -> None:
    """Record what a running run does now; committed at once, so the admin's Jobs page sees it."""
    run.stage = stage
    AnalysisRun.objects.filter(pk=run.pk).update(stage=stage)


def analysis_run_now(*, study: Study, params: Mapping[str, Any] | None = None) -> AnalysisRun:
    """Create and compute a run in this process (the export command needs it at once)."""
    run = analysis_run_create(study=study, params=params)
    return analysis_run_execute(run_id=run.pk)
