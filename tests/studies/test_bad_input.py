"""Bad uploads get a message a person can act on, and nothing changes."""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from studies.importer import ImportProblems
from studies.models import ImageAsset, Method, Output, Scene
from studies.services import study_create, study_import
from tests.factories import StudyFactory, noise_image
from tests.studies.conftest import make_study_folder, write_png, zip_folder

pytestmark = pytest.mark.django_db


def _nothing_imported(media_root: Path) -> None:
    assert (Scene.objects.count(), Method.objects.count(), Output.objects.count()) == (0, 0, 0)
    assert ImageAsset.objects.count() == 0
    assert [p for p in media_root.rglob("*") if p.is_file()] == []


def _problems(source: Path, *, name: str | None = None, protocol: str = "reference") -> list[str]:
    study = study_create(title="Bad", slug="bad", protocol=protocol)
    with pytest.raises(ImportProblems) as caught:
        study_import(study=study, source=source, source_name=name)
    return caught.value.problems


def _lie_about_size(archive: Path, member: str, declared: int) -> None:
    """Rewrite the uncompressed size of ``member`` in both of its zip headers."""
    data = bytearray(archive.read_bytes())
    encoded = member.encode()
    local = data.find(b"PK\x03\x04")
    while local >= 0:
        (name_length,) = struct.unpack("<H", data[local + 26 : local + 28])
        if data[local + 30 : local + 30 + name_length] == encoded:
            data[local + 22 : local + 26] = struct.pack("<I", declared)
        local = data.find(b"PK\x03\x04", local + 4)
    central = data.find(b"PK\x01\x02")
    while central >= 0:
        (name_length,) = struct.unpack("<H", data[central + 28 : central + 30])
        if data[central + 46 : central + 46 + name_length] == encoded:
            data[central + 24 : central + 28] = struct.pack("<I", declared)
        central = data.find(b"PK\x01\x02", central + 4)
    archive.write_bytes(bytes(data))


