from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from studies.importer import ImportProblems
from studies.models import ImageAsset, Method, Output, Scene, Study
from studies.services import study_create, study_import
from tests.factories import noise_image
from tests.studies.conftest import make_study_folder, write_png, zip_folder

pytestmark = pytest.mark.django_db


def _stored_files(media_root: Path) -> list[Path]:
    return sorted(p for p in media_root.rglob("*") if p.is_file())


def _nothing_imported(media_root: Path) -> None:
    assert Scene.objects.count() == 0
    assert Method.objects.count() == 0
    assert Output.objects.count() == 0
    assert ImageAsset.objects.count() == 0
    assert _stored_files(media_root) == []


def test_folder_import_creates_rows_and_stores_files_byte_exact(study_folder, media_root):
    study = study_create(title="Track 2", slug="track-2")
    summary = study_import(study=study, source=study_folder)

    assert (summary.scenes, summary.methods, summary.outputs) == (2, 2, 4)
    output = Output.objects.get(method__name="TeamAlpha", scene__name="city")
    original = (study_folder / "methods" / "TeamAlpha" / "city.png").read_bytes()
    stored = Path(output.image.original.path).read_bytes()
    assert stored == original
    assert output.image.sha256 == hashlib.sha256(original).hexdigest()
    assert (output.image.width, output.image.height) == (40, 30)
    assert output.image.original.name == f"images/{output.sha256[:2]}/{output.sha256}.png"
    assert "TeamAlpha" not in output.image.original.name and "city" not in output.image.original.name
    assert Scene.objects.get(name="beach").width == 40


def test_zip_import_matches_folder_import(study_folder, tmp_path):
    archive = zip_folder(study_folder, tmp_path / "study.zip")
    study = study_create(title="Zip", slug="zip")
    study_import(study=study, source=archive)
    assert sorted(Output.objects.values_list("method__name", "scene__name")) == [
        ("TeamAlpha", "beach"),
        ("TeamAlpha", "city"),
        ("TeamBeta", "beach"),
        ("TeamBeta", "city"),
    ]


def test_zip_with_one_top_level_folder_is_accepted(study_folder, tmp_path):
    wrapper = tmp_path / "wrap"
    (wrapper).mkdir()
    study_folder.rename(wrapper / "my-study")
    archive = zip_folder(wrapper, tmp_path / "wrapped.zip")
    study_import(study=study_create(title="W", slug="w"), source=archive)
    assert Output.objects.count() == 4


def test_equal_files_share_storage_but_not_tokens(tmp_path, media_root):
    folder = make_study_folder(tmp_path / "s", methods=("TeamAlpha",))
    # The hidden reference is the reference: same bytes, yet its URL must differ.
    for scene in ("beach", "city"):
        write_png(
            folder / "methods" / "hidden" / f"{scene}.png", noise_image(40, 30, seed=("beach", "city").index(scene))
        )
    study_import(study=study_create(title="H", slug="h"), source=folder)
    scene = Scene.objects.get(name="beach")
    hidden = Output.objects.get(method__name="hidden", scene=scene)
    assert hidden.image.sha256 == scene.reference.sha256
    assert hidden.image.original.name == scene.reference.original.name
    assert hidden.image.token != scene.reference.token


def test_methods_csv_sets_kind_runtime_and_framework(study_folder):
    (study_folder / "methods.csv").write_text(
        "method,kind,runtime_s,framework\nTeamAlpha,submission,0.5,PyTorch\nTeamBeta,low_anchor,,\n"
    )
    study_import(study=study_create(title="K", slug="k"), source=study_folder)
    alpha, beta = Method.objects.order_by("name")
    assert (alpha.kind, alpha.runtime_s, alpha.framework) == ("submission", 0.5, "PyTorch")
    assert beta.kind == Method.Kind.LOW_ANCHOR


