"""Writes of the rater flow: sessions, their trials and votes.

The HTML pages and the API call these same functions. Assignment is serialised per study
(``select_for_update`` on the Study row on PostgreSQL; SQLite's IMMEDIATE transactions
serialise writers anyway) so that concurrent session starts see each other's outstanding
trials and coverage stays even. Each output's load (raters.models.OutputLoad) changes only
under that lock, in the transaction that changes its trials.
"""

from __future__ import annotations

import random
import secrets
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from raters import assignment, selectors, sql
from raters.models import OutputLoad, Rater, Rating, Session, Trial
from raters.platforms import RaterIdentity
from studies.models import Method, Study

TRIAL_KINDS_COUNTED = (Trial.Kind.RATING, Trial.Kind.CONTROL)
# A session in one of these holds outstanding trials, and is abandoned once idle too long.
ACTIVE_STATUSES = (Session.Status.TRAINING, Session.Status.RATING)
CONTROL_KINDS = Method.CONTROL_KINDS
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


class VoteConflict(RaterFlowError):
    """The trial's stored vote has another score: ``vote`` is that vote, with the session
    as it stands."""

    def __init__(self, vote: Vote) -> None:
        super().__init__("This trial already has a different vote.")
        self.vote = vote


class TrialReleased(RaterFlowError):
    pass


class _OutputRow(NamedTuple):
    candidate: assignment.Candidate
    method_kind: str
    psnr: float | None


class NewTrial(NamedTuple):
    """A trial to insert: what a session start plans while it holds the study's lock (a
    model instance took longer to build than the insert took to run)."""

    session_id: int
    output_id: int
    position: int
    kind: str
    token: str


def session_timeout() -> timedelta:
    return timedelta(minutes=getattr(settings, "MOSAIC_SESSION_TIMEOUT_MINUTES", 60))


def _new_token(nbytes: int) -> str:
    return secrets.token_urlsafe(nbytes)


def _completion_code() -> str:
    # Every vote hands the store a code for the case it completes the session: one draw of
    # 50 random bits, five per character (the alphabet has 32), rather than a draw each.
    bits = secrets.randbits(5 * _CODE_LENGTH)
    return "".join(_CODE_ALPHABET[(bits >> (5 * i)) & 31] for i in range(_CODE_LENGTH))


def _lock_study(study: Study) -> Study:
    return sql.study_locked(study_id=study.pk)


def _study_rows(study: Study) -> list[_OutputRow]:
    """The study's ratable outputs with their load: votes plus outstanding assignments."""
    rows = sql.study_output_loads(study_id=study.pk, pane=selectors.beside_field(study.protocol))
    return [
        _OutputRow(assignment.Candidate(oid, mid, sid, load), kind, psnr) for oid, mid, kind, sid, load, psnr in rows
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

    for kind in CONTROL_KINDS:
        pool = [r for r in rows if r.method_kind == kind]
        rng.shuffle(pool)
        pick(pool)
    submissions = [r for r in rows if r.method_kind not in CONTROL_KINDS]
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
    study: Study,
    rows: list[_OutputRow],
    rating_count: int,
    control_count: int,
    start_position: int,
    existing: Sequence[Trial | NewTrial],
    rng: random.Random,
) -> list[NewTrial]:
    """The session's next trials, unsaved (the caller inserts them in one statement)."""
    main = [r.candidate for r in rows if r.method_kind not in CONTROL_KINDS]
    controls = [r.candidate for r in rows if r.method_kind in CONTROL_KINDS]
    if not controls:
        rating_count += control_count
        control_count = 0
    by_id = {r.candidate.output_id: r for r in rows}
    kept = [t for t in existing if t.kind in TRIAL_KINDS_COUNTED]
    scene_counts: Counter[int] = Counter()
    method_counts: Counter[int] = Counter()
    output_counts: Counter[int] = Counter()
    for trial in existing:
        # A pair seen in training would be recognised if it came back as a control.
        output_counts[trial.output_id] += trial.kind == Trial.Kind.TRAINING
    for trial in kept:
        row = by_id.get(trial.output_id)
        if row is not None:
            scene_counts[row.candidate.scene_id] += 1
            method_counts[row.candidate.method_id] += 1
            output_counts[trial.output_id] += 1
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
        prev_scene = by_id[last.output_id].candidate.scene_id if last.output_id in by_id else None
    ordered = assignment.order_without_repeats(chosen, key=lambda item: item[0].scene_id, rng=rng, prev=prev_scene)
    return [
        NewTrial(session.pk, candidate.output_id, start_position + index, kind, _new_token(18))
        for index, (candidate, kind) in enumerate(ordered)
    ]


