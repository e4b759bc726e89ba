"""Matching heads: attention from query tokens onto their matches in the passage.

Lu, Chen & Eickhoff 2025 (arXiv:2502.04645, Sec. 4) find attention heads whose
query-token rows put their mass on the passage tokens that match the query
token, exactly or semantically: the "soft term frequency" of BM25's semantic
variant. For each layer l, head h and query token i of a pair of length L::

    exact_{l,h}(i) = sum_{j in d, id_j == id_i}        a_{l,h}[i, j]
    soft_{l,h}(i)  = sum_{j in d, id_j in N_k(id_i)}   a_{l,h}[i, j]
    other_{l,h}(i) = 1 - exact - soft
    chance(i)      = (#exact + #soft matches of i in d) / L    (uniform attention)
    lift_{l,h}     = mean_i (exact + soft) / mean_i chance(i)

where ``N_k(t)`` are the k nearest tokens of t by cosine in the token-embedding
matrix (t itself and special tokens excluded) and means run over every query
token of every pair. Heads are ranked by lift.

Input: the pair ``[CLS] q [SEP] d [SEP]``. For a cross-encoder that is its
native input. For a bi-encoder (all-MiniLM-L6-v2 encodes query and passage
separately) it is an out-of-distribution probe: its heads never saw a pair in
training, so "matching" there means the heads that would match if they could.

Causal check: mean-ablate heads (their context vector replaced at every
position by its mean over the scored inputs, see ``semb25/teacher/bert.py``)
and measure the teacher's separation of relevant from non-relevant candidates
(pooled mean score gap and mean per-query AUC), for the top-k heads and for k
heads drawn at random from the rest.

Heads the study names in ``cross-encoder/ms-marco-MiniLM-L-12-v2``
(layer.head, 0-based): 0.8, 1.7, 2.1, 3.1, 4.9, 5.7, 5.9, 6.3, 6.5, 7.9, 8.0,
8.1, 8.8 (:data:`PAPER_HEADS_MINILM_L12`); expect :func:`matching_heads` to
rank these high on that checkpoint.

Usage::

    found = matching_heads(teacher, queries, docs)
    found.ranked()[:5]                       # [(layer, head), ...]
    ablation = ablation_study(teacher, queries, docs, qids, qrels, found.ranked())
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import scipy.stats
from flax import nnx
from tqdm.auto import tqdm

from semb25.analysis.idf_direction import special_token_ids
from semb25.teacher.bert import bert_forward
from semb25.teacher.checkpoint import load_checkpoint
from semb25.teacher.teacher import Teacher, bucket_length
from semb25.teacher.tokenization import encode_pairs, encode_texts

log = logging.getLogger(__name__)

PAPER_HEADS_MINILM_L12 = (
    (0, 8), (1, 7), (2, 1), (3, 1), (4, 9), (5, 7), (5, 9),
    (6, 3), (6, 5), (7, 9), (8, 0), (8, 1), (8, 8),
)  # fmt: skip
CONTEXT_BATCH = 16
ATTENTION_CHUNK = 32  # pairs per Teacher.attentions call
Head = tuple[int, int]


def soft_neighbours(
    token_embeddings: np.ndarray,
    token_ids: Sequence[int],
    k: int = 10,
    exclude_ids: Sequence[int] = (),
) -> dict[int, np.ndarray]:
    """``{id: [k] ids}``: each id's k nearest tokens by cosine, itself excluded.

    ``token_embeddings: [vocab, hidden]``; ``exclude_ids`` are never neighbours.
    """
    emb = np.asarray(token_embeddings, dtype=np.float32)
    unit = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    ids = np.unique(np.asarray(token_ids, dtype=np.int64))
    cosine = unit[ids] @ unit.T  # [n_ids, vocab]
    cosine[np.arange(len(ids)), ids] = -np.inf
    cosine[:, np.asarray(exclude_ids, dtype=np.int64)] = -np.inf
    top = np.argpartition(-cosine, k, axis=1)[:, :k]
    return {int(t): np.sort(row) for t, row in zip(ids, top, strict=True)}


@dataclasses.dataclass
class MatchingHeads:
    """Attention masses per head, averaged over all query tokens of all pairs.

    Attributes:
        exact_mass, soft_mass, other_mass: ``[layers, heads]`` mean mass from a
            query token onto exact matches, soft matches, everything else.
        exact_chance, soft_chance: the same masses under uniform attention.
        n_pairs, n_query_tokens, n_neighbours: what the means ran over.
    """

    exact_mass: np.ndarray
    soft_mass: np.ndarray
    other_mass: np.ndarray
    exact_chance: float
    soft_chance: float
    n_pairs: int
    n_query_tokens: int
    n_neighbours: int

    @property
    def lift(self) -> np.ndarray:
        """``[layers, heads]`` (exact + soft mass) / its chance value."""
        return (self.exact_mass + self.soft_mass) / (
            self.exact_chance + self.soft_chance
        )

    def ranked(self) -> list[Head]:
        """All (layer, head) pairs, highest lift first."""
        order = np.argsort(-self.lift, axis=None, kind="stable")
        n_heads = self.lift.shape[1]
        return [(int(i // n_heads), int(i % n_heads)) for i in order]

    def summary(self, top: int = 10) -> dict[str, Any]:
        """JSON-ready numbers, with the top heads listed first."""
        rows = [
            {
                "head": f"{layer}.{head}",
                "exact_mass": float(self.exact_mass[layer, head]),
                "soft_mass": float(self.soft_mass[layer, head]),
                "other_mass": float(self.other_mass[layer, head]),
                "lift": float(self.lift[layer, head]),
            }
            for layer, head in self.ranked()[:top]
        ]
        return {
            "n_pairs": self.n_pairs,
            "n_query_tokens": self.n_query_tokens,
            "n_neighbours": self.n_neighbours,
            "exact_chance": self.exact_chance,
            "soft_chance": self.soft_chance,
            "top_heads": rows,
            "exact_mass": self.exact_mass.tolist(),
            "soft_mass": self.soft_mass.tolist(),
            "lift": self.lift.tolist(),
        }


def match_masks(
    ids: np.ndarray,
    query_positions: np.ndarray,
    doc_positions: np.ndarray,
    neighbours: Mapping[int, np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """``(exact, soft)``: ``[n_query_tokens, L]`` bool masks of each query token's
    exact and soft matches among the doc positions of one pair (``ids: [L]``)."""
    in_doc = np.zeros(len(ids), dtype=bool)
    in_doc[doc_positions] = True
    q_ids = ids[query_positions]
    exact = (ids[None, :] == q_ids[:, None]) & in_doc[None, :]
    soft = np.stack([np.isin(ids, neighbours[int(t)]) for t in q_ids]) & in_doc
    return exact, soft & ~exact


def matching_masses(
    pairs: Sequence[Mapping[str, Any]],
    token_ids: Sequence[np.ndarray],
    neighbours: Mapping[int, np.ndarray],
    n_neighbours: int,
) -> MatchingHeads:
    """Average exact / soft / other masses over ``Teacher.attentions`` outputs.

    ``pairs[i]["attention"]: [layers, heads, L, L]``; ``token_ids[i]: [L]``.
    """
    exact_sum = soft_sum = total = None
    exact_chance = soft_chance = 0.0
    n_tokens = 0
    for pair, ids in zip(pairs, token_ids, strict=True):
        q_pos = np.asarray(pair["query_positions"])
        att = pair["attention"][:, :, q_pos, :]  # [layers, heads, nq, L]
        exact, soft = match_masks(ids, q_pos, pair["doc_positions"], neighbours)
        # Per head: mass onto the masks, summed over this pair's query tokens.
        e = np.einsum("lhqk,qk->lh", att, exact.astype(np.float32))
        s = np.einsum("lhqk,qk->lh", att, soft.astype(np.float32))
        t = att.sum(axis=(2, 3))
        exact_sum = e if exact_sum is None else exact_sum + e
        soft_sum = s if soft_sum is None else soft_sum + s
        total = t if total is None else total + t
        exact_chance += exact.sum() / len(ids)
        soft_chance += soft.sum() / len(ids)
        n_tokens += len(q_pos)
    if not n_tokens:
        raise ValueError("matching_masses: the pairs have no query tokens")
    return MatchingHeads(
        exact_mass=exact_sum / n_tokens,
        soft_mass=soft_sum / n_tokens,
        other_mass=(total - exact_sum - soft_sum) / n_tokens,
        exact_chance=float(exact_chance / n_tokens),
        soft_chance=float(soft_chance / n_tokens),
        n_pairs=len(pairs),
        n_query_tokens=n_tokens,
        n_neighbours=n_neighbours,
    )


def merge_masses(parts: Sequence[MatchingHeads]) -> MatchingHeads:
    """Combine per-chunk results into one, weighting by query-token counts."""
    weights = np.array([p.n_query_tokens for p in parts], dtype=np.float64)
    weights /= weights.sum()

    def mean(field: str):
        return sum(w * getattr(p, field) for w, p in zip(weights, parts, strict=True))

    return MatchingHeads(
        exact_mass=mean("exact_mass"),
        soft_mass=mean("soft_mass"),
        other_mass=mean("other_mass"),
        exact_chance=float(mean("exact_chance")),
        soft_chance=float(mean("soft_chance")),
        n_pairs=sum(p.n_pairs for p in parts),
        n_query_tokens=sum(p.n_query_tokens for p in parts),
        n_neighbours=parts[0].n_neighbours,
    )


def attention_chunks(
    teacher: Teacher,
    queries: Sequence[str],
    docs: Sequence[str],
    chunk: int = ATTENTION_CHUNK,
    show_progress: bool = True,
) -> Iterator[tuple[list[dict[str, Any]], list[np.ndarray]]]:
    """``Teacher.attentions`` of the pairs, ``chunk`` pairs at a time (maps are
    ``[layers, heads, L, L]`` each: never hold them all), with each pair's
    token ids ``[L]``."""
    tokenizer = teacher.tokenizer
    for start in tqdm(
        range(0, len(queries), chunk),
        desc="attention maps",
        unit="chunk",
        disable=not show_progress,
    ):
        pairs = teacher.attentions(
            queries[start : start + chunk],
            docs[start : start + chunk],
            show_progress=False,
        )
        ids = [np.array([tokenizer.token_to_id(t) for t in p["tokens"]]) for p in pairs]
        yield pairs, ids


def matching_heads(
    teacher: Teacher,
    queries: Sequence[str],
    docs: Sequence[str],
    n_neighbours: int = 10,
    show_progress: bool = True,
) -> MatchingHeads:
    """Exact / soft / other attention masses of every head of ``teacher`` over the
    pairs ``(queries[i], docs[i])`` fed as ``[CLS] q [SEP] d [SEP]``."""
    if teacher.kind == "bi":
        log.info(
            "teacher %s is a bi-encoder: the [CLS] q [SEP] d [SEP] input of the "
            "head analysis is out of distribution for it",
            teacher.name,
        )
    excluded = special_token_ids(teacher.tokenizer)
    neighbours: dict[int, np.ndarray] = {}
    parts = []
    for pairs, token_ids in attention_chunks(
        teacher, queries, docs, show_progress=show_progress
    ):
        # Neighbours only for query tokens that occur: a [n, vocab] cosine block.
        q_ids = {
            int(t)
            for p, ids in zip(pairs, token_ids, strict=True)
            for t in ids[p["query_positions"]]
        }
        new = sorted(q_ids - neighbours.keys())
        if new:
            neighbours.update(
                soft_neighbours(teacher.token_embeddings, new, n_neighbours, excluded)
            )
        parts.append(matching_masses(pairs, token_ids, neighbours, n_neighbours))
    found = merge_masses(parts)
    best = found.ranked()[0]
    log.info(
        "matching heads over %d pairs: best %d.%d, lift %.1f (exact %.3f, soft "
        "%.3f vs chance %.3f, %.3f)",
        found.n_pairs,
        *best,
        found.lift[best],
        found.exact_mass[best],
        found.soft_mass[best],
        found.exact_chance,
        found.soft_chance,
    )
    return found


# -- causal check: mean ablation ----------------------------------------------


def mean_head_contexts(
    teacher: Teacher,
    queries: Sequence[str],
    docs: Sequence[str],
    show_progress: bool = True,
) -> np.ndarray:
    """``[layers, heads, head_dim]`` mean context vector of every head over the
    inputs the teacher scores for these pairs (pairs for a cross-encoder, the
    distinct texts for a bi-encoder), averaged over real tokens."""
    if teacher.kind == "bi":
        encoded = encode_texts(
            teacher.tokenizer,
            list(dict.fromkeys([*queries, *docs])),
            teacher.max_length,
        )
    else:
        encoded = encode_pairs(teacher.tokenizer, queries, docs, teacher.max_length)

    # The teacher does not return contexts: run its checkpoint's forward here.
    checkpoint = load_checkpoint(teacher.checkpoint_dir, kind=teacher.kind)
    graphdef, state = nnx.split(checkpoint.model)
    total, count = None, 0
    starts = range(0, len(encoded.input_ids), CONTEXT_BATCH)
    for start in tqdm(
        starts, desc="mean head contexts", unit="batch", disable=not show_progress
    ):
        rows = encoded.input_ids[start : start + CONTEXT_BATCH]
        length = bucket_length(max(map(len, rows)), teacher.bucket, teacher.max_length)
        ids = np.zeros((CONTEXT_BATCH, length), dtype=np.int32)
        types = np.zeros_like(ids)
        mask = np.zeros_like(ids)
        for r, row in enumerate(rows):
            ids[r, : len(row)] = row
            types[r, : len(row)] = encoded.token_type_ids[start + r]
            mask[r, : len(row)] = 1
        mask[len(rows) :, 0] = 1  # padding rows attend to something: no NaN
        out = bert_forward(graphdef, state, ids, types, mask, return_contexts=True)
        contexts = np.asarray(out["contexts"])  # [batch, layers, L, heads, hd]
        summed = np.einsum("blthd,bt->lhd", contexts[: len(rows)], mask[: len(rows)])
        total = summed if total is None else total + summed
        count += int(mask[: len(rows)].sum())
    return (total / count).astype(np.float32)


def separation(
    scores: np.ndarray,
    qids: Sequence[str],
    doc_ids: Sequence[str],
    qrels: Mapping[str, Mapping[str, int]],
    rel_threshold: int = 2,
) -> dict[str, float]:
    """How well ``scores [n]`` of pairs ``(qids[i], doc_ids[i])`` separate relevant
    (qrel >= rel_threshold) from other candidates (unjudged count as not relevant).

    Returns ``gap`` (pooled mean relevant score - mean other score), ``auc`` (mean
    over queries that have both kinds of the probability a relevant candidate
    outscores another, ties half) and ``n_queries`` (those queries).
    """
    scores = np.asarray(scores, dtype=np.float64)
    relevant = np.array(
        [
            qrels.get(q, {}).get(d, 0) >= rel_threshold
            for q, d in zip(qids, doc_ids, strict=True)
        ]
    )
    if relevant.all() or not relevant.any():
        raise ValueError(
            "separation: need both relevant and non-relevant pairs at qrel >= "
            f"{rel_threshold}"
        )
    gap = float(scores[relevant].mean() - scores[~relevant].mean())
    by_query: dict[str, list[int]] = {}
    for i, q in enumerate(qids):
        by_query.setdefault(q, []).append(i)
    aucs = []
    for rows in by_query.values():
        rel, s = relevant[rows], scores[rows]
        if rel.any() and not rel.all():
            u = scipy.stats.mannwhitneyu(s[rel], s[~rel]).statistic
            aucs.append(u / (rel.sum() * (~rel).sum()))
    auc = float(np.mean(aucs)) if aucs else float("nan")
    return {"gap": gap, "auc": auc, "n_queries": len(aucs)}


@dataclasses.dataclass
class AblationStudy:
    """Separation with no heads, the top-k matching heads and k random heads
    mean-ablated (``random``: one entry per draw)."""

    k: int
    top_heads: list[Head]
    random_heads: list[list[Head]]
    base: dict[str, float]
    top: dict[str, float]
    random: list[dict[str, float]]

    def drops(self, key: str = "gap") -> dict[str, float]:
        """Drop in separation (base - ablated) for top heads and random draws."""
        rand = np.array([self.base[key] - r[key] for r in self.random])
        return {
            "top": self.base[key] - self.top[key],
            "random_mean": float(rand.mean()),
            "random_std": float(rand.std(ddof=1)) if len(rand) > 1 else 0.0,
        }

    def summary(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "top_heads": [f"{layer}.{head}" for layer, head in self.top_heads],
            "random_heads": [[f"{a}.{b}" for a, b in d] for d in self.random_heads],
            "base": self.base,
            "top": self.top,
            "random": self.random,
            "drop_gap": self.drops("gap"),
            "drop_auc": self.drops("auc"),
        }


def ablation_mask(heads: Sequence[Head], n_layers: int, n_heads: int) -> np.ndarray:
    """``[layers, heads]`` bool, True at the given (layer, head) pairs."""
    mask = np.zeros((n_layers, n_heads), dtype=bool)
    for layer, head in heads:
        mask[layer, head] = True
    return mask


def ablation_study(
    teacher: Teacher,
    queries: Sequence[str],
    docs: Sequence[str],
    qids: Sequence[str],
    doc_ids: Sequence[str],
    qrels: Mapping[str, Mapping[str, int]],
    ranked_heads: Sequence[Head],
    k: int = 5,
    n_random: int = 3,
    seed: int = 0,
    rel_threshold: int = 2,
    show_progress: bool = True,
) -> AblationStudy:
    """Mean-ablate the first ``k`` of ``ranked_heads`` and ``n_random`` draws of k
    heads from the rest; score the pairs each time and compare separation."""
    means = mean_head_contexts(teacher, queries, docs, show_progress)
    shape = (teacher.n_layers, teacher.n_heads)

    def separation_with(heads: Sequence[Head] | None) -> dict[str, float]:
        ablation = None if heads is None else (ablation_mask(heads, *shape), means)
        scores = teacher.score(
            queries, docs, show_progress=show_progress, head_ablation=ablation
        )
        return separation(scores, qids, doc_ids, qrels, rel_threshold)

    # Random controls come from the heads outside the top k, on a fixed seed.
    top = [tuple(h) for h in ranked_heads[:k]]
    rest = [tuple(h) for h in ranked_heads[k:]]
    rng = np.random.default_rng(seed)
    draws = [
        [rest[i] for i in rng.choice(len(rest), k, replace=False)]
        for _ in range(n_random)
    ]

    study = AblationStudy(
        k=k,
        top_heads=top,
        random_heads=draws,
        base=separation_with(None),
        top=separation_with(top),
        random=[separation_with(d) for d in draws],
    )
    drop = study.drops("gap")
    log.info(
        "ablating the top %d heads drops the score gap by %.4f; %d random draws "
        "by %.4f +- %.4f",
        k,
        drop["top"],
        n_random,
        drop["random_mean"],
        drop["random_std"],
    )
    return study
