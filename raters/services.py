"""Writes of the rater flow: sessions, their trials and votes.

The HTML pages and the API call these same functions. Assignment is serialised per study:
a session start locks the Study row (``select_for_update`` on PostgreSQL; SQLite's
IMMEDIATE transactions serialise writers anyway), so that concurrent starts see each
other's outstanding trials and coverage stays even. Each output's load
(raters.models.OutputLoad) changes only under that lock, in the transaction that changes
its trials. A vote locks its session, so that two tabs of one rater are counted in turn.
"""

from __future__ import annotations

import random
import secrets
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from raters import assignment, selectors
from raters.models import COUNTED_KINDS, OutputLoad, Rater, Rating, Session, Trial
from raters.platforms import RaterIdentity
from studies.models import Method, Output, Study
from studies.protocols import wording

DEVICE_FIELDS = (
    "screen_width",
    "screen_height",
    "viewport_width",
    "viewport_height",
    "device_pixel_ratio",
    "user_agent",
)
# Unambiguous characters only: raters copy the code by hand into Prolific or MTurk.
_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
_CODE_LENGTH = 10


class RaterFlowError(Exception):
    """Base of the errors a rater can cause; the message is safe to show them."""


class StudyNotOpen(RaterFlowError):
    pass


class SessionNotFound(RaterFlowError):
    pass


class TrialNotFound(RaterFlowError):
    pass


class InvalidScore(RaterFlowError):
    pass


class TrialReleased(RaterFlowError):
    def __init__(self) -> None:
        super().__init__("This trial was handed to another rater after a long pause.")


@dataclass(frozen=True)
class Vote:
    """A trial's vote: its session as it stands after it (status, completion code), the
    trial (with its output's method), the rating, the session's progress
    (raters.selectors.session_progress) and whether this call stored it."""

    session: Session
    trial: Trial
    rating: Rating
    progress: dict[str, int]
    created: bool


class VoteConflict(RaterFlowError):
    """The trial's stored vote has another score: ``vote`` is that vote."""

    def __init__(self, vote: Vote) -> None:
        super().__init__("This trial already has a different vote.")
        self.vote = vote


def session_timeout() -> timedelta:
    return timedelta(minutes=settings.MOSAIC_SESSION_TIMEOUT_MINUTES)


def _touch_interval() -> timedelta:
    # last_seen_at only decides abandonment, an hour away by default: writing it on every
    # request would cost a write per request for nothing. Every minute (or a tenth of a
    # short timeout) is precise enough.
    return min(timedelta(seconds=60), session_timeout() / 10)


def _new_token(nbytes: int) -> str:
    return secrets.token_urlsafe(nbytes)


def _completion_code() -> str:
    return "".join(secrets.choice(_CODE_ALPHABET) for _ in range(_CODE_LENGTH))


def _lock_study(study: Study) -> Study:
    return Study.objects.select_for_update().get(pk=study.pk)


# --- assignment -----------------------------------------------------------------------


class _OutputRow(NamedTuple):
    candidate: assignment.Candidate
    method_kind: str
    psnr: float | None


def _study_rows(study: Study) -> list[_OutputRow]:
    """The study's outputs raters can be shown (their image imported, and the scene's
    image the protocol shows beside them), with their load, in id order: assignment
    draws from them with a seeded generator."""
    outputs = Output.objects.filter(method__study=study, image__isnull=False)
    beside = wording(study.protocol).beside_field
    if beside:
        outputs = outputs.filter(**{f"scene__{beside}__isnull": False})
    rows = outputs.order_by("pk").values_list("pk", "method_id", "method__kind", "scene_id", "load__trials", "psnr")
    return [
        _OutputRow(assignment.Candidate(pk, method_id, scene_id, load or 0), kind, psnr)
        for pk, method_id, kind, scene_id, load, psnr in rows
    ]