def test_every_problem_is_reported_at_once_and_nothing_is_left(tmp_path, media_root):
    folder = make_study_folder(tmp_path / "bad", scenes=("beach", "city", "forest"), methods=("TeamAlpha", "TeamBeta"))
    (folder / "methods" / "TeamAlpha" / "forest.png").unlink()  # missing output
    write_png(folder / "methods" / "TeamBeta" / "moon.png", noise_image(40, 30))  # unknown scene
    write_png(folder / "methods" / "TeamBeta" / "city.png", noise_image(41, 30))  # size differs
    (folder / "methods" / "TeamAlpha" / "beach.png").write_bytes(b"not an image at all")  # undecodable
    (folder / "methods" / "TeamBeta" / "beach.png").unlink()
    (folder / "methods" / "TeamBeta" / "beach.gif").write_bytes(b"GIF89a")  # format outside the list
    (folder / "methods" / "TeamEmpty").mkdir()  # empty method folder
    study = study_create(title="Bad", slug="bad")

    with pytest.raises(ImportProblems) as caught:
        study_import(study=study, source=folder)

    text = "\n".join(caught.value.problems)
    assert "methods/TeamAlpha: missing the output for scene 'forest'" in text
    assert "methods/TeamBeta/moon.png: file for unknown scene 'moon'" in text
    assert "methods/TeamBeta/city.png: 41x30 differs from the reference's 40x30" in text
    assert "methods/TeamAlpha/beach.png: not a decodable image" in text
    assert "methods/TeamBeta/beach.gif: .gif is not an accepted format" in text
    assert "methods/TeamEmpty: empty method folder" in text
    assert len(caught.value.problems) == 7  # the six above plus TeamBeta's missing 'beach'
    _nothing_imported(media_root)


def test_too_many_pixels_is_refused_before_decoding(study_folder, media_root, settings):
    settings.MOSAIC_MAX_PIXELS = 40 * 30 - 1
    with pytest.raises(ImportProblems) as caught:
        study_import(study=study_create(title="P", slug="p"), source=study_folder)
    assert any("more than the limit of" in p and "megapixels" in p for p in caught.value.problems)
    _nothing_imported(media_root)


def test_decompression_bomb_png_is_refused(tmp_path, media_root):
    folder = make_study_folder(tmp_path / "bomb", scenes=("beach",), methods=("TeamAlpha",))
    # A 20000x10000 (200 MP) black PNG compresses to a few hundred kB.
    from PIL import Image

    Image.new("L", (20000, 10000)).save(folder / "methods" / "TeamAlpha" / "beach.png")
    with pytest.raises(ImportProblems) as caught:
        study_import(study=study_create(title="B", slug="b"), source=folder)
    assert any("200.0 megapixels" in p for p in caught.value.problems)
    _nothing_imported(media_root)


def test_truncated_png_is_reported(study_folder, media_root):
    path = study_folder / "methods" / "TeamBeta" / "city.png"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ImportProblems) as caught:
        study_import(study=study_create(title="T", slug="t"), source=study_folder)
    assert caught.value.problems == [
        p for p in caught.value.problems if p.startswith("methods/TeamBeta/city.png: not a decodable image")
    ]
    assert len(caught.value.problems) == 1


def test_protocol_input_requires_every_input(tmp_path, media_root):
    folder = make_study_folder(tmp_path / "in", inputs=True)
    (folder / "inputs" / "city.png").unlink()
    study = study_create(title="I", slug="i", protocol=Study.Protocol.INPUT)
    with pytest.raises(ImportProblems) as caught:
        study_import(study=study, source=folder)
    assert caught.value.problems == ["inputs/: missing the input photo for scene 'city' (protocol 'input' shows it)"]


def test_inputs_are_stored_for_their_scene(tmp_path):
    folder = make_study_folder(tmp_path / "in", inputs=True)
    study_import(study=study_create(title="I", slug="i", protocol=Study.Protocol.INPUT), source=folder)
    assert Scene.objects.get(name="city").input is not None


