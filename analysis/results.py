"""The tables of one analysis run, from a vote frame, and their JSON round trip.

This is glue between the Django-free statistics core (``analysis.stats``) and what the
product shows: the results page, the organizer API and the exports all read the same
tables, stored once on an :class:`~analysis.models.AnalysisRun`, so a figure on the page
and in a downloaded CSV cannot differ.

Tables (``TABLES``), each with ``estimator`` and ``estimator_version`` columns:

``leaderboard`` / ``leaderboard_all_raters``
    One row per method, best first: MOS and its Student-t interval over scenes, rank
    with ties, votes, PSNR/SSIM, the bootstrap and P.910 intervals.
``image_mos`` / ``image_mos_all_raters``
    One row per output: MOS with its Student-t interval over raters, P.910 quality.
``correlations`` / ``correlations_all_raters``
    PLCC/SRCC/KRCC of PSNR and SSIM with MOS, at method and image level.
``pairwise`` / ``pairwise_all_raters``
    The Holm-corrected tests behind the tied ranks.
``raters``
    Per rater: votes, one true/false column per screening rule, ``excluded``.

"Screened" tables drop the raters that any screening rule flagged; ``*_all_raters``
keep everybody. The screening itself always looks at every rater.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from analysis.plots import CONTROL_KINDS
from analysis.stats.ranking import rank_methods
from analysis.stats.report import full_report
from analysis.stats.screening import exclude_raters

#: Version of this composition (which estimators, how tables are joined). Bumped when a
#: stored table would come out differently from the same votes.
PIPELINE = {"name": "mosaic-analysis", "version": "1.0"}


DEFAULT_PARAMS: dict[str, Any] = {
    "confidence": 0.95,
    "n_boot": 2000,
    "seed": 0,
    "alpha": 0.05,
    "correlation_threshold": 0.7,
}

TABLES = (
    "leaderboard",
    "leaderboard_all_raters",
    "image_mos",
    "image_mos_all_raters",
    "correlations",
    "correlations_all_raters",
    "pairwise",
    "pairwise_all_raters",
    "raters",
)

RULES = ("bt500", "correlation", "controls")


@dataclass
class Results:
    tables: dict[str, pd.DataFrame]
    estimators: dict[str, dict[str, Any]]
    warnings: list[str] = field(default_factory=list)


def params_with_defaults(params: Mapping[str, Any] | None) -> dict[str, Any]:
    merged = {**DEFAULT_PARAMS, **(params or {})}
    # Older spelling kept working for API clients.
    if "n_resamples" in merged:
        merged["n_boot"] = merged.pop("n_resamples")
    unknown = set(merged) - set(DEFAULT_PARAMS) - {"upto_rating_id", "scale_min", "scale_max"}
    if unknown:
        raise ValueError(f"unknown analysis parameter(s): {', '.join(sorted(unknown))}")
    return merged


def _estimator(frame: pd.DataFrame) -> dict[str, Any]:
    return dict(frame.attrs.get("estimator", {}))


def _ranking(votes: pd.DataFrame, alpha: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tied ranks among the entries: hidden references and low anchors take no part.

    Controls are shown with their MOS but are not entries: a hidden reference that is
    significantly better than every team would otherwise push the winner to rank 2.
    """
    entries = votes[~votes["method_kind"].isin(CONTROL_KINDS)]
    names = sorted(entries["method"].unique())
    if len(names) < 2:
        ranking = pd.DataFrame({"method": names, "rank": 1, "rank_high": 1, "rank_display": "1"}).astype(
            {"rank": "int64", "rank_high": "int64"}
        )
        return ranking, pd.DataFrame(columns=["pair", "diff", "p", "p_holm", "significant"])
    return rank_methods(entries, alpha=alpha)