def _training_rows(rows: list[_OutputRow], rng: random.Random) -> list[_OutputRow]:
    """A hidden reference, a low anchor and a middling output, on different scenes."""
    picks: list[_OutputRow] = []
    used_scenes: set[int] = set()

    def pick(pool: list[_OutputRow]) -> None:
        fresh = [r for r in pool if r.candidate.scene_id not in used_scenes] or pool
        if fresh:
            row = fresh[0]
            picks.append(row)
            used_scenes.add(row.candidate.scene_id)

    for kind in Method.CONTROL_KINDS:
        pool = [r for r in rows if r.method_kind == kind]
        rng.shuffle(pool)
        pick(pool)
    submissions = [r for r in rows if r.method_kind not in Method.CONTROL_KINDS]
    rng.shuffle(submissions)
    with_metric = [r for r in submissions if r.psnr is not None]
    if with_metric:
        # The median PSNR output stands for "a typical result" better than a random one.
        with_metric.sort(key=lambda r: r.psnr or 0.0)
        middle = len(with_metric) // 2
        submissions = with_metric[middle:] + with_metric[:middle]
    pick(submissions)
    return picks


def _plan_trials(
    *,
    session: Session,
    rows: list[_OutputRow],
    rating_count: int,
    control_count: int,
    existing: Sequence[Trial],
    start_position: int,
    rng: random.Random,
) -> list[Trial]:
    """The session's next trials, from ``start_position`` on, unsaved; ``existing`` are
    the live trials it holds."""
    main = [r.candidate for r in rows if r.method_kind not in Method.CONTROL_KINDS]
    controls = [r.candidate for r in rows if r.method_kind in Method.CONTROL_KINDS]
    if not controls:
        rating_count += control_count
        control_count = 0
    by_id = {r.candidate.output_id: r.candidate for r in rows}
    scene_counts: Counter[int] = Counter()
    method_counts: Counter[int] = Counter()
    output_counts: Counter[int] = Counter()
    for trial in existing:
        # Training outputs count too: a pair seen in practice must not come back rated.
        output_counts[trial.output_id] += 1
        candidate = by_id.get(trial.output_id)
        if candidate is not None and trial.kind in COUNTED_KINDS:
            scene_counts[candidate.scene_id] += 1
            method_counts[candidate.method_id] += 1
    cap = assignment.scene_cap(rating_count + control_count)
    # Ratings first, then controls: each choice sees the counts the previous ones left.
    pools = ((main, rating_count, Trial.Kind.RATING), (controls, control_count, Trial.Kind.CONTROL))
    chosen = [
        (candidate, kind)
        for pool, count, kind in pools
        for candidate in assignment.choose(
            pool,
            count=count,
            rng=rng,
            scene_counts=scene_counts,
            method_counts=method_counts,
            output_counts=output_counts,
            scene_cap=cap,
        )
    ]
    prev_scene = None
    if existing:
        last = max(existing, key=lambda t: t.position)
        prev_scene = by_id[last.output_id].scene_id if last.output_id in by_id else None
    ordered = assignment.order_without_repeats(chosen, key=lambda item: item[0].scene_id, rng=rng, prev=prev_scene)
    return [
        Trial(
            session=session,
            output_id=candidate.output_id,
            position=start_position + index,
            kind=kind,
            token=_new_token(18),
        )
        for index, (candidate, kind) in enumerate(ordered)
    ]


def _session_rng(study: Study, session: Session, salt: str = "") -> random.Random:
    # Reproducible from the study seed, different for every session (and every top-up).
    return random.Random(f"{study.seed}:{session.pk}:{salt}")


def _store_trials(trials: list[Trial]) -> None:
    Trial.objects.bulk_create(trials)
    output_loads_add(trials=trials)


