"""Reading, checking, decoding and storing image files.

Every asset has two files:

- the **original**, stored exactly as uploaded under a content-addressed name
  (``images/<sha[:2]>/<sha>.<ext>``), for organizers and exports: its sha256 is the
  one recorded;
- the **rater copy** (``public/<sha[:2]>/<sha>.png``), the only file a rater's browser
  gets (and the source of its tiles): a lossless PNG re-encoded from the decoded pixels
  with the ICC profile and nothing else of the upload (no text chunks, EXIF, XMP or
  comments that could name a team), plus a chunk of random bytes of random length, so
  that two assets never share bytes even when their pixels are equal (the hidden
  reference is the reference).

Files are written to a temporary name in their folder and renamed into place, so a
killed process never leaves a truncated file under a final name; an existing file is
reused only if its sha256 is the expected one.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import secrets
import struct
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

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

# Pillow mode -> the mode pixels are decoded to, for metrics and the rater copy alike.
# Modes not listed (CMYK, YCbCr, LAB, HSV, 32-bit integer or float) are refused.
_DECODED_MODES = {
    "1": "L",
    "L": "L",
    "LA": "LA",
    "La": "LA",
    "P": "RGB",
    "PA": "RGBA",
    "RGB": "RGB",
    "RGBA": "RGBA",
    "RGBa": "RGBA",
    "I;16": "I;16",
    "I;16L": "I;16",
    "I;16B": "I;16",
}
PADDING_CHUNK = b"paDd"  # ancillary, private, safe to copy: decoders skip it
WEBP_PADDING_CHUNK = b"PADD"  # not a WebP chunk name: readers skip it


class ImageProblem(ValueError):
    """A file that cannot be used as a study image; the message says why."""


@dataclass(frozen=True)
class ImageInfo:
    path: Path
    format: str
    width: int
    height: int
    mode: str  # the decoded mode (see _DECODED_MODES)
    bits: int = 8  # per channel

    @property
    def extension(self) -> str:
        return FORMATS[self.format][0]

    @property
    def content_type(self) -> str:
        return FORMATS[self.format][1]

    @property
    def colour(self) -> bool:
        return self.mode in ("RGB", "RGBA")

    @property
    def kind(self) -> str:
        return f"{'colour' if self.colour else 'greyscale'}, {self.bits} bits per channel"


def _decoded_mode(image: Image.Image) -> str:
    mode = image.mode
    if mode in ("L", "RGB") and "transparency" in image.info:
        return mode + "A"  # a tRNS colour key: make the transparency explicit
    if mode == "P" and "transparency" in image.info:
        return "RGBA"
    decoded = _DECODED_MODES.get(mode)
    if decoded is None:
        if mode == "CMYK":
            raise ImageProblem(
                "CMYK colour (a print separation): browsers and metrics would not show the colours "
                "raters should judge; save it as RGB"
            )
        raise ImageProblem(f"colour mode {mode} is not supported: save it as 8-bit RGB or greyscale")
    return decoded


def _bits_per_sample(image: Image.Image, path: Path) -> int:
    """Bits per channel as stored: Pillow reads 16-bit colour PNG and TIFF as 8 bits."""
    if image.format == "PNG":
        with path.open("rb") as handle:
            header = handle.read(26)
        return header[24] if len(header) == 26 else 8
    if image.format == "TIFF":
        bits = image.tag_v2.get(258, (8,))
        return max(bits) if isinstance(bits, tuple) else int(bits)
    return 8


def inspect_image(path: Path, *, max_pixels: int | None = None, decode: bool = True) -> ImageInfo:
    """Check that ``path`` is a whole, decodable, single still image within the pixel limit,
    in a mode whose metrics and display are right.

    The header is read first and the pixel count checked before anything is decoded,
    so a decompression bomb is refused without allocating its pixels. ``decode=False``
    reads the header only: for a stored file, checked when it was imported.
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
            frames = getattr(image, "n_frames", 1)
            if frames > 1:
                what = "a multi-page TIFF" if image.format == "TIFF" else f"an animated {image.format}"
                raise ImageProblem(f"{what} with {frames} frames: save the one still image to be judged")
            bits = _bits_per_sample(image, path)
            mode = _decoded_mode(image)
            if bits > 8 and mode != "I;16":
                raise ImageProblem(f"{bits} bits per colour channel: it would be read as 8 bits; save it as 8-bit RGB")
            # Decode every pixel: a truncated or corrupt file must fail here, at import,
            # not in a rater's browser.
            if decode:
                image.load()
            return ImageInfo(path=path, format=image.format, width=width, height=height, mode=mode, bits=bits)
    except ImageProblem:
        raise
    except Image.DecompressionBombError as exc:
        # Pillow refuses huge images already in open(), before our own check sees the size.
        found = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = f"{int(found.group(1)) / 1e6:.1f} megapixels" if found else "too many pixels"
        raise ImageProblem(f"{pixels}, more than the limit of {limit / 1e6:.1f} megapixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        # The library's message may quote the file's path on the server: name the file only.
        raise ImageProblem(f"not a decodable image ({str(exc).replace(str(path), path.name)})") from None


def decode(source: Path | BinaryIO) -> tuple[Image.Image, bytes | None]:
    """The image's pixels in their decoded mode, as a new image that carries none of the
    file's metadata, and the file's ICC profile (None if it has none).

    Metrics and the rater copy both decode through here, so raters judge the pixels the
    metrics measure. EXIF orientation is not applied, as the metrics do not apply it.
    """
    with Image.open(source) as image:
        image.load()
        mode = _decoded_mode(image)
        icc = image.info.get("icc_profile") or None
        if mode == "I;16":
            import numpy as np  # here: web workers import this module and need no numpy

            array = np.asarray(image).astype(np.uint16, copy=False)
            return Image.fromarray(array), icc
        converted = image if image.mode == mode else image.convert(mode)
        return Image.frombytes(mode, converted.size, converted.tobytes()), icc


def with_padding(data: bytes) -> bytes:
    """``data`` (a PNG or a WebP file) with a chunk of random bytes (16 to 1039 of them).

    Decoders skip an unknown chunk, so the pixels stay the same while the bytes, and almost
    always the length, differ from every other file's.
    """
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp_with_padding(data)
    iend = data[-12:]
    if iend[4:8] != b"IEND":
        raise ValueError("not a complete PNG stream")
    pad = secrets.token_bytes(16 + secrets.randbelow(1024))
    chunk = struct.pack(">I", len(pad)) + PADDING_CHUNK + pad + struct.pack(">I", zlib.crc32(PADDING_CHUNK + pad))
    return data[:-12] + chunk + iend


def _webp_with_padding(webp: bytes) -> bytes:
    # The WebP container allows unknown chunks at the end of a file in its extended
    # format (a VP8X header first), and readers ignore them; the simple format (one VP8L
    # chunk) allows nothing else, so a simple file gets the VP8X header its pixels imply.
    if len(webp) != 8 + struct.unpack("<I", webp[4:8])[0] or len(webp) < 30:
        raise ValueError("not a complete WebP file")
    chunks = webp[12:]
    if chunks[:4] == b"VP8L":
        bits = struct.unpack("<I", chunks[9:13])[0]
        width, height, alpha = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, (bits >> 28) & 1
        header = bytes([0x10 if alpha else 0, 0, 0, 0]) + (width - 1).to_bytes(3, "little")
        chunks = b"VP8X" + struct.pack("<I", 10) + header + (height - 1).to_bytes(3, "little") + chunks
    elif chunks[:4] != b"VP8X":
        raise ValueError("a WebP file this code does not pad (neither lossless nor extended)")
    pad = secrets.token_bytes(2 * (8 + secrets.randbelow(512)))  # chunk sizes are even
    chunks += WEBP_PADDING_CHUNK + struct.pack("<I", len(pad)) + pad
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WEBP" + chunks


def rater_copy_bytes(source: Path | BinaryIO) -> bytes:
    """The rater copy of an image: its decoded pixels and ICC profile as a padded PNG."""
    image, icc = decode(source)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", icc_profile=icc, compress_level=6)
    return with_padding(buffer.getvalue())


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def stored_name(sha256: str, extension: str) -> str:
    return f"images/{sha256[:2]}/{sha256}.{extension}"


def rater_copy_name(sha256: str) -> str:
    return f"public/{sha256[:2]}/{sha256}.png"


TEMPORARY_SUFFIX = ".part"


def write_atomic(path: Path, source: Path | bytes) -> None:
    """Write ``source`` (a file or bytes) to ``path`` through a temporary file in the same
    folder, synced and then renamed: ``path`` is either absent or whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            if isinstance(source, bytes):
                handle.write(source)
            else:
                with source.open("rb") as original:
                    for chunk in iter(lambda: original.read(1 << 20), b""):
                        handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, settings.FILE_UPLOAD_PERMISSIONS or 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def store_content(name: str, *, sha256: str, source: Path | bytes) -> bool:
    """Make the storage file ``name`` hold ``source``, whose sha256 is ``sha256``.

    Returns True when this call wrote the file, False when a file with that content was
    already there. A file under the name with other content (truncated by a crash) is
    replaced, never reused.
    """
    path = Path(default_storage.path(name))
    if path.is_file() and file_sha256(path) == sha256:
        return False
    write_atomic(path, source)
    return True


def image_asset_store(*, info: ImageInfo, sha256: str, written: list[str]) -> ImageAsset:
    """Store the original (once per content) and a rater copy of its own, and create an
    asset row with a fresh token.

    Names of files this call created are appended to ``written`` so that a failing
    import can delete exactly what it added.
    """
    name = stored_name(sha256, info.extension)
    if store_content(name, sha256=sha256, source=info.path):
        written.append(name)
    copy = rater_copy_bytes(info.path)
    copy_sha = hashlib.sha256(copy).hexdigest()
    copy_name = rater_copy_name(copy_sha)
    if store_content(copy_name, sha256=copy_sha, source=copy):
        written.append(copy_name)
    return ImageAsset.objects.create(
        token=secrets.token_urlsafe(24),
        sha256=sha256,
        original=name,
        file=copy_name,
        content_type=info.content_type,
        size_bytes=info.path.stat().st_size,
        width=info.width,
        height=info.height,
    )
