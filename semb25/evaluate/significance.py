"""Significance of differences between runs, and confidence intervals of means.

* Paired two-sided t-test (``scipy.stats.ttest_rel``) on the per-query values
  of one measure for two runs, over the queries both have.
* Holm–Bonferroni step-down correction over a family of m tests (Holm 1979):
  sort p ascending, ``p_holm(i) = max_{j <= i} min(1, (m - j + 1) p(j))``;
  it controls the family-wise error rate without assuming independence.
* 95% confidence interval of a mean: Student-t (``mean ± t_{0.975, n-1} *
  sd / sqrt(n)``) by default, or a percentile bootstrap (``scipy.stats.bootstrap``,
  fixed seed).

>>> holm([0.01, 0.04, 0.03])
[0.03, 0.06, 0.06]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats


def paired_ttest(a: Mapping[str, float], b: Mapping[str, float]) -> tuple[float, float]:
    """Paired two-sided t-test of per-query values ``a`` vs ``b`` (``{qid: value}``).

    Returns ``(t, p)``; t > 0 means ``a`` is higher on average. Identical
    values on every query give ``(0.0, 1.0)`` (scipy would return nan).
    """
    qids = [qid for qid in a if qid in b]
    if len(qids) < 2:
        raise ValueError(f"paired_ttest: expected >= 2 shared queries, got {len(qids)}")
    x = np.array([a[q] for q in qids], dtype=np.float64)
    y = np.array([b[q] for q in qids], dtype=np.float64)
    diff = x - y
    if np.all(diff == diff[0]):
        # Constant differences: no variance; zero difference means no evidence.
        if diff[0] == 0:
            return 0.0, 1.0
        return math.copysign(math.inf, diff[0]), 0.0
    result = stats.ttest_rel(x, y)
    return float(result.statistic), float(result.pvalue)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values, in the input order."""
    p = np.asarray(pvalues, dtype=np.float64)
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(scaled)
    return [round(float(v), 15) for v in adjusted]


def confidence_interval(
    values: Sequence[float],
    level: float = 0.95,
    method: str = "t",
    n_resamples: int = 10_000,
    seed: int = 0,
) -> tuple[float, float]:
    """Confidence interval of the mean of ``values`` (``[n_queries]``).

    Args:
        values: per-query values.
        level: coverage, e.g. 0.95.
        method: ``"t"`` (Student-t) or ``"bootstrap"`` (percentile).
        n_resamples, seed: bootstrap settings.

    Returns:
        ``(lo, hi)``; ``(mean, mean)`` if all values are equal.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.size < 2:
        raise ValueError(f"confidence_interval: expected >= 2 values, got {x.size}")
    mean = float(x.mean())
    if np.ptp(x) == 0:
        return mean, mean
    if method == "t":
        half = stats.t.ppf(0.5 + level / 2, df=x.size - 1) * stats.sem(x)
        return mean - float(half), mean + float(half)
    if method == "bootstrap":
        res = stats.bootstrap(
            (x,),
            np.mean,
            confidence_level=level,
            n_resamples=n_resamples,
            method="percentile",
            rng=np.random.default_rng(seed),
        )
        return float(res.confidence_interval.low), float(res.confidence_interval.high)
    raise ValueError(
        f"confidence_interval: method expected 't' or 'bootstrap', got {method!r}"
    )
