"""Reads of the rater flow. Everything a rater's browser receives about an image is
built here, from the asset's random token only (never a method, scene or file name)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, NamedTuple

from django.conf import settings
from django.db.models import Count, Q
from django.urls import get_script_prefix, get_urlconf, reverse

from raters import sql
from raters.models import Session, Trial
from studies.models import ImageAsset, Method, Output, Study

COUNTED = (Trial.Kind.RATING, Trial.Kind.CONTROL)
LABEL_REFERENCE = "Reference (DSLR)"
LABEL_INPUT = "Input photo"
LABEL_RESULT = "Result"


def study_for_rater(*, slug: str) -> Study | None:
    """A study a rater may reach: open, or closed (to finish a started session)."""
    return sql.study_by_slug(slug=slug, excluded_status=Study.Status.DRAFT)


def output_load_drift(*, study: Study) -> dict[int, tuple[int, int]]:
    """The study's outputs whose stored load is not the count of their trials that it
    stands for, as {output id: (stored, counted)}: empty when every load is right. A check
    for tests, benchmarks and operators; assignment reads only the stored loads."""
    counted = Q(trials__kind__in=COUNTED) & (Q(trials__released_at__isnull=True) | Q(trials__rating__isnull=False))
    rows = (
        Output.objects.filter(method__study=study)
        .annotate(counted=Count("trials", filter=counted))
        .values_list("id", "load__trials", "counted")
    )
    return {output_id: (stored or 0, n) for output_id, stored, n in rows if (stored or 0) != n}


def plausible_token(token: str) -> bool:
    # Session tokens fit the column (64 characters); anything else names no session.
    return bool(token) and len(token) <= 64


def session_by_token(*, token: str) -> Session | None:
    """The session holding this token, with its study (the rater is not read: only the
    device endpoint needs it)."""
    if not plausible_token(token):
        return None
    return sql.session_with_study(token=token)


def session_of_rater(*, study: Study, platform: str, external_id: str) -> Session | None:
    """The session a rater known by this platform id has in the study, if any."""
    session = sql.session_of_rater(study_id=study.pk, platform=platform, external_id=external_id)
    if session is not None:
        session.study = study
    return session


@dataclass(frozen=True)
class ImageRef:
    """What a rater's browser may learn about an image: its random token and its size."""

    token: str
    ext: str
    tiled: bool
    width: int | None
    height: int | None

    @classmethod
    def of(cls, asset: ImageAsset) -> ImageRef:
        return cls.from_columns(asset.token, asset.file.name, asset.tile_status, asset.width, asset.height)

    @classmethod
    def from_columns(cls, token: str | None, file: str, tile_status: str, width: int, height: int) -> ImageRef | None:
        if token is None:
            return None
        # The extension of the stored name (pathlib costs more than the rest of the row).
        name = (file or "").rpartition("/")[2]
        ext = (name.rpartition(".")[2].lower() if "." in name.lstrip(".") else "") or "png"
        return cls(token, ext, tile_status == ImageAsset.TileStatus.DONE, width, height)


# Not frozen: a frozen dataclass sets each field through object.__setattr__, and a "next
# trial" builds one per trial of the session (23 µs for 13 trials, against 10 with slots).
@dataclass(slots=True)
class TrialState:
    """One trial of a session as the rater flow needs it: where it stands (progress,
    numbering, status), its vote if any and, for a trial shown, what its panes show."""

    id: int
    position: int
    kind: str
    token: str
    released: bool
    method_kind: str | None  # None for a trial not shown, when read with shown trials
    rating_id: int | None = None
    score: int | None = None
    response_ms: int | None = None
    rated_at: datetime | None = None
    # For a trial shown (see session_with_states): the columns of the result image, then
    # of the image beside it (see sql.session_with_trials), made into ImageRefs on use.
    images: tuple[Any, ...] = ()

    @property
    def result(self) -> ImageRef | None:
        return ImageRef.from_columns(*self.images[:5]) if self.images else None

    @property
    def beside(self) -> ImageRef | None:
        return ImageRef.from_columns(*self.images[5:10]) if self.images else None

    @property
    def answered(self) -> bool:
        return self.rating_id is not None

    @property
    def live(self) -> bool:
        # A released trial went to another rater; it still counts if it was answered first.
        return self.answered or not self.released

    @property
    def open(self) -> bool:
        return not self.answered and not self.released


# Per protocol, the scene's image shown beside the result: its Scene field and its label.
_BESIDE = {
    Study.Protocol.REFERENCE: ("reference", LABEL_REFERENCE),
    Study.Protocol.INPUT: ("input", LABEL_INPUT),
}


def beside_field(protocol: str) -> str | None:
    """The Scene field of the image the protocol shows beside the result, if any."""
    beside = _BESIDE.get(protocol)
    return beside[0] if beside else None


def session_trial_states(*, session: Session) -> list[TrialState]:
    """Every trial of the session in position order, in one query: a session holds a few
    dozen trials, so counting in Python beats one aggregate per figure. (With their images:
    :func:`session_with_states`.)"""
    return _trial_states(sql.session_trial_rows(session_id=session.pk))


# Per protocol with an image beside the result, that image's Scene field.
_BESIDE_FIELDS = tuple((str(protocol), field) for protocol, (field, _) in _BESIDE.items())


# The trials a rater's "next trial" shows: the one to answer and the one after it, whose
# images the page loads ahead.
SHOWN = 2


