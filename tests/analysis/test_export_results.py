"""export_results on a dataset small enough to compute by hand (2 methods x 2 scenes)."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from django.core.management import CommandError, call_command
from scipy import stats

from analysis.models import AnalysisRun
from tests.factories import (
    MethodFactory,
    OutputFactory,
    RaterFactory,
    RatingFactory,
    SceneFactory,
    SessionFactory,
    StudyFactory,
    TrialFactory,
)

pytestmark = pytest.mark.django_db

# score[method][scene] = votes of raters r1, r2, r3: A is clearly better than B, and the
# raters agree, so no screening rule fires.
SCORES = {
    "A": {"s1": [5, 4, 5], "s2": [4, 4, 5]},
    "B": {"s1": [2, 1, 2], "s2": [3, 2, 2]},
}
PSNR = {("A", "s1"): 30.0, ("A", "s2"): 32.0, ("B", "s1"): 25.0, ("B", "s2"): 27.0}
SSIM = {("A", "s1"): 0.90, ("A", "s2"): 0.92, ("B", "s1"): 0.80, ("B", "s2"): 0.84}
# A rater who votes the opposite of everybody: the correlation rule must exclude them.
CONTRARIAN = {"A": {"s1": 1, "s2": 1}, "B": {"s1": 5, "s2": 5}}


def build_study(*, contrarian: bool = False):
    study = StudyFactory(slug="tiny", title="Tiny study")
    scenes = {name: SceneFactory(study=study, name=name, reference=None) for name in ("s1", "s2")}
    outputs = {}
    for method_name in SCORES:
        method = MethodFactory(study=study, name=method_name)
        for scene_name, scene in scenes.items():
            key = (method_name, scene_name)
            outputs[key] = OutputFactory(method=method, scene=scene, image=None, psnr=PSNR[key], ssim=SSIM[key])
    # With the contrarian, every regular rater votes twice as two people (r1 and r1b):
    # one contrarian among three raters would drag the leave-one-out MOS too far.
    raters = [("r1", 0), ("r2", 1), ("r3", 2)]
    if contrarian:
        raters += [("r1b", 0), ("r2b", 1), ("r3b", 2), ("r4", None)]
    for external_id, index in raters:
        session = SessionFactory(study=study, rater=RaterFactory(external_id=external_id))
        for (method_name, scene_name), output in outputs.items():
            if index is None:
                score = CONTRARIAN[method_name][scene_name]
            else:
                score = SCORES[method_name][scene_name][index]
            RatingFactory(trial=TrialFactory(session=session, output=output), score=score)
    # A training vote never counts.
    training = TrialFactory(session=session, output=outputs[("B", "s1")], kind="training")
    RatingFactory(trial=training, score=5)
    return study


def export(tmp_path: Path, params: str = '{"n_boot": 200}') -> Path:
    out = tmp_path / "export"
    call_command("export_results", "tiny", str(out), "--params", params, stdout=StringIO())
    return out


def t_interval(values: list[float]) -> tuple[float, float, float]:
    """Hand computation: mean -/+ t(0.975, N-1) * s / sqrt(N)."""
    x = np.asarray(values, dtype=float)
    half = stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
    return x.mean(), x.mean() - half, x.mean() + half


def test_export_writes_every_file(tmp_path: Path) -> None:
    build_study()
    out = export(tmp_path)
    expected = {
        "ratings.csv", "raters.csv", "leaderboard.csv", "leaderboard_all_raters.csv",
        "image_mos.csv", "image_mos_all_raters.csv", "correlations.csv",
        "correlations_all_raters.csv", "pairwise.csv", "pairwise_all_raters.csv",
        "leaderboard.tex", "run.json", "mos.png", "mos.svg", "psnr_vs_mos.png",
        "psnr_vs_mos.svg", "ssim_vs_mos.png", "ssim_vs_mos.svg",
    }  # fmt: skip
    assert expected <= {p.name for p in out.iterdir()}
    for name in ("mos.png", "psnr_vs_mos.png", "ssim_vs_mos.png"):
        assert (out / name).read_bytes().startswith(b"\x89PNG")
    for name in ("mos.svg", "psnr_vs_mos.svg", "ssim_vs_mos.svg"):
        assert b"<svg" in (out / name).read_bytes()[:500]


def test_leaderboard_matches_a_hand_computation(tmp_path: Path) -> None:
    build_study()
    board = pd.read_csv(export(tmp_path) / "leaderboard.csv").set_index("method")

    assert {"method", "mos", "ci_low", "ci_high", "rank", "n_votes", "psnr", "ssim"} <= set(board.reset_index().columns)
    assert {"ci_method", "estimator", "estimator_version", "analysis_run_id"} <= set(board.columns)
    image_mos_a = [np.mean(SCORES["A"]["s1"]), np.mean(SCORES["A"]["s2"])]
    mos, low, high = t_interval(image_mos_a)
    assert board.loc["A", "mos"] == pytest.approx(4.5)
    assert board.loc["A", "mos"] == pytest.approx(mos)
    assert board.loc["A", "ci_low_t_scenes"] == pytest.approx(low)
    assert board.loc["A", "ci_high_t_scenes"] == pytest.approx(high)
    assert board.loc["A", "estimand_t_scenes"] == "new scenes, these raters"
    assert board.loc["A", "ci_method"] == "mos-rater-cluster"
    assert board.loc["A", "estimand"] == "test set"
    assert board.loc["A", "estimand_new_scenes"] == "new scenes"
    assert board.loc["A", "n_votes"] == 6  # the training vote is not counted
    assert board.loc["B", "n_votes"] == 6
    assert board.loc["A", "psnr"] == pytest.approx(31.0)
    assert board.loc["B", "ssim"] == pytest.approx(0.82)
    assert list(board.index) == ["A", "B"]
    # Two scenes cannot separate A from B on new scenes (df = 1): a tie.
    assert board.loc["A", "rank_new_scenes"] == 1
    assert board.loc["B", "rank_new_scenes"] == 1
    assert board.loc["B", "rank_display_new_scenes"] == "1-2"
    assert board.loc["A", "estimator"] == "method-mos"


def test_pairwise_test_matches_scipy(tmp_path: Path) -> None:
    build_study()
    # the conservative option: Holm over paired t-tests over scenes
    pairwise = pd.read_csv(export(tmp_path, '{"n_boot": 200, "ranking_procedure": "holm"}') / "pairwise.csv")
    a = [np.mean(SCORES["A"][s]) for s in ("s1", "s2")]
    b = [np.mean(SCORES["B"][s]) for s in ("s1", "s2")]
    assert pairwise["p"].iloc[0] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert not pairwise["significant"].iloc[0]


def test_image_mos_matches_a_hand_computation(tmp_path: Path) -> None:
    build_study()
    table = pd.read_csv(export(tmp_path) / "image_mos.csv")
    assert {
        "scene", "method", "n_votes", "mos", "ci_low", "ci_high",
        "p910", "p910_ci_low", "p910_ci_high",
    } <= set(table.columns)  # fmt: skip
    row = table[(table["method"] == "B") & (table["scene"] == "s2")].iloc[0]
    # hand computation of the pooled interval: one pseudo-vote at the pooled variance
    groups = [np.asarray(SCORES[m][sc], dtype=float) for m in SCORES for sc in ("s1", "s2")]
    pooled = sum((len(g) - 1) * g.var(ddof=1) for g in groups) / sum(len(g) - 1 for g in groups)
    x = np.asarray(SCORES["B"]["s2"], dtype=float)
    spread = np.sqrt(((len(x) - 1) * x.var(ddof=1) + pooled) / len(x))
    half = stats.t.ppf(0.975, len(x)) * spread / np.sqrt(len(x))
    assert row["n_votes"] == 3
    assert row["mos"] == pytest.approx(x.mean())
    assert row["ci_low"] == pytest.approx(max(x.mean() - half, 1))
    assert row["ci_high"] == pytest.approx(min(x.mean() + half, 5))
    assert np.isfinite(row["p910"])
    assert len(table) == 4


def test_raters_ratings_and_correlations_tables(tmp_path: Path) -> None:
    build_study()
    out = export(tmp_path)
    raters = pd.read_csv(out / "raters.csv")
    assert {"rater", "n_votes", "bt500_rejected", "correlation_rejected", "controls_rejected"} <= set(raters.columns)
    assert sorted(raters["rater"]) == ["r1", "r2", "r3"]
    assert set(raters["n_votes"]) == {4}
    assert not raters["excluded"].any()

    ratings = pd.read_csv(out / "ratings.csv")
    assert len(ratings) == 12  # counted votes only
    assert {"rater", "scene", "method", "score", "kind", "bt500_rejected", "excluded"} <= set(ratings.columns)
    assert ratings.groupby("method")["score"].sum().to_dict() == {
        m: sum(sum(v) for v in SCORES[m].values()) for m in SCORES
    }

    correlations = pd.read_csv(out / "correlations.csv")
    assert {"metric", "level", "n", "plcc", "srcc", "krcc"} <= set(correlations.columns)
    image_psnr = correlations[(correlations["metric"] == "psnr") & (correlations["level"] == "image")]
    mos = [np.mean(SCORES[m][s]) for m, s in PSNR]
    assert image_psnr["n"].iloc[0] == 4
    assert image_psnr["srcc"].iloc[0] == pytest.approx(stats.spearmanr(list(PSNR.values()), mos)[0])


def test_manifest_and_latex_trace_the_run(tmp_path: Path) -> None:
    build_study()
    out = export(tmp_path)
    run = AnalysisRun.objects.get()
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["analysis_run_id"] == run.pk
    assert manifest["n_votes"] == 12
    assert manifest["params"]["n_boot"] == 200
    assert manifest["estimators"]["tables"]["leaderboard"]["name"] == "method-mos"
    assert manifest["estimators"]["tables"]["leaderboard"]["version"]
    assert set(manifest["files"]) >= {"leaderboard.csv", "mos.png"}
    assert set(pd.read_csv(out / "leaderboard.csv")["analysis_run_id"]) == {run.pk}

    tex = (out / "leaderboard.tex").read_text()
    assert r"\begin{tabular}" in tex and r"\toprule" in tex
    assert "A & 31.00 & 0.9100 & 4.50 [" in tex
    assert f"Analysis run {run.number}" in tex


def test_screened_leaderboard_leaves_out_the_contrarian_rater(tmp_path: Path) -> None:
    build_study(contrarian=True)
    # the correlation rule excludes only with an explicit threshold
    out = export(tmp_path, '{"n_boot": 200, "correlation_threshold": 0.7}')
    raters = pd.read_csv(out / "raters.csv").set_index("rater")
    assert raters.loc["r4", "excluded"]
    assert raters.loc["r4", "correlation_rejected"]
    assert not raters.drop(index="r4")["excluded"].any()

    screened = pd.read_csv(out / "leaderboard.csv").set_index("method")
    everybody = pd.read_csv(out / "leaderboard_all_raters.csv").set_index("method")
    assert screened.loc["A", "mos"] == pytest.approx(4.5)
    # With r4: MOS[A, s1] = (2 * 14 + 1) / 7, MOS[A, s2] = (2 * 13 + 1) / 7.
    assert everybody.loc["A", "mos"] == pytest.approx((29 / 7 + 27 / 7) / 2)
    assert everybody.loc["A", "n_votes"] == 14
    assert screened.loc["A", "n_votes"] == 12
    ratings = pd.read_csv(out / "ratings.csv")
    assert ratings.loc[ratings["rater"] == "r4", "excluded"].all()


def test_exporting_a_stored_run_again_gives_the_same_tables(tmp_path: Path) -> None:
    build_study()
    first = export(tmp_path)
    run = AnalysisRun.objects.get()
    again = tmp_path / "again"
    call_command("export_results", "tiny", str(again), "--run", str(run.pk), stdout=StringIO())
    assert AnalysisRun.objects.count() == 1
    for name in ("leaderboard.csv", "image_mos.csv", "ratings.csv", "leaderboard.tex", "mos.svg"):
        assert (first / name).read_bytes() == (again / name).read_bytes(), name


def test_unknown_study_and_study_without_votes_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="no study"):
        call_command("export_results", "nope", str(tmp_path))
    StudyFactory(slug="empty")
    with pytest.raises(CommandError, match="no counted votes"):
        call_command("export_results", "empty", str(tmp_path), stdout=StringIO())


HOSTILE = {"method": '=HYPERLINK("http://evil.example","A")', "scene": "+s1", "scene2": "-s2", "rater": "@r1"}


def _hostile_study():
    from raters.models import Rater
    from studies.models import Method, Scene

    study = build_study()
    Method.objects.filter(study=study, name="A").update(name=HOSTILE["method"])
    Scene.objects.filter(study=study, name="s1").update(name=HOSTILE["scene"])
    Scene.objects.filter(study=study, name="s2").update(name=HOSTILE["scene2"])
    Rater.objects.filter(external_id="r1").update(external_id=HOSTILE["rater"])
    return study


def test_csv_cells_that_a_spreadsheet_would_run_as_formulas_are_quoted(tmp_path: Path) -> None:
    import csv

    _hostile_study()
    out = export(tmp_path)
    cells = []
    for path in out.glob("*.csv"):
        with path.open(newline="", encoding="utf-8") as handle:
            cells += [cell for row in csv.reader(handle) for cell in row]
    text_cells = [c for c in cells if c and not _is_number(c)]
    assert not [c for c in text_cells if c[0] in "=+-@\t\r"]
    assert "'" + HOSTILE["method"] in cells and "'+s1" in cells and "'-s2" in cells and "'@r1" in cells
    # Numbers stay numbers, negative ones included (a confidence bound, a difference).
    assert any(c.startswith("-") and _is_number(c) for c in cells)


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def test_exported_ratings_with_quoted_names_import_back_unchanged(tmp_path: Path) -> None:
    from raters.models import Rating

    _hostile_study()
    ratings = pd.read_csv(export(tmp_path) / "ratings.csv", dtype=str, keep_default_na=False)
    votes = ratings[["rater", "scene", "method", "score", "response_ms"]]
    votes.to_csv(tmp_path / "votes.csv", index=False)
    call_command("import_ratings", "copy", str(tmp_path / "votes.csv"), stdout=StringIO())

    copied = Rating.objects.filter(trial__session__study__slug="copy")
    stored = set(copied.values_list("trial__session__rater__external_id", "trial__output__scene__name"))
    assert (HOSTILE["rater"], HOSTILE["scene"]) in stored
    methods = set(copied.values_list("trial__output__method__name", flat=True))
    assert methods == {HOSTILE["method"], "B"}
    assert copied.count() == len(votes)
