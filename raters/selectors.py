"""Reads of the rater flow. Everything a rater's browser receives about an image is built
here, from the asset's random token only (never a method, scene or file name)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any

from django.db.models import Count, Prefetch, Q, QuerySet
from django.urls import reverse

from raters.models import Session, Trial
from studies.models import ImageAsset, Method, Output, Study
from studies.protocols import RESULT_LABEL, wording

# A trial counts for its session while it is live: answered, or not handed to another
# rater. It is open while it waits for its vote.
LIVE = Q(released_at__isnull=True) | Q(rating__isnull=False)
ANSWERED = Q(rating__isnull=False)
OPEN = Q(released_at__isnull=True, rating__isnull=True)

# The trials a rater's "next trial" shows: the one to answer, and the one after it whose
# images the page loads ahead.
SHOWN = 2


def study_for_rater(*, slug: str) -> Study | None:
    """A study a rater may reach: open, or closed (to finish a started session)."""
    return Study.objects.exclude(status=Study.Status.DRAFT).filter(slug=slug).first()


def session_by_token(*, token: str) -> Session | None:
    return Session.objects.select_related("study").filter(token=token).first()


def session_of_rater(*, study: Study, platform: str, external_id: str) -> Session | None:
    """The session a rater known by this platform id has in the study, if any."""
    return (
        Session.objects.select_related("study", "rater")
        .filter(study=study, rater__platform=platform, rater__external_id=external_id)
        .first()
    )


def _shown_trials() -> QuerySet[Trial]:
    return (
        Trial.objects.filter(OPEN)
        .select_related("output__image", "output__scene__reference", "output__scene__input")
        .order_by("position")
    )


def session_with_shown_trials(*, token: str) -> Session | None:
    """The session with its study, and in ``session.shown`` its first ``SHOWN`` open trials
    with their output's and scene's images: what a "next trial" shows (two queries)."""
    shown = Prefetch("trials", queryset=_shown_trials()[:SHOWN], to_attr="shown")
    return Session.objects.select_related("study").prefetch_related(shown).filter(token=token).first()


def session_progress(*, session: Session) -> dict[str, int]:
    """The session's live trials and how many are answered, rated and training apart, in
    one query."""
    counted = Q(kind__in=Trial.COUNTED_KINDS)
    training = Q(kind=Trial.Kind.TRAINING)
    return session.trials.aggregate(
        total=Count("pk", filter=counted & LIVE),
        answered=Count("pk", filter=counted & ANSWERED),
        training_total=Count("pk", filter=training & LIVE),
        training_answered=Count("pk", filter=training & ANSWERED),
    )


def status_from_progress(progress: dict[str, int]) -> str:
    """Training until the training trials are answered, rating until every live trial is,
    then complete."""
    if progress["training_answered"] < progress["training_total"]:
        return Session.Status.TRAINING
    if progress["answered"] < progress["total"]:
        return Session.Status.RATING
    return Session.Status.COMPLETE


def output_load_drift(*, study: Study) -> dict[int, tuple[int, int]]:
    """The study's outputs whose stored load is not the count of their trials that it
    stands for, as {output id: (stored, counted)}: empty when every load is right. A check
    for tests, benchmarks and operators; assignment reads only the stored loads."""
    counted = Q(trials__kind__in=Trial.COUNTED_KINDS) & (
        Q(trials__released_at__isnull=True) | Q(trials__rating__isnull=False)
    )
    rows = (
        Output.objects.filter(method__study=study)
        .annotate(counted=Count("trials", filter=counted))
        .values_list("id", "load__trials", "counted")
    )
    return {output_id: (stored or 0, n) for output_id, stored, n in rows if (stored or 0) != n}


def image_source(*, image: ImageAsset) -> dict[str, Any]:
    """Where the viewer fetches an image: the Deep Zoom pyramid if built, else the file,
    both under the asset's random token."""
    ext = PurePosixPath(image.file.name).suffix.lstrip(".").lower() or "png"
    tiled = image.tile_status == ImageAsset.TileStatus.DONE
    return {
        "url": reverse("studies:image-file", kwargs={"token": image.token, "ext": ext}),
        "tiles": reverse("studies:tiles-dzi", kwargs={"token": image.token}) if tiled else None,
        "width": image.width,
        "height": image.height,
    }


