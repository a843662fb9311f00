"""Peak memory of PSNR/SSIM of one output, as the metric task computes them.

    python bench/metrics/run.py [--megapixels 60] [--skimage]

Writes a reference and a noisy output of that size (RGB PNG, in a temporary folder), then
in a fresh process loads both as the task does (studies.metrics.load_pixels) and computes
the metrics (studies.metrics.compute_metrics), and reports that process's peak resident
memory (VmHWM from /proc: getrusage's ru_maxrss would include the parent's peak, which
survives fork and exec on Linux). With --skimage, a second fresh process computes scikit-image's functions on the
whole images, for the values and the memory they need (several GB at 30 MP and more).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

CHILD = r"""
import json, re, sys, time
import django
django.setup()
from studies.metrics import compute_metrics, load_pixels
started = time.monotonic()
reference, output = load_pixels(sys.argv[1]), load_pixels(sys.argv[2])
if sys.argv[3] == "mosaic":
    psnr, ssim, _ = compute_metrics(reference, output)
else:
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity
    ssim = structural_similarity(reference, output, channel_axis=2, data_range=255,
                                 gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    psnr = peak_signal_noise_ratio(reference, output, data_range=255)
print(json.dumps({"psnr": psnr, "ssim": float(ssim), "seconds": time.monotonic() - started,
                  "peak_mb": int(re.search(r"VmHWM:\s+(\d+) kB", open("/proc/self/status").read()).group(1)) / 1024}))
"""


def write_pair(folder: Path, megapixels: float) -> tuple[Path, Path]:
    import numpy as np
    from PIL import Image

    width = int((megapixels * 1e6 * 3 / 2) ** 0.5)
    height = int(megapixels * 1e6 / width)
    rng = np.random.default_rng(0)
    # Smooth content with texture (a gradient plus noise), and an output with added noise.
    y, x = np.mgrid[0:height, 0:width]
    reference = np.empty((height, width, 3), dtype=np.uint8)
    for c in range(3):
        reference[..., c] = ((x * (c + 1) + y) % 256).astype(np.uint8)
    del x, y
    paths = folder / "reference.png", folder / "output.png"
    Image.fromarray(reference).save(paths[0], compress_level=1)
    noise = rng.integers(-8, 9, size=reference.shape, dtype=np.int16)
    output = np.clip(reference.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    del noise
    Image.fromarray(output).save(paths[1], compress_level=1)
    print(f"pair of {width}x{height} ({width * height / 1e6:.1f} MP) written")
    return paths


def measure(paths: tuple[Path, Path], which: str) -> dict:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "config.settings")}
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(paths[0]), str(paths[1]), which],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megapixels", type=float, default=60.0)
    parser.add_argument("--skimage", action="store_true", help="also run scikit-image on the whole images")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mosaic-bench-metrics-") as tmp:
        started = time.monotonic()
        paths = write_pair(Path(tmp), args.megapixels)
        print(f"  ({time.monotonic() - started:.0f} s)")
        mosaic = measure(paths, "mosaic")
        print(
            f"studies.metrics: PSNR {mosaic['psnr']:.9f}  SSIM {mosaic['ssim']:.12f}  "
            f"peak {mosaic['peak_mb']:.0f} MB  {mosaic['seconds']:.0f} s"
        )
        if args.skimage:
            reference = measure(paths, "skimage")
            print(
                f"scikit-image:    PSNR {reference['psnr']:.9f}  SSIM {reference['ssim']:.12f}  "
                f"peak {reference['peak_mb']:.0f} MB  {reference['seconds']:.0f} s"
            )
            print(
                f"differences: PSNR {abs(mosaic['psnr'] - reference['psnr']):.2e}  "
                f"SSIM {abs(mosaic['ssim'] - reference['ssim']):.2e}"
            )


if __name__ == "__main__":
    main()
