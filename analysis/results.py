"""The tables of one analysis run, from a vote frame, and their JSON round trip.

This is glue between the Django-free statistics core (``analysis.stats``) and what the
product shows: the results page, the organizer API and the exports all read the same
tables, stored once on an :class:`~analysis.models.AnalysisRun`, so a figure on the page
and in a downloaded CSV cannot differ.

Tables (``TABLES``), each with ``estimator`` and ``estimator_version`` columns:

``leaderboard`` / ``leaderboard_all_raters``
    One row per method, best first: MOS with the interval of each question, ranks with
    ties (``rank_display`` "2-4") and ``tied_with_winner``, votes and raters, PSNR/SSIM,
    the bootstrap and the P.910 quality with its intervals.
``image_mos`` / ``image_mos_all_raters``
    One row per output: MOS with its Student-t interval over raters, P.910 quality.
``correlations`` / ``correlations_all_raters``
    PLCC/SRCC/KRCC of PSNR and SSIM with MOS, at method and image level.
``pairwise`` / ``pairwise_all_raters``
    The Holm-corrected tests behind the tied ranks.
``agreement`` / ``agreement_all_raters``
    Rater agreement: split-half reliability of the method ranking (Spearman-Brown
    corrected) and Krippendorff's alpha (interval) over outputs.
``raters``
    Per rater: votes, one true/false column per screening rule, ``excluded``.
``manual_exclusions``
    The sessions an organizer excluded by hand, with the reason and the votes left out
    (those votes are in no other table).

Baselines (methods of kind ``baseline``) are shown with their MOS and intervals but take
no part in the ranking unless the run's ``rank_baselines`` parameter is true: a
challenge ranks its teams, and a baseline is the yardstick beside them.

"Screened" tables drop the raters that any screening rule flagged; ``*_all_raters``
keep everybody. The screening itself always looks at every rater.

Two questions, named in every interval and test (``estimand`` columns):

* **"test set"** (default of the leaderboard's ``ci_low``/``ci_high``, ``rank`` and
  ``pairwise``): scenes fixed, raters sampled. A challenge ranks its teams on the test
  scenes it published, as people judge them; the scenes are not a sample it wants to
  generalise from, and an interval that also counts scene-to-scene variation would be
  far too wide for that question (it covers the test-set MOS nearly always).
* **"new scenes"** (``ci_low_new_scenes``/``ci_high_new_scenes``, ``rank_new_scenes``,
  ``pairwise_new_scenes``): scenes and raters sampled, for a paper that claims one
  method is better on images like these in general.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from analysis.plots import BASELINE
from analysis.stats._common import CONTROL_KINDS
from analysis.stats.report import full_report
from analysis.stats.screening import exclude_raters
from analysis.stats.subject_model import P910

#: Version of this composition (which estimators, how tables are joined). Bumped when a
#: stored table would come out differently from the same votes.
PIPELINE = {"name": "mosaic-analysis", "version": "2.4"}


DEFAULT_PARAMS: dict[str, Any] = {
    "confidence": 0.95,
    "n_boot": 2000,
    "seed": 0,
    "alpha": 0.05,
    # None: the correlation is reported for every rater but excludes nobody (a fixed
    # threshold flags most good raters when teams are close); a number turns it on
    "correlation_threshold": None,
    "ranking_procedure": "stepdown-maxt",
    # Baselines are shown beside the teams but not ranked among them unless this is true.
    "rank_baselines": False,
}

#: Parameters a run fills in itself when it is created (services.analysis_run_create).
RUN_FIELDS = ("upto_rating_id", "scale_min", "scale_max", "manual_exclusions")

TABLES = (
    "leaderboard",
    "leaderboard_all_raters",
    "image_mos",
    "image_mos_all_raters",
    "correlations",
    "correlations_all_raters",
    "pairwise",
    "pairwise_all_raters",
    "pairwise_new_scenes",
    "pairwise_new_scenes_all_raters",
    "agreement",
    "agreement_all_raters",
    "raters",
    "manual_exclusions",
)

RULES = ("bt500", "inconsistency", "straight_lining", "correlation", "controls")


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
    unknown = set(merged) - set(DEFAULT_PARAMS) - set(RUN_FIELDS)
    if unknown:
        raise ValueError(f"unknown analysis parameter(s): {', '.join(sorted(unknown))}")
    return merged


def _estimator(frame: pd.DataFrame) -> dict[str, Any]:
    return dict(frame.attrs.get("estimator", {}))


def unranked_kinds(params: Mapping[str, Any]) -> tuple[str, ...]:
    """Method kinds shown with their MOS but left out of the ranking."""
    return CONTROL_KINDS if params.get("rank_baselines") else (*CONTROL_KINDS, BASELINE)


def _report(
    votes: pd.DataFrame,
    methods: pd.DataFrame,
    params: Mapping[str, Any],
    *,
    screened: bool,
) -> tuple[dict[str, pd.DataFrame], dict[str, dict[str, Any]], dict[str, pd.DataFrame]]:
    """Leaderboard, per-image MOS, correlations and pairwise tests of one vote set.

    ``screened`` says only how the tables are named: the caller passes the votes it kept.
    Screening runs only for the unscreened set (it always judges every rater).
    """
    confidence = params["confidence"]
    metrics = votes.groupby(["method", "scene"], as_index=False)[["psnr", "ssim"]].first()
    entries = ~metrics["method"].isin(methods.loc[methods["method_kind"].isin(CONTROL_KINDS), "method"])
    procedure = params.get("ranking_procedure", "stepdown-maxt")
    report = full_report(
        votes,
        methods[["method", "method_kind"]],
        # Controls stay out of the metric correlations: a hidden reference has infinite
        # PSNR, and neither kind is an entry whose fidelity is being judged.
        metrics[entries],
        n_boot=params["n_boot"],
        seed=params["seed"],
        scale_min=params["scale_min"],
        scale_max=params["scale_max"],
        alpha=params["alpha"],
        confidence=confidence,
        correlation_threshold=params["correlation_threshold"],
        ranking_procedure=procedure,
        screen=not screened,
        # Controls (and baselines unless ranked) are shown with their MOS but are not
        # entries: a hidden reference significantly better than every team would
        # otherwise push the winner to rank 2.
        unranked=methods.loc[methods["method_kind"].isin(unranked_kinds(params)), "method"].tolist(),
    )
    suffix = "" if screened else "_all_raters"
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
        + ["ci_method", "estimand", "p910", "p910_ci_low", "p910_ci_high", "psnr", "ssim"]
        + ["estimator", "estimator_version"]
    ].sort_values(["scene", "method"], ignore_index=True)

    mm = report["method_mos"]
    board = pd.DataFrame(
        {
            "method": mm["method"],
            "mos": mm["mos"],
            # the leaderboard answers "on this test set" by default (module docstring)
            "ci_low": mm["ci_low_test"],
            "ci_high": mm["ci_high_test"],
            "ci_method": mm["ci_method_test"],
            "estimand": mm["estimand_test"],
            "ci_low_new_scenes": mm["ci_low_2way"],
            "ci_high_new_scenes": mm["ci_high_2way"],
            "ci_method_new_scenes": mm["ci_method_2way"],
            "estimand_new_scenes": mm["estimand_2way"],
            "ci_low_t_scenes": mm["ci_low"],
            "ci_high_t_scenes": mm["ci_high"],
            "estimand_t_scenes": mm["estimand_t"],
            "n_votes": mm["n_votes"],
            "n_raters": mm["n_raters"],
            "n_scenes": mm["n_scenes"],
            "boot_ci_low": mm.get("ci_low_boot"),
            "boot_ci_high": mm.get("ci_high_boot"),
            "boot_se": mm.get("boot_se"),
            "estimator": mm["estimator"],
            "estimator_version": mm["estimator_version"],
        }
    )
    est[f"leaderboard{suffix}"] = _estimator(mm)
    p910_method = report["p910_method"][["method", "p910", "ci_low", "ci_high", "ci_low_new", "ci_high_new"]].rename(
        columns={
            "ci_low": "p910_ci_low",
            "ci_high": "p910_ci_high",
            "ci_low_new": "p910_ci_low_new_scenes",
            "ci_high_new": "p910_ci_high_new_scenes",
        }
    )
    unranked = unranked_kinds(params)
    # ranked once per question inside full_report ("new scenes" by Holm over paired
    # t-tests over scenes: step-down max-T with the two-way cluster covariance separated
    # equal methods too often in bench/validity)
    ranking, pairwise = report["ranking"], report["pairwise"]
    ranking_new, pairwise_new = report["ranking_new_scenes"], report["pairwise_new_scenes"]
    est[f"ranking{suffix}"] = _estimator(ranking) or {"name": "single-entry", "version": "1.0"}
    est[f"ranking_new_scenes{suffix}"] = _estimator(ranking_new) or {"name": "single-entry", "version": "1.0"}
    new_cols = ranking_new[["method", "rank", "rank_high", "rank_display"]].rename(
        columns={
            "rank": "rank_new_scenes",
            "rank_high": "rank_high_new_scenes",
            "rank_display": "rank_display_new_scenes",
        }
    )
    board = (
        board.merge(p910_method, on="method", how="left")
        .merge(methods, on="method", how="left")
        .merge(ranking[["method", "rank", "rank_high", "rank_display", "tied_with_winner"]], on="method", how="left")
        .merge(new_cols, on="method", how="left")
    )
    board["is_control"] = board["method_kind"].isin(CONTROL_KINDS)
    board["ranked"] = ~board["method_kind"].isin(unranked)
    board = board.sort_values(["is_control", "mos", "method"], ascending=[True, False, True], ignore_index=True)
    board["confidence"] = confidence
    board = board[
        ["method", "method_kind", "mos", "ci_low", "ci_high", "ci_method", "estimand", "confidence"]
        + ["rank", "rank_high", "rank_display", "tied_with_winner", "ranked"]
        + ["ci_low_new_scenes", "ci_high_new_scenes", "ci_method_new_scenes", "estimand_new_scenes"]
        + ["rank_new_scenes", "rank_high_new_scenes", "rank_display_new_scenes"]
        + ["ci_low_t_scenes", "ci_high_t_scenes", "estimand_t_scenes", "n_votes", "n_raters", "n_scenes"]
        + ["psnr", "ssim", "boot_ci_low", "boot_ci_high", "boot_se"]
        + ["p910", "p910_ci_low", "p910_ci_high", "p910_ci_low_new_scenes", "p910_ci_high_new_scenes"]
        + ["runtime_s", "framework", "estimator", "estimator_version"]
    ]
    for col in ("rank", "rank_high", "rank_new_scenes", "rank_high_new_scenes"):
        board[col] = board[col].astype("Int64")

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
        f"pairwise_new_scenes{suffix}": pairwise_new,
        f"agreement{suffix}": report["agreement"],
    }
    est[f"agreement{suffix}"] = _estimator(report["agreement"])
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
    all_tables, all_est, unscreened = _report(votes, methods, params, screened=False)
    screening = unscreened["screening"]
    warnings: list[str] = []
    n_raters = len(screening)
    n_excluded = int(screening["excluded"].sum())
    n_kept = n_raters - n_excluded
    fits = {"p910_all_raters": unscreened["p910"].attrs.get("estimator", {}).get("params", {})}
    if n_excluded == n_raters:
        warnings.append("screening excluded every rater: the screened tables keep everybody")
        screened_tables = {k.removesuffix("_all_raters"): v for k, v in all_tables.items()}
        screened_est = {k.removesuffix("_all_raters"): v for k, v in all_est.items()}
        n_kept = n_raters
    elif n_excluded:
        screened_tables, screened_est, screened = _report(
            exclude_raters(votes, screening), methods, params, screened=True
        )
        fits["p910"] = screened["p910"].attrs.get("estimator", {}).get("params", {})
        warnings.append(f"{n_excluded} of {n_raters} raters excluded by screening")
        if n_kept < n_raters / 2:
            warnings.append(
                f"the screened tables rest on {n_kept} of {n_raters} raters, fewer than half: "
                "compare them with the all-raters tables before publishing either"
            )
    else:
        # nobody excluded: the screened tables are the all-raters tables
        screened_tables = {k.removesuffix("_all_raters"): v for k, v in all_tables.items()}
        screened_est = {k.removesuffix("_all_raters"): v for k, v in all_est.items()}
    fits.setdefault("p910", fits["p910_all_raters"])
    for name, fit in fits.items():
        if fit and not fit.get("converged", True):
            warnings.append(f"{name}: the P.910 model did not converge in {fit.get('n_iterations')} iterations")
    screened_tables["leaderboard"]["n_raters_used"] = n_kept
    all_tables["leaderboard_all_raters"]["n_raters_used"] = n_raters
    raters = screening.merge(
        unscreened["p910_raters"][["rater", "bias", "inconsistency"]].rename(
            columns={"bias": "p910_bias", "inconsistency": "p910_inconsistency"}
        ),
        on="rater",
        how="left",
    )
    tables = {"raters": raters, **screened_tables, **all_tables}
    estimators = {"screening": _estimator(screening), **screened_est, **all_est}
    estimators["p910_fit"] = {
        "name": P910.name,
        "version": P910.version,
        "params": {
            name: {"converged": fit.get("converged"), "n_iterations": fit.get("n_iterations")}
            for name, fit in fits.items()
        },
    }
    estimators["raters_used"] = {"name": "screening", "version": "1.0", "params": {"kept": n_kept, "of": n_raters}}
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


EXCLUSION_COLUMNS = ["session", "rater", "platform", "platform_id", "scope", "reason", "n_votes"]


def manual_exclusions_table(votes: pd.DataFrame, exclusions: list[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per session excluded by hand: who, why, and how many of ``votes`` (every
    vote up to the run's cut-off, excluded ones included) it took out of the analysis."""
    if not exclusions:
        return pd.DataFrame(columns=EXCLUSION_COLUMNS)
    table = pd.DataFrame.from_records(list(exclusions))
    counts = votes.groupby("session_id").size()
    labels = votes.groupby("session_id")["rater"].first()
    table["n_votes"] = table["session"].map(counts).fillna(0).astype("int64")
    # The label the frames give (external id, or #pk for a direct-link rater).
    table["rater"] = table["session"].map(labels).fillna(table["platform_id"]).astype(object)
    return table[EXCLUSION_COLUMNS]
