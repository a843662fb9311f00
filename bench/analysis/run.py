"""Benchmark of the statistics core: full_report on 1M votes, P.910 model vs sureal.

Run: ``python bench/analysis/run.py`` (from the repository root). Prints figures and a
verdict for each target of issue 21 (best of several runs: timings on a shared machine
vary):

* the whole report on an AIM-sized study (11 methods x 42 scenes x 10 votes, 4,620
  votes) < 0.2 s;
* the whole report on one million votes (2000 raters x 12 methods x 42 scenes) < 2 s;
* our P.910 model >= 10x faster than sureal's alternating-projection solver on one
  million votes (sureal is optional; without it that target is reported as not run);
* the P.910 model on a sparse crowd study (3000 raters, 44,000 votes) < 2 s, converged.
"""

from __future__ import annotations

import contextlib
import io
import sys
import time
import types
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from analysis.stats import full_report, p910_model  # noqa: E402


def generate(n_raters: int, n_methods: int, n_scenes: int, seed: int = 0) -> pd.DataFrame:
    """Every rater rates every output once (1..5 scale), with rater bias and noise."""
    rng = np.random.default_rng(seed)
    r, m, s = np.meshgrid(np.arange(n_raters), np.arange(n_methods), np.arange(n_scenes), indexing="ij")
    quality = np.linspace(2.2, 4.7, n_methods)[m] + rng.normal(0, 0.3, n_scenes)[s]
    noise = rng.uniform(0.4, 1.2, n_raters)[r] * rng.normal(0, 1, r.shape)
    score = np.clip(np.round(quality + rng.normal(0, 0.4, n_raters)[r] + noise), 1, 5)
    return pd.DataFrame(
        {
            "rater": r.ravel(),
            "scene": np.array([f"scene{i:02d}" for i in range(n_scenes)])[s.ravel()],
            "method": np.array([f"team{i:02d}" for i in range(n_methods)])[m.ravel()],
            "score": score.ravel(),
            "kind": "rating",
        }
    )


def sureal_dataset(df: pd.DataFrame) -> types.SimpleNamespace:
    outputs = df.groupby(["method", "scene"], sort=True)
    scenes = sorted(df["scene"].unique())
    content = {name: i for i, name in enumerate(scenes)}
    dis = []
    for asset, ((_, scene), group) in enumerate(outputs):
        scores = dict(zip(group["rater"].astype(str), group["score"].astype(float), strict=True))
        dis.append({"content_id": content[scene], "asset_id": asset, "os": scores, "path": ""})
    refs = [{"content_id": i, "content_name": n, "path": n} for n, i in content.items()]
    return types.SimpleNamespace(ref_videos=refs, dis_videos=dis)


