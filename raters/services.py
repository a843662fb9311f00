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
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Max, QuerySet
from django.utils import timezone

from raters import allocation, assignment, capacity, practice, selectors
from raters.models import OutputLoad, Rater, Rating, Session, Trial
from raters.platforms import RaterIdentity
from studies.models import Method, Study

# Unambiguous characters only: raters copy the code by hand into Prolific or MTurk.
_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
_CODE_LENGTH = 10


class RaterFlowError(Exception):
    """Base of the errors a rater can cause; the message is safe to show them."""


class StudyNotOpen(RaterFlowError):
    pass


class StudyFull(StudyNotOpen):
    """Every output has its target number of votes (raters.capacity): no new session."""

    def __init__(self) -> None:
        super().__init__("This study has all the answers it needs: it is not taking new raters. Thank you!")


class SessionNotFound(RaterFlowError):
    pass


class TrialNotFound(RaterFlowError):
    pass


class InvalidScore(RaterFlowError):
    pass


class SessionElsewhere(RaterFlowError):
    def __init__(self) -> None:
        super().__init__(
            "This study was already started with your id in another browser or platform session. "
            "Please continue it there, or return to the platform and open the study again from there."
        )


class TrialReleased(RaterFlowError):
    def __init__(self) -> None:
        super().__init__("This trial was handed to another rater after a long pause.")


@dataclass(frozen=True)
class Vote:
    """A trial's vote: its session as it stands after it (status, completion code), the
    trial (as raters.selectors.session_trials reads it, with its method's kind), the
    rating, the session's progress and whether this call stored it."""

    session: Session
    trial: dict[str, Any]
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


def _study_rows(study: Study) -> list[assignment.Candidate]:
    """The study's outputs raters can be shown (their image imported, and the scene's
    image the protocol shows beside them), with their load, in id order: assignment
    draws from them with a seeded generator."""
    outputs = capacity.shown_outputs(study=study)
    rows = list(
        outputs.order_by("pk").values_list("pk", "method_id", "scene_id", "load__trials", "method__kind", "psnr")
    )
    if any(row[3] is None for row in rows):  # the first start after an import: loads start at zero
        OutputLoad.objects.bulk_create(
            [OutputLoad(output_id=row[0]) for row in rows if row[3] is None], ignore_conflicts=True
        )
    return [
        assignment.Candidate(pk, method, scene, load or 0, kind in Method.CONTROL_KINDS, kind, psnr)
        for pk, method, scene, load, kind, psnr in rows
    ]


def _training_rows(rows: list[assignment.Candidate], rng: random.Random, target: int) -> list[assignment.Candidate]:
    """A hidden reference, a low anchor and a middling output, on different scenes.

    The middling one among the outputs that have their votes (raters.practice.spare),
    and among equals the most loaded: the session will not rate what it practised on, and
    the outputs it needs for even coverage are the least loaded ones. Without controls,
    see raters.practice."""
    if not any(row.control for row in rows):
        return practice.practice_without_controls(rows, rng, target)
    picks: list[assignment.Candidate] = []

    def pick(pool: list[assignment.Candidate]) -> None:
        used = {row.scene_id for row in picks}
        fresh = [row for row in pool if row.scene_id not in used] or pool
        if fresh:
            picks.append(max(fresh, key=lambda row: row.load))

    for kind in Method.CONTROL_KINDS:
        pool = [row for row in rows if row.method_kind == kind]
        rng.shuffle(pool)
        pick(pool)
    submissions = practice.spare([row for row in rows if not row.control], target, needed=1)
    rng.shuffle(submissions)
    with_metric = sorted((row for row in submissions if row.psnr is not None), key=lambda row: row.psnr)
    if with_metric:
        # The middle third by PSNR stands for "a typical result" better than any output.
        third = len(with_metric) // 3
        submissions = with_metric[third : len(with_metric) - third] or with_metric
    pick(submissions)
    return picks