def _report(
    votes: pd.DataFrame,
    methods: pd.DataFrame,
    params: Mapping[str, Any],
    *,
    exclude: bool,
) -> tuple[dict[str, pd.DataFrame], dict[str, dict[str, Any]], pd.DataFrame]:
    """Leaderboard, per-image MOS, correlations and pairwise tests of one vote set."""
    confidence = params["confidence"]
    metrics = votes.groupby(["method", "scene"], as_index=False)[["psnr", "ssim"]].first()
    entries = ~metrics["method"].isin(methods.loc[methods["method_kind"].isin(CONTROL_KINDS), "method"])
    report = full_report(
        votes,
        methods[["method", "method_kind"]],
        # Controls stay out of the metric correlations: a hidden reference has infinite
        # PSNR, and neither kind is an entry whose fidelity is being judged.
        metrics[entries],
        exclude=exclude,
        n_boot=params["n_boot"],
        seed=params["seed"],
        scale_min=params["scale_min"],
        scale_max=params["scale_max"],
        alpha=params["alpha"],
        confidence=confidence,
        correlation_threshold=params["correlation_threshold"],
    )
    screening = report["screening"]
    kept = exclude_raters(votes, screening) if exclude else votes
    suffix = "" if exclude else "_all_raters"
    est: dict[str, dict[str, Any]] = {}

    per_image = report["image_mos"]
    est[f"image_mos{suffix}"] = _estimator(per_image)
    est[f"p910{suffix}"] = _estimator(report["p910"])
    p910 = report["p910"][["method", "scene", "quality", "ci_low", "ci_high"]].rename(
        columns={"quality": "p910", "ci_low": "p910_ci_low", "ci_high": "p910_ci_high"}
    )
    per_image = (
        per_image.merge(p910, on=["method", "scene"], how="left")
        .merge(metrics, on=["method", "scene"], how="left")
        .merge(methods[["method", "method_kind"]], on="method", how="left")
    )
    per_image = per_image[
        ["scene", "method", "method_kind", "n_votes", "mos", "std", "ci_low", "ci_high"]
        + ["ci_method", "p910", "p910_ci_low", "p910_ci_high", "psnr", "ssim"]
        + ["estimator", "estimator_version"]
    ].sort_values(["scene", "method"], ignore_index=True)

    board = report["method_mos"].rename(
        columns={
            "ci_method_t": "ci_method",
            "ci_low_boot": "boot_ci_low",
            "ci_high_boot": "boot_ci_high",
        }
    )
    est[f"leaderboard{suffix}"] = _estimator(board)
    p910_method = (report["p910"].groupby("method", as_index=False)["quality"].mean()).rename(
        columns={"quality": "p910"}
    )
    ranking, pairwise = _ranking(kept, params["alpha"])
    est[f"ranking{suffix}"] = _estimator(ranking) or {"name": "single-entry", "version": "1.0"}
    board = (
        board.merge(p910_method, on="method", how="left")
        .merge(methods, on="method", how="left")
        .merge(ranking[["method", "rank", "rank_high", "rank_display"]], on="method", how="left")
    )
    board["is_control"] = board["method_kind"].isin(CONTROL_KINDS)
    board = board.sort_values(["is_control", "mos", "method"], ascending=[True, False, True], ignore_index=True)
    board["confidence"] = confidence
    board = board[
        ["method", "method_kind", "mos", "ci_low", "ci_high", "ci_method", "confidence"]
        + ["rank", "rank_high", "rank_display", "n_votes", "n_raters", "n_scenes"]
        + ["psnr", "ssim", "boot_ci_low", "boot_ci_high", "boot_se", "p910"]
        + ["runtime_s", "framework", "estimator", "estimator_version"]
    ]
    board["rank"] = board["rank"].astype("Int64")
    board["rank_high"] = board["rank_high"].astype("Int64")

    parts = [report["correlations_method"], report["correlations_image"]]
    parts = [p for p in parts if not p.empty]
    correlations = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if parts:
        est[f"correlations{suffix}"] = {
            **_estimator(parts[0]),
            "params": {**_estimator(parts[0]).get("params", {}), "level": ["method", "image"]},
        }
    tables = {
        f"leaderboard{suffix}": board,
        f"image_mos{suffix}": per_image,
        f"correlations{suffix}": correlations,
        f"pairwise{suffix}": pairwise,
    }
    return tables, est, report


def compute(votes: pd.DataFrame, methods: pd.DataFrame, params: Mapping[str, Any]) -> Results:
    """Every table of a run, screened and unscreened.

    Parameters
    ----------
    votes
        :func:`analysis.frames.ratings_frame` output (counted votes only).
    methods
        One row per method: ``method, method_kind, psnr, ssim, runtime_s, framework``
        (PSNR/SSIM averaged over the method's outputs).
    params
        :data:`DEFAULT_PARAMS` plus ``scale_min``/``scale_max``.
    """
    if votes.empty:
        raise ValueError("the study has no counted votes yet")
    all_tables, all_est, unscreened = _report(votes, methods, params, exclude=False)
    screening = unscreened["screening"]
    warnings: list[str] = []
    n_excluded = int(screening["excluded"].sum())
    if n_excluded == len(screening):
        warnings.append("screening excluded every rater: the screened tables keep everybody")
        screened_tables = {k.removesuffix("_all_raters"): v for k, v in all_tables.items()}
        screened_est = {k.removesuffix("_all_raters"): v for k, v in all_est.items()}
    else:
        screened_tables, screened_est, _ = _report(votes, methods, params, exclude=True)
        if n_excluded:
            warnings.append(f"{n_excluded} of {len(screening)} raters excluded by screening")
    raters = screening.merge(
        unscreened["p910_raters"][["rater", "bias", "inconsistency"]].rename(
            columns={"bias": "p910_bias", "inconsistency": "p910_inconsistency"}
        ),
        on="rater",
        how="left",
    )
    tables = {"raters": raters, **screened_tables, **all_tables}
    estimators = {"screening": _estimator(screening), **screened_est, **all_est}
    return Results(tables=tables, estimators=estimators, warnings=warnings)


def _json_value(value: Any) -> Any:
    """Plain JSON: NaN and missing become null, numpy scalars become Python ones."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def to_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    columns = [str(c) for c in frame.columns]
    return [
        {c: _json_value(v) for c, v in zip(columns, row, strict=True)}
        for row in frame.itertuples(index=False, name=None)
    ]


def to_json(results: Results) -> dict[str, Any]:
    """The run's ``results`` field: every table as records plus its column order."""
    return {
        "tables": {
            name: {"columns": [str(c) for c in frame.columns], "records": to_records(frame)}
            for name, frame in results.tables.items()
        },
        "warnings": results.warnings,
    }


def table_from_json(stored: Mapping[str, Any], name: str) -> pd.DataFrame:
    """A stored table back as a DataFrame, columns in their original order."""
    table = stored.get("tables", {}).get(name)
    if table is None:
        return pd.DataFrame()
    return pd.DataFrame.from_records(table["records"], columns=table["columns"])
