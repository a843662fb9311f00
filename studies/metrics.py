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
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

SSIM_SETTINGS = {
    "gaussian_weights": True,
    "sigma": 1.5,
    "use_sample_covariance": False,
}


class MetricError(ValueError):
    pass


def load_pixels(path: Path) -> np.ndarray:
    """Pixels as decoded for raters (8 or 16 bits per channel), alpha dropped, greyscale
    as one channel."""
    from studies.imaging import decode  # the Django side; the rest of this module needs none

    image, _ = decode(path)
    array = np.asarray(image)
    del image
    if array.ndim == 3 and array.shape[2] in (2, 4):
        array = np.ascontiguousarray(array[..., :-1])
    return array


def data_range_for(array: np.ndarray) -> float:
    if array.dtype == np.uint8:
        return 255.0
    if array.dtype == np.uint16:
        return 65535.0
    raise MetricError(f"unsupported pixel type {array.dtype} (expected 8 or 16 bits per channel)")


def compute_metrics(reference: np.ndarray, output: np.ndarray) -> tuple[float | None, float, dict[str, object]]:
    """Return (psnr, ssim, settings). PSNR is None when the images are identical (infinite)."""
    if reference.shape != output.shape:
        raise MetricError(f"output shape {output.shape} differs from the reference's {reference.shape}")
    if reference.dtype != output.dtype:
        raise MetricError(f"output bit depth {output.dtype} differs from the reference's {reference.dtype}")
    data_range = data_range_for(reference)
    channel_axis = -1 if reference.ndim == 3 else None
    ssim = structural_similarity(reference, output, data_range=data_range, channel_axis=channel_axis, **SSIM_SETTINGS)
    identical = bool(np.array_equal(reference, output))
    psnr = math.inf if identical else peak_signal_noise_ratio(reference, output, data_range=data_range)
    settings = {
        **SSIM_SETTINGS,
        "data_range": data_range,
        "channel_axis": channel_axis,
        "library": "scikit-image",
        "library_version": skimage.__version__,
        "identical": bool(math.isinf(psnr)),
    }
    return (None if math.isinf(psnr) else float(psnr)), float(ssim), settings
