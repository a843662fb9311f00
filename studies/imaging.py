"""Reading image headers, hashing and storing image files.

Files are stored exactly as uploaded under content-addressed names
(images/<sha[:2]>/<sha>.<ext>): recompressing a team's output would change what raters
judge, and a name made of the hash reveals nothing about the method.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage
from PIL import Image, UnidentifiedImageError

from studies.models import ImageAsset

# Pillow format name -> (stored extension, content type)
FORMATS: dict[str, tuple[str, str]] = {
    "PNG": ("png", "image/png"),
    "JPEG": ("jpg", "image/jpeg"),
    "TIFF": ("tif", "image/tiff"),
    "WEBP": ("webp", "image/webp"),
}
EXTENSIONS = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp"}


class ImageProblem(ValueError):
    """A file that cannot be used as a study image; the message says why."""


@dataclass(frozen=True)
class ImageInfo:
    path: Path
    format: str
    width: int
    height: int
    mode: str

    @property
    def extension(self) -> str:
        return FORMATS[self.format][0]

    @property
    def content_type(self) -> str:
        return FORMATS[self.format][1]


def inspect_image(path: Path, *, max_pixels: int | None = None) -> ImageInfo:
    """Check that ``path`` is a whole, decodable image within the pixel limit.

    The header is read first and the pixel count checked before anything is decoded,
    so a decompression bomb is refused without allocating its pixels.
    """
    limit = max_pixels if max_pixels is not None else settings.MOSAIC_MAX_PIXELS
    if path.suffix.lower() not in EXTENSIONS:
        raise ImageProblem(f"{path.suffix or 'no extension'} is not an accepted format (PNG, JPEG, TIFF or WebP)")
    try:
        with Image.open(path) as image:
            if image.format not in FORMATS:
                raise ImageProblem(f"the file is {image.format}, not an accepted format (PNG, JPEG, TIFF or WebP)")
            width, height = image.size
            if width * height > limit:
                raise ImageProblem(
                    f"{width}x{height} is {width * height / 1e6:.1f} megapixels, "
                    f"more than the limit of {limit / 1e6:.1f} megapixels"
                )
            mode = image.mode
            # Decode every pixel: a truncated or corrupt file must fail here, at import,
            # not in a rater's browser.
            image.load()
            return ImageInfo(path=path, format=image.format, width=width, height=height, mode=mode)
    except ImageProblem:
        raise
    except Image.DecompressionBombError as exc:
        # Pillow refuses huge images already in open(), before our own check sees the size.
        found = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = f"{int(found.group(1)) / 1e6:.1f} megapixels" if found else "too many pixels"
        raise ImageProblem(f"{pixels}, more than the limit of {limit / 1e6:.1f} megapixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageProblem(f"not a decodable image ({exc})") from None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def stored_name(sha256: str, extension: str) -> str:
    return f"images/{sha256[:2]}/{sha256}.{extension}"


def image_asset_store(*, info: ImageInfo, sha256: str, written: list[str]) -> ImageAsset:
    """Store the file (once per content) and create an asset row with a fresh token.

    Names of files this call created are appended to ``written`` so that a failing
    import can delete exactly what it added.
    """
    name = stored_name(sha256, info.extension)
    if not default_storage.exists(name):
        with info.path.open("rb") as handle:
            saved = default_storage.save(name, handle)
        if saved != name:  # pragma: no cover - a race wrote the same content first
            default_storage.delete(saved)
        else:
            written.append(name)
    return ImageAsset.objects.create(
        token=secrets.token_urlsafe(24),
        sha256=sha256,
        file=name,
        content_type=info.content_type,
        size_bytes=info.path.stat().st_size,
        width=info.width,
        height=info.height,
    )
