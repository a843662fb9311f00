from __future__ import annotations

from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from raters.models import Rater, Rating, Session, Trial
from studies.models import ImageAsset, Method, Output, Scene, Study
from tests.factories import MethodFactory, OutputFactory, SceneFactory, StudyFactory

pytestmark = pytest.mark.django_db


def asset(n: int = 0) -> ImageAsset:
    """A stored image row; the file itself plays no part in importing votes."""
    return ImageAsset.objects.create(
        token=f"tok{n}",
        sha256=f"{n:064d}",
        file=f"images/{n}.png",
        content_type="image/png",
        width=4,
        height=4,
    )


GOOD = """rater,scene,method,score,response_ms
w1,s1,A,5,1200
w1,s1,B,3,
w2,s1,A,4,900
w2,s1,B,2,800
"""


def write(tmp_path: Path, text: str, name: str = "votes.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def run_import(slug: str, path: Path, *args: str) -> str:
    from io import StringIO

    out, err = StringIO(), StringIO()
    try:
        call_command("import_ratings", slug, str(path), *args, stdout=out, stderr=err)
    except CommandError as exc:
        raise CommandError(f"{exc}\n{err.getvalue()}") from None
    return out.getvalue()


def row_counts() -> dict[str, int]:
    return {
        model.__name__: model.objects.count() for model in (Study, Scene, Method, Output, Rater, Session, Trial, Rating)
    }


def test_import_creates_study_scenes_methods_and_votes(tmp_path: Path) -> None:
    out = run_import("old-crowd", write(tmp_path, GOOD), "--title", "Old crowd study")

    study = Study.objects.get(slug="old-crowd")
    assert study.title == "Old crowd study"
    assert study.scores == [1, 2, 3, 4, 5]
    assert sorted(Scene.objects.filter(study=study).values_list("name", flat=True)) == ["s1"]
    assert sorted(Method.objects.filter(study=study).values_list("name", flat=True)) == ["A", "B"]
    assert Output.objects.filter(method__study=study, image=None).count() == 2
    raters = Rater.objects.filter(platform=Rater.Platform.IMPORTED)
    assert sorted(raters.values_list("external_id", flat=True)) == ["w1", "w2"]
    assert Session.objects.filter(study=study).count() == 2
    votes = {
        (r.trial.session.rater.external_id, r.trial.output.method.name): (r.score, r.response_ms)
        for r in Rating.objects.select_related("trial__session__rater", "trial__output__method")
    }
    assert votes == {
        ("w1", "A"): (5, 1200),
        ("w1", "B"): (3, None),
        ("w2", "A"): (4, 900),
        ("w2", "B"): (2, 800),
    }
    assert set(Trial.objects.values_list("kind", flat=True)) == {Trial.Kind.RATING}
    assert "Imported 4 votes" in out


def test_second_file_adds_votes_to_the_same_raters_sessions(tmp_path: Path) -> None:
    run_import("old-crowd", write(tmp_path, GOOD))
    run_import("old-crowd", write(tmp_path, "rater,scene,method,score\nw1,s2,A,4\nw3,s2,A,1\n", "more.csv"))

    assert Rating.objects.count() == 6
    assert Session.objects.filter(study__slug="old-crowd").count() == 3
    w1 = Session.objects.get(rater__external_id="w1")
    assert sorted(w1.trials.values_list("position", flat=True)) == [0, 1, 2]


def test_existing_study_with_images_accepts_votes_on_its_outputs(tmp_path: Path) -> None:
    study = StudyFactory(slug="aim")
    scene = SceneFactory(study=study, name="s1", reference=asset(1))
    OutputFactory(method=MethodFactory(study=study, name="A"), scene=scene, image=asset(2))

    run_import("aim", write(tmp_path, "rater,scene,method,score\nw1,s1,A,5\n"))

    assert Rating.objects.get().trial.output.method.name == "A"
    assert Scene.objects.filter(study=study).count() == 1


def test_pirm_scale_of_a_new_study_is_used_for_validation(tmp_path: Path) -> None:
    with pytest.raises(CommandError):
        run_import("pirm", write(tmp_path, "rater,scene,method,score\nw1,s1,A,5\n"), "--scale", "pirm4")
    run_import("pirm", write(tmp_path, "rater,scene,method,score\nw1,s1,A,4\n"), "--scale", "pirm4")
    assert Study.objects.get(slug="pirm").scores == [1, 2, 3, 4]


def assert_rejected(tmp_path: Path, slug: str, text: str, *expected: str) -> str:
    before = row_counts()
    with pytest.raises(CommandError) as excinfo:
        run_import(slug, write(tmp_path, text))
    message = str(excinfo.value)
    assert "nothing was imported" in message
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in:\n{message}"
    assert row_counts() == before
    return message


def test_every_bad_row_is_reported_at_once_and_nothing_is_imported(tmp_path: Path) -> None:
    text = (
        "rater,scene,method,score,response_ms\n"
        "w1,s1,A,5,100\n"  # line 2: fine
        "w1,s1,B,6,100\n"  # line 3: outside the scale
        "w1,s2,A,abc,100\n"  # line 4: not an integer
        "w2,s1,A,4.5,\n"  # line 5: not an integer
        "w2,,A,3,\n"  # line 6: empty scene
        "w1,s1,A,4,\n"  # line 7: duplicate of line 2
        "w3,s1,A,0,-5\n"  # line 8: outside the scale, bad response time
        "w4,s1,A\n"  # line 9: too few fields
    )
    message = assert_rejected(
        tmp_path,
        "new-study",
        text,
        "line 3: score 6 is outside the study's scale (1, 2, 3, 4, 5)",
        "line 4: score 'abc' is not an integer",
        "line 5: score '4.5' is not an integer",
        "line 6: empty scene",
        "line 7: duplicate vote: rater 'w1' already rated method 'A' on scene 's1' at line 2",
        "line 8: score 0 is outside",
        "line 8: response_ms '-5' is not a non-negative integer",
        "line 9: 3 field(s) where the header has 5",
    )
    assert "\nline 2:" not in message
    assert not Study.objects.filter(slug="new-study").exists()


def test_values_the_database_cannot_store_are_reported_and_nothing_is_imported(tmp_path: Path) -> None:
    text = (
        "rater,scene,method,score,response_ms\n"
        "w1,s1,A,5,1e30\n"  # line 2: more than a PositiveIntegerField holds
        "w1,s\x001,A,4,\n"  # line 3: NUL, which PostgreSQL refuses in text
        f"w1,s1,{'m' * 230},4,\n"  # line 4: longer than Method.name
        f"{'r' * 201},s1,A,4,\n"  # line 5: longer than Rater.external_id
        "w2,s1,A,4,2147483647\n"  # line 6: fine, the largest value stored
    )
    message = assert_rejected(
        tmp_path,
        "new-study",
        text,
        "line 2: response_ms '1e30' is more than the largest stored, 2147483647",
        "line 3: scene name 's\ufffd1' contains a control character (NUL)",
        "line 4: method name 'mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm...' is 230 characters long, "
        "more than the limit of 200",
        "line 5: rater name",
    )
    assert "\nline 6:" not in message
    assert not Study.objects.filter(slug="new-study").exists()


def test_missing_column_is_reported(tmp_path: Path) -> None:
    assert_rejected(tmp_path, "x", "rater,scene,score\nw1,s1,5\n", "line 1: missing column(s): method")


def test_unknown_column_is_reported(tmp_path: Path) -> None:
    assert_rejected(
        tmp_path,
        "x",
        "rater,scene,method,score,respone_ms\nw1,s1,A,5,1\n",
        "unknown column(s): respone_ms",
    )


def test_empty_file_and_header_only_are_reported(tmp_path: Path) -> None:
    assert_rejected(tmp_path, "x", "", "the file is empty")
    assert_rejected(tmp_path, "x", "rater,scene,method,score\n", "no votes")


def test_unknown_scene_method_and_output_of_a_study_with_images(tmp_path: Path) -> None:
    study = StudyFactory(slug="aim")
    s1 = SceneFactory(study=study, name="s1", reference=asset(1))
    SceneFactory(study=study, name="s2", reference=asset(2))
    a = MethodFactory(study=study, name="A")
    OutputFactory(method=a, scene=s1, image=asset(3))
    text = "rater,scene,method,score\nw1,s9,A,5\nw1,s1,Z,5\nw1,s2,A,5\nw1,s1,A,5\n"
    assert_rejected(
        tmp_path,
        "aim",
        text,
        "line 2: unknown scene 's9' in study 'aim'",
        "line 3: unknown method 'Z' in study 'aim'",
        "line 4: method 'A' has no output for scene 's2'",
    )


def test_score_outside_an_existing_studys_scale(tmp_path: Path) -> None:
    StudyFactory(slug="pirm", scale_preset="pirm4")
    assert_rejected(tmp_path, "pirm", "rater,scene,method,score\nw1,s1,A,5\n", "line 2: score 5 is outside")


def test_reimporting_the_same_file_is_refused_as_duplicate_votes(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    run_import("old-crowd", path)
    assert_rejected(
        tmp_path,
        "old-crowd",
        GOOD,
        "line 2: duplicate vote: rater 'w1' already has a stored vote for method 'A' on scene 's1'",
        "line 5: duplicate vote",
    )
    assert Rating.objects.count() == 4


def test_unreadable_path_is_a_command_error(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="cannot read"):
        run_import("x", tmp_path / "missing.csv")


def test_byte_order_mark_and_spreadsheet_integers_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffrater,scene,method,score\nw1,s1,A,4.0\n".encode())
    run_import("bom", path)
    assert Rating.objects.get().score == 4


def test_invalid_slug_of_a_new_study_is_refused(tmp_path: Path) -> None:
    assert_rejected(tmp_path, "no spaces!", GOOD, "is not a valid slug")