def session_with_states(*, token: str, shown: int = 0) -> tuple[Session, list[TrialState]] | None:
    """The session holding this token, with its study, and its trials as
    :func:`session_trial_states` reads them, in one statement; None if there is no such
    session. With ``shown``, the first ``shown`` open trials carry their result image and
    the image the protocol shows beside it, and only they have their method's kind."""
    if not plausible_token(token):
        return None
    found = sql.session_with_trials(token=token, shown=shown, beside=_BESIDE_FIELDS)
    if found is None:
        return None
    session, rows = found
    return session, _trial_states(rows)


def _trial_states(rows: list[tuple[Any, ...]]) -> list[TrialState]:
    return [
        TrialState(
            id=row[0],
            position=row[1],
            kind=row[2],
            token=row[3],
            released=row[4],
            rating_id=row[5],
            score=row[6],
            response_ms=row[7],
            rated_at=row[8],
            method_kind=row[9],
            images=tuple(row[10:20]),
        )
        for row in rows
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


def next_trials(states: Sequence[TrialState], count: int = SHOWN) -> list[TrialState]:
    """The first unanswered trial (where a reload resumes) and the ones after it."""
    return [state for state in states if state.open][:count]


def session_progress(*, states: Sequence[TrialState]) -> dict[str, int]:
    live = [state for state in states if state.live]
    counted = [state for state in live if state.kind in COUNTED]
    training = [state for state in live if state.kind == Trial.Kind.TRAINING]
    return {
        "total": len(counted),
        "answered": sum(state.answered for state in counted),
        "training_total": len(training),
        "training_answered": sum(state.answered for state in training),
    }


class _Urls(NamedTuple):
    """The rater URLs as format strings, a field per parameter."""

    image: str  # {token}, {ext}
    tiles: str  # {token}
    rate: str  # {token}
    done: str  # {token}


def _urls() -> _Urls:
    """The rater URLs under the current script prefix and URLconf, resolved once for each:
    a "next trial" builds nine, and each lookup of the two is a thread-local read."""
    return _url_templates(get_script_prefix(), get_urlconf() or settings.ROOT_URLCONF)


@lru_cache(maxsize=16)
def _url_templates(prefix: str, urlconf: str) -> _Urls:
    return _Urls(
        image=_url_template("studies:image-file", "token", "ext"),
        tiles=_url_template("studies:tiles-dzi", "token"),
        rate=_url_template("raters:rate", "token"),
        done=_url_template("raters:done", "token"),
    )


def _url_template(name: str, *keys: str) -> str:
    """The URL as a format string with one field per parameter."""
    # reverse() quotes the braces of each slot ("%7Btoken%7D"), and would quote any other
    # brace too, so the slots are the only fields. Tokens are base64url and extensions
    # letters, neither of which reverse() would have quoted.
    url = reverse(name, kwargs={key: f"{{{key}}}" for key in keys})
    for key in keys:
        url = url.replace(f"%7B{key}%7D", f"{{{key}}}")
    return url


def image_source(*, image: ImageRef, urls: _Urls | None = None) -> dict[str, Any]:
    """Where the viewer fetches an image: the Deep Zoom pyramid if built, else the file."""
    urls = urls or _urls()
    return {
        "url": urls.image.format(token=image.token, ext=image.ext),
        "tiles": urls.tiles.format(token=image.token) if image.tiled else None,
        "width": image.width,
        "height": image.height,
    }


def trial_panes(*, state: TrialState, protocol: str) -> list[dict[str, Any]]:
    """The panes of a trial, left to right, each with a neutral label."""
    panes: list[tuple[str, str, ImageRef | None]] = []
    if protocol in _BESIDE:
        panes.append(("reference", _BESIDE[protocol][1], state.beside))
    panes.append(("result", LABEL_RESULT, state.result))
    urls = _urls()
    return [
        {"role": role, "label": label, **image_source(image=image, urls=urls)}
        for role, label, image in panes
        if image is not None
    ]


def trial_phase(state: TrialState) -> str:
    # Controls are indistinguishable from rated trials for the rater.
    return "training" if state.kind == Trial.Kind.TRAINING else "rating"


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


def trial_number(*, state: TrialState, states: Sequence[TrialState]) -> tuple[int, int]:
    """(number, total) of a trial within its phase, counting only live trials."""
    kinds = (Trial.Kind.TRAINING,) if state.kind == Trial.Kind.TRAINING else COUNTED
    same_phase = [other for other in states if other.live and other.kind in kinds]
    before = sum(other.position < state.position for other in same_phase)
    return before + 1, len(same_phase)


def trial_summary(*, state: TrialState, states: Sequence[TrialState], protocol: str) -> dict[str, Any]:
    number, total = trial_number(state=state, states=states)
    return {
        "token": state.token,
        "phase": trial_phase(state),
        "number": number,
        "total": total,
        "panes": trial_panes(state=state, protocol=protocol),
    }


def completion_redirect(*, session: Session) -> str:
    url = session.study.completion_redirect_url
    if not url or not session.completion_code:
        return ""
    return url.replace("{code}", session.completion_code)


def session_summary(*, session: Session, progress: dict[str, int] | None = None) -> dict[str, Any]:
    """What a rater's browser learns of its session: its ``progress`` as
    :func:`session_progress` counts it, read from its trials when not given."""
    if progress is None:
        progress = session_progress(states=session_trial_states(session=session))
    complete = session.status == Session.Status.COMPLETE
    urls = _urls()
    return {
        "token": session.token,
        "status": session.status,
        "progress": progress,
        "completion_code": session.completion_code if complete else None,
        "completion_page": urls.done.format(token=session.token) if complete else None,
        "rating_page": urls.rate.format(token=session.token),
    }
