"""PIRM total score by hand, and the full report's tables and exclusion."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.stats import full_report, method_mos, total_score


@pytest.fixture(autouse=True)
def media_root():
    """The statistics core touches neither files nor settings: no Django needed here."""
    return None


def test_total_score_by_hand():
    table = pd.DataFrame(
        {
            "method": ["baseline", "A", "B"],
            "psnr": [21.0, 22.5, 21.5],
            "mos": [3.0, 3.5, 4.5],
            "runtime": [2.0, 1.0, 8.0],
        }
    )
    out = total_score(table, baselines="baseline", weights={"fidelity": 1, "perception": 2, "runtime": 0.5})
    scores = out.set_index("method")["total_score"]
    # A: 1.5 dB / 1 + 2 * (0.5 / 0.5) + 0.5 * log2(2 / 1) = 1.5 + 2 + 0.5 = 4.0
    assert scores["A"] == pytest.approx(4.0)
    # B: 0.5 + 2 * (1.5 / 0.5) + 0.5 * log2(2 / 8) = 0.5 + 6 - 1 = 5.5
    assert scores["B"] == pytest.approx(5.5)
    assert scores["baseline"] == pytest.approx(0.0)
    assert out["method"].tolist() == ["B", "A", "baseline"]
    assert out["total_rank"].tolist() == [1, 2, 3]
    explicit = total_score(table, baselines={"psnr": 21.0, "mos": 3.0})
    assert explicit.set_index("method")["total_score"]["A"] == pytest.approx(1.5 + 1.0)


def study(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    methods = {"ref": 4.8, "A": 4.0, "B": 3.2, "C": 2.5, "anchor": 1.2}
    kinds = {"ref": "hidden_reference", "anchor": "low_anchor"}
    rows = []
    for r in range(40):
        for name, q in methods.items():
            for s in range(6):
                score = np.clip(np.round(q + rng.normal(0, 0.5)), 1, 5)
                kind = "control" if name in kinds else "rating"
                rows.append((f"w{r:02d}", f"s{s}", name, score, kind))
        rows.append((f"w{r:02d}", "s0", "A", 1.0, "training"))
    votes = pd.DataFrame(rows, columns=["rater", "scene", "method", "score", "kind"])
    flip = votes["rater"] == "w13"  # a rater who reads the scale upside down
    votes.loc[flip, "score"] = 6 - votes.loc[flip, "score"]
    info = pd.DataFrame({"method": list(methods), "method_kind": [kinds.get(m, "submission") for m in methods]})
    metrics = pd.DataFrame(
        [(m, f"s{s}", 20 + 3 * q + rng.normal(0, 0.5), 0.6 + 0.07 * q) for m, q in methods.items() for s in range(6)],
        columns=["method", "scene", "psnr", "ssim"],
    )
    return votes, info, metrics


def test_full_report_returns_every_table_consistent_with_the_parts():
    votes, info, metrics = study()
    report = full_report(votes, info, metrics, n_boot=300, seed=1)
    expected = {
        "screening",
        "image_mos",
        "method_mos",
        "ranking",
        "pairwise",
        "p910",
        "p910_raters",
        "correlations_method",
        "correlations_image",
    }
    assert expected <= set(report)
    direct = method_mos(votes).set_index("method")
    mm = report["method_mos"].set_index("method")
    assert mm["mos"].to_numpy() == pytest.approx(direct.loc[mm.index, "mos"].to_numpy())
    assert {"ci_low", "ci_high", "ci_low_boot", "ci_high_boot"} <= set(mm.columns)
    assert (mm["ci_low_boot"] <= mm["mos"]).all() and (mm["mos"] <= mm["ci_high_boot"]).all()
    assert report["ranking"]["method"].iloc[0] == "ref"
    assert report["correlations_method"]["n"].tolist() == [5, 5]
    assert report["correlations_image"]["n"].tolist() == [30, 30]
    assert len(report["p910"]) == 30
    screening = report["screening"].set_index("rater")
    assert screening.loc["w13", "excluded"]
    for table in report.values():
        assert {"estimator", "estimator_version"} <= set(table.columns)


def test_exclusion_drops_flagged_raters_and_keeps_the_unscreened_figures():
    votes, info, _ = study()
    report = full_report(votes, info, exclude=True, n_boot=200)
    excluded = set(report["screening"].query("excluded")["rater"])
    assert "w13" in excluded
    kept = votes[~votes["rater"].isin(excluded)]
    assert report["method_mos"].set_index("method")["mos"].to_numpy() == pytest.approx(
        method_mos(kept).set_index("method")["mos"].to_numpy()
    )
    assert report["method_mos_unscreened"].set_index("method")["mos"].to_numpy() == pytest.approx(
        method_mos(votes).set_index("method")["mos"].to_numpy()
    )
    assert not set(report["p910_raters"]["rater"]) & excluded


def test_unranked_methods_keep_their_mos_but_leave_the_ranking(monkeypatch):
    from analysis.stats import rank_methods
    from analysis.stats import report as report_module

    calls = []
    for name in ("_rank", "_rank_maxt"):
        original = getattr(report_module, name)

        def counting(*args, _original=original, _name=name, **kwargs):
            calls.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(report_module, name, counting)
    votes, info, _ = study()
    report = full_report(votes, info, n_boot=50, unranked=["ref", "anchor"])
    # one ranking per question
    assert sorted(calls) == ["_rank", "_rank_maxt"]
    assert set(report["method_mos"]["method"]) == {"ref", "A", "B", "C", "anchor"}
    entries = votes[~votes["method"].isin(["ref", "anchor"])]
    for key, procedure, question in (("", "stepdown-maxt", "test set"), ("_new_scenes", "holm", "new scenes")):
        ranking, pairwise = rank_methods(entries, procedure=procedure, question=question)
        assert report[f"ranking{key}"]["method"].tolist() == ranking["method"].tolist() == ["A", "B", "C"]
        assert report[f"ranking{key}"]["rank_display"].tolist() == ranking["rank_display"].tolist()
        assert report[f"pairwise{key}"]["p"].to_numpy() == pytest.approx(pairwise["p"].to_numpy())
    single = full_report(votes, info, n_boot=50, unranked=["ref", "anchor", "B", "C"])
    assert single["ranking"]["method"].tolist() == ["A"] and single["pairwise"].empty
