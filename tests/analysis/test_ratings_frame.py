from __future__ import annotations

import pandas as pd
import pytest

from analysis.frames import UnknownStudy, ratings_frame
from raters.models import Rater, Session, Trial
from tests.factories import (
    MethodFactory,
    OutputFactory,
    RaterFactory,
    RatingFactory,
    SceneFactory,
    SessionFactory,
    StudyFactory,
    TrialFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def study_with_votes():
    study = StudyFactory(slug="frame")
    scene = SceneFactory(study=study, name="s1", reference=None)
    out_a = OutputFactory(method=MethodFactory(study=study, name="A"), scene=scene, image=None, psnr=30.5, ssim=0.9)
    out_ref = OutputFactory(
        method=MethodFactory(study=study, name="REF", kind="hidden_reference"),
        scene=scene,
        image=None,
    )
    s1 = SessionFactory(study=study, rater=RaterFactory(external_id="p1"))
    s2 = SessionFactory(study=study, rater=RaterFactory(platform=Rater.Platform.DIRECT, external_id=""))
    RatingFactory(trial=TrialFactory(session=s1, output=out_a, kind=Trial.Kind.TRAINING), score=1)
    RatingFactory(trial=TrialFactory(session=s1, output=out_a), score=4, response_ms=1000)
    RatingFactory(trial=TrialFactory(session=s1, output=out_ref, kind=Trial.Kind.CONTROL), score=5)
    RatingFactory(trial=TrialFactory(session=s2, output=out_a), score=2, response_ms=None)
    # Another study's vote must not leak in.
    RatingFactory(score=3, trial__output__image=None, trial__output__scene__reference=None)
    return study, s2.rater


def test_ratings_frame_is_one_query(study_with_votes, django_assert_num_queries) -> None:
    study, _ = study_with_votes
    with django_assert_num_queries(1):
        ratings_frame("frame")
    with django_assert_num_queries(1):
        ratings_frame(study, include_training=True)


def test_ratings_frame_columns_and_counted_votes(study_with_votes) -> None:
    _, direct = study_with_votes
    df = ratings_frame("frame")
    assert list(df.columns[:10]) == [
        "rater", "scene", "method", "method_kind", "score", "kind",
        "response_ms", "created_at", "psnr", "ssim",
    ]  # fmt: skip
    assert sorted(df["kind"]) == ["control", "rating", "rating"]
    rows = df.sort_values("score")[["rater", "method", "method_kind", "score", "psnr", "ssim"]]
    assert rows.values.tolist()[0] == [f"#{direct.pk}", "A", "submission", 2, 30.5, 0.9]
    assert rows.values.tolist()[1][:4] == ["p1", "A", "submission", 4]
    assert rows.values.tolist()[2][:4] == ["p1", "REF", "hidden_reference", 5]
    assert pd.isna(df.loc[df["method"] == "REF", "psnr"]).all()
    assert df["response_ms"].isna().sum() == 1
    assert str(df["created_at"].dt.tz) == "UTC"


def test_training_votes_only_on_request(study_with_votes) -> None:
    df = ratings_frame("frame", include_training=True)
    assert sorted(df["kind"]) == ["control", "rating", "rating", "training"]


def test_unknown_study_raises_a_clear_error() -> None:
    StudyFactory(slug="known")
    with pytest.raises(UnknownStudy, match="no study with slug 'no-such-study'.*known"):
        ratings_frame("no-such-study")


def test_study_without_votes_gives_an_empty_frame_with_the_columns() -> None:
    StudyFactory(slug="quiet")
    df = ratings_frame("quiet")
    assert df.empty
    assert {"rater", "scene", "method", "score", "psnr", "ssim", "excluded_reason"} <= set(df.columns)


def test_sessions_excluded_by_hand_leave_the_frame_unless_asked_for(study_with_votes) -> None:
    study, direct = study_with_votes
    Session.objects.filter(rater=direct).update(excluded_reason="pilot run")
    assert len(ratings_frame(study)) == 2
    every = ratings_frame(study, include_excluded=True)
    assert len(every) == 3
    assert every.loc[every["rater"] == f"#{direct.pk}", "excluded_reason"].tolist() == ["pilot run"]
    Rater.objects.filter(pk=direct.pk).update(excluded_reason="organizer's test")
    Session.objects.filter(rater=direct).update(excluded_reason="")
    assert len(ratings_frame(study)) == 2


def test_same_external_id_on_two_platforms_stays_two_raters() -> None:
    study = StudyFactory()
    out = OutputFactory(method=MethodFactory(study=study), image=None, scene__reference=None)
    for platform in (Rater.Platform.PROLIFIC, Rater.Platform.MTURK):
        session = SessionFactory(study=study, rater=RaterFactory(platform=platform, external_id="x"))
        RatingFactory(trial=TrialFactory(session=session, output=out))
    assert sorted(ratings_frame(study)["rater"]) == ["mturk:x", "prolific:x"]
