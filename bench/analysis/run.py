"""Benchmark of the statistics core: full_report on 1M votes, P.910 model vs sureal.

Run: ``python bench/analysis/run.py`` (from the repository root). Prints figures and
whether the targets hold: full report < 10 s on 2000 raters x 12 methods x 42 scenes,
our P.910 model >= 10x faster than sureal's alternating-projection solver on the same
data (best of several runs: timings on a shared machine vary). sureal is optional;
without it only our timings are printed.
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
    print(f"AIM-sized study, {len(small):,} votes: full_report {seconds:.3f} s (target < 0.2 s)")
    df = generate(2000, 12, 42)
    print(f"votes: {len(df):,} (2000 raters x 12 methods x 42 scenes)")
    seconds, report = timed(lambda: full_report(df, n_boot=2000, seed=0))
    print(f"full_report (2000 bootstrap resamples): {seconds:.2f} s")
    print(f"  target < 2 s: {'met' if seconds < 2 else 'NOT met'}")
    print(report["ranking"][["method", "mos", "rank_display"]].head(4).to_string(index=False))

    try:
        from sureal.dataset_reader import RawDatasetReader
        from sureal.subjective_model import (
            MaximumLikelihoodEstimationModelContentObliviousAlternativeProjection as SurealAP,
        )
    except ImportError:
        print("sureal not installed: P.910 comparison skipped (pip install sureal==0.9.0)")
        ours, _ = timed(lambda: p910_model(df), repeat=3)
        print(f"our P.910 model on 1M votes: {ours:.3f} s")
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
        met = theirs / ours >= 10 and theirs_fit / ours_fit >= 10
        print(f"  target >= 10x: {'met' if met else 'NOT met'}")
        print(
            f"  (ours with frame parsing vs sureal without: {theirs_fit / ours:.1f}x; "
            "our frame parsing is pandas factorize of the string columns)"
        )


if __name__ == "__main__":
    main()
