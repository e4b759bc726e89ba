"""The circuit report: one markdown section and PNG plot per analysis.

Each analysis of ``eval/analyze.py`` writes ``<name>.json`` (its numbers plus
a ``data`` line naming teacher and collection) into the output folder; the
plot functions here draw ``<name>.png`` from the results, and
:func:`write_analysis_md` renders ``analysis.md`` from whichever JSON files are
there, so running one analysis at a time still yields a full report.

Usage::

    plot_idf(result, stats.idf, out / "idf.png")
    write_analysis_md(out)        # -> out / "analysis.md"
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from semb25.analysis.idf_direction import IdfDirection  # noqa: E402
from semb25.analysis.matching_heads import AblationStudy, MatchingHeads  # noqa: E402
from semb25.analysis.probe import LinearProbe  # noqa: E402
from semb25.atomic import atomic_write_bytes, atomic_write_text  # noqa: E402

log = logging.getLogger(__name__)

ANALYSES = ("idf", "heads", "probe", "edit")


def save_figure(fig: plt.Figure, path: str | Path) -> Path:
    """Write ``fig`` as a PNG atomically and close it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())


def plot_idf(
    result: IdfDirection, idf: np.ndarray, include: np.ndarray, path: str | Path
) -> Path:
    """U_0 against IDF (``idf, include: [vocab]``) and |Pearson| per component."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.scatter(result.u[include, 0], idf[include], s=2, alpha=0.2)
    left.set(
        xlabel="U_0 (token coordinate)",
        ylabel="IDF",
        title=f"U_0 vs IDF, Pearson {result.pearson[0]:.3f}",
    )
    k = np.arange(len(result.pearson))
    right.bar(k, np.abs(result.pearson), label="|Pearson| with IDF")
    right.plot(k, result.variance_share / result.variance_share.max(), "k.-",
               label="variance share (scaled)")  # fmt: skip
    right.set(xlabel="singular component i", title="components vs IDF")
    right.legend()
    return save_figure(fig, path)


def plot_heads(
    found: MatchingHeads, ablation: AblationStudy | None, path: str | Path
) -> Path:
    """Heatmap of lift per (layer, head); ablation drops beside it if given."""
    n_panels = 2 if ablation is not None else 1
    fig, axes = plt.subplots(1, n_panels, figsize=(6 * n_panels, 4), squeeze=False)
    image = axes[0, 0].imshow(found.lift, cmap="viridis", aspect="auto")
    axes[0, 0].set(xlabel="head", ylabel="layer", title="match mass / chance")
    fig.colorbar(image, ax=axes[0, 0])
    if ablation is not None:
        drops = ablation.drops("gap")
        random = [ablation.base["gap"] - r["gap"] for r in ablation.random]
        ax = axes[0, 1]
        ax.bar([0], [drops["top"]], color="C3", label=f"top {ablation.k}")
        ax.scatter(np.ones(len(random)), random, color="C0", label="random draws")
        ax.bar([1], [drops["random_mean"]], color="C0", alpha=0.4)
        ax.set_xticks([0, 1], [f"top {ablation.k}", f"random {ablation.k}"])
        ax.set(ylabel="drop in score gap (rel - non-rel)", title="mean ablation")
        ax.axhline(0, color="k", lw=0.5)
    return save_figure(fig, path)


def plot_probe(probe: LinearProbe, path: str | Path) -> Path:
    """Held-out probe predictions against teacher scores."""
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.scatter(probe.test_teacher_scores, probe.test_predictions, s=8, alpha=0.6)
    ax.set(
        xlabel="teacher score",
        ylabel="linear probe",
        title=f"held out: R^2 {probe.r2_test:.3f}, tau {probe.tau_test:.3f}",
    )
    return save_figure(fig, path)


def plot_edit(summary: dict[str, Any], path: str | Path) -> Path:
    """Mean score change per lambda, for matching and query-only pairs."""
    edits = summary["edits"]
    x = np.arange(len(edits))
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.bar(x - 0.2, [e["delta_match"] for e in edits], 0.4, label="passage has it")
    ax.bar(x + 0.2, [e["delta_query_only"] for e in edits], 0.4, label="query only")
    ax.set_xticks(x, [f"x{e['lambda']:g} (IDF {e['idf_moves']})" for e in edits])
    ax.axhline(0, color="k", lw=0.5)
    ax.set(ylabel="mean score change", title=f"editing {summary['token']!r}")
    ax.legend()
    return save_figure(fig, path)


# -- markdown -----------------------------------------------------------------


def _idf_section(r: dict[str, Any]) -> str:
    rows = "\n".join(
        f"| {i} | {r['variance_share'][i]:.4f} | {r['pearson'][i]:+.3f} | "
        f"{r['spearman'][i]:+.3f} |"
        for i in range(min(5, len(r["pearson"])))
    )
    return f"""## 1. The IDF direction

Data: {r["data"]}.

| component | variance share | Pearson with IDF | Spearman with IDF |
|---|---|---|---|
{rows}

Linear probe (least squares with intercept, embeddings -> IDF): R^2
{r["probe_r2_in_sample"]:.3f} in-sample over {r["n_tokens"]} tokens,
{r["probe_r2_held_out"]:.3f} on {r["n_held_out"]} held-out tokens.

![IDF direction](idf.png)

