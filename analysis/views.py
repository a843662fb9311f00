"""Organizer pages: the results of a study, its downloads, and the button that runs it.

Staff only: results name every team, and they are not public until the organizers say so.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from django.contrib import admin, messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from analysis.models import AnalysisRun
from studies.models import Method, Study

# The analysis modules (pandas, SciPy, statsmodels, matplotlib) are imported by the views
# that use them, not here: every web worker loads this module with the URLs, and one that
# serves raters never needs them. Importing them took two thirds of a worker's start.
if TYPE_CHECKING:
    from analysis import selectors

PLOTS = (
    ("mos", "MOS per method"),
    ("psnr_vs_mos", "PSNR vs MOS"),
    ("ssim_vs_mos", "SSIM vs MOS"),
    ("scene_mos", "Per-image MOS (methods x scenes)"),
)


def _number(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _interval(row: dict, low: str, high: str) -> tuple[float, float] | None:
    pair = (_number(row.get(low)), _number(row.get(high)))
    return pair if None not in pair else None  # type: ignore[return-value]


def _leaderboard_rows(results: selectors.StudyResults) -> list[dict]:
    unscreened = {}
    if not results.leaderboard_all_raters.empty:
        unscreened = dict(
            zip(
                results.leaderboard_all_raters["method"],
                results.leaderboard_all_raters["mos"],
                strict=True,
            )
        )
    rows = []
    for row in results.leaderboard.to_dict("records"):
        rows.append(
            {
                "method": row["method"],
                "kind": row["method_kind"],
                "is_control": row["method_kind"] in Method.CONTROL_KINDS,
                "is_baseline": row["method_kind"] == Method.Kind.BASELINE,
                # Older runs have no "ranked" column: every non-control was ranked then.
                "ranked": bool(row.get("ranked", row["method_kind"] not in Method.CONTROL_KINDS)),
                "psnr": _number(row.get("psnr")),
                "ssim": _number(row.get("ssim")),
                "mos": _number(row.get("mos")),
                "ci_test": _interval(row, "ci_low", "ci_high"),
                "ci_new": _interval(row, "ci_low_new_scenes", "ci_high_new_scenes"),
                "boot_ci": _interval(row, "boot_ci_low", "boot_ci_high"),
                "p910": _number(row.get("p910")),
                "p910_ci": _interval(row, "p910_ci_low", "p910_ci_high"),
                "mos_all_raters": _number(unscreened.get(row["method"])),
                "rank": row.get("rank_display"),
                "rank_new": row.get("rank_display_new_scenes"),
                "tied_with_winner": bool(row.get("tied_with_winner")) and row.get("rank") is not None,
                "n_votes": _count(row.get("n_votes")),
                "n_raters": _count(row.get("n_raters")),
            }
        )
    return rows


def _count(value: object) -> int | None:
    number = _number(value)
    return None if number is None else int(number)


def _estimand_labels(results: selectors.StudyResults) -> dict[str, str]:
    """The estimand each interval column answers, as stored with the run."""
    board = results.leaderboard
    labels = {"test": "test set", "new": "new scenes"}
    for key, column in (("test", "estimand"), ("new", "estimand_new_scenes")):
        if column in board and board[column].notna().any():
            labels[key] = str(board[column].dropna().iloc[0])
    return labels


def _raters_used(results: selectors.StudyResults) -> int | None:
    board = results.leaderboard
    if "n_raters_used" not in board or board.empty:
        return None
    value = _number(board["n_raters_used"].iloc[0])
    return int(value) if value is not None else None


def _p910_fits(estimators: dict) -> list[dict]:
    """Convergence of each P.910 fit of the run (screened votes, every rater)."""
    fits = estimators.get("p910_fit", {}).get("params", {})
    labels = {"p910": "screened raters", "p910_all_raters": "every rater"}
    return [
        {"label": labels.get(name, name), "converged": fit.get("converged"), "n_iterations": fit.get("n_iterations")}
        for name, fit in fits.items()
    ]


def _agreement_rows(results: selectors.StudyResults) -> list[dict]:
    """One row per agreement measure: screened raters beside every rater."""
    every = {}
    if not results.agreement_all_raters.empty:
        every = dict(zip(results.agreement_all_raters["measure"], results.agreement_all_raters["value"], strict=True))
    return [
        {
            "measure": row["measure"],
            "label": row["label"],
            "value": _number(row.get("value")),
            "sd": _number(row.get("sd")),
            "value_all_raters": _number(every.get(row["measure"])),
            "n_units": _count(row.get("n_units")),
            "n_splits": _count(row.get("n_splits")),
            "method": row.get("method"),
        }
        for row in results.agreement.to_dict("records")
    ]


def _has_metric(results: selectors.StudyResults, metric: str) -> bool:
    board = results.leaderboard
    return metric in board and board[metric].map(_number).notna().any()


@staff_member_required
@require_GET
def study_results(request: HttpRequest, slug: str) -> HttpResponse:
    from analysis import exports, selectors
    from analysis.results import to_records

    study = get_object_or_404(Study, slug=slug)
    results = selectors.study_results(study=study)
    run = results.run
    estimators = run.estimators.get("tables", {}) if run else {}
    rows = _leaderboard_rows(results)
    context = {
        **admin.site.each_context(request),
        "title": f"Results: {study.title}",
        "study": study,
        "results": results,
        "run": run,
        "latest": results.latest,
        "rows": rows,
        "tied_with_winner": [r["method"] for r in rows if r["tied_with_winner"] and not r["is_control"]],
        "estimand": _estimand_labels(results),
        "n_raters_used": _raters_used(results),
        "p910_fits": _p910_fits(estimators),
        # to_records: a NaN (no PLCC from two methods) reaches the template as None.
        "correlations": to_records(results.correlations),
        "agreement": _agreement_rows(results),
        "coverage": selectors.study_coverage(study=study),
        "excluded_by_rule": results.excluded_by_rule,
        "excluded_raters": (
            results.raters[results.raters["excluded"].astype(bool)].to_dict("records")
            if not results.raters.empty
            else []
        ),
        # A metric plot with no metric known would be an empty frame: leave it out.
        "plots": [
            (kind, label)
            for kind, label in PLOTS
            if kind in ("mos", "scene_mos") or _has_metric(results, kind.removesuffix("_vs_mos"))
        ],
        "downloads": list(exports.EXPORT_FILES.values()),
        "manifest": exports.MANIFEST,
        "confidence_pct": f"{(run.params.get('confidence', 0.95) if run else 0.95):.0%}",
        "estimators": estimators,
        "libraries": (run.estimators.get("libraries", {}) if run else {}),
        "pipeline": (run.estimators.get("pipeline", {}) if run else {}),
        "warnings": (run.results.get("warnings", []) if run else []),
        "opts": Study._meta,
    }
    context.update(_run_facts(study, results))
    return render(request, "analysis/study_results.html", context)


def _run_facts(study: Study, results: selectors.StudyResults) -> dict:
    """What the page says about the shown run beyond its tables: how stale it is, whom it
    left out by hand, how it treated baselines."""
    from analysis import selectors

    run = results.run
    if run is None:
        return {"votes_after_run": 0, "manual_exclusions": [], "has_baselines": False}
    exclusions = results.manual_exclusions.to_dict("records")
    board = results.leaderboard
    return {
        "votes_after_run": selectors.study_votes_after(study=study, run=run),
        "manual_exclusions": [{**row, "n_votes": _count(row.get("n_votes")) or 0} for row in exclusions],
        "has_baselines": bool(len(board) and (board["method_kind"] == Method.Kind.BASELINE).any()),
        "rank_baselines": bool(run.params.get("rank_baselines")),
    }


@staff_member_required
@require_POST
def study_run(request: HttpRequest, slug: str) -> HttpResponse:
    from analysis import services

    study = get_object_or_404(Study, slug=slug)
    if not request.user.has_perm("analysis.add_analysisrun"):
        messages.error(request, "Running an analysis needs the permission to add analysis runs.")
        return redirect(reverse("analysis:study-results", kwargs={"slug": study.slug}))
    # An unchecked box is absent from the form: baselines then stay out of the ranking.
    run = services.analysis_run_queue(
        study=study, params={"rank_baselines": request.POST.get("rank_baselines") == "on"}
    )
    # A worker computes it; the page shows its status, the study's Jobs page its stage.
    run.refresh_from_db()
    messages.info(
        request,
        f"Analysis run {run.number} of the votes stored now: {run.status}. "
        "Its progress is on the study's Jobs page in the admin.",
    )
    return redirect(reverse("analysis:study-results", kwargs={"slug": study.slug}))


def _run_or_404(slug: str, run_id: int) -> AnalysisRun:
    run = (
        AnalysisRun.objects.select_related("study")
        .filter(study__slug=slug, pk=run_id, status=AnalysisRun.Status.DONE)
        .first()
    )
    if run is None:
        raise Http404("No finished analysis run with this id for this study.")
    return run


@staff_member_required
@require_GET
def run_file(request: HttpRequest, slug: str, run_id: int, name: str) -> HttpResponse:
    from analysis import exports

    run = _run_or_404(slug, run_id)
    if name not in exports.EXPORT_FILES and name != exports.MANIFEST:
        raise Http404("No such export file.")
    data, content_type = exports.export_bytes(run, name)
    response = HttpResponse(data, content_type=content_type)
    # Plots are shown inline on the page; tables download under a traceable name.
    if not content_type.startswith("image/"):
        response["Content-Disposition"] = f'attachment; filename="{slug}-run{run.number}-{name}"'
    # A run never changes once done, so its files may be cached by the browser.
    response["Cache-Control"] = "private, max-age=86400, immutable"
    return response


@staff_member_required
@require_GET
def run_zip(request: HttpRequest, slug: str, run_id: int) -> HttpResponse:
    from analysis import exports

    run = _run_or_404(slug, run_id)
    response = HttpResponse(exports.zip_bytes(run), content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{slug}-run{run.number}-results.zip"'
    return response
