"""The IDF direction: how much of corpus IDF sits on one axis of the token embeddings.

Lu, Chen & Eickhoff 2025 ("Cross-Encoder Rediscovers a Semantic Variant of
BM25", arXiv:2502.04645, Sec. 5) find that the first left-singular vector of a
MiniLM token-embedding matrix tracks IDF. With the (uncentred) embedding
matrix ``E: [vocab, hidden]``::

    E = U diag(s) V^T                        (thin SVD, s descending)
    share_i   = s_i^2 / sum_j s_j^2          (variance share of component i)
    corr_i    = Pearson / Spearman(U[:, i], idf)   over the included tokens
    probe     = least squares idf ~ E w + c       (the linear ceiling), R^2

``idf(t) = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))`` (:mod:`semb25.corpus`),
with df counted on word-piece ids of the collection's passages tokenised by
the teacher's tokenizer without special tokens, and special tokens never
counted.

Conventions (these reproduce, on all-MiniLM-L6-v2 with IDF over the passages
of the shared ``dev-sample`` and ``trec-dl-2019`` folders, Pearson -0.585,
Spearman -0.578 and in-sample probe R^2 0.679):

* included tokens: only those with ``df > 0`` in the corpus. Tokens the corpus
  never shows all share the maximum IDF, a tie of ~9,000 tokens that says
  nothing about the embedding; including them moves Pearson to about -0.71.
* sign: a singular vector's sign is arbitrary. We orient each ``U[:, i]`` so
  that its entries sum to a negative number, which is what LAPACK returns for
  MiniLM (and what the paper reports), so U_0 correlates *negatively* with IDF.
  :attr:`IdfDirection.idf_axis` is the unit embedding-space vector along which
  IDF *increases* (``sign(corr_0) * V_0``): use it for editing, not ``V_0``.
* probe R^2: in-sample over all included tokens (the ceiling), and on a
  held-out random token split (fit on the rest; seeded).

Usage::

    stats = collection_idf(teacher.tokenizer, coll.docs.values())
    result = idf_direction(teacher.token_embeddings, stats.idf, stats.df > 0)
    result.pearson[0], result.probe_r2_in_sample
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from typing import Any

import numpy as np
import scipy.stats
import tokenizers
from tqdm.auto import tqdm

from semb25.corpus import CorpusStats, corpus_stats
from semb25.text import clean_text

log = logging.getLogger(__name__)

TOKENIZE_BATCH = 1024


def special_token_ids(tokenizer: tokenizers.Tokenizer) -> list[int]:
    """Ids of the tokenizer's special tokens (``[CLS]``, ``[SEP]``, ``[PAD]``...)."""
    ids = set()
    for token in tokenizer.get_added_tokens_decoder().values():
        if token.special:
            ids.add(tokenizer.token_to_id(token.content))
    ids.discard(None)
    return sorted(ids)


def collection_idf(
    tokenizer: tokenizers.Tokenizer,
    texts: Iterable[str],
    show_progress: bool = True,
) -> CorpusStats:
    """df / IDF over word pieces of ``texts`` (one document each), specials excluded.

    Texts are tokenised with ``add_special_tokens=False`` and no truncation.
    """
    texts = [clean_text(t) for t in texts]
    excluded = special_token_ids(tokenizer)
    ids: list[list[int]] = []
    # Batches keep the Rust tokenizer parallel while a bar can advance.
    for start in tqdm(
        range(0, len(texts), TOKENIZE_BATCH),
        desc="tokenising corpus",
        unit="batch",
        disable=not show_progress,
    ):
        batch = texts[start : start + TOKENIZE_BATCH]
        ids.extend(
            e.ids for e in tokenizer.encode_batch(batch, add_special_tokens=False)
        )
    stats = corpus_stats(ids, tokenizer.get_vocab_size(), excluded)
    log.info(
        "corpus IDF: %d documents, avgdl %.1f word pieces, %d distinct tokens",
        stats.n_docs,
        stats.avgdl,
        int((stats.df > 0).sum()),
    )
    return stats


@dataclasses.dataclass
class IdfDirection:
    """The SVD of the embedding matrix set against IDF.

    Attributes:
        singular_values: ``[top_k]`` s_i, descending.
        variance_share: ``[top_k]`` s_i^2 / sum of all s^2.
        pearson, spearman: ``[top_k]`` correlation of U[:, i] with IDF over the
            included tokens.
        u: ``[vocab, top_k]`` left-singular vectors (sign as in the docstring).
        v: ``[top_k, hidden]`` right-singular vectors (rows, same signs).
        probe_r2_in_sample, probe_r2_held_out: R^2 of the least-squares probe
            ``idf ~ E w + c``, in-sample and on the held-out token split.
        n_tokens: number of included tokens; n_held_out: size of the split.
        u0_idf_fit: ``(slope, intercept)`` of idf ~ U[:, 0] over included tokens.
    """

    singular_values: np.ndarray
    variance_share: np.ndarray
    pearson: np.ndarray
    spearman: np.ndarray
    u: np.ndarray
    v: np.ndarray
    probe_r2_in_sample: float
    probe_r2_held_out: float
    n_tokens: int
    n_held_out: int
    u0_idf_fit: tuple[float, float]

    @property
    def idf_axis(self) -> np.ndarray:
        """``[hidden]`` unit vector along which IDF increases: sign(corr_0) V_0."""
        return np.sign(self.pearson[0]) * self.v[0]

    def idf_from_u0(self) -> np.ndarray:
        """``[vocab]`` the IDF that U_0 alone predicts (the linear fit on U_0)."""
        slope, intercept = self.u0_idf_fit
        return slope * self.u[:, 0] + intercept

    def summary(self) -> dict[str, Any]:
        """JSON-ready numbers (no per-token arrays)."""
        return {
            "n_tokens": self.n_tokens,
            "n_held_out": self.n_held_out,
            "singular_values": self.singular_values.tolist(),
            "variance_share": self.variance_share.tolist(),
            "pearson": self.pearson.tolist(),
            "spearman": self.spearman.tolist(),
            "probe_r2_in_sample": self.probe_r2_in_sample,
            "probe_r2_held_out": self.probe_r2_held_out,
            "u0_idf_fit": list(self.u0_idf_fit),
        }


