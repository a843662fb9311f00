"""The sessions of a study as an organizer pays for them: one row per session with its
votes, failed controls and a suggested approve/reject with the reason (reads only).

The suggestion is advice for Prolific's and MTurk's bulk review, not a verdict: the
analysis screens raters on more rules (BT.500, correlation) once the votes are in.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db.models import Q, QuerySet

from analysis.exports import spreadsheet_safe
from analysis.stats.screening import control_thresholds
from raters.models import Session, Trial
from studies.models import Method, Study

# As the analysis's control rule (analysis.stats.screening.control_screening).
MAX_FAILED_CONTROLS_FRACTION = 0.25

PAYMENT_COLUMNS = (
    "platform",
    "platform_id",
    "platform_session_id",
    "session",
    "status",
    "completion_code",
    "votes",
    "trials",
    "controls",
    "failed_controls",
    "suggestion",
    "reason",
    "excluded_by_hand",
)


@dataclass(frozen=True)
class SessionPayment:
    """What a session earned: its counted trials (outstanding or answered), votes, the
    attention checks it answered and failed, and the suggested approve/reject."""

    trials: int = 0
    votes: int = 0
    controls: int = 0
    failed_controls: int = 0
    suggestion: str = ""
    reason: str = ""
    excluded_by_hand: str = ""


def payment_suggestion(*, status: str, controls: int, failed_controls: int) -> str:
    """``approve`` or ``reject``: the rule, and the only place it is written."""
    if status != Session.Status.COMPLETE:
        return "reject"
    if controls and failed_controls / controls > MAX_FAILED_CONTROLS_FRACTION:
        return "reject"
    return "approve"


def _reason(suggestion: str, status: str, votes: int, trials: int, controls: int, failed: int) -> str:
    """Why :func:`payment_suggestion` said ``suggestion``, in words a rater could be sent."""
    if suggestion == "reject":
        if status != Session.Status.COMPLETE:
            return f"did not finish: {votes} of {trials} pairs rated"
        return f"failed {failed} of {controls} attention checks"
    if failed:
        return f"finished; failed {failed} of {controls} attention checks (within the allowance)"
    return "finished" + (f", passed all {controls} attention checks" if controls else "")


def _tallies(trials: QuerySet[Trial], sessions: Iterable[Session]) -> dict[int, dict[str, int]]:
    """Counted trials, votes, answered and failed controls per session of ``sessions``,
    from the rows of ``trials`` (one query). The control thresholds are each study's."""
    by_study: dict[int, tuple[float, float]] = {}
    thresholds = {}
    for session in sessions:
        if session.study_id not in by_study:
            by_study[session.study_id] = control_thresholds(
                session.study.scale_min, session.study.scale_max, None, None
            )
        thresholds[session.pk] = by_study[session.study_id]
    tallies: dict[int, dict[str, int]] = defaultdict(lambda: {"trials": 0, "votes": 0, "controls": 0, "failed": 0})
    live = trials.filter(kind__in=Trial.COUNTED_KINDS).filter(Q(released_at__isnull=True) | Q(rating__isnull=False))
    for session_id, kind, method_kind, score in live.values_list(
        "session_id", "kind", "output__method__kind", "rating__score"
    ):
        if session_id not in thresholds:
            continue
        row = tallies[session_id]
        row["trials"] += 1
        row["votes"] += score is not None
        if kind == Trial.Kind.CONTROL and score is not None:
            ref_max, anchor_min = thresholds[session_id]
            row["controls"] += 1
            row["failed"] += (method_kind == Method.Kind.HIDDEN_REFERENCE and score <= ref_max) or (
                method_kind == Method.Kind.LOW_ANCHOR and score >= anchor_min
            )
    return tallies


def _payments(trials: QuerySet[Trial], sessions: Sequence[Session]) -> dict[int, SessionPayment]:
    tallies = _tallies(trials, sessions)
    payments = {}
    for session in sessions:
        counts = tallies[session.pk]
        suggestion = payment_suggestion(
            status=session.status, controls=counts["controls"], failed_controls=counts["failed"]
        )
        reason = _reason(
            suggestion, session.status, counts["votes"], counts["trials"], counts["controls"], counts["failed"]
        )
        # Leaving the analysis says nothing about the work done (a pilot rater is paid
        # like any other): the suggestion stands, the reason says the votes do not count.
        excluded = session.excluded_reason or session.rater.excluded_reason
        if excluded:
            reason += f"; excluded from the analysis by hand: {excluded}"
        payments[session.pk] = SessionPayment(
            trials=counts["trials"],
            votes=counts["votes"],
            controls=counts["controls"],
            failed_controls=counts["failed"],
            suggestion=suggestion,
            reason=reason,
            excluded_by_hand=excluded,
        )
    return payments


def session_payments(*, sessions: Sequence[Session]) -> dict[int, SessionPayment]:
    """:class:`SessionPayment` of each of ``sessions`` (a page of the admin's list, any
    studies), by session id: one query, whatever the number of sessions. The sessions'
    ``study`` and ``rater`` should be loaded with them (``select_related``)."""
    return _payments(Trial.objects.filter(session_id__in=[s.pk for s in sessions]), sessions)


def sessions_with_suggestion(*, sessions: QuerySet[Session], suggestion: str) -> QuerySet[Session]:
    """``sessions`` narrowed to those whose suggestion is ``suggestion`` (the admin's
    filter): :func:`payment_suggestion` decides, on the answered controls only (two queries)."""
    candidates = list(sessions.select_related("study").only("pk", "status", "study", "study__scale_levels"))
    tallies = _tallies(Trial.objects.filter(session__in=sessions, kind=Trial.Kind.CONTROL), candidates)
    wanted = [
        session.pk
        for session in candidates
        if payment_suggestion(
            status=session.status,
            controls=tallies[session.pk]["controls"],
            failed_controls=tallies[session.pk]["failed"],
        )
        == suggestion
    ]
    return sessions.filter(pk__in=wanted)


def study_payment_rows(*, study: Study) -> list[dict[str, Any]]:
    """One row per session of ``study`` (``PAYMENT_COLUMNS``), in start order: two queries."""
    sessions = list(Session.objects.filter(study=study).select_related("rater").order_by("started_at", "pk"))
    for session in sessions:
        session.study = study  # the thresholds need its scale: not one query per session
    payments = _payments(Trial.objects.filter(session__study=study), sessions)
    rows = []
    for session in sessions:
        payment = payments[session.pk]
        rows.append(
            {
                "platform": session.rater.platform,
                "platform_id": session.rater.external_id,
                "platform_session_id": session.platform_session_id,
                "session": session.pk,
                "status": session.status,
                "completion_code": session.completion_code,
                "votes": payment.votes,
                "trials": payment.trials,
                "controls": payment.controls,
                "failed_controls": payment.failed_controls,
                "suggestion": payment.suggestion,
                "reason": payment.reason,
                "excluded_by_hand": payment.excluded_by_hand,
            }
        )
    return rows


def study_payment_csv(*, study: Study) -> str:
    """:func:`study_payment_rows` as CSV with a header, text cells guarded against
    spreadsheet formulas (a platform id could start with "=")."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=PAYMENT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in study_payment_rows(study=study):
        writer.writerow({name: spreadsheet_safe(value) for name, value in row.items()})
    return out.getvalue()
