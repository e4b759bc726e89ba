"""A linear SemanticBM25 probe: how much of the teacher's score is IDF x soft-TF.

If the teacher computes a semantic BM25 (Lu, Chen & Eickhoff 2025,
arXiv:2502.04645), its score should be close to a linear function of, per
query token i, an IDF read off the IDF direction and the attention mass its
matching heads put on the passage, summed over query tokens. Per pair::

    idf_i   = a U_0[id_i] + c         (the IDF that U_0 predicts, idf_direction.py)
    m_h(i)  = sum_{j in d} a_h[i, j]  (head h's mass from query token i onto d)
    x       = [sum_i idf_i,  sum_i m_h(i) for h in H,  sum_i idf_i m_h(i) for h in H]
    score  ~= w^T x + b               (least squares on training queries)

H are the top matching heads (matching_heads.py). Pairs are split by query
(seeded); reported on the held-out pairs: R^2, Kendall tau over all of them,
and the mean per-query Kendall tau. :func:`compare_student` puts a trained
student's scores for the same held-out pairs beside the probe.

Known limitation: for a bi-encoder teacher the attention masses come from the
concatenated pair ``[CLS] q [SEP] d [SEP]``, which it never saw in training,
while the scores it is fitted to come from separate encodings.

Usage::

    x, names = pair_features(teacher, queries, docs, heads, idf_dir.idf_from_u0())
    probe = fit_probe(x, teacher.score(queries, docs), qids, names)
    probe.r2_test, probe.tau_test
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.stats

from semb25.analysis.idf_direction import fit_linear, predict_linear, r_squared
from semb25.analysis.matching_heads import Head, attention_chunks
from semb25.teacher.teacher import Teacher

log = logging.getLogger(__name__)


def features_of_pair(
    attention: np.ndarray,
    ids: np.ndarray,
    query_positions: np.ndarray,
    doc_positions: np.ndarray,
    heads: Sequence[Head],
    token_idf: np.ndarray,
) -> np.ndarray:
    """``[1 + 2 |heads|]`` features of one pair (see the module docstring).

    ``attention: [layers, heads, L, L]``, ``ids: [L]``, ``token_idf: [vocab]``.
    """
    layers = np.array([h[0] for h in heads], dtype=np.int64)
    head_ix = np.array([h[1] for h in heads], dtype=np.int64)
    idf = token_idf[ids[query_positions]]  # [nq]
    # Mass from each query token onto the doc tokens, for each chosen head.
    rows = attention[layers, head_ix][:, query_positions]  # [H, nq, L]
    mass = rows[:, :, doc_positions].sum(axis=-1)  # [H, nq]
    return np.concatenate([[idf.sum()], mass.sum(axis=1), mass @ idf])


def feature_names(heads: Sequence[Head]) -> list[str]:
    """Names of the columns :func:`features_of_pair` returns."""
    tags = [f"{layer}.{head}" for layer, head in heads]
    return ["sum_idf", *(f"mass_{t}" for t in tags), *(f"idf_x_mass_{t}" for t in tags)]


def pair_features(
    teacher: Teacher,
    queries: Sequence[str],
    docs: Sequence[str],
    heads: Sequence[Head],
    token_idf: np.ndarray,
    show_progress: bool = True,
) -> tuple[np.ndarray, list[str]]:
    """``(features [n_pairs, 1 + 2 |heads|], names)`` from the teacher's attention."""
    rows = []
    for pairs, token_ids in attention_chunks(
        teacher, queries, docs, show_progress=show_progress
    ):
        for pair, ids in zip(pairs, token_ids, strict=True):
            rows.append(
                features_of_pair(
                    pair["attention"],
                    ids,
                    np.asarray(pair["query_positions"]),
                    np.asarray(pair["doc_positions"]),
                    heads,
                    token_idf,
                )
            )
    return np.stack(rows), feature_names(heads)


def split_by_query(
    qids: Sequence[str], test_fraction: float = 0.3, seed: int = 0
) -> np.ndarray:
    """``[n_pairs]`` bool, True for pairs of the held-out queries (seeded)."""
    unique = list(dict.fromkeys(qids))
    if len(unique) < 2:
        raise ValueError(f"split_by_query: need >= 2 queries, got {len(unique)}")
    rng = np.random.default_rng(seed)
    n_test = min(len(unique) - 1, max(1, round(test_fraction * len(unique))))
    held_out = {unique[i] for i in rng.permutation(len(unique))[:n_test]}
    return np.array([q in held_out for q in qids])


def agreement(
    predicted: np.ndarray, teacher_scores: np.ndarray, qids: Sequence[str]
) -> dict[str, float]:
    """R^2 of ``predicted [n]`` as a prediction of ``teacher_scores [n]``, Kendall
    tau over all pairs, and mean per-query Kendall tau."""
    qids = np.asarray(qids)
    per_query = []
    for q in dict.fromkeys(qids):
        rows = qids == q
        if rows.sum() > 1:
            tau = scipy.stats.kendalltau(predicted[rows], teacher_scores[rows])[0]
            if np.isfinite(tau):
                per_query.append(tau)
    return {
        "r2": r_squared(teacher_scores, predicted),
        "kendall_tau": float(scipy.stats.kendalltau(predicted, teacher_scores)[0]),
        "kendall_tau_per_query": float(np.mean(per_query)) if per_query else np.nan,
    }


