"""Reads of the rater flow. Everything a rater's browser receives about an image is
built here, from the asset's random token only (never a method, scene or file name)."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from django.db.models import Count, Q
from django.urls import reverse

from raters.models import Session, Trial
from studies.models import ImageAsset, Method, Study

COUNTED = (Trial.Kind.RATING, Trial.Kind.CONTROL)
LABEL_REFERENCE = "Reference (DSLR)"
LABEL_INPUT = "Input photo"
LABEL_RESULT = "Result"


def study_for_rater(*, slug: str) -> Study | None:
    """A study a rater may reach: open, or closed (to finish a started session)."""
    return Study.objects.filter(slug=slug).exclude(status=Study.Status.DRAFT).first()


def session_by_token(*, token: str) -> Session | None:
    if not token or len(token) > 64:
        return None
    return Session.objects.select_related("study", "rater").filter(token=token).first()


def _open_trials(session: Session):
    return session.trials.filter(rating__isnull=True, released_at__isnull=True).order_by("position")


def session_next_trials(*, session: Session, count: int = 2) -> list[Trial]:
    """The first unanswered trial (where a reload resumes) and the ones after it."""
    return list(
        _open_trials(session).select_related(
            "output__image", "output__scene__reference", "output__scene__input", "output__method"
        )[:count]
    )


def session_progress(*, session: Session) -> dict[str, int]:
    live = Q(released_at__isnull=True) | Q(rating__isnull=False)
    counts = session.trials.filter(live).aggregate(
        total=Count("id", filter=Q(kind__in=COUNTED)),
        answered=Count("id", filter=Q(kind__in=COUNTED, rating__isnull=False)),
        training_total=Count("id", filter=Q(kind=Trial.Kind.TRAINING)),
        training_answered=Count("id", filter=Q(kind=Trial.Kind.TRAINING, rating__isnull=False)),
    )
    return {key: int(value or 0) for key, value in counts.items()}


def image_source(*, asset: ImageAsset) -> dict[str, Any]:
    """Where the viewer fetches an image: the Deep Zoom pyramid if built, else the file."""
    ext = PurePosixPath(asset.file.name).suffix.lstrip(".").lower() or "png"
    tiles = None
    if asset.tile_status == ImageAsset.TileStatus.DONE:
        tiles = reverse("studies:tiles-dzi", kwargs={"token": asset.token})
    return {
        "url": reverse("studies:image-file", kwargs={"token": asset.token, "ext": ext}),
        "tiles": tiles,
        "width": asset.width,
        "height": asset.height,
    }


def trial_panes(*, trial: Trial) -> list[dict[str, Any]]:
    """The panes of a trial, left to right, each with a neutral label."""
    output = trial.output
    scene = output.scene
    protocol = trial.session.study.protocol
    panes: list[tuple[str, str, ImageAsset | None]] = []
    if protocol == Study.Protocol.REFERENCE:
        panes.append(("reference", LABEL_REFERENCE, scene.reference))
    elif protocol == Study.Protocol.INPUT:
        panes.append(("reference", LABEL_INPUT, scene.input))
    panes.append(("result", LABEL_RESULT, output.image))
    return [
        {"role": role, "label": label, **image_source(asset=asset)} for role, label, asset in panes if asset is not None
    ]


def trial_phase(trial: Trial) -> str:
    # Controls are indistinguishable from rated trials for the rater.
    return "training" if trial.kind == Trial.Kind.TRAINING else "rating"


def training_expected(*, trial: Trial) -> tuple[int, int]:
    """The answers a careful rater gives a training pair: the hidden reference near the
    top of the scale, the low anchor near the bottom, a typical output in between."""
    scores = trial.session.study.scores
    low, high = scores[0], scores[-1]
    kind = trial.output.method.kind
    if kind == Method.Kind.HIDDEN_REFERENCE:
        return (scores[-2] if len(scores) > 1 else high, high)
    if kind == Method.Kind.LOW_ANCHOR:
        return (low, scores[1] if len(scores) > 1 else low)
    if len(scores) > 2:
        return (scores[1], scores[-2])
    return (low, high)


def training_feedback(*, trial: Trial, score: int) -> dict[str, Any]:
    study = trial.session.study
    low, high = training_expected(trial=trial)
    kind = trial.output.method.kind
    if kind == Method.Kind.HIDDEN_REFERENCE:
        hint = "This result was identical to the reference: it deserves the top of the scale."
    elif kind == Method.Kind.LOW_ANCHOR:
        hint = "This result was strongly degraded: it belongs at the bottom of the scale."
    else:
        hint = "This was a typical result: look at 100% for noise, colour shifts and lost detail."
    expected = [{"score": s, "label": study.label_for(s)} for s in study.scores if low <= s <= high]
    return {"ok": low <= score <= high, "expected": expected, "hint": hint}


def trial_number(*, trial: Trial) -> tuple[int, int]:
    """(number, total) of a trial within its phase, counting only live trials."""
    live = Q(released_at__isnull=True) | Q(rating__isnull=False)
    kinds = [Trial.Kind.TRAINING] if trial.kind == Trial.Kind.TRAINING else list(COUNTED)
    same_phase = trial.session.trials.filter(live, kind__in=kinds)
    counts = same_phase.aggregate(total=Count("id"), before=Count("id", filter=Q(position__lt=trial.position)))
    return counts["before"] + 1, counts["total"]


def trial_summary(*, trial: Trial) -> dict[str, Any]:
    number, total = trial_number(trial=trial)
    return {
        "token": trial.token,
        "phase": trial_phase(trial),
        "number": number,
        "total": total,
        "panes": trial_panes(trial=trial),
    }


def completion_redirect(*, session: Session) -> str:
    url = session.study.completion_redirect_url
    if not url or not session.completion_code:
        return ""
    return url.replace("{code}", session.completion_code)


def session_summary(*, session: Session) -> dict[str, Any]:
    complete = session.status == Session.Status.COMPLETE
    return {
        "token": session.token,
        "status": session.status,
        "progress": session_progress(session=session),
        "completion_code": session.completion_code if complete else None,
        "completion_page": reverse("raters:done", kwargs={"token": session.token}) if complete else None,
        "rating_page": reverse("raters:rate", kwargs={"token": session.token}),
    }
