from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from studies.models import ImageAsset
from studies.services import image_tiles_build
from tests.factories import ImageAssetFactory

pytestmark = pytest.mark.django_db


def test_rater_copy_is_served_with_immutable_caching_and_no_file_name(client):
    asset = ImageAssetFactory(width=50, height=40)
    response = client.get(f"/img/{asset.token}.png")
    assert response.status_code == 200
    body = b"".join(response.streaming_content)
    assert body == Path(asset.file.path).read_bytes()
    assert response["Content-Type"] == "image/png"
    assert "immutable" in response["Cache-Control"]
    assert "Content-Disposition" not in response
    assert asset.sha256 not in str(response.headers)
    assert body != Path(asset.original.path).read_bytes()  # never the upload itself


def test_unknown_token_or_wrong_extension_is_404(client):
    asset = ImageAssetFactory()
    assert client.get("/img/nope.png").status_code == 404
    assert client.get(f"/img/{asset.token}.jpg").status_code == 404


def test_tile_pyramid_is_lossless_at_full_resolution(client):
    asset = ImageAssetFactory(width=600, height=300, seed=3)
    image_tiles_build(asset=asset)
    asset.refresh_from_db()
    assert asset.tile_status == ImageAsset.TileStatus.DONE

    dzi = client.get(f"/tiles/{asset.token}.dzi")
    assert dzi.status_code == 200
    root = ET.fromstring(b"".join(dzi.streaming_content))
    size = root[0].attrib
    assert (int(size["Width"]), int(size["Height"])) == (600, 300)
    tile_size, overlap = int(root.attrib["TileSize"]), int(root.attrib["Overlap"])

    top_level = int(np.ceil(np.log2(600)))
    tile = client.get(f"/tiles/{asset.token}_files/{top_level}/1_0.png")
    assert tile.status_code == 200
    pixels = np.asarray(Image.open(__import__("io").BytesIO(b"".join(tile.streaming_content))))
    original = np.asarray(Image.open(asset.file.path))
    left = tile_size - overlap
    expected = original[0 : pixels.shape[0], left : left + pixels.shape[1]]
    assert np.array_equal(pixels[..., :3], expected)


def test_assets_with_equal_files_get_pyramids_of_their_own_with_different_bytes(media_root):
    first = ImageAssetFactory(seed=7, width=300, height=200)
    second = ImageAssetFactory(seed=7, width=300, height=200)
    assert first.sha256 == second.sha256
    image_tiles_build(asset=first)
    image_tiles_build(asset=second)
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.tiles_dir != second.tiles_dir and second.tile_status == "done"
    tiles = sorted((media_root / first.tiles_dir / "pyramid_files").rglob("*.png"))
    assert tiles
    for tile in tiles:
        twin = media_root / second.tiles_dir / tile.relative_to(media_root / first.tiles_dir)
        assert tile.read_bytes() != twin.read_bytes()
        assert np.array_equal(np.asarray(Image.open(tile)), np.asarray(Image.open(twin)))


def test_a_pyramid_missing_a_tile_is_not_marked_done(media_root, monkeypatch):
    import pyvips

    asset = ImageAssetFactory(width=600, height=300)

    def dzsave_that_loses_a_tile(image, base, **options):
        image.write_to_file(base + ".dzi", **{k: v for k, v in options.items() if k not in ("suffix",)})
        next(Path(base + "_files").rglob("*.png")).unlink()

    monkeypatch.setattr(pyvips.Image, "dzsave", dzsave_that_loses_a_tile, raising=False)
    image_tiles_build(asset=asset)
    asset.refresh_from_db()
    assert asset.tile_status == ImageAsset.TileStatus.FAILED and asset.tiles_dir == ""
    assert "tile" in asset.tile_error
    assert not any((media_root / "tiles").iterdir())


def test_an_incomplete_pyramid_in_place_is_rebuilt_not_reused(media_root):
    asset = ImageAssetFactory(width=600, height=300)
    image_tiles_build(asset=asset)
    asset.refresh_from_db()
    folder = media_root / asset.tiles_dir
    victim = next((folder / "pyramid_files").rglob("*.png"))
    victim.unlink()
    image_tiles_build(asset=asset)
    asset.refresh_from_db()
    assert asset.tile_status == ImageAsset.TileStatus.DONE and victim.is_file()


def test_tile_paths_cannot_escape_media(client):
    asset = ImageAssetFactory()
    image_tiles_build(asset=asset)
    assert client.get(f"/tiles/{asset.token}_files/0/..%2F..%2Fpyramid.dzi").status_code == 404


def test_broken_file_marks_tiles_failed_with_error(media_root):
    asset = ImageAssetFactory()
    Path(asset.file.path).write_bytes(b"broken")
    image_tiles_build(asset=asset)
    asset.refresh_from_db()
    assert asset.tile_status == ImageAsset.TileStatus.FAILED and asset.tile_error
    assert not (media_root / "tiles").exists() or not any((media_root / "tiles").iterdir())