def _session_rng(study: Study, session: Session, salt: str = "") -> random.Random:
    # Reproducible from the study seed, different for every session (and every top-up).
    return random.Random(f"{study.seed}:{session.pk}:{salt}")


def _assign(*, session: Session, study: Study) -> None:
    """Training and rated trials of a new session; the caller holds the study lock."""
    rng = _session_rng(study, session)
    rows = _study_rows(study)
    training = [
        NewTrial(session.pk, row.candidate.output_id, index, Trial.Kind.TRAINING, _new_token(18))
        for index, row in enumerate(_training_rows(rows, rng))
    ]
    total = study.trials_per_session
    controls = assignment.control_count(trials=total, control_rate=study.control_rate)
    rated = _plan_trials(
        session=session,
        study=study,
        rows=rows,
        rating_count=total - controls,
        control_count=controls,
        start_position=len(training),
        existing=training,
        rng=rng,
    )
    sql.trials_store(training + rated, counted=TRIAL_KINDS_COUNTED)
    status = Session.Status.TRAINING if training else Session.Status.RATING
    if session.status != status:
        session.status = status
        session.save(update_fields=["status"])


def output_loads_add(*, trials: Iterable[Trial]) -> None:
    """Count new trials (just stored, none released) in their outputs' loads. Whoever
    stores trials calls this in the same transaction, holding the study's lock."""
    sql.output_loads_add(trials, counted=TRIAL_KINDS_COUNTED)


@transaction.atomic
def session_assign(*, session: Session) -> list[Trial]:
    """Give a new session its training trials and ``trials_per_session`` rated trials."""
    study = _lock_study(session.study)
    if not session.trials.exists():
        _assign(session=session, study=study)
    return list(session.trials.all())


def _stale_sessions(study: Study, now: datetime, *, lock: bool) -> list[int]:
    # The partial index session_active_last_seen answers this from the active sessions
    # only: one index probe however many sessions the study has had.
    seen_before = now - session_timeout()
    return sql.stale_session_ids(study_id=study.pk, statuses=ACTIVE_STATUSES, seen_before=seen_before, lock=lock)


def _release_abandoned(*, study: Study, now: datetime) -> int:
    """Release the unanswered trials of the study's sessions idle past the timeout; the
    caller holds the study lock."""
    # The sessions found stay locked: none of them takes a vote while it is released.
    ids = _stale_sessions(study, now, lock=True)
    if not ids:
        return 0
    released = list(
        Trial.objects.filter(
            session_id__in=ids, kind__in=TRIAL_KINDS_COUNTED, released_at__isnull=True, rating__isnull=True
        ).values_list("id", "output_id")
    )
    Trial.objects.filter(pk__in=[trial_id for trial_id, _ in released]).update(released_at=now)
    by_count: dict[int, list[int]] = defaultdict(list)
    for output_id, count in Counter(output_id for _, output_id in released).items():
        by_count[count].append(output_id)
    for count, output_ids in by_count.items():
        OutputLoad.objects.filter(output_id__in=output_ids).update(trials=F("trials") - count)
    Session.objects.filter(id__in=ids).update(status=Session.Status.ABANDONED)
    return len(ids)


@transaction.atomic
def sessions_release_abandoned(*, study: Study | None = None, now: datetime | None = None) -> int:
    """Hand the unanswered trials of sessions idle past the timeout back to the pool: of
    one study, or of every study that has such sessions (each under its lock, in id order)."""
    now = now or timezone.now()
    if study is not None:
        return _release_abandoned(study=_lock_study(study), now=now)
    stale = Session.objects.filter(status__in=ACTIVE_STATUSES, last_seen_at__lt=now - session_timeout())
    study_ids = stale.order_by("study_id").values_list("study_id", flat=True).distinct()
    return sum(_release_abandoned(study=sql.study_locked(study_id=study_id), now=now) for study_id in study_ids)


def _status_after_answers(session: Session) -> str:
    return selectors.status_from_states(selectors.session_trial_states(session=session))


def _touch_interval() -> timedelta:
    # last_seen_at only decides abandonment, an hour away by default: writing it on every
    # "next" would cost a commit per request for nothing. Every minute (or a tenth of a
    # short timeout) is precise enough.
    return min(timedelta(seconds=60), session_timeout() / 10)