The first left-singular vector of the uncentred token-embedding matrix alone
correlates at {r["pearson"][0]:+.3f} (Pearson) with word-piece IDF, against at most
{max(abs(p) for p in r["pearson"][1:]):.3f} for the next components; a full linear
probe reaches R^2 {r["probe_r2_in_sample"]:.3f}. Correlations use only tokens that
occur in the corpus (df > 0); U_0's sign is fixed so its entries sum < 0 (as
LAPACK returns it), hence the negative correlation.
"""


def _heads_section(r: dict[str, Any]) -> str:
    rows = "\n".join(
        f"| {h['head']} | {h['exact_mass']:.3f} | {h['soft_mass']:.3f} | "
        f"{h['other_mass']:.3f} | {h['lift']:.1f} |"
        for h in r["top_heads"][:10]
    )
    text = f"""## 2. Matching heads

Data: {r["data"]}. Input `[CLS] q [SEP] d [SEP]`; {r["input_note"]}

Chance (uniform attention): exact {r["exact_chance"]:.3f}, soft
{r["soft_chance"]:.3f} ({r["n_neighbours"]} cosine neighbours per token) over
{r["n_query_tokens"]} query tokens of {r["n_pairs"]} pairs.

| head (layer.head) | exact mass | soft mass | other | lift vs chance |
|---|---|---|---|---|
{rows}

![matching heads](heads.png)

The best head sends {r["top_heads"][0]["exact_mass"]:.3f} of a query token's
attention to exact matches in the passage, {r["top_heads"][0]["lift"]:.1f}x what
uniform attention would.
"""
    ablation = r.get("ablation")
    if ablation:
        gap, auc = ablation["drop_gap"], ablation["drop_auc"]
        text += f"""
Causal check (mean ablation, {ablation["n_pairs"]} pairs, relevant = qrel >=
{ablation["rel_threshold"]}): score gap {ablation["base"]["gap"]:.4f} and mean
per-query AUC {ablation["base"]["auc"]:.3f} unablated. Ablating the top
{ablation["k"]} heads ({", ".join(ablation["top_heads"])}) drops the gap by
{gap["top"]:.4f} (AUC by {auc["top"]:.3f}); {len(ablation["random"])} draws of
{ablation["k"]} random other heads drop it by {gap["random_mean"]:.4f} +-
{gap["random_std"]:.4f} (AUC by {auc["random_mean"]:.3f} +- {auc["random_std"]:.3f}).
"""
    return text


def _probe_section(r: dict[str, Any]) -> str:
    tr, te = r["train"], r["test"]
    text = f"""## 3. A linear SemanticBM25 probe

Data: {r["data"]}. Features per pair: sum over query tokens of the U_0 IDF,
of each top head's mass on the passage ({", ".join(r["heads"])}), and of
their products; least squares onto teacher scores, split by query.

| pairs | R^2 | Kendall tau | mean per-query tau |
|---|---|---|---|
| train ({r["n_pairs"] - r["n_test_pairs"]}) | {tr["r2"]:.3f} | \
{tr["kendall_tau"]:.3f} | {tr["kendall_tau_per_query"]:.3f} |
| held out ({r["n_test_pairs"]}, {r["n_test_queries"]} queries) | {te["r2"]:.3f} | \
{te["kendall_tau"]:.3f} | {te["kendall_tau_per_query"]:.3f} |
"""
    if "student" in r:
        st = r["student"]
        text += (
            f"| student, same held-out pairs | {st['r2']:.3f} | "
            f"{st['kendall_tau']:.3f} | {st['kendall_tau_per_query']:.3f} |\n"
        )
    text += f"""
![probe](probe.png)

On held-out queries, {2 * len(r["heads"]) + 1} IDF x attention features explain
R^2 {te["r2"]:.3f} of the teacher's scores (Kendall tau {te["kendall_tau"]:.3f}).
{"Note: " + r["input_note"] if r["input_note"] else ""}
"""
    return text


def _edit_section(r: dict[str, Any]) -> str:
    rows = "\n".join(
        f"| x{e['lambda']:g} | {e['idf_moves']} | {e['delta_match']:+.4f} | "
        f"{e['delta_query_only']:+.4f} | {e['match_minus_query_only']:+.4f} |"
        for e in r["edits"]
    )
    return f"""## 4. Editing along the IDF direction

Data: {r["data"]}. Token {r["token"]!r} (id {r["token_id"]}), component
{r["component"]:+.4f} on the IDF axis; {r["n_match"]} pairs whose passage has
it, {r["n_query_only"]} whose query only has it.

| lambda | IDF moves | mean change, match | mean change, query only | difference |
|---|---|---|---|---|
{rows}

![editing](edit.png)

The circuit predicts a positive difference when the token's IDF moves up and a
negative one when it moves down (the edit scales e_t . u by lambda, so the
direction depends on the component's sign).
"""


SECTIONS: dict[str, Callable[[dict[str, Any]], str]] = {
    "idf": _idf_section,
    "heads": _heads_section,
    "probe": _probe_section,
    "edit": _edit_section,
}


def write_analysis_md(out_dir: str | Path) -> Path:
    """Render ``analysis.md`` from the ``<analysis>.json`` files in ``out_dir``."""
    out_dir = Path(out_dir)
    parts = ["# The BM25 circuit in the teacher\n"]
    for name in ANALYSES:
        path = out_dir / f"{name}.json"
        if path.is_file():
            parts.append(SECTIONS[name](json.loads(path.read_text())))
    if len(parts) == 1:
        raise ValueError(f"{out_dir}: no analysis JSON ({', '.join(ANALYSES)}) found")
    path = atomic_write_text(out_dir / "analysis.md", "\n".join(parts))
    log.info("wrote %s", path)
    return path
