"""One call that runs the whole analysis of a study and returns every table."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np
import pandas as pd

from ._common import Votes, prepare_votes, select_votes
from .agreement import _agreement
from .correlation import metric_correlations
from .inference import NEW_SCENES, NEW_SCENES_CI, NEW_SCENES_PANEL, TEST_SET, TEST_SET_CI, covariances, intervals
from .mos import BOOTSTRAP, IMAGE_MOS, METHOD_MOS, _bootstrap_arrays, _image_table, _method_table
from .ranking import _rank, _rank_maxt, single_entry_ranking
from .screening import _screen, exclude_raters
from .subject_model import _p910_from_votes, p910_method_table


def _method_mos_all(votes: Votes, n_boot: int, seed: int, confidence: float, cov: dict | None = None) -> pd.DataFrame:
    """Method MOS with the interval of each question (see :mod:`.inference`).

    ``cov`` is :func:`~.inference.covariances` of ``votes`` when the caller has it.
    """
    table = _method_table(votes, confidence)
    table = table.rename(columns={"ci_method": "ci_method_t"})
    table["estimand_t"] = NEW_SCENES_PANEL
    cov = covariances(votes) if cov is None else cov
    for question, suffix, est in ((TEST_SET, "test", TEST_SET_CI), (NEW_SCENES, "2way", NEW_SCENES_CI)):
        mos, c, df = cov[question]
        low, high = intervals(mos, c, df, confidence)
        table[f"ci_low_{suffix}"] = low
        table[f"ci_high_{suffix}"] = high
        table[f"ci_method_{suffix}"] = est.name
        table[f"estimand_{suffix}"] = question
    if n_boot > 0:
        low, high, se = _bootstrap_arrays(votes, n_boot, seed, confidence)
        table["ci_low_boot"] = low
        table["ci_high_boot"] = high
        table["boot_se"] = se
        table["ci_method_boot"] = BOOTSTRAP.name
        table["estimand_boot"] = NEW_SCENES
    return METHOD_MOS.stamp(
        table,
        confidence=confidence,
        n_resamples=n_boot,
        seed=seed,
        bootstrap=BOOTSTRAP.name,
        test_set=f"{TEST_SET_CI.name} {TEST_SET_CI.version}",
        new_scenes=f"{NEW_SCENES_CI.name} {NEW_SCENES_CI.version}",
    )


def full_report(
    df: pd.DataFrame,
    methods_info: pd.DataFrame | None = None,
    metrics: pd.DataFrame | None = None,
    *,
    exclude: bool = False,
    n_boot: int = 2000,
    seed: int = 0,
    scale_min: float = 1,
    scale_max: float = 5,
    alpha: float = 0.05,
    confidence: float = 0.95,
    metric_cols: Sequence[str] = ("psnr", "ssim"),
    correlation_threshold: float | None = None,
    ranking_procedure: str = "stepdown-maxt",
    screen: bool = True,
    agreement_splits: int = 20,
    unranked: Collection | None = None,
    rater: str = "rater",
    scene: str = "scene",
    method: str = "method",
    score: str = "score",
    kind: str = "kind",
) -> dict[str, pd.DataFrame]:
    """Run screening, MOS, intervals, ranking, P.910 model and metric correlations.

    Parameters
    ----------
    df : DataFrame
        Long-format votes (``rater``, ``scene``, ``method``, ``score``, ``kind``).
    methods_info : DataFrame, optional
        ``method`` and ``method_kind`` per method (for the control rule).
    metrics : DataFrame, optional
        One row per output with ``method``, ``scene`` and metric columns (PSNR, SSIM).
        Method-level metric values are the means over scenes.
    exclude : bool
        Drop the raters flagged by screening before every later step. The unscreened
        method MOS is then also returned as ``method_mos_unscreened``.
    n_boot, seed : int
        Bootstrap resamples and seed.
    scale_min, scale_max : float
        Ends of the rating scale (control thresholds).
    alpha : float
        Family-wise error rate of the ranking.
    confidence : float
        Level of every interval.
    metric_cols : sequence of str
        Metric columns of ``metrics`` to correlate (those present are used).
    correlation_threshold : float or None
        Rater-correlation threshold; ``None`` (default) reports the correlation only.
    ranking_procedure : {"stepdown-maxt", "holm"}
        Procedure of ``ranking`` / ``ranking_new_scenes`` (see
        :func:`~analysis.stats.rank_methods`); ``"holm"`` is the conservative option
        (Holm over all pairs of paired t-tests over scenes, "new scenes" question).
    screen : bool
        Run the screening rules (``False``: ``screening`` is an empty table and
        ``exclude`` has no effect; for a caller that screened already).
    agreement_splits : int
        Random rater splits of the split-half reliability (see :mod:`.agreement`).
    unranked : collection of method labels, optional
        Methods shown with their MOS and intervals but left out of the ranking (hidden
        references, low anchors, baselines). With fewer than two ranked methods the
        ranking tables hold the single entry at rank 1 and no pairs.
    rater, scene, method, score, kind : str
        Column names.

    Returns
    -------
    dict of str to DataFrame
        ``screening``, ``image_mos``, ``method_mos`` (intervals of both questions:
        ``ci_low_test``/``ci_high_test`` "test set", ``ci_low``/``ci_high`` Student-t
        over scenes "new scenes, these raters", ``ci_low_2way``/``ci_high_2way`` "new
        scenes", bootstrap;
        each with its ``estimand_*`` column), ``ranking`` and ``pairwise`` ("test set"),
        ``ranking_new_scenes`` and ``pairwise_new_scenes``, ``p910`` (per output),
        ``p910_method``, ``p910_raters``, ``correlations_method`` and
        ``correlations_image`` (empty when no metrics are given), ``agreement``
        (split-half reliability of the ranking and Krippendorff's alpha), and
        ``method_mos_unscreened`` when ``exclude``. ``screening`` always judges every
        rater.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> votes = pd.DataFrame({"rater": np.repeat(np.arange(10), 6),
    ...                       "scene": np.tile(list("abc"), 20),
    ...                       "method": np.tile(np.repeat(["A", "B"], 3), 10),
    ...                       "score": rng.integers(1, 6, 60), "kind": "rating"})
    >>> sorted(full_report(votes, n_boot=100))[:4]
    ['correlations_image', 'correlations_method', 'image_mos', 'method_mos']
    """
    cols = {"rater": rater, "scene": scene, "method": method, "score": score, "kind": kind}
    votes = prepare_votes(df, **cols)
    p910_all = _p910_from_votes(votes, confidence)
    screening = (
        pd.DataFrame()
        if not screen
        else _screen(
            votes,
            methods_info,
            method,
            scale_min=scale_min,
            scale_max=scale_max,
            correlation_threshold=correlation_threshold,
            correlation_method="pearson",
            min_outputs=3,
            hidden_ref_max=None,
            low_anchor_min=None,
            max_failures_fraction=0.25,
            bt500_ddof=1,
            p910_raters=p910_all.raters,
        )
    )
    result: dict[str, pd.DataFrame] = {}
    p910 = p910_all
    if screen and exclude and screening["excluded"].any() and not screening["excluded"].all():
        result["method_mos_unscreened"] = _method_mos_all(votes, n_boot, seed, confidence)
        votes = prepare_votes(exclude_raters(df, screening, rater=rater), **cols)
        p910 = _p910_from_votes(votes, confidence)
    result["screening"] = screening
    image = _image_table(votes, confidence, scale_min, scale_max)
    result["image_mos"] = IMAGE_MOS.stamp(image, confidence=confidence, scale_min=scale_min, scale_max=scale_max)
    cov = covariances(votes)
    result["method_mos"] = _method_mos_all(votes, n_boot, seed, confidence, cov)
    # each question ranked once, over the ranked methods only
    ranked = votes
    if unranked:
        ranked = select_votes(votes, ~np.isin(np.asarray(votes.methods, dtype=object), list(unranked))[votes.method])
    if ranked.n_methods < 2:
        result["ranking"], result["pairwise"] = single_entry_ranking(list(ranked.methods))
        result["ranking_new_scenes"], result["pairwise_new_scenes"] = result["ranking"], result["pairwise"]
    else:
        # the covariances of the ranked methods, computed once for both questions' rankings
        shared = cov if ranked is votes else covariances(ranked)
        if ranking_procedure == "holm":
            result["ranking"], result["pairwise"] = _rank(ranked, alpha, "t", "method", shared)
            result["ranking_new_scenes"], result["pairwise_new_scenes"] = result["ranking"], result["pairwise"]
        else:
            result["ranking"], result["pairwise"] = _rank_maxt(ranked, alpha, TEST_SET, "method", seed, shared)
            # the two-way cluster covariance is too optimistic with few scenes for max-T
            # (bench/validity: 8-14% false separation); Holm over paired t-tests with the
            # rater part added holds (see .ranking)
            result["ranking_new_scenes"], result["pairwise_new_scenes"] = _rank(ranked, alpha, "t", "method", shared)
    result["p910"], result["p910_raters"] = p910.outputs, p910.raters
    result["p910_method"] = p910_method_table(p910, confidence)
    result["agreement"] = _agreement(votes, n_splits=agreement_splits, seed=seed)

    empty = pd.DataFrame()
    result["correlations_method"] = empty
    result["correlations_image"] = empty
    if metrics is not None and len(metrics):
        present = [c for c in metric_cols if c in metrics.columns]
        per_output = metrics.rename(columns={method: "method", scene: "scene"})
        per_output = per_output.astype({"method": object, "scene": object})
        img = result["image_mos"].astype({"method": object, "scene": object})
        joined = img.merge(per_output[["method", "scene", *present]], on=["method", "scene"])
        result["correlations_image"] = metric_correlations(joined, present, "mos", level="image", confidence=confidence)
        per_method = joined.groupby("method")[present].mean().reset_index()
        meth = result["method_mos"][["method", "mos"]].merge(per_method, on="method")
        result["correlations_method"] = metric_correlations(meth, present, "mos", level="method", confidence=confidence)

    renames = {"rater": rater, "method": method, "scene": scene}
    for key, table in result.items():
        if not table.empty:
            renamed = table.rename(columns={k: v for k, v in renames.items() if k in table})
            renamed.attrs = table.attrs
            result[key] = renamed
    return result
