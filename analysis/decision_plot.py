"""The live decision as a figure: methods with their confidence sequences, pair states.

Agg canvas on a plain ``Figure`` (no pyplot), as in analysis.plots.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

STATE_COLOURS = {"separated": "#2e7d32", "equivalent": "#1565c0", "undecided": "#ef6c00"}


def decision_figure(summary: dict[str, Any], *, scale: tuple[int, int] = (1, 5)) -> Figure:
    """Methods best at the top, each with its MOS and confidence sequence; between two
    adjacent methods, their pair's state and the votes still needed to decide it.

    ``summary`` is :func:`raters.allocation.decision_summary`.
    """
    methods = summary["methods"]
    pairs = summary["pairs"]
    figure = Figure(figsize=(8, max(2.5, 0.5 * len(methods) + 1.4)))
    ax = figure.add_subplot()
    y = -np.arange(len(methods), dtype=float)
    for yi, row in zip(y, methods, strict=True):
        if row["mos"] is None:
            continue
        low = row["cs_low"] if row["cs_low"] is not None else scale[0]
        high = row["cs_high"] if row["cs_high"] is not None else scale[1]
        ax.plot([max(low, scale[0]), min(high, scale[1])], [yi, yi], color="black", linewidth=1.5)
        ax.scatter([row["mos"]], [yi], color="black", zorder=3, s=18)
    for index, pair in enumerate(pairs):
        colour = STATE_COLOURS.get(pair["state"], "grey")
        text = pair["state"]
        if pair["state"] == "undecided" and pair["votes_to_decide"] is not None:
            text += f" (~{pair['votes_to_decide']} votes)"
        ax.text(scale[1] + 0.05, y[index] - 0.5, text, color=colour, va="center", fontsize=8)
        ax.plot([scale[1], scale[1]], [y[index] - 0.1, y[index + 1] + 0.1], color=colour, linewidth=4)
    ax.set_yticks(y, [f"{row['rank']}. {row['method']} ({row['n_votes']} votes)" for row in methods])
    ax.set_xlim(scale[0], scale[1])
    ax.set_xlabel(f"MOS with {1 - summary['alpha']:.0%} confidence sequence (valid however often it is looked at)")
    verdict = "decided" if summary["decided"] else "not decided yet"
    budget = f" of {summary['vote_budget']}" if summary["vote_budget"] else ""
    ax.set_title(f"Live decision: {verdict}, {summary['n_votes']}{budget} votes", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    return figure
