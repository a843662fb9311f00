"""What a rater's browser receives: the pixels and the colour profile, nothing else."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms, PngImagePlugin

from studies.models import Output, Scene
from studies.services import image_tiles_build, study_create, study_import
from tests.factories import noise_image
from tests.studies.conftest import make_study_folder, write_png

pytestmark = pytest.mark.django_db

TEAM = "TeamAlpha"
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
ALLOWED_CHUNKS = {b"IHDR", b"PLTE", b"iCCP", b"IDAT", b"IEND", b"paDd"}


def png_chunks(data: bytes) -> list[bytes]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, offset = [], 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        chunks.append(data[offset + 4 : offset + 8])
        offset += 12 + length
    return chunks


def webp_chunks(data: bytes) -> list[bytes]:
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    chunks, offset = [], 12
    while offset < len(data):
        (length,) = struct.unpack("<I", data[offset + 4 : offset + 8])
        chunks.append(data[offset : offset + 4])
        offset += 8 + length + (length & 1)
    return chunks


# Lossless pixels (VP8L) in the extended format (VP8X), the ICC profile and the padding.
ALLOWED_WEBP_CHUNKS = {b"VP8X", b"ICCP", b"VP8L", b"PADD"}


def pixels(source: Path | bytes) -> np.ndarray:
    with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
        return np.asarray(image.convert("RGB"))


def tagged_png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", TEAM)
    info.add_itxt("Description", f"made by {TEAM}", lang="en")
    info.add_text("Comment", f"{TEAM} v2", zip=True)
    exif = Image.Exif()
    exif[0x013B] = TEAM  # Artist
    Image.fromarray(array).save(path, format="PNG", pnginfo=info, icc_profile=SRGB, exif=exif.tobytes())
    return path


def tagged_jpeg(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    exif = Image.Exif()
    exif[0x013B] = TEAM
    exif[0x0131] = f"{TEAM} pipeline"  # Software
    xmp = f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><dc:creator>{TEAM}</dc:creator></x:xmpmeta>'.encode()
    Image.fromarray(array).save(
        path, format="JPEG", quality=95, exif=exif, xmp=xmp, comment=f"by {TEAM}", icc_profile=SRGB
    )
    return path


def _import(folder: Path) -> None:
    study_import(study=study_create(title="Blind", slug="blind"), source=folder)


def _served(client, asset) -> bytes:
    response = client.get(f"/img/{asset.token}.png")
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    return b"".join(response.streaming_content)


@pytest.mark.parametrize("write", [tagged_png, tagged_jpeg], ids=["png", "jpeg"])
def test_rater_copy_keeps_pixels_and_icc_profile_and_drops_every_other_metadata(tmp_path, client, write):
    folder = make_study_folder(tmp_path / "s", scenes=("beach",), methods=())
    extension = "png" if write is tagged_png else "jpg"
    upload = write(folder / "methods" / TEAM / f"beach.{extension}", noise_image(40, 30, seed=9))
    original = upload.read_bytes()
    assert TEAM.encode() in original
    _import(folder)

    asset = Output.objects.get().image
    assert Path(asset.original.path).read_bytes() == original  # organizers keep the upload
    body = _served(client, asset)
    assert TEAM.encode() not in body
    assert set(png_chunks(body)) <= ALLOWED_CHUNKS
    with Image.open(io.BytesIO(body)) as copy:
        assert copy.info.get("icc_profile") == SRGB
        assert set(copy.info) <= {"icc_profile"}
    assert np.array_equal(pixels(body), pixels(upload))


@pytest.mark.parametrize("tile_format", ["webp", "png"])
def test_tiles_carry_pixels_and_icc_profile_only(tmp_path, client, media_root, settings, tile_format):
    settings.MOSAIC_TILE_FORMAT = tile_format
    folder = make_study_folder(tmp_path / "s", scenes=("beach",), methods=(), size=(300, 200))
    array = noise_image(300, 200, seed=4)
    tagged_png(folder / "methods" / TEAM / "beach.png", array)
    _import(folder)
    asset = Output.objects.get().image
    image_tiles_build(asset=asset)
    asset.refresh_from_db()
    assert asset.tile_status == "done"
    top = int(np.ceil(np.log2(300)))
    response = client.get(f"/tiles/{asset.token}_files/{top}/0_0.{tile_format}")
    tile = b"".join(response.streaming_content)
    assert TEAM.encode() not in tile
    if tile_format == "png":
        # pHYs: libvips writes its default resolution (the rater copy has none to pass on).
        assert set(png_chunks(tile)) <= ALLOWED_CHUNKS | {b"pHYs"}
    else:
        assert set(webp_chunks(tile)) <= ALLOWED_WEBP_CHUNKS
    with Image.open(io.BytesIO(tile)) as image:
        assert image.info.get("icc_profile") == SRGB
    assert np.array_equal(pixels(tile)[:, :255], array[: pixels(tile).shape[0], :255])
    for path in (media_root / asset.tiles_dir).rglob(f"*.{tile_format}"):
        assert TEAM.encode() not in path.read_bytes()


def test_hidden_reference_is_not_byte_identical_to_the_reference(tmp_path, client):
    folder = make_study_folder(tmp_path / "s", scenes=("beach", "city"), methods=("TeamAlpha",))
    for index, scene in enumerate(("beach", "city")):
        write_png(folder / "methods" / "hidden" / f"{scene}.png", noise_image(40, 30, seed=index))
        write_png(folder / "methods" / "hidden2" / f"{scene}.png", noise_image(40, 30, seed=index))
    _import(folder)
    for scene in Scene.objects.select_related("reference"):
        reference = _served(client, scene.reference)
        copies = [_served(client, o.image) for o in Output.objects.filter(scene=scene, method__name__startswith="h")]
        assert len({reference, *copies}) == 3
        for copy in copies:
            assert np.array_equal(pixels(copy), pixels(reference))


def test_greyscale_upload_stays_greyscale_with_its_pixels(tmp_path, client):
    folder = tmp_path / "s"
    grey = np.random.default_rng(2).integers(0, 256, (30, 40), dtype=np.uint8)
    write_png(folder / "references" / "beach.png", grey)
    write_png(folder / "methods" / TEAM / "beach.png", 255 - grey)
    _import(folder)
    body = _served(client, Scene.objects.get().reference)
    with Image.open(io.BytesIO(body)) as copy:
        assert copy.mode == "L" and np.array_equal(np.asarray(copy), grey)
