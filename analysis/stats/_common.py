"""Shared plumbing for the statistics core: estimator records and vote preparation.

Everything here is Django-free on purpose: the same functions run in a notebook, in a
Celery task and in the tests, on a plain long-format DataFrame.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

#: Vote kinds that count towards every estimate. Training votes never count; control
#: votes are ordinary votes on hidden-reference / low-anchor outputs.
COUNTED_KINDS: tuple[str, ...] = ("rating", "control")
#: Every kind a vote may have.
KINDS: tuple[str, ...] = (*COUNTED_KINDS, "training")
#: Method kinds of the controls: outputs whose expected vote is known (top, bottom).
HIDDEN_REFERENCE = "hidden_reference"
LOW_ANCHOR = "low_anchor"
CONTROL_KINDS: tuple[str, ...] = (HIDDEN_REFERENCE, LOW_ANCHOR)


@dataclass(frozen=True)
class Estimator:
    """Name, version and parameters of the estimator that produced a table.

    Every result table carries ``estimator`` and ``estimator_version`` columns (so an
    exported CSV row can be traced back), and the full record in ``df.attrs``.
    """

    name: str
    version: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def stamp(self, frame: pd.DataFrame, **params: Any) -> pd.DataFrame:
        """Add the estimator columns and attrs to ``frame`` (in place) and return it."""
        frame["estimator"] = self.name
        frame["estimator_version"] = self.version
        frame.attrs["estimator"] = {
            "name": self.name,
            "version": self.version,
            "params": {**dict(self.params), **params},
        }
        return frame


@dataclass(frozen=True)
class Votes:
    """Counted votes as integer codes, ready for ``np.bincount`` style aggregation.

    ``output`` codes are dense over method x scene: ``method * n_scenes + scene``.
    """

    rater: np.ndarray
    scene: np.ndarray
    method: np.ndarray
    score: np.ndarray
    raters: pd.Index
    scenes: pd.Index
    methods: pd.Index

    @property
    def n_raters(self) -> int:
        return len(self.raters)

    @property
    def n_scenes(self) -> int:
        return len(self.scenes)

    @property
    def n_methods(self) -> int:
        return len(self.methods)

    @property
    def n_outputs(self) -> int:
        return self.n_methods * self.n_scenes

    @cached_property
    def output(self) -> np.ndarray:
        # computed once: the estimators of one report ask for it some 25 times
        return self.method * self.n_scenes + self.scene

    def output_labels(self) -> tuple[np.ndarray, np.ndarray]:
        """Method and scene label of every dense output code."""
        codes = np.arange(self.n_outputs)
        return (
            np.asarray(self.methods)[codes // self.n_scenes],
            np.asarray(self.scenes)[codes % self.n_scenes],
        )


def select_votes(votes: Votes, keep: np.ndarray) -> Votes:
    """The votes where ``keep`` is true, with raters, scenes and methods re-encoded over
    what is left (the same codes :func:`prepare_votes` gives those rows)."""

    def recode(codes: np.ndarray, labels: pd.Index) -> tuple[np.ndarray, pd.Index]:
        used, new = np.unique(codes[keep], return_inverse=True)
        return new.astype(np.int64), labels[used]

    rater, raters = recode(votes.rater, votes.raters)
    scene, scenes = recode(votes.scene, votes.scenes)
    method, methods = recode(votes.method, votes.methods)
    return Votes(rater, scene, method, votes.score[keep], raters, scenes, methods)


def counted(df: pd.DataFrame, *, kind: str = "kind", kinds: Iterable[str] = COUNTED_KINDS) -> pd.DataFrame:
    """Rows that count (drop training votes); all rows when there is no ``kind`` column."""
    if kind not in df.columns:
        return df
    return df[df[kind].isin(tuple(kinds))]


def prepare_votes(
    df: pd.DataFrame,
    *,
    rater: str = "rater",
    scene: str = "scene",
    method: str = "method",
    score: str = "score",
    kind: str = "kind",
) -> Votes:
    """Validate a long-format vote frame and encode it as :class:`Votes`.

    One rule for repeated votes, the same in every estimator: a rater who voted more
    than once on one output enters with the mean of those votes (one vote).

    Raises
    ------
    ValueError
        If a column is missing, a kind is not one of :data:`KINDS`, a score is not a
        finite number, or no vote counts.
    """
    missing = [c for c in (rater, scene, method, score) if c not in df.columns]
    if missing:
        raise ValueError(f"vote frame lacks column(s): {', '.join(missing)}")
    if kind in df.columns:
        known = df[kind].isin(KINDS)
        if not known.all():
            bad = sorted({repr(v) for v in df.loc[~known, kind].unique()})
            raise ValueError(f"column {kind!r} holds unknown vote kind(s) {', '.join(bad)}; expected one of {KINDS}")
    data = counted(df, kind=kind)
    if data.empty:
        raise ValueError("no counted votes (rating or control) in the frame")
    scores = pd.to_numeric(data[score], errors="coerce").to_numpy(dtype=float)
    if not np.isfinite(scores).all():
        raise ValueError(f"column {score!r} holds missing or non-numeric scores")
    r_codes, r_index = _encode(data[rater])
    s_codes, s_index = _encode(data[scene])
    m_codes, m_index = _encode(data[method])
    if (r_codes < 0).any() or (s_codes < 0).any() or (m_codes < 0).any():
        raise ValueError("rater, scene and method must not be missing")
    r_codes, s_codes, m_codes = r_codes.astype(np.int64), s_codes.astype(np.int64), m_codes.astype(np.int64)
    r_codes, s_codes, m_codes, scores = _fold_repeats(r_codes, s_codes, m_codes, scores, len(r_index), len(s_index))
    return Votes(
        rater=r_codes,
        scene=s_codes,
        method=m_codes,
        score=scores,
        raters=pd.Index(r_index),
        scenes=pd.Index(s_index),
        methods=pd.Index(m_index),
    )


def _fold_repeats(
    rater: np.ndarray, scene: np.ndarray, method: np.ndarray, score: np.ndarray, n_raters: int, n_scenes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One vote per rater and output: repeated votes replaced by their mean."""
    cell = (method * n_scenes + scene) * n_raters + rater
    size = int(cell.max()) + 1 if len(cell) else 0
    if size <= 50_000_000:
        counts = np.bincount(cell, minlength=size)
        if counts.max(initial=0) <= 1:
            return rater, scene, method, score
    cells, inverse, counts = np.unique(cell, return_inverse=True, return_counts=True)
    if len(cells) == len(cell):
        return rater, scene, method, score
    mean = np.bincount(inverse, weights=score, minlength=len(cells)) / counts
    first = np.full(len(cells), len(cell), dtype=np.int64)
    np.minimum.at(first, inverse, np.arange(len(cell)))
    order = np.sort(first)  # keep the order of first appearance
    return rater[order], scene[order], method[order], mean[inverse[order]]


def _encode(column: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Integer codes of a column and its sorted labels (codes follow label order)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        used = np.unique(column.cat.codes.to_numpy())
        used = used[used >= 0]
        labels = column.cat.categories[used]
        order = np.argsort(np.asarray(labels), kind="stable")
        lookup = np.full(len(column.cat.categories) + 1, -1, dtype=np.int64)
        lookup[used[order]] = np.arange(len(used))
        return lookup[column.cat.codes.to_numpy()], pd.Index(np.asarray(labels)[order])
    values = column.to_numpy()
    if values.dtype.kind not in "biuf":
        # factorizing a plain object array is markedly faster than pandas' string array
        values = column.to_numpy(dtype=object)
    codes, uniques = pd.factorize(values, sort=True)
    return codes, pd.Index(uniques)


def group_mean_std(
    codes: np.ndarray, values: np.ndarray, size: int, ddof: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Count, mean and standard deviation of ``values`` per integer code (two-pass)."""
    n = np.bincount(codes, minlength=size).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(codes, weights=values, minlength=size) / n
        ss = np.bincount(codes, weights=(values - mean[codes]) ** 2, minlength=size)
        std = np.sqrt(ss / (n - ddof))
    std[n <= ddof] = np.nan
    return n, mean, std