def _zip(folder: Path, target: Path, extra: dict[str, bytes] | None = None) -> Path:
    zip_folder(folder, target)
    with zipfile.ZipFile(target, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return target


def test_zip_member_whose_header_lies_about_its_size_is_reported_by_name(tmp_path, media_root):
    folder = make_study_folder(tmp_path / "s", scenes=("beach",), methods=("TeamAlpha",))
    archive = tmp_path / "upload-7f3a.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as packed:
        for path in sorted(folder.rglob("*.png")):
            packed.write(path, path.relative_to(folder).as_posix())
    size = (folder / "methods/TeamAlpha/beach.png").stat().st_size
    _lie_about_size(archive, "methods/TeamAlpha/beach.png", size - 100)

    problems = _problems(archive, name="teams.zip")
    assert any(p.startswith("teams.zip: methods/TeamAlpha/beach.png: damaged") for p in problems), problems
    assert not any("upload-7f3a" in p or str(tmp_path) in p or "mosaic-import" in p for p in problems)
    _nothing_imported(media_root)


def test_unsafe_and_overlong_member_names_are_reported_with_every_other_problem(tmp_path, media_root):
    folder = make_study_folder(tmp_path / "s", scenes=("beach", "city"), methods=("TeamAlpha",))
    (folder / "methods" / "TeamAlpha" / "city.png").unlink()
    write_png(folder / "methods" / "TeamAlpha" / "beach.png", noise_image(20, 10))
    archive = _zip(
        folder,
        tmp_path / "s.zip",
        {"../../etc/evil.png": b"x", "methods/TeamAlpha/" + "n" * 300 + ".png": b"x"},
    )
    problems = _problems(archive, name="teams.zip")
    text = "\n".join(problems)
    assert "teams.zip: ../../etc/evil.png: unsafe path in the zip" in text
    assert "a name of 304 characters" in text
    assert "methods/TeamAlpha: missing the output for scene 'city'" in text
    assert "methods/TeamAlpha/beach.png: 20x10 differs" in text
    assert not (tmp_path.parent / "etc" / "evil.png").exists()
    _nothing_imported(media_root)


def test_member_holding_more_than_it_declares_is_stopped_at_its_declared_size(tmp_path, media_root, monkeypatch):
    folder = make_study_folder(tmp_path / "s", scenes=("beach",), methods=("TeamAlpha",))
    archive = _zip(folder, tmp_path / "s.zip", {"methods/TeamAlpha/zeros.png": bytes(5_000_000)})
    _lie_about_size(archive, "methods/TeamAlpha/zeros.png", 1000)
    written: list[int] = []
    real_open = Path.open

    def counting_open(self, mode="r", *args, **kwargs):
        handle = real_open(self, mode, *args, **kwargs)
        if "w" in mode and self.name == "zeros.png":
            write = handle.write
            handle.write = lambda data: written.append(len(data)) or write(data)
        return handle

    monkeypatch.setattr(Path, "open", counting_open)
    problems = _problems(archive, name="teams.zip")
    monkeypatch.undo()
    assert any(p.startswith("teams.zip: methods/TeamAlpha/zeros.png: damaged") for p in problems), problems
    assert sum(written) <= 1000
    _nothing_imported(media_root)


def test_zip_declaring_more_than_the_limit_is_refused_before_unpacking(tmp_path, media_root, settings):
    folder = make_study_folder(tmp_path / "s", scenes=("beach",), methods=("TeamAlpha",))
    archive = _zip(folder, tmp_path / "s.zip", {"methods/TeamAlpha/zeros.png": bytes(5_000_000)})
    settings.MOSAIC_MAX_UPLOAD_BYTES = 1_000_000
    problems = _problems(archive, name="teams.zip")
    assert problems[0].startswith("teams.zip: unpacks to more than") and "limit of 0.0 GB" in problems[0]
    _nothing_imported(media_root)


def test_method_and_scene_names_longer_than_their_columns_are_reported(tmp_path, media_root):
    long_method, long_scene = "m" * 230, "s" * 210
    folder = make_study_folder(tmp_path / "s", scenes=("beach", long_scene), methods=(long_method, "TeamAlpha"))
    problems = _problems(folder)
    assert any(f"methods/{long_method}: method name" in p and "230 characters long" in p for p in problems)
    assert any(p.startswith(f"references/{long_scene}.png: scene name") and "limit of 200" in p for p in problems)
    _nothing_imported(media_root)


def test_nul_byte_in_a_methods_csv_name_is_reported(tmp_path, media_root):
    folder = make_study_folder(tmp_path / "s", scenes=("beach",), methods=("TeamAlpha",))
    (folder / "methods.csv").write_text("method,kind\nTeam\x00Alpha,submission\n", encoding="utf-8")
    problems = _problems(folder)
    assert any("methods.csv line 2: method name" in p and "NUL" in p for p in problems), problems
    _nothing_imported(media_root)


def _save_output(folder: Path, name: str, save) -> None:
    path = folder / "methods" / "TeamAlpha" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    save(path)


def _rgb16_png(path: Path) -> None:
    import pyvips

    array = (noise_image(40, 30).astype(np.uint16) * 257).copy()
    pyvips.Image.new_from_array(array).copy(interpretation="rgb16").pngsave(str(path))


def _frames(count: int) -> list[Image.Image]:
    return [Image.fromarray(noise_image(40, 30, seed=s)) for s in range(count)]


@pytest.mark.parametrize(
    ("name", "save", "expected"),
    [
        ("beach.jpg", lambda p: Image.new("CMYK", (40, 30), (0, 50, 100, 0)).save(p), "CMYK"),
        ("beach.png", lambda p: Image.fromarray(noise_image(40, 30)[..., 0]).save(p), "greyscale, 8 bits"),
        ("beach.png", _rgb16_png, "16 bits per colour channel"),
        ("beach.png", lambda p: _frames(2)[0].save(p, save_all=True, append_images=_frames(2)[1:]), "animated PNG"),
        (
            "beach.png",
            lambda p: _frames(3)[0].save(p, format="GIF", save_all=True, append_images=_frames(3)[1:]),
            "GIF",
        ),
        ("beach.tif", lambda p: _frames(2)[0].save(p, save_all=True, append_images=_frames(2)[1:]), "multi-page TIFF"),
    ],
    ids=["cmyk-jpeg", "grey-beside-rgb", "png-16-bit-rgb", "apng", "gif-as-png", "multipage-tiff"],
)
def test_images_whose_metrics_would_be_wrong_are_refused(tmp_path, media_root, name, save, expected):
    folder = make_study_folder(tmp_path / "s", scenes=("beach",), methods=())
    _save_output(folder, name, save)
    problems = _problems(folder)
    assert len(problems) == 1 and problems[0].startswith(f"methods/TeamAlpha/{name}: ")
    assert expected in problems[0]
    _nothing_imported(media_root)


def test_admin_upload_of_a_broken_zip_names_the_upload_not_a_server_path(
    client, django_user_model, tmp_path, django_capture_on_commit_callbacks
):
    client.force_login(django_user_model.objects.create_superuser("o", "o@example.org", "pw"))
    study = StudyFactory(slug="z")
    folder = make_study_folder(tmp_path / "s", scenes=("beach",), methods=("TeamAlpha",))
    archive = _zip(folder, tmp_path / "s.zip", {"/abs/evil.png": b"x"})
    with django_capture_on_commit_callbacks(execute=True):  # the worker's job runs on commit
        response = client.post(
            f"/admin/studies/study/{study.pk}/import/",
            {"archive": SimpleUploadedFile("our-entries.zip", archive.read_bytes(), content_type="application/zip")},
        )
    assert response.status_code == 302
    page = client.get(response["Location"]).content.decode()
    assert "our-entries.zip: /abs/evil.png: unsafe path in the zip" in page
    assert "/tmp" not in page and "mosaic-import" not in page
    assert Scene.objects.count() == 0