def _assign(*, session: Session, study: Study) -> None:
    """Training and rated trials of a new session; the caller holds the study lock."""
    rng = _session_rng(study, session)
    rows = _study_rows(study)
    training = [
        Trial(session=session, output_id=row.candidate.output_id, position=index, kind=Trial.Kind.TRAINING)
        for index, row in enumerate(_training_rows(rows, rng))
    ]
    for trial in training:
        trial.token = _new_token(18)
    controls = assignment.control_count(trials=study.trials_per_session, control_rate=study.control_rate)
    rated = _plan_trials(
        session=session,
        rows=rows,
        rating_count=study.trials_per_session - controls,
        control_count=controls,
        existing=training,
        start_position=len(training),
        rng=rng,
    )
    _store_trials(training + rated)
    status = Session.Status.TRAINING if training else Session.Status.RATING
    if session.status != status:
        session.status = status
        session.save(update_fields=["status"])


def _loads_change(counts: Counter[int], sign: int) -> None:
    """Add (sign 1) or take (sign -1) ``counts`` trials to or from their outputs' loads,
    one UPDATE per distinct count."""
    by_count: dict[int, list[int]] = defaultdict(list)
    for output_id, count in counts.items():
        by_count[count].append(output_id)
    for count, output_ids in by_count.items():
        OutputLoad.objects.filter(output_id__in=output_ids).update(trials=F("trials") + sign * count)


def output_loads_add(*, trials: Iterable[Trial]) -> None:
    """Count new trials (just stored, none released) in their outputs' loads. Whoever
    stores trials calls this in the same transaction, holding the study's lock."""
    counts = Counter(trial.output_id for trial in trials if trial.kind in COUNTED_KINDS)
    if counts:
        OutputLoad.objects.bulk_create([OutputLoad(output_id=i) for i in sorted(counts)], ignore_conflicts=True)
        _loads_change(counts, 1)


def _release_abandoned(*, study: Study, now: datetime) -> int:
    """Hand the unanswered trials of the study's sessions idle past the timeout back to
    the pool; the caller holds the study lock."""
    # A session locked right now is taking a vote: it is not abandoned, and waiting for
    # it would hold up the start that asks. The ones found stay locked meanwhile.
    stale = Session.objects.filter(
        study=study, status__in=Session.ACTIVE_STATUSES, last_seen_at__lt=now - session_timeout()
    )
    ids = list(stale.select_for_update(skip_locked=True).order_by("pk").values_list("pk", flat=True))
    if not ids:
        return 0
    released = Trial.objects.filter(
        session_id__in=ids, kind__in=COUNTED_KINDS, released_at__isnull=True, rating__isnull=True
    )
    trials = list(released.values_list("pk", "output_id"))
    Trial.objects.filter(pk__in=[pk for pk, _ in trials]).update(released_at=now)
    _loads_change(Counter(output_id for _, output_id in trials), -1)
    Session.objects.filter(pk__in=ids).update(status=Session.Status.ABANDONED)
    return len(ids)


@transaction.atomic
def sessions_release_abandoned(*, study: Study | None = None, now: datetime | None = None) -> int:
    """Hand the unanswered trials of sessions idle past the timeout back to the pool: of
    one study, or of every study that has such sessions (each under its lock, in id order)."""
    now = now or timezone.now()
    if study is not None:
        studies = [study]
    else:
        stale = Session.objects.filter(status__in=Session.ACTIVE_STATUSES, last_seen_at__lt=now - session_timeout())
        studies = list(Study.objects.filter(pk__in=stale.values("study_id")).order_by("pk"))
    return sum(_release_abandoned(study=_lock_study(each), now=now) for each in studies)


@transaction.atomic
def session_assign(*, session: Session) -> list[Trial]:
    """Give a new session its training trials and ``trials_per_session`` rated trials."""
    study = _lock_study(session.study)
    if not session.trials.exists():
        _assign(session=session, study=study)
    return list(session.trials.all())


# --- sessions -------------------------------------------------------------------------


def session_touch(*, session: Session, now: datetime | None = None) -> Session:
    """Mark the session alive; a session released while away gets fresh trials."""
    now = now or timezone.now()
    if session.status == Session.Status.ABANDONED:
        return _session_reclaim(session=session, now=now)
    if session.status == Session.Status.COMPLETE and not session.completion_code:
        return session_complete(session=session, now=now)
    if now - session.last_seen_at >= _touch_interval():
        # This column only: a release running right now may have abandoned the session,
        # and writing the status read earlier would undo that.
        Session.objects.filter(pk=session.pk).update(last_seen_at=now)
        session.last_seen_at = now
    return session


