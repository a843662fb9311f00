"""A generated demo study whose methods are degradations of known strength.

Scenes are photographs bundled with scikit-image, enlarged to about 2.2 megapixels and
given fine, colourful detail (so that blur and noise are visible at 100% zoom). Each
method applies a stronger degradation than the one before, so the expected ranking is
known: the hidden reference first, then team order, then the low anchor.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage import data as skdata

from studies.models import Method

WIDTH, HEIGHT = 1800, 1200  # 2.16 MP
SCENES = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina")


@dataclass(frozen=True)
class Degradation:
    name: str
    blur: float
    noise: float
    jpeg: int | None = None
    downscale: int = 1
    kind: str = Method.Kind.SUBMISSION
    runtime_s: float | None = None
    framework: str = ""


# Ordered best to worst: the expected MOS order of the demo.
DEGRADATIONS = (
    Degradation("hidden-reference", 0, 0, kind=Method.Kind.HIDDEN_REFERENCE),
    Degradation("Team Aurora", 0.6, 1.5, runtime_s=0.8, framework="PyTorch"),
    Degradation("Team Basalt", 1.0, 3.0, runtime_s=0.4, framework="TensorFlow"),
    Degradation("Team Cobalt", 1.5, 5.0, runtime_s=1.9, framework="PyTorch"),
    Degradation("Team Dune", 2.0, 7.0, jpeg=60, runtime_s=0.2, framework="TFLite"),
    Degradation("Team Ember", 3.0, 10.0, jpeg=40, runtime_s=0.1, framework="ONNX"),
    Degradation("Team Fjord", 4.0, 14.0, jpeg=25, runtime_s=0.05, framework="TFLite"),
    Degradation("low-anchor", 2.0, 24.0, jpeg=10, downscale=8, kind=Method.Kind.LOW_ANCHOR),
)


def scene_image(name: str, seed: int, *, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    photo = Image.fromarray(getattr(skdata, name)()[..., :3])
    base = np.asarray(photo.resize((width, height), Image.Resampling.LANCZOS), dtype=np.float32)
    rng = np.random.default_rng(seed)
    # Fine coloured grain at two scales: enlarging alone would leave nothing for a
    # degradation to destroy at 100% zoom.
    fine = rng.normal(0, 9, size=(height, width, 3)).astype(np.float32)
    coarse = np.asarray(
        Image.fromarray(rng.integers(0, 256, size=(height // 6, width // 6, 3), dtype=np.uint8)).resize(
            (width, height), Image.Resampling.BICUBIC
        ),
        dtype=np.float32,
    )
    image = base + fine + (coarse - 128) * 0.12
    return np.clip(image, 0, 255).astype(np.uint8)


def degrade(image: np.ndarray, how: Degradation, seed: int) -> np.ndarray:
    if how.kind == Method.Kind.HIDDEN_REFERENCE:
        return image
    result = Image.fromarray(image)
    if how.downscale > 1:
        small = result.resize((result.width // how.downscale, result.height // how.downscale), Image.Resampling.BOX)
        result = small.resize(result.size, Image.Resampling.NEAREST)
    array = np.asarray(result, dtype=np.float32)
    if how.blur:
        array = ndimage.gaussian_filter(array, sigma=(how.blur, how.blur, 0))
    if how.noise:
        # A stream of its own: reusing the scene generator's seed would add back its grain.
        array = array + np.random.default_rng([seed, 7919]).normal(0, how.noise, size=array.shape)
    result = Image.fromarray(np.clip(array, 0, 255).astype(np.uint8))
    if how.jpeg:
        buffer = io.BytesIO()
        result.save(buffer, format="JPEG", quality=how.jpeg)
        result = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    return np.asarray(result)


def write_demo_folder(
    root: Path,
    *,
    n_scenes: int = 6,
    seed: int = 2020,
    width: int = WIDTH,
    height: int = HEIGHT,
    degradations: tuple[Degradation, ...] = DEGRADATIONS,
) -> Path:
    """Write the import layout (references/, methods/<m>/, methods.csv) under ``root``.

    The defaults make the demo study; the viewer benchmark asks for fewer methods at the
    size of the challenge's real photos (12 MP).
    """
    (root / "references").mkdir(parents=True, exist_ok=True)
    for how in degradations:
        (root / "methods" / how.name).mkdir(parents=True, exist_ok=True)
    for index, scene in enumerate(SCENES[:n_scenes]):
        reference = scene_image(scene, seed + index, width=width, height=height)
        _save_png(reference, root / "references" / f"{scene}.png")
        for offset, how in enumerate(degradations):
            _save_png(
                degrade(reference, how, seed * 100 + index * 10 + offset), root / "methods" / how.name / f"{scene}.png"
            )
    with (root / "methods.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["method", "kind", "runtime_s", "framework"])
        for how in degradations:
            writer.writerow([how.name, how.kind, "" if how.runtime_s is None else how.runtime_s, how.framework])
    return root


def _save_png(array: np.ndarray, path: Path) -> None:
    Image.fromarray(array).save(path, format="PNG", compress_level=1)


# Expected opinion score of each degradation on a 1..5 scale, best first (same order as
# DEGRADATIONS): used only to simulate votes for a demo whose results page has content.
EXPECTED_MOS = (4.8, 4.5, 4.0, 3.4, 2.9, 2.3, 1.8, 1.2)


def simulated_votes_csv(scenes: list[str], *, n_raters: int, seed: int = 7) -> str:
    """Votes of simulated raters (CSV for import_ratings): each has a bias and noise;
    the last one answers at random, for the screening to find."""
    rng = np.random.default_rng(seed)
    lines = ["rater,scene,method,score,response_ms"]
    for rater in range(n_raters):
        careless = rater == n_raters - 1
        bias = rng.normal(0, 0.3)
        for scene in scenes:
            for how, expected in zip(DEGRADATIONS, EXPECTED_MOS, strict=True):
                if careless:
                    score = int(rng.integers(1, 6))
                else:
                    score = int(np.clip(np.rint(expected + bias + rng.normal(0, 0.6)), 1, 5))
                lines.append(f"sim-{rater + 1:02d},{scene},{how.name},{score},{int(rng.integers(2500, 9000))}")
    return "\n".join(lines) + "\n"
