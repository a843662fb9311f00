"""Figures for the challenge report: MOS per method, PSNR/SSIM against MOS.

Built on ``matplotlib.figure.Figure`` with the Agg canvas, never ``pyplot``: pyplot
keeps global state that is neither thread-safe (web server threads) nor needed here, and
Agg renders without a display.
"""

from __future__ import annotations

import io
import math

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from analysis.stats._common import CONTROL_KINDS
from analysis.stats.correlation import logistic_4

BASELINE = "baseline"
METRIC_LABELS = {"psnr": "PSNR (dB)", "ssim": "SSIM"}
FORMATS = {"png": "image/png", "svg": "image/svg+xml"}


def render(figure: Figure, fmt: str) -> bytes:
    """The figure as PNG or SVG bytes."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown figure format {fmt!r}")
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    # No date and a fixed id salt keep the SVG byte-identical for identical results, so
    # a re-export of a stored run can be checked against the first one.
    metadata = {"Date": None} if fmt == "svg" else {"Software": None}
    with matplotlib.rc_context({"svg.hashsalt": "mosaic"}):
        figure.savefig(buffer, format=fmt, dpi=150, bbox_inches="tight", metadata=metadata)
    return buffer.getvalue()


def _float(value: object) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return number


def mos_figure(board: pd.DataFrame, *, title: str = "", scale: tuple[int, int] = (1, 5)) -> Figure:
    """MOS per method with its confidence interval, best at the top.

    ``board`` is a leaderboard table (``method, method_kind, mos, ci_low, ci_high,
    ci_method, rank_display``). Controls (hidden reference, low anchor) are drawn in grey,
    baselines in orange with "(baseline)" after the name.
    """
    rows = board.iloc[::-1].reset_index(drop=True)  # barh draws bottom-up
    figure = Figure(figsize=(7, max(2.5, 0.42 * len(rows) + 1.2)))
    ax = figure.add_subplot()
    y = np.arange(len(rows))
    mos = rows["mos"].map(_float).to_numpy()
    low = rows["ci_low"].map(_float).to_numpy()
    high = rows["ci_high"].map(_float).to_numpy()
    # A single-scene method has no interval: draw the point without a bar.
    err = np.nan_to_num(np.vstack([mos - low, high - mos]), nan=0.0)
    control = rows["method_kind"].isin(CONTROL_KINDS).to_numpy()
    baseline = (rows["method_kind"] == BASELINE).to_numpy()
    colors = np.where(control, "#9e9e9e", np.where(baseline, "#ff7f0e", "#1f77b4"))
    ax.barh(y, mos - scale[0], left=scale[0], color=colors, alpha=0.35, height=0.6)
    ax.errorbar(mos, y, xerr=err, fmt="none", ecolor="black", capsize=3, linewidth=1)
    ax.scatter(mos, y, color=colors, zorder=3, s=18)
    labels = []
    ranks = rows.get("rank_display", [""] * len(rows))
    for name, rank, is_baseline in zip(rows["method"], ranks, baseline, strict=True):
        rank_text = "" if rank is None or (isinstance(rank, float) and math.isnan(rank)) else rank
        label = f"{name} (baseline)" if is_baseline else str(name)
        labels.append(f"{label}  ({rank_text})" if rank_text else label)
    ax.set_yticks(y, labels)
    ax.set_xlim(scale[0], scale[1])
    method = rows["ci_method"].iloc[0] if len(rows) else ""
    confidence = _float(rows["confidence"].iloc[0]) if "confidence" in rows and len(rows) else 0.95
    ax.set_xlabel(f"MOS ({confidence:.0%} CI, {method})")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title or "Mean opinion score per method (rank with ties)")
    figure.tight_layout()
    return figure


def metric_figure(
    board: pd.DataFrame,
    correlations: pd.DataFrame,
    metric: str,
    *,
    title: str = "",
    scale: tuple[int, int] = (1, 5),
) -> Figure:
    """A fidelity metric against MOS, one point per method, with the fitted logistic.

    The curve is the VQEG 4-parameter logistic stored in the method-level row of
    ``correlations``; the legend gives PLCC (before and after the mapping) and SRCC.
    """
    entries = board[~board["method_kind"].isin(CONTROL_KINDS)]
    x = entries[metric].map(_float).to_numpy() if metric in entries else np.array([])
    y = entries["mos"].map(_float).to_numpy()
    known = np.isfinite(x) & np.isfinite(y) if len(x) else np.array([], dtype=bool)
    label = METRIC_LABELS.get(metric, metric)
    figure = Figure(figsize=(6, 4.5))
    ax = figure.add_subplot()
    ax.set_xlabel(label)
    ax.set_ylabel("MOS")
    ax.set_ylim(scale[0], scale[1])
    ax.set_title(title or f"{label} vs MOS (one point per method)")
    ax.grid(alpha=0.3)
    if not known.any():
        ax.text(0.5, 0.5, f"No {label} known for these methods", ha="center", va="center",
                transform=ax.transAxes)  # fmt: skip
        figure.tight_layout()
        return figure
    low = entries["ci_low"].map(_float).to_numpy()
    high = entries["ci_high"].map(_float).to_numpy()
    err = np.nan_to_num(np.vstack([y - low, high - y]), nan=0.0)
    is_baseline = (entries["method_kind"] == BASELINE).to_numpy()
    for mask, color, marker, name in (
        (~is_baseline, "#1f77b4", "o", "team"),
        (is_baseline, "#ff7f0e", "s", "baseline"),
    ):
        shown = known & mask
        if shown.any():
            ax.errorbar(x[shown], y[shown], yerr=err[:, shown], fmt=marker, capsize=3, color=color, label=name)
    for name, xi, yi, base in zip(entries["method"][known], x[known], y[known], is_baseline[known], strict=True):
        text = f"{name} (baseline)" if base else str(name)
        ax.annotate(text, (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=8)
    row = _correlation_row(correlations, metric)
    if row is not None:
        params = [_float(row.get(f"logistic_b{i}")) for i in range(1, 5)]
        if bool(row.get("logistic_converged")) and all(math.isfinite(p) for p in params):
            grid = np.linspace(np.nanmin(x[known]), np.nanmax(x[known]), 200)
            ax.plot(grid, logistic_4(grid, *params), color="#d62728", label="4-parameter logistic")
        text = (
            f"PLCC {_fmt(row.get('plcc'))}, after logistic {_fmt(row.get('plcc_logistic'))}\n"
            f"SRCC {_fmt(row.get('srcc'))}, KRCC {_fmt(row.get('krcc'))}, n = {row.get('n')}"
        )
        ax.text(0.02, 0.98, text, transform=ax.transAxes, va="top", fontsize=8)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    return figure


def _correlation_row(correlations: pd.DataFrame, metric: str) -> dict | None:
    if correlations.empty or "metric" not in correlations:
        return None
    match = correlations[(correlations["metric"] == metric) & (correlations["level"] == "method")]
    return None if match.empty else match.iloc[0].to_dict()


def _fmt(value: object) -> str:
    number = _float(value)
    return "n/a" if not math.isfinite(number) else f"{number:.3f}"


def scene_heatmap(
    image_mos: pd.DataFrame, board: pd.DataFrame, *, title: str = "", scale: tuple[int, int] = (1, 5)
) -> Figure:
    """Per-image MOS as a heatmap: one row per method (in leaderboard order), one column
    per scene, each cell's MOS written in it.

    ``image_mos`` is a per-image table (``method, scene, mos``); ``board`` gives the
    method order and kinds. An output without votes is left blank ("no votes").
    """
    order = [m for m in board["method"] if m in set(image_mos["method"])] if len(board) else []
    order += sorted(set(image_mos["method"]) - set(order))
    grid = image_mos.pivot_table(index="method", columns="scene", values="mos", aggfunc="first")
    grid = grid.reindex(index=order).sort_index(axis=1)
    kinds = dict(zip(board["method"], board["method_kind"], strict=True)) if len(board) else {}
    values = grid.to_numpy(dtype=float)
    n_methods, n_scenes = values.shape
    figure = Figure(figsize=(max(5.0, 0.7 * n_scenes + 3), max(2.5, 0.42 * n_methods + 1.5)))
    ax = figure.add_subplot()
    image = ax.imshow(np.ma.masked_invalid(values), cmap="viridis", vmin=scale[0], vmax=scale[1], aspect="auto")
    labels = []
    for name in grid.index:
        kind = kinds.get(name)
        labels.append(
            f"{name} (baseline)" if kind == BASELINE else f"{name} ({kind})" if kind in CONTROL_KINDS else str(name)
        )
    ax.set_yticks(np.arange(n_methods), labels)
    ax.set_xticks(np.arange(n_scenes), [str(s) for s in grid.columns], rotation=45, ha="right")
    ax.set_xlabel("scene")
    middle = (scale[0] + scale[1]) / 2
    for i in range(n_methods):
        for j in range(n_scenes):
            value = values[i, j]
            if math.isfinite(value):
                color = "black" if value > middle else "white"
                ax.text(j, i, f"{value:.1f}", ha="center", va="center", fontsize=7, color=color)
    figure.colorbar(image, ax=ax, label="MOS")
    ax.set_title(title or "Per-image MOS (methods x scenes)")
    figure.tight_layout()
    return figure
