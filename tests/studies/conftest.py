from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.factories import noise_image


def write_png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format="PNG")
    return path


def make_study_folder(
    root: Path, *, scenes=("beach", "city"), methods=("TeamAlpha", "TeamBeta"), size=(40, 30), inputs=False
) -> Path:
    width, height = size
    for index, scene in enumerate(scenes):
        reference = noise_image(width, height, seed=index)
        write_png(root / "references" / f"{scene}.png", reference)
        if inputs:
            write_png(root / "inputs" / f"{scene}.png", noise_image(width, height, seed=100 + index))
        for offset, method in enumerate(methods):
            noisy = np.clip(reference.astype(int) + (offset + 1) * 7, 0, 255).astype(np.uint8)
            write_png(root / "methods" / method / f"{scene}.png", noisy)
    return root


def zip_folder(folder: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder).as_posix())
    return target


@pytest.fixture
def study_folder(tmp_path: Path) -> Path:
    return make_study_folder(tmp_path / "study")
