"""The sessions of a study as an organizer pays for them: one row per session with its
votes, failed controls and a suggested approve/reject with the reason (reads only).

The suggestion is advice for Prolific's and MTurk's bulk review, not a verdict: the
analysis screens raters on more rules (BT.500, correlation) once the votes are in.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from typing import Any

from django.db.models import Q

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


def _suggest(status: str, votes: int, trials: int, controls: int, failed: int) -> tuple[str, str]:
    if status != Session.Status.COMPLETE:
        return "reject", f"did not finish: {votes} of {trials} pairs rated"
    if controls and failed / controls > MAX_FAILED_CONTROLS_FRACTION:
        return "reject", f"failed {failed} of {controls} attention checks"
    if failed:
        return "approve", f"finished; failed {failed} of {controls} attention checks (within the allowance)"
    return "approve", "finished" + (f", passed all {controls} attention checks" if controls else "")


def study_payment_rows(*, study: Study) -> list[dict[str, Any]]:
    """One row per session of ``study`` (``PAYMENT_COLUMNS``), in start order: two queries."""
    ref_max, anchor_min = control_thresholds(study.scale_min, study.scale_max, None, None)
    counted = Trial.objects.filter(session__study=study, kind__in=Trial.COUNTED_KINDS).filter(
        Q(released_at__isnull=True) | Q(rating__isnull=False)
    )
    per_session: dict[int, dict[str, int]] = defaultdict(lambda: {"trials": 0, "votes": 0, "controls": 0, "failed": 0})
    for session_id, kind, method_kind, score in counted.values_list(
        "session_id", "kind", "output__method__kind", "rating__score"
    ):
        row = per_session[session_id]
        row["trials"] += 1
        row["votes"] += score is not None
        if kind == Trial.Kind.CONTROL and score is not None:
            row["controls"] += 1
            row["failed"] += (method_kind == Method.Kind.HIDDEN_REFERENCE and score <= ref_max) or (
                method_kind == Method.Kind.LOW_ANCHOR and score >= anchor_min
            )
    rows = []
    sessions = Session.objects.filter(study=study).select_related("rater").order_by("started_at", "pk")
    for session in sessions:
        counts = per_session[session.pk]
        suggestion, reason = _suggest(
            session.status, counts["votes"], counts["trials"], counts["controls"], counts["failed"]
        )
        # Leaving the analysis says nothing about the work done (a pilot rater is paid
        # like any other): the suggestion stands, the row says the votes do not count.
        excluded = session.excluded_reason or session.rater.excluded_reason
        if excluded:
            reason += f"; excluded from the analysis by hand: {excluded}"
        rows.append(
            {
                "platform": session.rater.platform,
                "platform_id": session.rater.external_id,
                "platform_session_id": session.platform_session_id,
                "session": session.pk,
                "status": session.status,
                "completion_code": session.completion_code,
                "votes": counts["votes"],
                "trials": counts["trials"],
                "controls": counts["controls"],
                "failed_controls": counts["failed"],
                "suggestion": suggestion,
                "reason": reason,
                "excluded_by_hand": excluded,
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
