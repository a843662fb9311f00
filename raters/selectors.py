"""Reads of the rater flow. Everything a rater's browser receives about an image is
built here, from the asset's random token only (never a method, scene or file name)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

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
    # Not the rater: only the device endpoint needs it. get() rather than first(): the
    # token is unique, so no ORDER BY is needed.
    try:
        return Session.objects.select_related("study").get(token=token)
    except Session.DoesNotExist:
        return None


@dataclass(frozen=True)
class TrialState:
    """Where one trial of a session stands: enough for progress, numbering and status."""

    id: int
    position: int
    kind: str
    released: bool
    answered: bool

    @property
    def live(self) -> bool:
        # A released trial went to another rater; it still counts if it was answered first.
        return self.answered or not self.released

    @property
    def open(self) -> bool:
        return not self.answered and not self.released


def session_trial_states(*, session: Session) -> list[TrialState]:
    """Every trial of the session in position order, in one query of plain values: a
    session holds a few dozen trials, so counting in Python beats one aggregate per figure."""
    rows = session.trials.order_by("position").values_list("id", "position", "kind", "released_at", "rating__id")
    return [
        TrialState(id=tid, position=position, kind=kind, released=released is not None, answered=rating is not None)
        for tid, position, kind, released, rating in rows
    ]


def status_from_states(states: Sequence[TrialState]) -> str:
    """The status a session's answers put it in: training until the training trials are
    answered, rating until every live trial is, then complete."""
    open_kinds = {state.kind for state in states if state.open}
    if Trial.Kind.TRAINING in open_kinds:
        return Session.Status.TRAINING
    if open_kinds:
        return Session.Status.RATING
    return Session.Status.COMPLETE


def session_next_trials(*, session: Session, count: int = 2, states: Sequence[TrialState] | None = None) -> list[Trial]:
    """The first unanswered trial (where a reload resumes) and the ones after it."""
    if states is None:
        states = session_trial_states(session=session)
    ids = [state.id for state in states if state.open][:count]
    if not ids:
        return []
    # The one pane image the protocol shows beside the result (see trial_panes).
    related = ["output__image"]
    if session.study.protocol == Study.Protocol.REFERENCE:
        related.append("output__scene__reference")
    elif session.study.protocol == Study.Protocol.INPUT:
        related.append("output__scene__input")
    # Through session.trials, so that trial.session is this session (and its study).
    return list(session.trials.filter(id__in=ids).select_related(*related).order_by("position"))


def session_progress(*, session: Session, states: Sequence[TrialState] | None = None) -> dict[str, int]:
    if states is None:
        states = session_trial_states(session=session)
    live = [state for state in states if state.live]
    counted = [state for state in live if state.kind in COUNTED]
    training = [state for state in live if state.kind == Trial.Kind.TRAINING]
    return {
        "total": len(counted),
        "answered": sum(state.answered for state in counted),
        "training_total": len(training),
        "training_answered": sum(state.answered for state in training),
    }


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
    protocol = trial.session.study.protocol
    panes: list[tuple[str, str, ImageAsset | None]] = []
    if protocol == Study.Protocol.REFERENCE:
        panes.append(("reference", LABEL_REFERENCE, output.scene.reference))
    elif protocol == Study.Protocol.INPUT:
        panes.append(("reference", LABEL_INPUT, output.scene.input))
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


def trial_number(*, trial: Trial, states: Sequence[TrialState] | None = None) -> tuple[int, int]:
    """(number, total) of a trial within its phase, counting only live trials."""
    if states is None:
        states = session_trial_states(session=trial.session)
    kinds = (Trial.Kind.TRAINING,) if trial.kind == Trial.Kind.TRAINING else COUNTED
    same_phase = [state for state in states if state.live and state.kind in kinds]
    before = sum(state.position < trial.position for state in same_phase)
    return before + 1, len(same_phase)


def trial_summary(*, trial: Trial, states: Sequence[TrialState] | None = None) -> dict[str, Any]:
    number, total = trial_number(trial=trial, states=states)
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


def session_summary(*, session: Session, states: Sequence[TrialState] | None = None) -> dict[str, Any]:
    complete = session.status == Session.Status.COMPLETE
    return {
        "token": session.token,
        "status": session.status,
        "progress": session_progress(session=session, states=states),
        "completion_code": session.completion_code if complete else None,
        "completion_page": reverse("raters:done", kwargs={"token": session.token}) if complete else None,
        "rating_page": reverse("raters:rate", kwargs={"token": session.token}),
    }