def test_a_failure_while_writing_removes_written_files(study_folder, media_root, monkeypatch):
    from studies import services

    real = services.Output.objects.create
    calls = {"n": 0}

    def flaky_create(**kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        return real(**kwargs)

    monkeypatch.setattr(services.Output.objects, "create", flaky_create)
    with pytest.raises(OSError):
        study_import(study=study_create(title="F", slug="f"), source=study_folder)
    _nothing_imported(media_root)


def test_import_queues_metrics_and_tiles_on_commit(study_folder, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        study_import(study=study_create(title="Q", slug="q"), source=study_folder)
    assert len(callbacks) == 2
    assert set(Output.objects.values_list("metric_status", flat=True)) == {"done"}
    assert set(ImageAsset.objects.values_list("tile_status", flat=True)) == {"done"}


def test_command_creates_study_with_options(study_folder):
    call_command(
        "import_study", "aim-2020", str(study_folder), "--title", "AIM 2020", "--scale", "pirm4", "--protocol", "single"
    )
    study = Study.objects.get(slug="aim-2020")
    assert (study.title, study.scale_preset, study.protocol) == ("AIM 2020", "pirm4", "single")
    assert [lv["score"] for lv in study.scale_levels] == [4, 3, 2, 1]
    assert study.methods.count() == 2


def test_command_on_broken_folder_lists_problems_exits_nonzero_and_creates_nothing(tmp_path, media_root):
    folder = make_study_folder(tmp_path / "broken")
    (folder / "methods" / "TeamAlpha" / "city.png").unlink()
    write_png(folder / "methods" / "TeamBeta" / "x.png", noise_image(40, 30))
    with pytest.raises(CommandError) as caught:
        call_command("import_study", "new-study", str(folder))
    message = str(caught.value)
    assert "Nothing was imported" in message
    assert "missing the output for scene 'city'" in message and "unknown scene 'x'" in message
    assert not Study.objects.filter(slug="new-study").exists()
    _nothing_imported(media_root)


def test_command_exit_status_is_nonzero(tmp_path):
    import os
    import subprocess
    import sys

    folder = make_study_folder(tmp_path / "broken")
    (folder / "references" / "city.png").unlink()
    env = {**os.environ, "MOSAIC_VAR_DIR": str(tmp_path / "var"), "DJANGO_SETTINGS_MODULE": "config.settings"}
    repo = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], env=env, cwd=repo, check=True)
    result = subprocess.run(
        [sys.executable, "manage.py", "import_study", "cli-study", str(folder)],
        capture_output=True,
        text=True,
        env=env,
        cwd=repo,
    )
    assert result.returncode == 1
    assert "file for unknown scene 'city'" in result.stderr


def test_import_into_an_open_study_is_refused(study_folder):
    study = study_create(title="O", slug="o", status=Study.Status.OPEN)
    from studies.services import StudyStateError

    with pytest.raises(StudyStateError, match="draft"):
        study_import(study=study, source=study_folder)


def test_second_import_cannot_duplicate_scenes(study_folder, tmp_path, media_root):
    study = study_create(title="D", slug="d")
    study_import(study=study, source=study_folder)
    before = _stored_files(media_root)
    again = make_study_folder(tmp_path / "again", methods=("TeamGamma",))
    with pytest.raises(ImportProblems) as caught:
        study_import(study=study, source=again)
    assert "references/beach.png: scene 'beach' already exists in this study" in caught.value.problems
    assert _stored_files(media_root) == before
    assert Method.objects.filter(name="TeamGamma").count() == 0


def test_scale_levels_are_copied_at_creation():
    study = study_create(title="S", slug="s")
    from studies import scales

    original = study.scale_levels
    assert original[0] == {"score": 5, "label": "Comparable image quality"}
    assert original[-1] == {"score": 1, "label": "Completely corrupted image"}
    scales.SCALE_LEVELS["aim5"][0] = (5, "changed")
    try:
        study.refresh_from_db()
        assert study.scale_levels[0]["label"] == "Comparable image quality"
    finally:
        scales.SCALE_LEVELS["aim5"][0] = (5, "Comparable image quality")


def test_sixteen_bit_pngs_are_accepted(tmp_path):
    from PIL import Image

    folder = tmp_path / "s16"
    array = np.arange(40 * 30, dtype=np.uint16).reshape(30, 40) * 50
    for sub in ("references", "methods/TeamAlpha"):
        (folder / sub).mkdir(parents=True)
        Image.fromarray(array).save(folder / sub / "beach.png")
    study_import(study=study_create(title="16", slug="s16"), source=folder)
    assert Output.objects.get().image.width == 40