def session_resume(*, token: str, now: datetime | None = None) -> Session:
    """The session holding this token, marked alive (see session_touch), with the trials
    it shows next in ``session.shown``: what a rater's "next trial" reads."""
    session = selectors.session_with_shown_trials(token=token)
    if session is None:
        raise SessionNotFound("No such session.")
    reclaim = session.status == Session.Status.ABANDONED
    session_touch(session=session, now=now)
    if reclaim:
        # Reclaiming gave the session fresh trials: read it again.
        session = selectors.session_with_shown_trials(token=token)
    return session


@transaction.atomic
def _session_reclaim(*, session: Session, now: datetime) -> Session:
    study = _lock_study(session.study)
    session = Session.objects.select_for_update().get(pk=session.pk)
    session.study = study
    if session.status == Session.Status.ABANDONED:
        existing = list(session.trials.filter(selectors.LIVE))
        kept = [t for t in existing if t.kind in COUNTED_KINDS]
        missing = study.trials_per_session - len(kept)
        if missing > 0:
            controls_kept = sum(t.kind == Trial.Kind.CONTROL for t in kept)
            controls_due = assignment.control_count(trials=study.trials_per_session, control_rate=study.control_rate)
            controls = max(0, min(missing, controls_due - controls_kept))
            last = session.trials.order_by("-position").values_list("position", flat=True).first()
            trials = _plan_trials(
                session=session,
                rows=_study_rows(study),
                rating_count=missing - controls,
                control_count=controls,
                existing=existing,
                # Released trials keep their positions: the new ones come after them all.
                start_position=(last or 0) + 1,
                rng=_session_rng(study, session, salt=now.isoformat()),
            )
            _store_trials(trials)
        session.status = selectors.status_from_progress(selectors.session_progress(session=session))
    session.last_seen_at = now
    session.save(update_fields=["status", "last_seen_at"])
    if session.status == Session.Status.COMPLETE and not session.completion_code:
        session = session_complete(session=session, now=now)
    return session


def _record_device(rater: Rater, device: dict[str, Any] | None) -> None:
    changed = []
    for field in DEVICE_FIELDS:
        value = (device or {}).get(field)
        if value not in (None, "") and getattr(rater, field) != value:
            setattr(rater, field, value)
            changed.append(field)
    if changed:
        rater.save(update_fields=changed)


@transaction.atomic
def rater_device_record(*, rater: Rater, device: dict[str, Any]) -> Rater:
    _record_device(rater, device)
    return rater


def _known_session(*, study: Study, identity: RaterIdentity, resume_token: str) -> Session | None:
    """The session this rater already has in the study: found by platform id, or for a
    direct rater by the token their cookie keeps."""
    if identity.external_id:
        return selectors.session_of_rater(study=study, platform=identity.platform, external_id=identity.external_id)
    if resume_token:
        return Session.objects.select_related("study", "rater").filter(token=resume_token, study=study).first()
    return None