def trial_panes(*, trial: Trial, protocol: str) -> list[dict[str, Any]]:
    """The panes of a trial, left to right, each with a neutral label."""
    said = wording(protocol)
    panes = []
    if said.beside_field:
        panes.append(("reference", said.beside_label, getattr(trial.output.scene, said.beside_field)))
    panes.append(("result", RESULT_LABEL, trial.output.image))
    return [
        {"role": role, "label": label, **image_source(image=image)} for role, label, image in panes if image is not None
    ]


def trial_phase(trial: Trial) -> str:
    # Controls are indistinguishable from rated trials for the rater.
    return "training" if trial.kind == Trial.Kind.TRAINING else "rating"


def shown_summaries(*, session: Session, progress: dict[str, int]) -> list[dict[str, Any]]:
    """The shown trials (``session.shown``) as the rater's browser gets them, numbered
    within their phase after the answered ones."""
    summaries = []
    seen = {"training": progress["training_answered"], "rating": progress["answered"]}
    totals = {"training": progress["training_total"], "rating": progress["total"]}
    for trial in session.shown:
        phase = trial_phase(trial)
        seen[phase] += 1
        summaries.append(
            {
                "token": trial.token,
                "phase": phase,
                "number": seen[phase],
                "total": totals[phase],
                "panes": trial_panes(trial=trial, protocol=session.study.protocol),
            }
        )
    return summaries


def training_expected(*, method_kind: str, scores: Sequence[int]) -> tuple[int, int]:
    """The answers a careful rater gives a training pair: the hidden reference near the
    top of the scale, the low anchor near the bottom, a typical output in between."""
    low, high = scores[0], scores[-1]
    if method_kind == Method.Kind.HIDDEN_REFERENCE:
        return (scores[-2] if len(scores) > 1 else high, high)
    if method_kind == Method.Kind.LOW_ANCHOR:
        return (low, scores[1] if len(scores) > 1 else low)
    if len(scores) > 2:
        return (scores[1], scores[-2])
    return (low, high)


def training_feedback(*, study: Study, method_kind: str, score: int) -> dict[str, Any]:
    low, high = training_expected(method_kind=method_kind, scores=study.scores)
    if method_kind == Method.Kind.HIDDEN_REFERENCE:
        hint = "This result was identical to the reference: it deserves the top of the scale."
    elif method_kind == Method.Kind.LOW_ANCHOR:
        hint = "This result was strongly degraded: it belongs at the bottom of the scale."
    else:
        hint = "This was a typical result: look at 100% for noise, colour shifts and lost detail."
    expected = [{"score": s, "label": study.label_for(s)} for s in study.scores if low <= s <= high]
    return {"ok": low <= score <= high, "expected": expected, "hint": hint}


def completion_redirect(*, session: Session) -> str:
    url = session.study.completion_redirect_url
    if not url or not session.completion_code:
        return ""
    return url.replace("{code}", session.completion_code)


def session_summary(*, session: Session, progress: dict[str, int] | None = None) -> dict[str, Any]:
    """What a rater's browser learns of its session: its ``progress`` as
    :func:`session_progress` counts it, counted when not given."""
    if progress is None:
        progress = session_progress(session=session)
    complete = session.status == Session.Status.COMPLETE
    return {
        "token": session.token,
        "status": session.status,
        "progress": progress,
        "completion_code": session.completion_code if complete else None,
        "completion_page": reverse("raters:done", kwargs={"token": session.token}) if complete else None,
        "rating_page": reverse("raters:rate", kwargs={"token": session.token}),
    }