def session_touch(*, session: Session, now: datetime | None = None) -> Session:
    """Mark the session alive; a session released while away gets fresh trials."""
    now = now or timezone.now()
    if session.status == Session.Status.ABANDONED:
        return _session_reclaim(session=session, now=now)
    if session.status == Session.Status.COMPLETE and not session.completion_code:
        return session_complete(session=session, now=now)
    if now - session.last_seen_at >= _touch_interval():
        # This column only: a release running right now may have abandoned the session,
        # and writing the status we read back would undo that.
        Session.objects.filter(pk=session.pk).update(last_seen_at=now)
        session.last_seen_at = now
    return session


def session_resume(*, token: str, now: datetime | None = None) -> tuple[Session, list[selectors.TrialState]]:
    """The session holding this token, marked alive (see session_touch), with its trials
    as they stand afterwards, the ones it shows next with their images: what a rater's "next
    trial" reads."""
    session, states = _session_with_states(token)
    if session.status != Session.Status.ABANDONED:
        return session_touch(session=session, now=now), states
    # Reclaiming gives the session fresh trials: read it again.
    session_touch(session=session, now=now)
    return _session_with_states(token)


def _session_with_states(token: str) -> tuple[Session, list[selectors.TrialState]]:
    """The session with its trials, the ones shown next with their images, or SessionNotFound."""
    found = selectors.session_with_states(token=token, shown=selectors.SHOWN)
    if found is None:
        raise SessionNotFound("No such session.")
    return found


@transaction.atomic
def _session_reclaim(*, session: Session, now: datetime) -> Session:
    study = _lock_study(session.study)
    session = Session.objects.select_for_update().get(pk=session.pk)
    session.study = study
    if session.status == Session.Status.ABANDONED:
        existing = list(session.trials.filter(released_at__isnull=True))
        kept = [t for t in existing if t.kind in TRIAL_KINDS_COUNTED]
        missing = study.trials_per_session - len(kept)
        if missing > 0:
            last_position = session.trials.order_by("-position").values_list("position", flat=True)
            controls_kept = sum(t.kind == Trial.Kind.CONTROL for t in kept)
            controls_due = assignment.control_count(trials=study.trials_per_session, control_rate=study.control_rate)
            controls = max(0, min(missing, controls_due - controls_kept))
            trials = _plan_trials(
                session=session,
                study=study,
                rows=_study_rows(study),
                rating_count=missing - controls,
                control_count=controls,
                start_position=(last_position.first() or 0) + 1,
                existing=existing,
                rng=_session_rng(study, session, salt=now.isoformat()),
            )
            sql.trials_store(trials, counted=TRIAL_KINDS_COUNTED)
        session.status = _status_after_answers(session)
    session.last_seen_at = now
    session.save(update_fields=["status", "last_seen_at"])
    if session.status == Session.Status.COMPLETE and not session.completion_code:
        session = session_complete(session=session, now=now)
    return session


def _record_device(rater: Rater, device: dict[str, Any] | None) -> None:
    if not device:
        return
    changed = []
    for field in DEVICE_FIELDS:
        if device.get(field) not in (None, "") and getattr(rater, field) != device[field]:
            setattr(rater, field, device[field])
            changed.append(field)
    if changed:
        rater.save(update_fields=changed)