@transaction.atomic
def session_start(
    *,
    study: Study,
    identity: RaterIdentity,
    resume_token: str = "",
    device: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> tuple[Session, bool]:
    """Start a session, or resume the rater's existing one: never two per rater and study.

    Returns the session and whether it is new. A new session gets its trials under the
    study's lock.
    """
    now = now or timezone.now()
    session = _known_session(study=study, identity=identity, resume_token=resume_token)
    if session is not None:
        _record_device(session.rater, device)
        return session_touch(session=session, now=now), False
    if study.status != Study.Status.OPEN or identity.preview:
        raise StudyNotOpen("This study is not taking new raters.")
    if identity.external_id:
        # The unique platform id makes a concurrent start with the same id find this rater.
        rater, _ = Rater.objects.get_or_create(platform=identity.platform, external_id=identity.external_id)
    else:
        rater = Rater.objects.create(platform=Rater.Platform.DIRECT)
    _record_device(rater, device)
    study = _lock_study(study)
    if study.status != Study.Status.OPEN:  # closed while this start was on its way
        raise StudyNotOpen("This study is not taking new raters.")
    # Under the lock: a concurrent start of the same rater has committed its session by now.
    session, created = Session.objects.get_or_create(
        rater=rater,
        study=study,
        defaults={
            "token": _new_token(32),
            "platform_study_id": identity.platform_study_id,
            "platform_session_id": identity.platform_session_id,
            "last_seen_at": now,
        },
    )
    if not created:
        return session_touch(session=session, now=now), False
    _release_abandoned(study=study, now=now)
    _assign(session=session, study=study)
    return session, True


@transaction.atomic
def session_complete(*, session: Session, now: datetime | None = None) -> Session:
    """Close a fully answered session and give it its completion code (once)."""
    study = session.study
    session = Session.objects.select_for_update().get(pk=session.pk)
    session.study = study
    if session.completion_code:
        return session
    if session.trials.filter(selectors.OPEN).exists():
        raise RaterFlowError("The session still has unanswered trials.")
    session.status = Session.Status.COMPLETE
    session.completion_code = _completion_code()
    session.completed_at = now or timezone.now()
    session.save(update_fields=["status", "completion_code", "completed_at"])
    return session


# --- votes ----------------------------------------------------------------------------


def _on_scale(score: object, study: Study) -> bool:
    # A whole number, not a boolean (True == 1 in Python) nor 3.0.
    return type(score) is int and score in study.scores


def _session_after_vote(session: Session, progress: dict[str, int], now: datetime) -> None:
    """Write what a new vote changes of its session: its status, a last-seen time older
    than the touch interval, and on completion its code. Most votes change nothing."""
    changes: dict[str, Any] = {}
    status = selectors.status_from_progress(progress)
    if status != session.status:
        changes["status"] = status
    if now - session.last_seen_at >= _touch_interval():
        changes["last_seen_at"] = now
    if status == Session.Status.COMPLETE and not session.completion_code:
        changes |= {"completion_code": _completion_code(), "completed_at": now}
    if changes:
        Session.objects.filter(pk=session.pk).update(**changes)
        for field, value in changes.items():
            setattr(session, field, value)


@transaction.atomic
def rating_submit(
    *, session_token: str, trial_token: str, score: object, response_ms: int | None, now: datetime | None = None
) -> Vote:
    """Store one vote. The same vote again returns the stored one (created=False); a
    different score for an answered trial raises VoteConflict, a released trial
    TrialReleased. Ratings are never updated.

    The session is locked first and its trial read after, so that a vote of the rater's
    other tab is seen, and progress and status are counted with every vote in.
    """
    now = now or timezone.now()
    session = (
        Session.objects.select_for_update(of=("self",)).select_related("study").filter(token=session_token).first()
    )
    if session is None:
        raise SessionNotFound("No such session.")
    trial = session.trials.select_related("rating", "output__method").filter(token=trial_token).first()
    if trial is None:
        raise TrialNotFound("No such trial in this session.")
    if not _on_scale(score, session.study):
        raise InvalidScore(f"Must be one of {', '.join(map(str, session.study.scores))}.")
    rating = getattr(trial, "rating", None)
    created = False
    if rating is None:
        if trial.released_at is not None:
            raise TrialReleased()
        try:
            with transaction.atomic():
                rating = Rating.objects.create(trial=trial, score=score, response_ms=response_ms)
            created = True
        except IntegrityError:
            # Stored meanwhile by a writer that does not lock the session (the import).
            rating = Rating.objects.get(trial=trial)
        trial.rating = rating
    progress = selectors.session_progress(session=session)
    if created:
        _session_after_vote(session, progress, now)
    vote = Vote(session=session, trial=trial, rating=rating, progress=progress, created=created)
    if rating.score != score:
        raise VoteConflict(vote)
    return vote