def r_squared(y: np.ndarray, y_hat: np.ndarray) -> float:
    """Coefficient of determination 1 - SS_res / SS_tot (``y, y_hat: [n]``)."""
    ss_tot = float(((y - y.mean()) ** 2).sum())
    return 1.0 - float(((y - y_hat) ** 2).sum()) / ss_tot


def fit_linear(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares weights ``[d + 1]`` of ``y ~ [x, 1]`` (x: [n, d], y: [n])."""
    design = np.c_[x, np.ones(len(x))]
    weights, *_ = np.linalg.lstsq(design, y, rcond=None)
    return weights


def predict_linear(weights: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``[x, 1] @ weights`` for ``x: [n, d]`` -> ``[n]``."""
    return x @ weights[:-1] + weights[-1]


def idf_direction(
    token_embeddings: np.ndarray,
    idf: np.ndarray,
    include: np.ndarray,
    top_k: int = 10,
    held_out_fraction: float = 0.2,
    seed: int = 0,
) -> IdfDirection:
    """SVD of ``token_embeddings [vocab, hidden]`` against ``idf [vocab]``.

    ``include [vocab]`` bool marks the tokens that enter correlations and the
    probe (the convention is ``df > 0``). All rows enter the SVD.
    """
    emb = np.asarray(token_embeddings, dtype=np.float64)
    idf = np.asarray(idf, dtype=np.float64)
    include = np.asarray(include, dtype=bool)
    if emb.shape[0] != idf.shape[0] or include.shape != idf.shape:
        raise ValueError(
            f"idf_direction: embeddings {emb.shape}, idf {idf.shape} and include "
            f"{include.shape} must share the vocab axis"
        )
    top_k = min(top_k, emb.shape[1])

    # SVD via the [hidden, hidden] Gram matrix (E^T E = V S^2 V^T): the same
    # factors as a thin SVD in float64, in a fraction of the time.
    eigvals, eigvecs = np.linalg.eigh(emb.T @ emb)
    order = np.argsort(eigvals)[::-1]
    s = np.sqrt(np.clip(eigvals[order], 0.0, None))
    v = eigvecs[:, order[:top_k]].T  # [top_k, hidden]
    u = emb @ v.T / s[:top_k]  # [vocab, top_k]
    # Fix signs (sum of each U column negative) so results are portable.
    signs = np.where(u.sum(axis=0) > 0, -1.0, 1.0)
    u, v = u * signs, v * signs[:, None]
    share = s**2 / (s**2).sum()

    # Correlations of each component with IDF over the included tokens.
    y = idf[include]
    pearson = np.array(
        [scipy.stats.pearsonr(u[include, i], y)[0] for i in range(top_k)]
    )
    spearman = np.array(
        [scipy.stats.spearmanr(u[include, i], y)[0] for i in range(top_k)]
    )
    slope, intercept = np.polyfit(u[include, 0], y, 1)

    # The linear probe: in-sample ceiling, then a seeded held-out token split.
    x = emb[include]
    r2_in = r_squared(y, predict_linear(fit_linear(x, y), x))
    shuffled = np.random.default_rng(seed).permutation(len(y))
    n_test = int(round(held_out_fraction * len(y)))
    test, train = shuffled[:n_test], shuffled[n_test:]
    weights = fit_linear(x[train], y[train])
    r2_out = r_squared(y[test], predict_linear(weights, x[test]))

    log.info(
        "IDF direction: U_0 Pearson %.3f, Spearman %.3f; probe R^2 %.3f "
        "(held-out %.3f) over %d tokens",
        pearson[0],
        spearman[0],
        r2_in,
        r2_out,
        len(y),
    )
    return IdfDirection(
        singular_values=s[:top_k],
        variance_share=share[:top_k],
        pearson=pearson,
        spearman=spearman,
        u=u.astype(np.float32),
        v=v.astype(np.float32),
        probe_r2_in_sample=r2_in,
        probe_r2_held_out=r2_out,
        n_tokens=int(include.sum()),
        n_held_out=n_test,
        u0_idf_fit=(float(slope), float(intercept)),
    )
