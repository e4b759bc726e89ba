"""Report figures: one function per plot, plain arrays in, a matplotlib Figure out.

Figures are built on ``matplotlib.figure.Figure`` (no pyplot, so no global
state or display backend; PNGs are rendered by Agg) and written with
:func:`save_png`, atomically.

The saturation plot draws BM25's term-frequency saturation (Robertson &
Zaragoza 2009) for each student head and for BM25 itself:

    sat(tf) = tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl))

>>> fig = plot_effectiveness(["bm25"], [[0.5]], [[0.4]], [[0.6]], ["nDCG@10"])
>>> save_png(fig, "/tmp/effectiveness.png")  # doctest: +SKIP
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from scipy import stats

from semb25.atomic import atomic_write_bytes

DPI = 120


def save_png(fig: Figure, path: str | os.PathLike) -> Path:
    """Render ``fig`` as PNG and write it to ``path`` atomically."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    return atomic_write_bytes(path, buf.getvalue())


def plot_effectiveness(
    models: Sequence[str],
    means: Sequence[Sequence[float]],
    ci_lo: Sequence[Sequence[float]],
    ci_hi: Sequence[Sequence[float]],
    measures: Sequence[str],
) -> Figure:
    """Grouped bars of each model's mean per measure with 95% CI whiskers.

    Args:
        models: ``[n_models]`` names.
        means, ci_lo, ci_hi: ``[n_models, n_measures]``.
        measures: ``[n_measures]`` names.
    """
    means, lo, hi = (np.asarray(x, dtype=np.float64) for x in (means, ci_lo, ci_hi))
    fig = Figure(figsize=(1.8 + 1.6 * len(measures), 3.6))
    ax = fig.add_subplot()
    width = 0.8 / max(len(models), 1)
    x = np.arange(len(measures))
    for i, model in enumerate(models):
        err = np.stack([means[i] - lo[i], hi[i] - means[i]])
        ax.bar(
            x + (i - (len(models) - 1) / 2) * width,
            means[i],
            width,
            yerr=err,
            capsize=3,
            label=model,
        )
    ax.set_xticks(x, measures)
    ax.set_ylim(0, 1)
    ax.set_ylabel("mean over queries (95% CI)")
    ax.legend(fontsize="small")
    ax.grid(axis="y", alpha=0.3)
    return fig


def pareto_front(speed: Sequence[float], quality: Sequence[float]) -> list[int]:
    """Indices of the points no other point beats on both speed and quality,
    ordered by speed."""
    order = np.argsort(-np.asarray(speed, dtype=np.float64), kind="stable")
    front, best = [], -np.inf
    for i in order:
        if quality[i] > best:
            front.append(int(i))
            best = quality[i]
    return front


def plot_efficiency(
    models: Sequence[str], pairs_per_second: Sequence[float], ndcg: Sequence[float]
) -> Figure:
    """Throughput (log x) against nDCG@10, with the efficiency frontier.

    Args:
        models, pairs_per_second, ndcg: ``[n_models]`` each.
    """
    fig = Figure(figsize=(5, 3.6))
    ax = fig.add_subplot()
    ax.scatter(pairs_per_second, ndcg, zorder=3)
    for name, x, y in zip(models, pairs_per_second, ndcg, strict=True):
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, 4))
    front = pareto_front(pairs_per_second, ndcg)
    ax.plot(
        [pairs_per_second[i] for i in front],
        [ndcg[i] for i in front],
        "--",
        alpha=0.6,
        label="efficiency frontier",
    )
    ax.set_xscale("log")
    ax.margins(x=0.2, y=0.15)
    ax.set_xlabel("query-document pairs per second (log)")
    ax.set_ylabel("nDCG@10")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return fig


def plot_idf(
    learned: Sequence[float],
    corpus: Sequence[float],
    tokens: Sequence[str],
    n_labels: int = 8,
) -> Figure:
    """Learned IDF against corpus IDF, one point per token, with Pearson r.

    Args:
        learned, corpus, tokens: ``[n_tokens]`` each. The ``n_labels`` tokens
            farthest from the least-squares line are labelled.
    """
    x = np.asarray(corpus, dtype=np.float64)
    y = np.asarray(learned, dtype=np.float64)
    r = stats.pearsonr(x, y).statistic if x.size >= 2 else np.nan
    fig = Figure(figsize=(4.6, 4))
    ax = fig.add_subplot()
    ax.scatter(x, y, s=10, alpha=0.6)
    if x.size >= 2 and np.ptp(x) > 0:
        slope, intercept = np.polyfit(x, y, 1)
        grid = np.linspace(x.min(), x.max(), 2)
        ax.plot(grid, slope * grid + intercept, "r-", lw=1)
        for i in np.argsort(-np.abs(y - (slope * x + intercept)))[:n_labels]:
            ax.annotate(tokens[i], (x[i], y[i]), fontsize="x-small")
    ax.set_xlabel("corpus IDF  ln(1 + (N - df + .5) / (df + .5))")
    ax.set_ylabel("learned IDF")
    ax.set_title(f"Pearson r = {r:.3f}")
    ax.grid(alpha=0.3)
    return fig


