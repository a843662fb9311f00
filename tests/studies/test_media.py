from __future__ import annotations

import hashlib
import io
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from django.core.files.base import ContentFile
from PIL import Image

from studies.imaging import rater_copy_bytes, rater_copy_name
from studies.models import ImageAsset
from studies.services import image_tiles_build
from tests.factories import ImageAssetFactory, noise_image, png_bytes

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


@pytest.fixture(params=["webp", "png"])
def tile_format(request, settings) -> str:
    """New pyramids are WebP; PNG ones (built before, or configured) keep being served."""
    settings.MOSAIC_TILE_FORMAT = request.param
    return request.param


def _asset_of(array: np.ndarray) -> ImageAsset:
    """An asset whose upload and rater copy hold ``array``'s pixels."""
    data = png_bytes(array)
    copy = rater_copy_bytes(io.BytesIO(data))
    return ImageAssetFactory(
        width=array.shape[1],
        height=array.shape[0],
        original=ContentFile(data, name=f"images/up/{hashlib.sha256(data).hexdigest()}.png"),
        file=ContentFile(copy, name=rater_copy_name(hashlib.sha256(copy).hexdigest())),
    )


def _tile(client, asset: ImageAsset, level: int, col: int, row: int) -> tuple[str, bytes]:
    root = ET.fromstring(b"".join(client.get(f"/tiles/{asset.token}.dzi").streaming_content))
    response = client.get(f"/tiles/{asset.token}_files/{level}/{col}_{row}.{root.attrib['Format']}")
    assert response.status_code == 200
    return response["Content-Type"], b"".join(response.streaming_content)


def test_tile_pyramid_is_lossless_at_full_resolution(client, tile_format):
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

    assert root.attrib["Format"] == tile_format
    top_level = int(np.ceil(np.log2(600)))
    content_type, body = _tile(client, asset, top_level, 1, 0)
    assert content_type == f"image/{tile_format}"
    pixels = np.asarray(Image.open(io.BytesIO(body)))
    original = np.asarray(Image.open(asset.file.path))
    left = tile_size - overlap
    expected = original[0 : pixels.shape[0], left : left + pixels.shape[1]]
    assert np.array_equal(pixels[..., :3], expected)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L"])
def test_a_webp_tile_decodes_to_exactly_the_source_pixels(client, settings, mode):
    settings.MOSAIC_TILE_FORMAT = "webp"
    array = noise_image(300, 200, seed=11)
    if mode == "RGBA":
        alpha = np.full((200, 300, 1), 255, dtype=np.uint8)
        alpha[:, ::3] = 0  # fully transparent pixels keep their colour too
        alpha[::2, 1::3] = 90
        array = np.concatenate([array, alpha], axis=2)
    elif mode == "L":
        array = array[..., 0]
    asset = _asset_of(array)
    image_tiles_build(asset=asset)
    asset.refresh_from_db()
    assert asset.tile_status == ImageAsset.TileStatus.DONE

    # The full-resolution level, tile (0, 0): the image's top left 257 x 200 pixels.
    content_type, body = _tile(client, asset, 9, 0, 0)
    assert content_type == "image/webp" and body[8:12] == b"WEBP"
    decoded = Image.open(io.BytesIO(body))
    assert decoded.format == "WEBP"
    pixels = np.asarray(decoded.convert("RGBA" if mode == "RGBA" else "RGB"))
    expected = array[:, :257]
    if mode == "L":
        expected = np.repeat(expected[..., None], 3, axis=2)  # WebP stores grey as equal channels
    assert np.array_equal(pixels, expected)


def test_a_16_bit_image_keeps_png_tiles_with_its_16_bits(client, settings):
    settings.MOSAIC_TILE_FORMAT = "webp"
    array = np.random.default_rng(5).integers(0, 65536, size=(100, 120), dtype=np.uint16)
    asset = _asset_of(array)
    image_tiles_build(asset=asset)
    content_type, body = _tile(client, asset, 7, 0, 0)
    assert content_type == "image/png"
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(body))), array)


def test_assets_with_equal_files_get_pyramids_of_their_own_with_different_bytes(media_root, tile_format):
    first = ImageAssetFactory(seed=7, width=300, height=200)
    second = ImageAssetFactory(seed=7, width=300, height=200)
    assert first.sha256 == second.sha256
    image_tiles_build(asset=first)
    image_tiles_build(asset=second)
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.tiles_dir != second.tiles_dir and second.tile_status == "done"
    tiles = sorted((media_root / first.tiles_dir / "pyramid_files").rglob(f"*.{tile_format}"))
    assert tiles
    for tile in tiles:
        twin = media_root / second.tiles_dir / tile.relative_to(media_root / first.tiles_dir)
        assert tile.read_bytes() != twin.read_bytes()
        assert np.array_equal(np.asarray(Image.open(tile)), np.asarray(Image.open(twin)))


def test_a_pyramid_missing_a_tile_is_not_marked_done(media_root, monkeypatch, tile_format):
    import pyvips

    asset = ImageAssetFactory(width=600, height=300)

    dzsave = pyvips.Image.dzsave

    def dzsave_that_loses_a_tile(image, base, **options):
        dzsave(image, base, **options)
        next(Path(base + "_files").rglob(f"*.{tile_format}")).unlink()

    monkeypatch.setattr(pyvips.Image, "dzsave", dzsave_that_loses_a_tile, raising=False)
    image_tiles_build(asset=asset)
    asset.refresh_from_db()
    assert asset.tile_status == ImageAsset.TileStatus.FAILED and asset.tiles_dir == ""
    assert "tile" in asset.tile_error
    assert not any((media_root / "tiles").iterdir())


def test_an_incomplete_pyramid_in_place_is_rebuilt_not_reused(media_root, tile_format):
    asset = ImageAssetFactory(width=600, height=300)
    image_tiles_build(asset=asset)
    asset.refresh_from_db()
    folder = media_root / asset.tiles_dir
    victim = next((folder / "pyramid_files").rglob(f"*.{tile_format}"))
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


def test_rebuild_tiles_turns_png_pyramids_into_webp_under_new_tokens(client, settings):
    from django.core.management import CommandError, call_command

    from tests.factories import OutputFactory

    settings.MOSAIC_TILE_FORMAT = "png"  # pyramids as built before WebP
    output = OutputFactory(image=ImageAssetFactory(width=300, height=200, seed=4))
    study, asset = output.method.study, output.image
    image_tiles_build(asset=asset)
    old_token = asset.token
    settings.MOSAIC_TILE_FORMAT = "webp"

    study.status = "open"
    study.save()
    with pytest.raises(CommandError, match="is open"):
        call_command("rebuild_tiles", study.slug)
    assert _tile(client, asset, 9, 0, 0)[0] == "image/png"  # nothing changed

    study.status = "closed"
    study.save()
    call_command("rebuild_tiles", study.slug)
    asset.refresh_from_db()
    assert asset.token != old_token and asset.tile_status == ImageAsset.TileStatus.DONE
    content_type, body = _tile(client, asset, 9, 0, 0)
    assert content_type == "image/webp"
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(body)).convert("RGB")), noise_image(300, 200, 4)[:, :257])
    assert client.get(f"/tiles/{old_token}.dzi").status_code == 404