@transaction.atomic
def rater_device_record(*, rater: Rater, device: dict[str, Any]) -> Rater:
    _record_device(rater, device)
    return rater


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

    A rater with a platform id is found by that id; a direct rater by the session token
    kept in their cookie (``resume_token``). Returns the session and whether it is new.
    """
    now = now or timezone.now()
    device_fields = {f: v for f, v in (device or {}).items() if f in DEVICE_FIELDS and v not in (None, "")}
    session: Session | None = None
    rater: Rater | None = None
    new_rater = False
    # Everything but the assignment happens before the study lock, which every new session
    # of the study waits for: the rater and session rows have unique constraints of their
    # own against a concurrent start with the same id, and a resume needs no lock at all.
    if identity.external_id:
        rater = Rater(platform=identity.platform, external_id=identity.external_id, **device_fields)
        new_rater = sql.rater_insert(rater)
        if new_rater:
            device = None
        else:
            session = selectors.session_of_rater(
                study=study, platform=identity.platform, external_id=identity.external_id
            )
            if session is None:
                rater = Rater.objects.get(platform=identity.platform, external_id=identity.external_id)
    elif resume_token:
        session = Session.objects.filter(token=resume_token, study=study).select_related("rater").first()
    if session is not None:
        session.study = study
        _record_device(session.rater, device)
        return session_touch(session=session, now=now), False
    if study.status != Study.Status.OPEN or identity.preview:
        raise StudyNotOpen("This study is not taking new raters.")

    if rater is None:
        rater = Rater.objects.create(platform=Rater.Platform.DIRECT, **device_fields)
        new_rater = True
    else:
        _record_device(rater, device)
    fields = {
        "token": _new_token(32),
        "platform_study_id": identity.platform_study_id,
        "platform_session_id": identity.platform_session_id,
        "last_seen_at": now,
    }
    if new_rater:
        # A rater this transaction created has no session anywhere yet, and a concurrent
        # start with the same id waits for this transaction on the rater's unique key.
        session = Session.objects.create(rater=rater, study=study, **fields)
    else:
        # A known rater new to this study: their other start may be creating the session
        # right now (the unique rater-study key tells, and the savepoint recovers).
        session, created = Session.objects.get_or_create(rater=rater, study=study, defaults=fields)
        if not created:
            session.study = study
            return session_touch(session=session, now=now), False
    # Looked for before the lock, which every other start of the study waits for: there
    # are seldom any, and a session idle since a moment ago can wait for the next start.
    idle = _stale_sessions(study, now, lock=False)
    study = _lock_study(study)
    if study.status != Study.Status.OPEN:  # closed while this start was on its way
        raise StudyNotOpen("This study is not taking new raters.")
    if idle:
        _release_abandoned(study=study, now=now)
    session.study = study
    _assign(session=session, study=study)
    return session, True


@transaction.atomic
def session_complete(*, session: Session, now: datetime | None = None) -> Session:
    """Close a fully answered session and give it its completion code (once)."""
    session = Session.objects.select_for_update().get(pk=session.pk)
    if session.completion_code:
        return session
    if session.trials.filter(rating__isnull=True, released_at__isnull=True).exists():
        raise RaterFlowError("The session still has unanswered trials.")
    session.status = Session.Status.COMPLETE
    session.completion_code = _completion_code()
    session.completed_at = now or timezone.now()
    session.save(update_fields=["status", "completion_code", "completed_at"])
    return session


@dataclass(frozen=True)
class Vote:
    """A trial's vote: its session (up to date: status, completion code; with its study's
    scale), its trial (with the vote), the session's progress once it is in (as
    raters.selectors.session_progress counts it) and whether this call stored it (False:
    the same vote was already there)."""

    session: Session
    trial: selectors.TrialState
    progress: dict[str, int]
    created: bool


def rating_submit(
    *, session_token: str, trial_token: str, score: int, response_ms: int | None, now: datetime | None = None
) -> Vote:
    """Store one vote. The same vote again returns the stored one (created=False); a
    different score for an answered trial raises VoteConflict. Ratings are never updated.

    :func:`_vote_store` does it all at once, under the session's lock: find the session and
    the trial by their tokens, check the score against the study's scale, store the vote
    unless the trial is answered or released, and count the progress. On PostgreSQL that is
    a single statement, and a vote one round trip.
    """
    now = now or timezone.now()
    if not selectors.plausible_token(session_token):
        raise SessionNotFound("No such session.")
    whole = isinstance(score, int) and not isinstance(score, bool) and -(2**31) <= score < 2**31
    stored = _vote_store(
        session_token=session_token,
        trial_token=trial_token,
        score=score if whole else None,
        response_ms=response_ms,
        now=now,
    )
    if stored is None:
        raise SessionNotFound("No such session.")
    if stored.outcome == sql.VOTE_NO_TRIAL:
        raise TrialNotFound("No such trial in this session.")
    # The session with what the answer shows of it; any other field is read on first use.
    session = sql.deferred_instance(
        Session,
        {
            "id": stored.session_id,
            "study_id": stored.study_id,
            "token": session_token,
            "status": stored.status,
            "completion_code": stored.completion_code,
            "completed_at": stored.completed_at,
            "last_seen_at": stored.last_seen_at,
        },
    )
    session.study = sql.deferred_instance(Study, {"id": stored.study_id, "scale_levels": stored.scale_levels})
    if stored.outcome == sql.VOTE_BAD_SCORE:
        raise InvalidScore(f"Must be one of {', '.join(map(str, session.study.scores))}.")
    if stored.outcome == sql.VOTE_RELEASED:
        raise _trial_released()
    trial = selectors.TrialState(
        id=stored.trial_id,
        position=stored.trial_position,
        kind=stored.trial_kind,
        token=trial_token,
        released=stored.released,
        method_kind=stored.method_kind,
        rating_id=stored.rating_id,
        score=stored.score,
        response_ms=stored.response_ms,
        rated_at=stored.rated_at,
    )
    vote = Vote(session=session, trial=trial, progress=stored.progress, created=stored.outcome == sql.VOTE_STORED)
    if trial.score != score:
        raise VoteConflict(vote)
    return vote


def _trial_released() -> TrialReleased:
    return TrialReleased("This trial was handed to another rater after a long pause.")


def _vote_store(
    *, session_token: str, trial_token: str, score: int | None, response_ms: int | None, now: datetime
) -> sql.StoredVote | None:
    """Lock the session, check the vote, store it unless the trial is answered or released
    by now, and bring the session's status, last_seen_at and, on completion, its code up to
    date. Returns a :class:`raters.sql.StoredVote`, or None if there is no such session. On
    PostgreSQL one call of a database function (raters migration 0006)."""
    store = sql.vote_store if sql.votes_in_one_call() else _vote_store_in_transaction
    return store(
        session_token=session_token,
        trial_token=trial_token,
        score=score,
        response_ms=response_ms,
        now=now,
        touch_before=now - _touch_interval(),
        code=_completion_code(),
    )


@transaction.atomic
def _vote_store_in_transaction(
    *,
    session_token: str,
    trial_token: str,
    score: int | None,
    response_ms: int | None,
    now: datetime,
    touch_before: datetime,
    code: str,
) -> sql.StoredVote | None:
    """:func:`_vote_store` elsewhere than on PostgreSQL: the same rules as the database
    function, in a transaction that holds the session (on SQLite, the whole database)."""
    session = Session.objects.select_for_update().select_related("study").filter(token=session_token).first()
    if session is None:
        return None
    # Read once the lock is held, so that the status computed below sees every vote.
    states = selectors.session_trial_states(session=session)
    state = next((other for other in states if other.token == trial_token), None)
    outcome = sql.VOTE_STORED
    if state is None:
        outcome = sql.VOTE_NO_TRIAL
    elif score not in session.study.scores:
        outcome = sql.VOTE_BAD_SCORE
    elif state.answered:
        outcome = sql.VOTE_EXISTING
    elif state.released:
        outcome = sql.VOTE_RELEASED
    else:
        # The session's status once this vote is in: its trial no longer open.
        status = selectors.status_from_states([other for other in states if other.id != state.id])
        # The session row is written only when the vote changes it: a new status, or a
        # last_seen_at older than the touch interval (an UPDATE of an indexed column
        # rewrites every index of the row: most votes change nothing else).
        changes: dict[str, Any] = {}
        if status != session.status:
            changes["status"] = status
        if session.last_seen_at <= touch_before:
            changes["last_seen_at"] = now
        if status == Session.Status.COMPLETE and not session.completion_code:
            # Every live trial is answered (we hold the lock): close it in this same write.
            changes |= {"completion_code": code, "completed_at": now}
        rating_id = sql.rating_store(
            trial_id=state.id,
            score=score,
            response_ms=response_ms,
            created_at=now,
            session_id=session.pk,
            session=changes,
        )
        if rating_id is not None:
            rating = Rating(pk=rating_id, score=score, response_ms=response_ms, created_at=now)
            for field, value in changes.items():
                setattr(session, field, value)
        else:
            # Stored by a writer that does not lock the session (the import).
            outcome = sql.VOTE_EXISTING
            rating = Rating.objects.get(trial_id=state.id)
        state = replace(
            state, rating_id=rating.pk, score=rating.score, response_ms=rating.response_ms, rated_at=rating.created_at
        )
        states = [state if other.id == state.id else other for other in states]
    # StoredVote's trial columns: the trial, then its vote.
    trial = (None,) * 9
    if state is not None:
        trial = (
            state.id,
            state.position,
            state.kind,
            state.method_kind,
            state.released,
            state.rating_id,
            state.score,
            state.response_ms,
            state.rated_at,
        )
    return sql.StoredVote(
        outcome,
        session.pk,
        session.study_id,
        session.status,
        session.completion_code,
        session.completed_at,
        session.last_seen_at,
        session.study.scale_levels,
        *trial,
        **selectors.session_progress(states=states),
    )
