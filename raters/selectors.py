"""Reads of the rater flow. Everything a rater's browser receives about an image is built
here, from the asset's random token only (never a method, scene or file name)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import PurePosixPath
from typing import Any

from django.db.models import Count, Q
from django.urls import reverse

from raters.models import Rating, Session, Trial
from studies.models import ImageAsset, Method, Output, Study
from studies.protocols import RESULT_LABEL, wording

# A trial counts for its session while it is live: answered, or not handed to another
# rater. It is open while it waits for its vote.
LIVE = Q(released_at__isnull=True) | Q(rating__isnull=False)
OPEN = Q(released_at__isnull=True, rating__isnull=True)

# The trials a rater's "next trial" shows: the one to answer, the one after it whose
# images the page loads ahead, and the one after that, whose images the page starts
# loading the moment the rater votes (before the next answer arrives).
SHOWN = 3


def study_for_rater(*, slug: str) -> Study | None:
    """A study a rater may reach: open, or closed (to finish a started session)."""
    return Study.objects.exclude(status=Study.Status.DRAFT).filter(slug=slug).first()


def session_by_token(*, token: str) -> Session | None:
    # get(), not first(): the token is unique, and first() would compile an ORDER BY.
    try:
        return Session.objects.select_related("study").get(token=token)
    except Session.DoesNotExist:
        return None


def session_of_rater(*, study: Study, platform: str, external_id: str) -> Session | None:
    """The session a rater known by this platform id has in the study, if any."""
    return (
        Session.objects.select_related("study", "rater")
        .filter(study=study, rater__platform=platform, rater__external_id=external_id)
        .first()
    )


# Seconds a pair takes when the study has too few votes to tell: looking, at fit and at
# 100%, and waiting for the next pair.
SECONDS_PER_PAIR = 15
PRACTICE_PAIRS = 3


def session_plan(*, study: Study) -> dict[str, int]:
    """What a new session holds, for the entry page: its rated pairs, its practice pairs
    and about how many minutes both take, from the study's recent response times (their
    median) once it has a hundred votes, else ``SECONDS_PER_PAIR``."""
    recent = list(
        Rating.objects.filter(trial__session__study=study, response_ms__isnull=False)
        .order_by("-pk")
        .values_list("response_ms", flat=True)[:500]
    )
    seconds = SECONDS_PER_PAIR
    if len(recent) >= 100:
        seconds = sorted(recent)[len(recent) // 2] / 1000 + 2  # and the switch to the next pair
    practice = PRACTICE_PAIRS
    pairs = study.trials_per_session
    # One minute for reading the instructions, the rest rounded up.
    minutes = 1 + math.ceil((pairs + practice) * seconds / 60)
    return {"pairs": pairs, "practice": practice, "minutes": minutes}


# What the rater flow reads of each trial: where it stands, and its vote if any.
_TRIAL_FIELDS = (
    *("pk", "token", "kind", "released_at"),
    *("rating__id", "rating__score", "rating__response_ms", "rating__created_at"),
)
_IMAGE_FIELDS = ("token", "file", "tile_status", "width", "height")


def session_trials(*, session: Session, method: bool = False, panes: bool = False) -> list[dict[str, Any]]:
    """The session's trials in position order, as dicts of ``_TRIAL_FIELDS`` and, with
    ``method``, their method's kind (``output__method__kind``); with ``panes``, the fields
    of their result image (``output__image__...``) and of the image the protocol shows
    beside it (``output__scene__reference__...`` or ``...input__...``). One query: a
    session holds a few dozen trials."""
    fields = list(_TRIAL_FIELDS)
    if method:
        fields.append("output__method__kind")
    if panes:
        beside = wording(session.study.protocol).beside_field
        images = ["output__image"] + ([f"output__scene__{beside}"] if beside else [])
        fields += [f"{image}__{name}" for image in images for name in _IMAGE_FIELDS]
    return list(session.trials.order_by("position").values(*fields))


def is_open(trial: dict[str, Any]) -> bool:
    return trial["rating__id"] is None and trial["released_at"] is None


def progress_of(trials: Iterable[dict[str, Any]]) -> dict[str, int]:
    """A session's live trials (answered, or not handed to another rater), and how many
    are answered, rated and training apart."""
    progress = {"total": 0, "answered": 0, "training_total": 0, "training_answered": 0}
    for trial in trials:
        answered = trial["rating__id"] is not None
        if trial["released_at"] is not None and not answered:
            continue
        prefix = "training_" if trial["kind"] == Trial.Kind.TRAINING else ""
        progress[f"{prefix}total"] += 1
        progress[f"{prefix}answered"] += answered
    return progress


def session_progress(*, session: Session) -> dict[str, int]:
    return progress_of(session_trials(session=session))


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


def image_source(*, token: str, file: str, tile_status: str, width: int, height: int) -> dict[str, Any]:
    """Where the viewer fetches an image (an ImageAsset's fields): the Deep Zoom pyramid if
    built, else the file, both under the asset's random token."""
    ext = PurePosixPath(file).suffix.lstrip(".").lower() or "png"
    return {
        "url": reverse("studies:image-file", kwargs={"token": token, "ext": ext}),
        "tiles": reverse("studies:tiles-dzi", kwargs={"token": token})
        if tile_status == ImageAsset.TileStatus.DONE
        else None,
        "width": width,
        "height": height,
    }


def trial_panes(*, trial: dict[str, Any], protocol: str) -> list[dict[str, Any]]:
    """The panes of a trial read with ``panes`` (see :func:`session_trials`), left to
    right, each with a neutral label."""
    said = wording(protocol)
    panes = [("reference", said.beside_label, f"output__scene__{said.beside_field}")] if said.beside_field else []
    panes.append(("result", RESULT_LABEL, "output__image"))
    return [
        {"role": role, "label": label, **image_source(**{name: trial[f"{image}__{name}"] for name in _IMAGE_FIELDS})}
        for role, label, image in panes
        if trial[f"{image}__token"] is not None
    ]


def trial_phase(trial: dict[str, Any]) -> str:
    # Controls are indistinguishable from rated trials for the rater.
    return "training" if trial["kind"] == Trial.Kind.TRAINING else "rating"


def next_trials(*, session: Session) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """The session's progress and its first ``SHOWN`` open trials as the rater's browser
    gets them, numbered within their phase after the answered ones (one query)."""
    trials = session_trials(session=session, panes=True)
    progress = progress_of(trials)
    seen = {"training": progress["training_answered"], "rating": progress["answered"]}
    totals = {"training": progress["training_total"], "rating": progress["total"]}
    summaries = []
    for trial in [trial for trial in trials if is_open(trial)][:SHOWN]:
        phase = trial_phase(trial)
        seen[phase] += 1
        summaries.append(
            {
                "token": trial["token"],
                "phase": phase,
                "number": seen[phase],
                "total": totals[phase],
                "panes": trial_panes(trial=trial, protocol=session.study.protocol),
            }
        )
    return progress, summaries


def training_expected(*, method_kind: str, scores: Sequence[int], role: str | None = None) -> tuple[int, int]:
    """The answers a careful rater gives a training pair: the hidden reference near the
    top of the scale, the low anchor near the bottom, a typical output in between. In a
    study without controls (``role``, see raters.practice), the best output by PSNR in the
    upper half and the worst in the lower half."""
    low, high = scores[0], scores[-1]
    if method_kind == Method.Kind.HIDDEN_REFERENCE:
        return (scores[-2] if len(scores) > 1 else high, high)
    if method_kind == Method.Kind.LOW_ANCHOR:
        return (low, scores[1] if len(scores) > 1 else low)
    if role == "best":
        return (scores[len(scores) // 2], high)
    if role == "worst":
        return (low, scores[(len(scores) - 1) // 2])
    if len(scores) > 2:
        return (scores[1], scores[-2])
    return (low, high)


_PRACTICE_HINTS = {
    "best": "This was one of the most faithful results in the study (by an objective measure): "
    "differences, if there are any, are small and show at 100%.",
    "worst": "This was one of the weakest results in the study (by an objective measure): "
    "its flaws are visible even when the whole image fits the screen.",
    "middle": "This was a typical result: look at 100% for noise, colour shifts and lost detail.",
}


def training_feedback(*, study: Study, method_kind: str, score: int, role: str | None = None) -> dict[str, Any]:
    low, high = training_expected(method_kind=method_kind, scores=study.scores, role=role)
    if method_kind == Method.Kind.HIDDEN_REFERENCE:
        hint = "This result was identical to the reference: it deserves the top of the scale."
    elif method_kind == Method.Kind.LOW_ANCHOR:
        hint = "This result was strongly degraded: it belongs at the bottom of the scale."
    else:
        hint = _PRACTICE_HINTS.get(role or "middle", _PRACTICE_HINTS["middle"])
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


def study_manual_exclusions(*, study: Study) -> dict[int, dict[str, Any]]:
    """The study's sessions excluded by hand, by session id: the session's own exclusion,
    else its rater's (one query).

    Each value has ``session``, ``platform``, ``platform_id``, ``scope`` ("session" or
    "rater") and ``reason``.
    """
    rows = (
        Session.objects.filter(study=study)
        .filter(~Q(excluded_reason="") | ~Q(rater__excluded_reason=""))
        .order_by("pk")
        .values_list("pk", "rater__platform", "rater__external_id", "excluded_reason", "rater__excluded_reason")
    )
    return {
        pk: {
            "session": pk,
            "platform": platform,
            "platform_id": external_id,
            "scope": "session" if own else "rater",
            "reason": own or of_rater,
        }
        for pk, platform, external_id, own, of_rater in rows
    }
