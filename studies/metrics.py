"""Full-reference fidelity metrics (PSNR, SSIM) of an output against its reference.

SSIM uses the settings of Wang et al. (2004) as scikit-image documents them for
reproducing the paper: Gaussian window with sigma 1.5, population covariance, data range
of the image's bit depth, computed over the colour channels.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import skimage

SSIM_SETTINGS = {
    "gaussian_weights": True,
    "sigma": 1.5,
    "use_sample_covariance": False,
}


class MetricError(ValueError):
    pass


def load_pixels(path: Path) -> np.ndarray:
    """Pixels as stored (8 or 16 bits per channel), alpha dropped, greyscale as one channel.

    The metric task reads the rater copies (PNG: what raters see, exactly). libvips
    decodes into one buffer the size of the array; Pillow held two or three copies of a
    60-megapixel image on the way to an array.
    """
    import pyvips  # here: web workers import this module's callers and need no libvips

    image = pyvips.Image.new_from_file(str(path), access="sequential", fail_on="error")
    if image.bands in (2, 4):
        image = image.extract_band(0, n=image.bands - 1)
    array = image.numpy()
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    return array


def data_range_for(array: np.ndarray) -> float:
    if array.dtype == np.uint8:
        return 255.0
    if array.dtype == np.uint16:
        return 65535.0
    raise MetricError(f"unsupported pixel type {array.dtype} (expected 8 or 16 bits per channel)")


# Rows per strip are chosen so that a strip holds about this many pixels of one channel:
# the float64 maps of one strip then take about 15 x 16 MB, whatever the image's size.
STRIP_PIXELS = 1 << 21
_SIGMA, _TRUNCATE, _K1, _K2 = SSIM_SETTINGS["sigma"], 3.5, 0.01, 0.03
_RADIUS = int(_TRUNCATE * _SIGMA + 0.5)  # of the Gaussian window, as scipy.ndimage computes it


def _channels(array: np.ndarray) -> list[np.ndarray]:
    return [array] if array.ndim == 2 else [array[..., c] for c in range(array.shape[2])]


def _ssim_channel(x: np.ndarray, y: np.ndarray, data_range: float) -> float:
    """scikit-image's structural_similarity of one channel (Gaussian window, population
    covariance, borders of the window's radius left out), computed strip by strip.

    Each strip is filtered with ``_RADIUS`` rows of the image above and below it, so every
    value kept is the one the whole image gives, in float64 as scikit-image computes it;
    only the order of the final sum differs.
    """
    from scipy import ndimage

    height, width = x.shape
    r = _RADIUS
    if height < 2 * r + 1 or width < 2 * r + 1:
        raise MetricError(f"{width}x{height} is smaller than the SSIM window ({2 * r + 1}x{2 * r + 1})")
    c1, c2 = (_K1 * data_range) ** 2, (_K2 * data_range) ** 2

    def blur(z: np.ndarray) -> np.ndarray:
        return ndimage.gaussian_filter(z, _SIGMA, mode="reflect", truncate=_TRUNCATE)

    rows = max(STRIP_PIXELS // width, 1)
    total = 0.0
    for start in range(r, height - r, rows):
        stop = min(start + rows, height - r)
        low, high = max(start - r, 0), min(stop + r, height)
        a = x[low:high].astype(np.float64)
        b = y[low:high].astype(np.float64)
        ux, uy = blur(a), blur(b)
        vx = blur(a * a) - ux * ux
        vy = blur(b * b) - uy * uy
        vxy = blur(a * b) - ux * uy
        del a, b
        s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
        total += float(s[start - low : stop - low, r : width - r].sum(dtype=np.float64))
    return total / ((height - 2 * r) * (width - 2 * r))


def _squared_error(x: np.ndarray, y: np.ndarray) -> int:
    """Sum of squared differences, exactly (integers), strip by strip."""
    rows = max(STRIP_PIXELS // (x.shape[1] * (x.shape[2] if x.ndim == 3 else 1)), 1)
    total = 0
    for start in range(0, x.shape[0], rows):
        diff = x[start : start + rows].astype(np.int64) - y[start : start + rows]
        total += int(np.einsum("i,i->", diff.ravel(), diff.ravel()))
    return total


def compute_metrics(reference: np.ndarray, output: np.ndarray) -> tuple[float | None, float, dict[str, object]]:
    """Return (psnr, ssim, settings). PSNR is None when the images are identical (infinite).

    The values are scikit-image's peak_signal_noise_ratio and structural_similarity with
    SSIM_SETTINGS, computed in strips so that memory stays bounded: a 60-megapixel pair
    needs the two images and about 250 MB more, where scikit-image's float64 maps of the
    whole image took several GB.
    """
    if reference.shape != output.shape:
        raise MetricError(f"output shape {output.shape} differs from the reference's {reference.shape}")
    if reference.dtype != output.dtype:
        raise MetricError(f"output bit depth {output.dtype} differs from the reference's {reference.dtype}")
    data_range = data_range_for(reference)
    channel_axis = -1 if reference.ndim == 3 else None
    ssim = float(
        np.mean([_ssim_channel(x, y, data_range) for x, y in zip(_channels(reference), _channels(output), strict=True)])
    )
    squared = _squared_error(reference, output)
    psnr = None if squared == 0 else 10 * math.log10(data_range**2 / (squared / reference.size))
    settings = {
        **SSIM_SETTINGS,
        "data_range": data_range,
        "channel_axis": channel_axis,
        "library": "scikit-image",
        "library_version": skimage.__version__,
        "implementation": "strips",
        "identical": squared == 0,
    }
    return psnr, ssim, settings