def _plan_trials(
    *,
    session: Session,
    study: Study,
    rows: list[assignment.Candidate],
    existing: Sequence[Trial],
    start_position: int,
    salt: str = "",
) -> list[Trial]:
    """The trials that bring the session's live trials ``existing`` up to the study's
    ``trials_per_session``, controls at its rate, from ``start_position`` on; unsaved."""
    rng = random.Random(f"{study.seed}:{session.pk}:{salt}")  # reproducible, different per session
    kept = [trial for trial in existing if trial.kind in Trial.COUNTED_KINDS]
    missing = study.trials_per_session - len(kept)
    due = assignment.control_count(trials=study.trials_per_session, control_rate=study.control_rate)
    controls = max(0, min(missing, due - sum(trial.kind == Trial.Kind.CONTROL for trial in kept)))
    main = [row for row in rows if not row.control]
    control_rows = [row for row in rows if row.control] if controls else []
    if not control_rows:
        controls = 0
    by_id = {row.output_id: row for row in rows}
    # Adaptive studies weigh the rated pool by the cached live decision (None: uniform).
    weights = allocation.output_weights(study=study, outputs=[(row.output_id, row.method_id) for row in main])
    scene_counts: Counter[int] = Counter()
    method_counts: Counter[int] = Counter()
    # Practised outputs count too: a pair seen with feedback must not come back rated.
    output_counts: Counter[int] = Counter(trial.output_id for trial in existing)
    for trial in kept:
        if trial.output_id in by_id:
            scene_counts[by_id[trial.output_id].scene_id] += 1
            method_counts[by_id[trial.output_id].method_id] += 1
    # Ratings first, then controls: each choice sees the counts the previous ones left.
    # Rated outputs below the study's target come first (a team added late catches up).
    chosen = [
        (row, kind)
        for pool, count, kind, pool_weights, target in (
            (main, missing - controls, Trial.Kind.RATING, weights, study.ratings_per_output),
            (control_rows, controls, Trial.Kind.CONTROL, None, None),
        )
        for row in assignment.choose(
            pool,
            count=count,
            rng=rng,
            scene_counts=scene_counts,
            method_counts=method_counts,
            output_counts=output_counts,
            scene_cap=assignment.scene_cap(missing),
            weights=pool_weights,
            target=target,
        )
    ]
    last = max(existing, key=lambda trial: trial.position, default=None)
    prev_scene = by_id[last.output_id].scene_id if last is not None and last.output_id in by_id else None
    ordered = assignment.order_without_repeats(chosen, key=lambda item: item[0].scene_id, rng=rng, prev=prev_scene)
    return [
        Trial(
            session=session, output_id=row.output_id, position=start_position + index, kind=kind, token=_new_token(18)
        )
        for index, (row, kind) in enumerate(ordered)
    ]


def _store_trials(trials: list[Trial]) -> None:
    """Store new trials of outputs whose loads exist (see _study_rows) and count them."""
    Trial.objects.bulk_create(trials)
    _loads_change(Counter(trial.output_id for trial in trials if trial.kind in Trial.COUNTED_KINDS), 1)


def _assign(*, session: Session, study: Study, rows: list[assignment.Candidate]) -> None:
    """Training and rated trials of a new session from the study's ``rows`` (see
    _study_rows); the caller holds the study lock."""
    rng = random.Random(f"{study.seed}:{session.pk}:training")
    training = [
        Trial(session=session, output_id=row.output_id, position=index, kind=Trial.Kind.TRAINING, token=_new_token(18))
        for index, row in enumerate(_training_rows(rows, rng, study.ratings_per_output))
    ]
    rated = _plan_trials(session=session, study=study, rows=rows, existing=training, start_position=len(training))
    _store_trials(training + rated)
    if not training:  # new sessions start in training
        session.status = Session.Status.RATING
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
    counts = Counter(trial.output_id for trial in trials if trial.kind in Trial.COUNTED_KINDS)
    if counts:
        OutputLoad.objects.bulk_create([OutputLoad(output_id=i) for i in sorted(counts)], ignore_conflicts=True)
        _loads_change(counts, 1)


def _stale_sessions(study: Study, now: datetime) -> QuerySet[Session]:
    # The partial index session_active_last_seen answers this from the active sessions only.
    return Session.objects.filter(
        study=study, status__in=Session.ACTIVE_STATUSES, last_seen_at__lt=now - session_timeout()
    )


