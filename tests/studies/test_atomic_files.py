"""A crash never leaves a truncated file under a final name, nor files nobody refers to."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from django.core.management import call_command

from studies import imaging
from studies.models import ImageAsset, Output
from studies.services import image_tiles_build, study_create, study_import
from tests.studies.conftest import make_study_folder

pytestmark = pytest.mark.django_db


def _age(path: Path, hours: float) -> None:
    past = time.time() - hours * 3600
    os.utime(path, (past, past), follow_symlinks=False)


def test_a_truncated_file_under_the_content_addressed_name_is_replaced_not_reused(tmp_path, media_root):
    folder = make_study_folder(tmp_path / "s", scenes=("beach",), methods=("TeamAlpha",))
    upload = folder / "methods" / "TeamAlpha" / "beach.png"
    sha = imaging.file_sha256(upload)
    # What a process killed in the middle of writing it used to leave.
    stale = media_root / imaging.stored_name(sha, "png")
    stale.parent.mkdir(parents=True)
    stale.write_bytes(upload.read_bytes()[:100])

    study_import(study=study_create(title="T", slug="t"), source=folder)
    asset = Output.objects.get().image
    assert Path(asset.original.path).read_bytes() == upload.read_bytes()


def test_a_write_that_fails_halfway_leaves_neither_the_file_nor_its_temporary(tmp_path, monkeypatch):
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(3 << 20))
    target = tmp_path / "out" / "big.bin"

    def crash(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(imaging.os, "fsync", crash)
    with pytest.raises(OSError):
        imaging.write_atomic(target, source)
    assert list(target.parent.iterdir()) == []


def test_remove_orphan_files_keeps_what_assets_use_and_removes_old_leftovers(tmp_path, media_root, capsys):
    folder = make_study_folder(tmp_path / "s", scenes=("beach",), methods=("TeamAlpha",), size=(300, 200))
    study_import(study=study_create(title="T", slug="t"), source=folder)
    asset = ImageAsset.objects.first()
    image_tiles_build(asset=asset)
    kept = sorted(p for p in media_root.rglob("*") if p.is_file())

    # Left by a killed import (files of rows that never committed), a killed write and a
    # killed tile build; and a file of an import running right now.
    leftovers = [
        media_root / "images" / "ab" / ("ab" + "0" * 62 + ".png"),
        media_root / "public" / "cd" / ("cd" + "1" * 62 + ".png"),
        media_root / "images" / "ab" / ".x.png.k2j3.part",
        media_root / "tiles" / ".0123abcd-xyz.part" / "pyramid_files" / "0" / "0_0.png",
    ]
    fresh = media_root / "public" / "ef" / ("ef" + "2" * 62 + ".png")
    for path in [*leftovers, fresh]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    for path in media_root.rglob("*"):
        _age(path, 48)
    _age(fresh, 0)

    call_command("remove_orphan_files")

    assert "Removed 4 orphaned" in capsys.readouterr().out
    for path in leftovers:
        assert not path.exists()
    assert not (media_root / "tiles" / ".0123abcd-xyz.part").exists()
    assert fresh.exists()
    assert sorted(p for p in media_root.rglob("*") if p.is_file() and p != fresh) == kept
    assert ImageAsset.objects.filter(tile_status="done").count() == 1


def test_remove_orphan_files_dry_run_removes_nothing(media_root, capsys):
    orphan = media_root / "images" / "ab" / "orphan.png"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"x")
    _age(orphan, 48)
    call_command("remove_orphan_files", "--dry-run")
    assert "images/ab/orphan.png" in capsys.readouterr().out and orphan.exists()