def saturation(
    tf: np.ndarray, k1: float, b: float, dl: float, avgdl: float
) -> np.ndarray:
    """BM25 saturation ``tf (k1 + 1) / (tf + k1 (1 - b + b dl / avgdl))``."""
    return tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl))


def plot_saturation(
    k1: Sequence[float],
    b: Sequence[float],
    avgdl: float,
    bm25_k1: float = 0.9,
    bm25_b: float = 0.4,
    tf_max: float = 10.0,
) -> Figure:
    """Saturated tf against tf for each student head and BM25, at dl = avgdl
    and at dl = 2 avgdl.

    Args:
        k1, b: ``[n_heads]`` learned parameters.
        avgdl: average document length the heads normalise by.
    """
    tf = np.linspace(0, tf_max, 200)
    fig = Figure(figsize=(9, 3.6))
    for col, factor in enumerate((1.0, 2.0)):
        ax = fig.add_subplot(1, 2, col + 1)
        for h, (k, bb) in enumerate(zip(k1, b, strict=True)):
            ax.plot(
                tf,
                saturation(tf, k, bb, factor * avgdl, avgdl),
                lw=1,
                alpha=0.8,
                label=f"head {h} (k1={k:.2f}, b={bb:.2f})",
            )
        ax.plot(
            tf,
            saturation(tf, bm25_k1, bm25_b, factor * avgdl, avgdl),
            "k--",
            lw=2,
            label=f"BM25 (k1={bm25_k1}, b={bm25_b})",
        )
        ax.set_title(f"dl = {factor:g} x avgdl")
        ax.set_xlabel("(soft) term frequency")
        ax.set_ylabel("saturated tf")
        ax.grid(alpha=0.3)
    ax.legend(fontsize="x-small", loc="lower right")
    return fig


def plot_heatmap(
    query_tokens: Sequence[str],
    doc_tokens: Sequence[str],
    weights: Sequence[Sequence[float]],
    title: str = "",
) -> Figure:
    """Query x document soft-match weights.

    Args:
        query_tokens: ``[n_q]``; doc_tokens: ``[n_d]``; weights: ``[n_q, n_d]``.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (len(query_tokens), len(doc_tokens)):
        raise ValueError(
            f"heatmap weights: expected shape "
            f"{(len(query_tokens), len(doc_tokens))}, got {w.shape}"
        )
    fig = Figure(
        figsize=(min(2 + 0.16 * len(doc_tokens), 24), 1.4 + 0.3 * len(query_tokens))
    )
    ax = fig.add_subplot()
    image = ax.imshow(w, aspect="auto", cmap="viridis")
    ax.set_yticks(range(len(query_tokens)), query_tokens, fontsize="small")
    ax.set_xticks(range(len(doc_tokens)), doc_tokens, rotation=90, fontsize="xx-small")
    ax.set_title(title, fontsize="small")
    fig.colorbar(image, ax=ax, fraction=0.03)
    return fig


def plot_training(
    step: Sequence[float],
    loss: Sequence[float],
    val_step: Sequence[float],
    val_ndcg: Sequence[float],
    val_kendall_tau: Sequence[float],
) -> Figure:
    """Training loss (left) and validation nDCG@10 / Kendall tau (right).

    Args:
        step, loss: ``[n_logged]``; val_step, val_ndcg, val_kendall_tau: ``[n_val]``.
    """
    fig = Figure(figsize=(9, 3.4))
    ax = fig.add_subplot(1, 2, 1)
    ax.plot(step, loss, lw=1)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.grid(alpha=0.3)
    ax = fig.add_subplot(1, 2, 2)
    ax.plot(val_step, val_ndcg, "o-", label="nDCG@10")
    ax.plot(val_step, val_kendall_tau, "s-", label="Kendall tau vs teacher")
    ax.set_xlabel("step")
    ax.set_ylabel("validation")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return fig


def plot_axioms(
    models: Sequence[str], axioms: Sequence[str], shares: Sequence[Sequence[float]]
) -> Figure:
    """Grouped bars: share of axiom-probing pairs each model ranks as the axiom
    predicts.

    Args:
        models: ``[n_models]``; axioms: ``[n_axioms]``;
            shares: ``[n_models, n_axioms]``.
    """
    s = np.asarray(shares, dtype=np.float64)
    fig = Figure(figsize=(1.8 + 1.5 * len(axioms), 3.4))
    ax = fig.add_subplot()
    width = 0.8 / max(len(models), 1)
    x = np.arange(len(axioms))
    for i, model in enumerate(models):
        ax.bar(x + (i - (len(models) - 1) / 2) * width, s[i], width, label=model)
    ax.set_xticks(x, axioms)
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of pairs satisfying the axiom")
    ax.legend(fontsize="small")
    ax.grid(axis="y", alpha=0.3)
    return fig