def _release_abandoned(*, study: Study, now: datetime) -> int:
    """Hand the unanswered trials of the study's sessions idle past the timeout back to
    the pool; the caller holds the study lock."""
    # A session locked right now is taking a vote: it is not abandoned, and waiting for
    # it would hold up the start that asks. The ones found stay locked meanwhile.
    stale = _stale_sessions(study, now).select_for_update(skip_locked=True)
    ids = list(stale.order_by("pk").values_list("pk", flat=True))
    if not ids:
        return 0
    released = Trial.objects.filter(
        session_id__in=ids, kind__in=Trial.COUNTED_KINDS, released_at__isnull=True, rating__isnull=True
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


# --- sessions -------------------------------------------------------------------------


def session_touch(*, session: Session, now: datetime | None = None) -> Session:
    """Mark the session alive; a session released while away gets fresh trials."""
    now = now or timezone.now()
    if session.status == Session.Status.ABANDONED:
        return _session_reclaim(session=session, now=now)
    if now - session.last_seen_at >= _touch_interval():
        # This column only: a release running right now may have abandoned the session,
        # and writing the status read earlier would undo that.
        Session.objects.filter(pk=session.pk).update(last_seen_at=now)
        session.last_seen_at = now
    return session


def session_resume(*, token: str, now: datetime | None = None) -> Session:
    """The session holding this token with its study, marked alive (see session_touch):
    what a rater's "next trial" reads first."""
    session = selectors.session_by_token(token=token)
    if session is None:
        raise SessionNotFound("No such session.")
    if session.status != Session.Status.ABANDONED:
        return session_touch(session=session, now=now)
    session_touch(session=session, now=now)
    # Reclaiming gave the session fresh trials: read it again.
    return selectors.session_by_token(token=token)


@transaction.atomic
def _session_reclaim(*, session: Session, now: datetime) -> Session:
    study = _lock_study(session.study)
    session = Session.objects.select_for_update().get(pk=session.pk)
    session.study = study
    if session.status == Session.Status.ABANDONED:
        existing = list(session.trials.filter(selectors.LIVE))
        # Released trials keep their positions: the new ones come after them all.
        last = session.trials.aggregate(last=Max("position"))["last"]
        rated = _plan_trials(
            session=session,
            study=study,
            rows=_study_rows(study),
            existing=existing,
            start_position=(last or 0) + 1,
            salt=now.isoformat(),
        )
        _store_trials(rated)
        _session_update(session, selectors.session_progress(session=session), now)
    return session


def _record_device(rater: Rater, device: dict[str, Any] | None) -> None:
    """Store the fields of ``device`` (checked by raters.api.serializers.DeviceSerializer)
    that are given and differ."""
    changed = {field: value for field, value in (device or {}).items() if value not in (None, "")}
    changed = {field: value for field, value in changed.items() if getattr(rater, field) != value}
    for field, value in changed.items():
        setattr(rater, field, value)
    if changed:
        rater.save(update_fields=list(changed))


def _rater_for(identity: RaterIdentity, device: dict[str, Any]) -> tuple[Rater, bool]:
    """The rater starting, with the device fields if new, and whether it is new. A new
    platform id is the common case: it is inserted first, and the unique key finds the
    rater an earlier (or concurrent) start of the same id stored."""
    if not identity.external_id:
        return Rater.objects.create(platform=Rater.Platform.DIRECT, **device), True
    try:
        with transaction.atomic():
            return Rater.objects.create(platform=identity.platform, external_id=identity.external_id, **device), True
    except IntegrityError:
        return Rater.objects.get(platform=identity.platform, external_id=identity.external_id), False


@transaction.atomic
def rater_device_record(*, rater: Rater, device: dict[str, Any]) -> Rater:
    _record_device(rater, device)
    return rater


def session_known(*, study: Study, identity: RaterIdentity, resume_token: str) -> Session | None:
    """The session this rater already has in the study: a direct rater's by the session
    token their cookie keeps; a platform rater's by their platform id, with that cookie or
    the same platform session (Prolific's SESSION_ID, MTurk's assignmentId). A platform id
    alone is not a secret: anyone else who knows it gets SessionElsewhere, not the session."""
    if not identity.external_id:
        if not resume_token:
            return None
        return Session.objects.select_related("study", "rater").filter(token=resume_token, study=study).first()
    session = selectors.session_of_rater(study=study, platform=identity.platform, external_id=identity.external_id)
    return session if session is None else _resumable(session, identity, resume_token)


def _resumable(session: Session, identity: RaterIdentity, resume_token: str) -> Session:
    same_platform_session = identity.platform_session_id == session.platform_session_id
    if session.token != resume_token and not (identity.platform_session_id and same_platform_session):
        raise SessionElsewhere()
    return session


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
    session = session_known(study=study, identity=identity, resume_token=resume_token)
    if session is not None:
        _record_device(session.rater, device)
        return session_touch(session=session, now=now), False
    if study.status != Study.Status.OPEN or identity.preview:
        raise StudyNotOpen("This study is not taking new raters.")
    rater, new_rater = _rater_for(identity, {field: value for field, value in (device or {}).items() if value})
    # Everything before the study's lock that can be: every other start of the study waits
    # for it until this transaction commits. The unique rater-study key makes a concurrent
    # start of the same rater wait here, then find this session.
    fields = {
        "token": _new_token(32),
        "platform_study_id": identity.platform_study_id,
        "platform_session_id": identity.platform_session_id,
        "last_seen_at": now,
    }
    if new_rater:  # a rater stored by this transaction has no session anywhere yet
        session, created = Session.objects.create(rater=rater, study=study, **fields), True
    else:
        _record_device(rater, device)
        session, created = Session.objects.get_or_create(rater=rater, study=study, defaults=fields)
    if not created:  # a start of the same rater committed it while this one waited
        return session_touch(session=_resumable(session, identity, resume_token), now=now), False
    stale = _stale_sessions(study, now).exists()
    study = _lock_study(study)
    if study.status != Study.Status.OPEN:  # closed while this start was on its way
        raise StudyNotOpen("This study is not taking new raters.")
    if stale:  # released first: abandoned sessions' trials may make room
        _release_abandoned(study=study, now=now)
    rows = _study_rows(study)
    # Under the lock, where loads change; the session made above is rolled back.
    if capacity.Capacity.of_loads([row.load for row in rows if not row.control], study.ratings_per_output).full:
        raise StudyFull()
    if not allocation.budget_left(study=study, handed_out=sum(row.load for row in rows)):
        raise StudyNotOpen("This study has all the votes it needs.")
    _assign(session=session, study=study, rows=rows)
    return session, True


# --- votes ----------------------------------------------------------------------------


def _on_scale(score: object, study: Study) -> bool:
    # A whole number, not a boolean (True == 1 in Python) nor 3.0.
    return type(score) is int and score in study.scores


def _session_update(session: Session, progress: dict[str, int], now: datetime) -> None:
    """Write what the session's answers ``progress`` change of it: its status, a last-seen
    time older than the touch interval, and on completion its code (once). Most votes
    change nothing."""
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


def rating_submit(
    *, session_token: str, trial_token: str, score: object, response_ms: int | None, now: datetime | None = None
) -> Vote:
    """Store one vote. The same vote again returns the stored one (created=False); a
    different score for an answered trial raises VoteConflict, a released trial
    TrialReleased. Ratings are never updated.

    The trial's unique key stores at most one vote whatever happens: a vote stored meanwhile
    by a writer that does not take the session's lock (the import) makes the insert fail,
    and the vote is read again as it then stands.
    """
    vote = dict(session_token=session_token, trial_token=trial_token, score=score, response_ms=response_ms, now=now)
    try:
        stored = _rating_store(**vote)
    except IntegrityError:
        stored = _rating_store(**vote)
    if stored.created:
        # After the vote's commit; reads the cached decision, so most votes cost nothing.
        allocation.study_stop_if_decided(study=stored.session.study)
    return stored


@transaction.atomic
def _rating_store(
    *, session_token: str, trial_token: str, score: object, response_ms: int | None, now: datetime | None
) -> Vote:
    """The session is locked first and its trials read after, so that a vote of the
    rater's other tab is seen, and progress and status are counted with every vote in."""
    now = now or timezone.now()
    try:
        session = Session.objects.select_for_update(of=("self",)).select_related("study").get(token=session_token)
    except Session.DoesNotExist:
        raise SessionNotFound("No such session.") from None
    trials = selectors.session_trials(session=session, method=True)
    trial = next((trial for trial in trials if trial["token"] == trial_token), None)
    if trial is None:
        raise TrialNotFound("No such trial in this session.")
    if not _on_scale(score, session.study):
        raise InvalidScore(f"Must be one of {', '.join(map(str, session.study.scores))}.")
    created = trial["rating__id"] is None
    if created:
        if trial["released_at"] is not None:
            raise TrialReleased()
        rating = Rating.objects.create(trial_id=trial["pk"], score=score, response_ms=response_ms)
        trial.update(
            {f"rating__{name}": getattr(rating, name) for name in ("id", "score", "response_ms", "created_at")}
        )
    else:
        rating = Rating(**{name: trial[f"rating__{name}"] for name in ("id", "score", "response_ms", "created_at")})
    progress = selectors.progress_of(trials)
    if created:
        _session_update(session, progress, now)
    vote = Vote(session=session, trial=trial, rating=rating, progress=progress, created=created)
    if rating.score != score:
        raise VoteConflict(vote)
    return vote


class ExclusionReasonMissing(ValueError):
    """An exclusion without a reason: the results page and the exports must say why."""


def _exclusion_reason(reason: str) -> str:
    reason = " ".join(reason.split())
    if not reason:
        raise ExclusionReasonMissing("Give a reason for the exclusion (for example 'pilot run').")
    return reason


@transaction.atomic
def exclusion_set(*, rows: QuerySet[Session] | QuerySet[Rater], reason: str, now: datetime | None = None) -> int:
    """Leave ``rows`` out of every analysis from now on, with ``reason``: sessions, or
    raters (each with every session of theirs, in every study).

    The votes stay stored (they are append-only); analysis runs created afterwards drop
    them. Returns how many rows were marked.
    """
    return rows.update(excluded_reason=_exclusion_reason(reason), excluded_at=now or timezone.now())


@transaction.atomic
def exclusion_clear(*, rows: QuerySet[Session] | QuerySet[Rater]) -> int:
    """Undo :func:`exclusion_set`: the rows excluded count again in the next analysis run."""
    return rows.exclude(excluded_reason="").update(excluded_reason="", excluded_at=None)