@dataclasses.dataclass
class LinearProbe:
    """A fitted probe and its held-out figures.

    Attributes:
        weights: ``[n_features + 1]`` least-squares weights (intercept last).
        feature_names: the feature columns.
        test: ``[n_pairs]`` bool, the held-out pairs.
        train_metrics, test_metrics: :func:`agreement` on each side.
        test_teacher_scores, test_predictions: ``[n_test]`` on held-out pairs.
        test_qids: ``[n_test]`` their query ids.
    """

    weights: np.ndarray
    feature_names: list[str]
    test: np.ndarray
    train_metrics: dict[str, float]
    test_metrics: dict[str, float]
    test_teacher_scores: np.ndarray
    test_predictions: np.ndarray
    test_qids: list[str]

    @property
    def r2_test(self) -> float:
        return self.test_metrics["r2"]

    @property
    def tau_test(self) -> float:
        return self.test_metrics["kendall_tau"]

    def summary(self) -> dict[str, Any]:
        return {
            "n_pairs": int(self.test.size),
            "n_test_pairs": int(self.test.sum()),
            "n_test_queries": len(set(self.test_qids)),
            "train": self.train_metrics,
            "test": self.test_metrics,
            "weights": dict(
                zip(
                    [*self.feature_names, "intercept"],
                    self.weights.tolist(),
                    strict=True,
                )
            ),
        }


def fit_probe(
    features: np.ndarray,
    teacher_scores: np.ndarray,
    qids: Sequence[str],
    names: Sequence[str],
    test_fraction: float = 0.3,
    seed: int = 0,
) -> LinearProbe:
    """Least squares of ``teacher_scores [n]`` on ``features [n, f]`` (plus an
    intercept) over training queries; metrics on held-out queries' pairs.

    Features are standardised on the training pairs first (only for a
    well-conditioned solve; predictions are unchanged by it).
    """
    features = np.asarray(features, dtype=np.float64)
    teacher_scores = np.asarray(teacher_scores, dtype=np.float64)
    test = split_by_query(qids, test_fraction, seed)
    qids_arr = np.asarray(qids)

    # Standardise with training statistics, fit, and predict both sides.
    mu = features[~test].mean(axis=0)
    sd = np.where(features[~test].std(axis=0) > 0, features[~test].std(axis=0), 1.0)
    z = (features - mu) / sd
    weights_z = fit_linear(z[~test], teacher_scores[~test])
    predicted = predict_linear(weights_z, z)
    # Back to the raw feature scale: w = w_z / sd, b = b_z - sum(w_z mu / sd).
    weights = np.append(
        weights_z[:-1] / sd, weights_z[-1] - (weights_z[:-1] * mu / sd).sum()
    )

    probe = LinearProbe(
        weights=weights,
        feature_names=list(names),
        test=test,
        train_metrics=agreement(
            predicted[~test], teacher_scores[~test], qids_arr[~test]
        ),
        test_metrics=agreement(predicted[test], teacher_scores[test], qids_arr[test]),
        test_teacher_scores=teacher_scores[test],
        test_predictions=predicted[test],
        test_qids=qids_arr[test].tolist(),
    )
    log.info(
        "linear SemanticBM25 probe: held-out R^2 %.3f, Kendall tau %.3f "
        "(%d pairs of %d queries)",
        probe.r2_test,
        probe.tau_test,
        int(test.sum()),
        len(set(probe.test_qids)),
    )
    return probe


def compare_student(probe: LinearProbe, student_scores: np.ndarray) -> dict[str, Any]:
    """The probe's and a student's agreement with the teacher on the probe's
    held-out pairs. ``student_scores: [n_test]`` in the order of
    ``probe.test_qids``. The student's R^2 is that of its scores after the best
    linear map onto the teacher's (squared Pearson), as its scale is its own."""
    student_scores = np.asarray(student_scores, dtype=np.float64)
    if student_scores.shape != probe.test_teacher_scores.shape:
        raise ValueError(
            f"compare_student: student_scores has shape {student_scores.shape}, "
            f"expected {probe.test_teacher_scores.shape} (the held-out pairs)"
        )
    # Taus on the raw scores; R^2 after the calibrating linear map.
    student = agreement(student_scores, probe.test_teacher_scores, probe.test_qids)
    slope, intercept = np.polyfit(student_scores, probe.test_teacher_scores, 1)
    calibrated = slope * student_scores + intercept
    student["r2"] = r_squared(probe.test_teacher_scores, calibrated)
    return {"probe": probe.test_metrics, "student": student}
