"""A study changes as a challenge does: late teams, replaced outputs, added scenes."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from django.utils import timezone

from raters import services as rater_services
from raters.models import Rater, Session, Trial
from raters.platforms import RaterIdentity
from studies.importer import ImportProblems
from studies.models import ImageAsset, Method, Output, Scene, Study
from studies.services import (
    StudyStateError,
    output_replace,
    study_create,
    study_import,
    study_methods_add,
    study_open,
)
from tests.factories import noise_image
from tests.studies.conftest import make_study_folder, write_png

pytestmark = pytest.mark.django_db


def _files(media_root: Path) -> list[tuple[str, bytes]]:
    return sorted((p.relative_to(media_root).as_posix(), p.read_bytes()) for p in media_root.rglob("*") if p.is_file())


def _state(media_root: Path) -> tuple:
    rows = (
        sorted(Scene.objects.values_list("name", flat=True)),
        sorted(Method.objects.values_list("name", flat=True)),
        sorted(Output.objects.values_list("method__name", "scene__name", "image__sha256")),
        ImageAsset.objects.count(),
    )
    return rows, _files(media_root)


def _late_team(root: Path, name: str = "TeamLate", scenes=("beach", "city"), size=(40, 30)) -> Path:
    for index, scene in enumerate(scenes):
        write_png(root / "methods" / name / f"{scene}.png", noise_image(*size, seed=50 + index))
    return root


@pytest.fixture
def study(study_folder: Path) -> Study:
    study = study_create(title="Track", slug="track", trials_per_session=4, ratings_per_output=2, control_rate=0)
    study_import(study=study, source=study_folder)
    return study


def test_a_late_team_is_added_to_an_open_study_with_metrics_and_blind_names(
    study, tmp_path, django_capture_on_commit_callbacks
):
    study = study_open(study=study)
    with django_capture_on_commit_callbacks(execute=True):
        summary = study_methods_add(study=study, source=_late_team(tmp_path / "late"))
    assert (summary.scenes, summary.methods, summary.outputs) == (0, 1, 2)
    outputs = Output.objects.filter(method__name="TeamLate").select_related("image")
    assert {o.metric_status for o in outputs} == {"done"}
    assert all(o.image.tile_status == "done" for o in outputs)
    for output in outputs:
        for name in (output.image.original.name, output.image.file.name):
            assert "TeamLate" not in name and output.scene.name not in name


def _rate_session(study: Study, index: int) -> list[str]:
    session, _ = rater_services.session_start(
        study=study, identity=RaterIdentity(platform="prolific", external_id=f"r{index}")
    )
    methods = []
    for trial in session.trials.order_by("position").select_related("output__method"):
        rater_services.rating_submit(session_token=session.token, trial_token=trial.token, score=3, response_ms=10)
        if trial.kind == Trial.Kind.RATING:
            methods.append(trial.output.method.name)
    return methods


def test_a_late_teams_outputs_get_the_next_sessions_trials(study, tmp_path):
    study = study_open(study=study)
    # Two sessions of 4 trials give each of the 4 outputs its 2 votes (the target).
    for index in range(2):
        _rate_session(study, index)
    study_methods_add(study=study, source=_late_team(tmp_path / "late"))
    late = _rate_session(study, 2) + _rate_session(study, 3)
    # The late team's 2 outputs need 2 votes each: the next two sessions give them 4 of
    # their 8 trials (no output twice in a session), not an equal third.
    assert Counter(late)["TeamLate"] == 4
    votes = Counter(
        Trial.objects.filter(kind="rating", rating__isnull=False, output__method__name="TeamLate").values_list(
            "output_id", flat=True
        )
    )
    assert sorted(votes.values()) == [2, 2]


@pytest.mark.parametrize("earlier_sessions", range(0, 40, 3))
def test_a_late_teams_outputs_are_rated_not_practised_whatever_the_draw(study, tmp_path, earlier_sessions):
    """Sessions are drawn with their id in the seed: earlier sessions (here of another
    rater, deleted) change every draw. Whatever the draw, the late team's outputs are
    rated by the next two sessions, each once per session, and never practised on (a
    session does not rate what it practised on) while other outputs have their votes."""
    for index in range(earlier_sessions):
        rater = Rater.objects.create(platform=Rater.Platform.DIRECT)
        Session.objects.create(rater=rater, study=study, token=f"earlier-{index}", last_seen_at=timezone.now()).delete()
    study = study_open(study=study)
    for index in range(2):
        _rate_session(study, index)
    study_methods_add(study=study, source=_late_team(tmp_path / "late"))
    _rate_session(study, 2)
    _rate_session(study, 3)
    late = Trial.objects.filter(output__method__name="TeamLate")
    assert not late.filter(kind=Trial.Kind.TRAINING).exists()
    per_session = Counter(late.values_list("session_id", "output_id"))
    assert sorted(per_session.values()) == [1, 1, 1, 1]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda root: (root / "methods/TeamLate/city.png").unlink(),
            "methods/TeamLate: missing the output for scene 'city'",
        ),
        (
            lambda root: write_png(root / "methods/TeamLate/city.png", noise_image(20, 10)),
            "methods/TeamLate/city.png: 20x10 differs from the reference's 40x30",
        ),
        (lambda root: (root / "methods/TeamLate/city.png").write_bytes(b"junk"), "city.png: not a decodable image"),
        (
            lambda root: write_png(root / "methods/TeamLate/moon.png", noise_image(40, 30)),
            "file for unknown scene 'moon' (not a scene of this study)",
        ),
        (
            lambda root: _late_team(root, name="TeamAlpha"),
            "methods/TeamAlpha: method 'TeamAlpha' already exists in this study",
        ),
        (
            lambda root: write_png(root / "references/moon.png", noise_image(40, 30)),
            "references/: scenes cannot be added",
        ),
        (lambda root: (root / "methods/TeamLate/notes.txt").write_text("x"), ".txt is not an accepted format"),
    ],
    ids=["missing-scene", "wrong-size", "not-an-image", "unknown-scene", "duplicate-method", "adds-scene", "text-file"],
)
def test_a_bad_late_team_is_refused_with_the_reason_and_changes_nothing(study, tmp_path, media_root, change, expected):
    study = study_open(study=study)
    root = _late_team(tmp_path / "late")
    change(root)
    before = _state(media_root)
    with pytest.raises(ImportProblems) as caught:
        study_methods_add(study=study, source=root)
    assert any(expected in p for p in caught.value.problems), caught.value.problems
    assert _state(media_root) == before


def test_methods_cannot_be_added_to_a_closed_study(study, tmp_path):
    study.status = Study.Status.CLOSED
    study.save()
    with pytest.raises(StudyStateError, match="open it again"):
        study_methods_add(study=study, source=_late_team(tmp_path / "late"))


def test_replacing_an_output_removes_the_old_file_and_recomputes(study, tmp_path, django_capture_on_commit_callbacks):
    output = Output.objects.select_related("image").get(method__name="TeamAlpha", scene__name="beach")
    old_token, old_files = output.image.token, [output.image.original.path, output.image.file.path]
    old_psnr = output.psnr
    new = write_png(tmp_path / "TeamAlpha-fixed.png", noise_image(40, 30, seed=7))
    with django_capture_on_commit_callbacks(execute=True):
        output_replace(output=output, source=new, source_name="TeamAlpha-fixed.png")
    output.refresh_from_db()
    assert output.image.token != old_token and output.image.sha256 != ""
    assert Path(output.image.original.path).read_bytes() == new.read_bytes()
    assert "TeamAlpha" not in output.image.original.name
    assert output.metric_status == "done" and output.psnr != old_psnr
    assert output.image.tile_status == "done"
    assert not any(Path(p).exists() for p in old_files)
    assert not ImageAsset.objects.filter(token=old_token).exists()


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (lambda p: write_png(p, noise_image(20, 10)), "20x10 differs from the reference's 40x30"),
        (lambda p: p.write_bytes(b"junk"), "new.png: not a decodable image"),
        (lambda p: write_png(p, noise_image(40, 30)[..., 0]), "greyscale, 8 bits per channel, but the reference"),
    ],
    ids=["wrong-size", "not-an-image", "greyscale"],
)
def test_a_bad_replacement_is_refused_and_changes_nothing(study, tmp_path, media_root, data, expected):
    output = Output.objects.get(method__name="TeamAlpha", scene__name="beach")
    path = tmp_path / "new.png"
    data(path)
    before = _state(media_root)
    with pytest.raises(ImportProblems) as caught:
        output_replace(output=output, source=path, source_name="new.png")
    assert expected in caught.value.problems[0]
    assert _state(media_root) == before


def test_an_output_cannot_be_replaced_once_the_study_has_opened(study, tmp_path, media_root):
    study = study_open(study=study)
    _rate_session(study, 0)
    output = Output.objects.filter(trials__rating__isnull=False).first()
    before = _state(media_root)
    with pytest.raises(StudyStateError, match=r"only be replaced before the study opens: \d+ vote"):
        output_replace(output=output, source=write_png(tmp_path / "n.png", noise_image(40, 30)), source_name="n.png")
    assert _state(media_root) == before


def test_scenes_are_added_to_a_draft_with_an_output_of_every_method(study, tmp_path):
    more = make_study_folder(tmp_path / "more", scenes=("forest",), methods=("TeamAlpha", "TeamBeta"))
    summary = study_import(study=study, source=more)
    assert (summary.scenes, summary.methods, summary.outputs) == (1, 0, 2)
    assert sorted(Output.objects.filter(scene__name="forest").values_list("method__name", flat=True)) == [
        "TeamAlpha",
        "TeamBeta",
    ]


def test_a_new_scene_without_every_methods_output_is_refused(study, tmp_path, media_root):
    more = make_study_folder(tmp_path / "more", scenes=("forest",), methods=("TeamAlpha",))
    write_png(more / "methods/TeamAlpha/beach.png", noise_image(40, 30))
    before = _state(media_root)
    with pytest.raises(ImportProblems) as caught:
        study_import(study=study, source=more)
    text = "\n".join(caught.value.problems)
    assert "methods/TeamBeta/: missing (method 'TeamBeta' needs an output for each new scene: 'forest')" in text
    assert "method 'TeamAlpha' already has its output for scene 'beach'" in text
    assert _state(media_root) == before


def test_scenes_cannot_be_added_once_open(study, tmp_path):
    study = study_open(study=study)
    with pytest.raises(StudyStateError, match="draft"):
        study_import(study=study, source=make_study_folder(tmp_path / "m", scenes=("forest",)))


def test_assignment_is_unchanged_while_no_method_is_covered():
    from raters import assignment

    pool = [assignment.Candidate(m * 10 + s, m, s, load=0) for m in range(3) for s in range(4)]
    import random

    plain = assignment.choose(pool, count=9, rng=random.Random(1))
    targeted = assignment.choose(pool, count=9, rng=random.Random(1), target=5)
    assert plain == targeted
    assert Counter(c.method_id for c in targeted) == {0: 3, 1: 3, 2: 3}
    assert np.isfinite(len(plain))