def crowd_study(n_raters: int = 3000, n_methods: int = 11, n_scenes: int = 400, per_output: int = 10) -> pd.DataFrame:
    """A sparse crowd study: each output gets a few votes from raters drawn at random."""
    rng = np.random.default_rng(21)
    quality = rng.uniform(1.5, 4.5, (n_methods, n_scenes))
    bias = rng.normal(0, 0.4, n_raters)
    spread = rng.gamma(4, 0.2, n_raters)
    output = np.repeat(np.arange(n_methods * n_scenes), per_output)
    rater = rng.integers(0, n_raters, len(output))
    score = np.clip(np.rint(quality.ravel()[output] + bias[rater] + spread[rater] * rng.normal(size=len(output))), 1, 5)
    return pd.DataFrame({"rater": rater, "method": output // n_scenes, "scene": output % n_scenes, "score": score})


VERDICTS: list[tuple[str, str, str]] = []


def verdict(target: str, figure: str, met: bool | None) -> None:
    word = "not run" if met is None else ("met" if met else "NOT met")
    VERDICTS.append((target, figure, word))
    print(f"  {target}: {figure} -> {word}")


def timed(fn, repeat: int = 1) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def main() -> None:
    small = generate(110, 11, 42)
    small = small[small["rater"] % 11 == small["method"].str[-2:].astype(int) % 11]  # 10 votes per output
    seconds, _ = timed(lambda: full_report(small, n_boot=2000, seed=0), repeat=5)
    print(f"AIM-sized study, {len(small):,} votes: full_report")
    verdict("whole report, AIM-sized study (4,620 votes) < 0.2 s", f"{seconds:.3f} s", seconds < 0.2)
    df = generate(2000, 12, 42)
    print(f"votes: {len(df):,} (2000 raters x 12 methods x 42 scenes)")
    seconds, report = timed(lambda: full_report(df, n_boot=2000, seed=0), repeat=2)
    verdict("whole report, one million votes (2000 bootstrap resamples) < 2 s", f"{seconds:.2f} s", seconds < 2)
    print(report["ranking"][["method", "mos", "rank_display"]].head(4).to_string(index=False))

    crowd = crowd_study()
    seconds, fit = timed(lambda: p910_model(crowd), repeat=3)
    print(f"sparse crowd study: {crowd['rater'].nunique()} raters, {len(crowd):,} votes")
    verdict(
        "P.910 on the sparse crowd study (3000 raters, 44,000 votes) < 2 s, converged",
        f"{seconds:.3f} s, {fit.n_iterations} iterations, converged {fit.converged}",
        seconds < 2 and fit.converged,
    )
    compare_with_sureal(df)
    print("\nTargets of issue 21 (bench/analysis)")
    print(pd.DataFrame(VERDICTS, columns=["target", "figure", "verdict"]).to_string(index=False))


def compare_with_sureal(df: pd.DataFrame) -> None:
    try:
        from sureal.dataset_reader import RawDatasetReader
        from sureal.subjective_model import (
            MaximumLikelihoodEstimationModelContentObliviousAlternativeProjection as SurealAP,
        )
    except ImportError:
        print("sureal not installed: P.910 comparison skipped (pip install sureal==0.9.0)")
        ours, _ = timed(lambda: p910_model(df), repeat=3)
        verdict("P.910 >= 10x faster than sureal on one million votes", f"ours {ours:.3f} s, sureal absent", None)
        return

    from analysis.stats._common import prepare_votes
    from analysis.stats.subject_model import _p910_from_votes

    for n_raters in (200, 2000):
        data = df[df["rater"] < n_raters]
        ours, fit = timed(lambda data=data: p910_model(data), repeat=5)
        votes = prepare_votes(data)
        ours_fit, _ = timed(lambda votes=votes: _p910_from_votes(votes, 0.95), repeat=5)

        def run_sureal(dataset):
            with contextlib.redirect_stdout(io.StringIO()):
                return SurealAP(RawDatasetReader(dataset)).run_modeling()

        theirs, result = timed(lambda data=data: run_sureal(sureal_dataset(data)))
        dataset = sureal_dataset(data)
        theirs_fit, _ = timed(lambda dataset=dataset: run_sureal(dataset), repeat=3)
        diff = np.max(np.abs(fit.outputs["quality"].to_numpy() - result["quality_scores"]))
        print(f"P.910 on {len(data):,} votes ({n_raters} raters), max |quality diff| {diff:.1e}")
        print(
            f"  from the vote frame: ours {ours:.3f} s, sureal {theirs:.3f} s "
            f"(frame -> sureal dataset -> run_modeling): {theirs / ours:.1f}x"
        )
        print(
            f"  model only: ours {ours_fit:.4f} s (encoded votes -> result), sureal "
            f"{theirs_fit:.3f} s (run_modeling on its dataset): {theirs_fit / ours_fit:.1f}x"
        )
        if n_raters == 2000:
            verdict(
                "P.910 >= 10x faster than sureal on one million votes",
                f"{theirs / ours:.1f}x from the frame, {theirs_fit / ours_fit:.1f}x model only",
                theirs / ours >= 10 and theirs_fit / ours_fit >= 10,
            )


if __name__ == "__main__":
    main()
