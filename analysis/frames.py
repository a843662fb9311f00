"""Votes as a pandas DataFrame, for analysts and for the analysis services.

    >>> from analysis.frames import ratings_frame
    >>> df = ratings_frame("demo")            # counted votes: trial kinds rating + control
    >>> df.groupby("method")["score"].mean()

Sessions an organizer excluded by hand (a pilot run, an organizer's own test; the session
or its rater carries a reason) are left out unless ``include_excluded=True``, which keeps
them with their reason in ``excluded_reason``.

One row per vote, built from a single ``values_list`` query: a study of 12 methods x 42
scenes x 10 votes is 5000 rows, and a Python loop over model instances would cost one
object per row for nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from raters.models import Rating, Trial
from studies.models import Study

if TYPE_CHECKING:
    from analysis.models import AnalysisRun

#: Trial kinds whose votes count towards every estimate. Training votes never count.
COUNTED_KINDS: tuple[str, ...] = (Trial.Kind.RATING.value, Trial.Kind.CONTROL.value)

# (frame column, ORM lookup). Kept as one table so the column order, the query and the
# documentation cannot drift apart.
_FIELDS: tuple[tuple[str, str], ...] = (
    ("rating_id", "id"),
    ("rater_id", "trial__session__rater_id"),
    ("session_id", "trial__session_id"),
    ("session_excluded", "trial__session__excluded_reason"),
    ("rater_excluded", "trial__session__rater__excluded_reason"),
    ("platform", "trial__session__rater__platform"),
    ("external_id", "trial__session__rater__external_id"),
    ("scene", "trial__output__scene__name"),
    ("method", "trial__output__method__name"),
    ("method_kind", "trial__output__method__kind"),
    ("output_id", "trial__output_id"),
    ("score", "score"),
    ("kind", "trial__kind"),
    ("response_ms", "response_ms"),
    ("created_at", "created_at"),
    ("psnr", "trial__output__psnr"),
    ("ssim", "trial__output__ssim"),
)

#: Columns of :func:`ratings_frame`, in order.
COLUMNS: tuple[str, ...] = (
    "rater",
    "scene",
    "method",
    "method_kind",
    "score",
    "kind",
    "response_ms",
    "created_at",
    "psnr",
    "ssim",
    "rating_id",
    "rater_id",
    "platform",
    "output_id",
    "session_id",
    "excluded_reason",
)


class UnknownStudy(LookupError):
    """No study has the slug given to :func:`ratings_frame`."""


def ratings_frame(
    study: Study | str,
    include_training: bool = False,
    *,
    upto_rating_id: int | None = None,
    include_excluded: bool = False,
) -> pd.DataFrame:
    """The study's votes, one row per vote, in one database query.

    Parameters
    ----------
    study
        A :class:`~studies.models.Study` or its slug.
    include_training
        Also return training votes (``kind == "training"``). They never count towards an
        estimate; the analysis services drop them again.
    upto_rating_id
        Only votes with ``rating_id <= upto_rating_id``. Ratings are append-only, so this
        reproduces exactly the votes a stored analysis run saw.
    include_excluded
        Also return the votes of sessions excluded by hand (their ``excluded_reason`` is
        not empty). They never count towards an estimate.

    Returns
    -------
    pandas.DataFrame
        Columns ``rater, scene, method, method_kind, score, kind, response_ms, created_at,
        psnr, ssim`` followed by the keys ``rating_id, rater_id, platform, output_id,
        session_id`` and ``excluded_reason`` (empty unless the session, or its rater, was
        excluded by hand).
        ``rater`` is the rater's external id (the id on Prolific / MTurk, or the id in an
        imported CSV), ``#<pk>`` for a direct-link rater who has none, prefixed with the
        platform when two platforms share an id.

    Raises
    ------
    UnknownStudy
        When ``study`` is a slug no study has (rather than an empty frame, which would
        read as "no votes yet").

    Examples
    --------
    >>> df = ratings_frame("demo")
    >>> df.groupby(["method", "scene"])["score"].mean()  # per-image MOS
    """
    if isinstance(study, Study):
        queryset = Rating.objects.filter(trial__session__study_id=study.pk)
    else:
        # Filter through the join rather than fetching the Study first: one query.
        queryset = Rating.objects.filter(trial__session__study__slug=study)
    if not include_training:
        queryset = queryset.filter(trial__kind__in=COUNTED_KINDS)
    if upto_rating_id is not None:
        queryset = queryset.filter(id__lte=upto_rating_id)
    rows = list(queryset.order_by("id").values_list(*(lookup for _, lookup in _FIELDS)))
    # Only an empty answer needs the second query that tells "no votes" from "no study".
    if not rows and not isinstance(study, Study) and not Study.objects.filter(slug=study).exists():
        known = ", ".join(Study.objects.order_by("slug").values_list("slug", flat=True)[:20]) or "none yet"
        raise UnknownStudy(f"no study with slug {study!r} (studies: {known})")
    frame = pd.DataFrame.from_records(rows, columns=[name for name, _ in _FIELDS])
    # A session's own exclusion names it more precisely than its rater's.
    frame["excluded_reason"] = frame["session_excluded"].where(frame["session_excluded"] != "", frame["rater_excluded"])
    if not include_excluded:
        frame = frame[frame["excluded_reason"] == ""].reset_index(drop=True)
    frame["rater"] = _rater_labels(frame)
    frame = frame.astype(
        {
            "rating_id": "int64",
            "rater_id": "int64",
            "output_id": "int64",
            "session_id": "int64",
            "score": "int64",
            "response_ms": "Int64",
            "psnr": "float64",
            "ssim": "float64",
        }
    )
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
    for column in ("rater", "scene", "method", "method_kind", "kind", "platform", "excluded_reason"):
        frame[column] = frame[column].astype(object)
    return frame[list(COLUMNS)]


def _rater_labels(frame: pd.DataFrame) -> pd.Series:
    """Readable rater ids that stay unique within the study."""
    if frame.empty:
        return pd.Series([], dtype=object, index=frame.index)
    external = frame["external_id"].fillna("").astype(str)
    labels = external.where(external != "", "#" + frame["rater_id"].astype(str))
    # The same external id on two platforms is two people: keep them apart.
    ids_per_label = frame.groupby(labels)["rater_id"].transform("nunique")
    clash = ids_per_label > 1
    labels = labels.where(~clash, frame["platform"].astype(str) + ":" + labels)
    return labels.astype(object)


def run_ratings_frame(run: AnalysisRun, *, include_excluded: bool = False) -> pd.DataFrame:
    """The votes an analysis run counted: :func:`ratings_frame` cut off at the run's last
    rating, without the sessions that were excluded by hand when the run was created.

    The exclusions are the ones stored with the run, not today's: excluding a session
    later changes the next run, never a stored one. With ``include_excluded`` the
    excluded votes are kept, their ``excluded_reason`` the one the run stored.
    """
    votes = ratings_frame(run.study, upto_rating_id=run.params.get("upto_rating_id"), include_excluded=True)
    reasons = {int(row["session"]): str(row["reason"]) for row in run.params.get("manual_exclusions", [])}
    votes["excluded_reason"] = [reasons.get(int(session), "") for session in votes["session_id"]]
    if not include_excluded:
        votes = votes[votes["excluded_reason"] == ""].reset_index(drop=True)
    return votes
