"""Writes of the analysis app: importing outside votes, running and storing analyses."""

from __future__ import annotations

import secrets
from collections import defaultdict
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from analysis.imports import ParsedVotes, Problem, RatingsImportError, VoteRow, parse_votes
from raters.models import Rater, Rating, Session, Trial
from studies.models import Method, Output, Scene, Study
from studies.scales import SCALE_LEVELS, ScalePreset, levels_for


@dataclass(frozen=True)
class ImportSummary:
    study: Study
    study_created: bool
    scenes_created: int
    methods_created: int
    outputs_created: int
    raters_created: int
    votes: int


def _study_create(*, title: str, slug: str, scale_preset: str, protocol: str) -> Study:
    # studies.services owns study creation (it copies the scale and sets defaults); the
    # direct create is the same thing for a tree where that service is not there yet.
    try:
        from studies.services import study_create
    except ImportError:
        return Study.objects.create(
            title=title,
            slug=slug,
            scale_preset=scale_preset,
            scale_levels=levels_for(scale_preset),
            protocol=protocol,
        )
    return study_create(title=title, slug=slug, scale_preset=scale_preset, protocol=protocol)


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
        outputs = set(
            Output.objects.filter(method__study=study).values_list("method__name", "scene__name")
        )
        for row in rows:
            if row.scene not in scenes:
                problems.append(
                    Problem(row.line, f"unknown scene {row.scene!r} in study {study.slug!r}")
                )
            if row.method not in methods:
                problems.append(
                    Problem(row.line, f"unknown method {row.method!r} in study {study.slug!r}")
                )
            if (
                row.scene in scenes
                and row.method in methods
                and (row.method, row.scene) not in outputs
            ):
                problems.append(
                    Problem(
                        row.line, f"method {row.method!r} has no output for scene {row.scene!r}"
                    )
                )
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
        study = _study_create(
            title=title or study_slug, slug=study_slug, scale_preset=scale_preset, protocol=protocol
        )
    return _write_votes(study, parsed.rows, study_created=study_created)


def _write_votes(study: Study, rows: list[VoteRow], *, study_created: bool) -> ImportSummary:
    scenes = dict(Scene.objects.filter(study=study).values_list("name", "id"))
    new_scenes = sorted({r.scene for r in rows} - scenes.keys())
    Scene.objects.bulk_create([Scene(study=study, name=name) for name in new_scenes])
    scenes = dict(Scene.objects.filter(study=study).values_list("name", "id"))

    methods = dict(Method.objects.filter(study=study).values_list("name", "id"))
    new_methods = sorted({r.method for r in rows} - methods.keys())
    Method.objects.bulk_create([Method(study=study, name=name) for name in new_methods])
    methods = dict(Method.objects.filter(study=study).values_list("name", "id"))

    outputs = {
        (m, s): pk
        for m, s, pk in Output.objects.filter(method__study=study).values_list(
            "method__name", "scene__name", "id"
        )
    }
    new_outputs = sorted({(r.method, r.scene) for r in rows} - outputs.keys())
    Output.objects.bulk_create(
        [
            # No image, so no PSNR/SSIM can ever be computed: say so rather than leave
            # the output pending forever.
            Output(
                method_id=methods[m],
                scene_id=scenes[s],
                metric_status=Output.MetricStatus.FAILED,
                metric_error="no image: imported ratings only",
            )
            for m, s in new_outputs
        ]
    )
    outputs = {
        (m, s): pk
        for m, s, pk in Output.objects.filter(method__study=study).values_list(
            "method__name", "scene__name", "id"
        )
    }

    # Rater ids are unique per platform, so a rater imported into two studies is one row
    # with a session in each.
    external_ids = sorted({r.rater for r in rows})
    raters = dict(
        Rater.objects.filter(
            platform=Rater.Platform.IMPORTED, external_id__in=external_ids
        ).values_list("external_id", "id")
    )
    new_raters = [e for e in external_ids if e not in raters]
    Rater.objects.bulk_create(
        [Rater(platform=Rater.Platform.IMPORTED, external_id=e) for e in new_raters]
    )
    raters = dict(
        Rater.objects.filter(
            platform=Rater.Platform.IMPORTED, external_id__in=external_ids
        ).values_list("external_id", "id")
    )

    now = timezone.now()
    sessions = dict(
        Session.objects.filter(study=study, rater_id__in=raters.values()).values_list(
            "rater_id", "id"
        )
    )
    Session.objects.bulk_create(
        [
            Session(
                rater_id=rater_id,
                study=study,
                token=secrets.token_urlsafe(32),
                status=Session.Status.COMPLETE,
                completed_at=now,
            )
            for rater_id in raters.values()
            if rater_id not in sessions
        ]
    )
    sessions = dict(
        Session.objects.filter(study=study, rater_id__in=raters.values()).values_list(
            "rater_id", "id"
        )
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
        scenes_created=len(new_scenes),
        methods_created=len(new_methods),
        outputs_created=len(new_outputs),
        raters_created=len(new_raters),
        votes=len(rows),
    )
