"""Create and open a study for the benchmarks (run by bench/load/run.py under its stack).

usage: setup_study.py SLUG --scenes N --size WxH [--trials-per-session T] [--no-open]
Methods: 8 submissions whose noise grows, a hidden reference and a low anchor.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import django
import numpy as np

django.setup()

from PIL import Image  # noqa: E402

from studies.models import Study  # noqa: E402
from studies.services import study_create, study_import, study_open  # noqa: E402


def write_folder(root: Path, *, scenes: int, width: int, height: int) -> Path:
    rng = np.random.default_rng(7)
    methods = {f"team{i}": 2.0 + 3 * i for i in range(8)} | {"hidden": 0.0, "anchor": 80.0}
    (root / "methods.csv").parent.mkdir(parents=True, exist_ok=True)
    (root / "methods.csv").write_text(
        "method,kind\n"
        + "".join(f"team{i},submission\n" for i in range(8))
        + "hidden,hidden_reference\nanchor,low_anchor\n"
    )
    for s in range(scenes):
        yy, xx = np.mgrid[0:height, 0:width]
        base = (127 + 60 * np.sin(xx / (7 + s)) + 60 * np.cos(yy / (11 + s))).astype(np.float64)
        reference = np.stack([base, np.roll(base, s, axis=0), np.roll(base, 2 * s, axis=1)], axis=-1)
        (root / "references").mkdir(exist_ok=True)
        Image.fromarray(reference.clip(0, 255).astype(np.uint8)).save(root / "references" / f"scene{s}.png")
        for name, sigma in methods.items():
            out = reference + rng.normal(0, sigma, reference.shape) if sigma else reference
            (root / "methods" / name).mkdir(parents=True, exist_ok=True)
            Image.fromarray(out.clip(0, 255).astype(np.uint8)).save(root / "methods" / name / f"scene{s}.png")
    return root


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("slug")
    parser.add_argument("--scenes", type=int, default=6)
    parser.add_argument("--size", default="96x64")
    parser.add_argument("--trials-per-session", type=int, default=20)
    parser.add_argument("--no-open", action="store_true")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_folder(Path(tmp) / "study", scenes=args.scenes, width=width, height=height)
        study = study_create(
            title=f"Benchmark {args.slug}",
            slug=args.slug,
            protocol=Study.Protocol.REFERENCE,
            trials_per_session=args.trials_per_session,
            control_rate=0.1,
            # The benchmark measures starts and votes under load: a study that fills up
            # (raters.capacity) would refuse the raters it sends.
            ratings_per_output=1_000_000,
        )
        summary = study_import(study=study, source=folder)
    if not args.no_open:
        study_open(study=study)
    print(f"study {args.slug}: {summary.scenes} scenes, {summary.methods} methods, {summary.outputs} outputs")


if __name__ == "__main__":
    main()
