"""The linear SemanticBM25 probe: features, fit, split and the student hook."""

from __future__ import annotations

import numpy as np
import pytest

from semb25.analysis.probe import (
    compare_student,
    feature_names,
    features_of_pair,
    fit_probe,
    pair_features,
    split_by_query,
)


def test_features_of_pair_by_hand():
    # [CLS] q1 q2 [SEP] d1 d2 [SEP]; one layer, two heads.
    att = np.zeros((1, 2, 7, 7), dtype=np.float32)
    att[0, 0, 1, 4], att[0, 0, 1, 0] = 0.75, 0.25  # q1 -> d1
    att[0, 0, 2, 5], att[0, 0, 2, 6] = 0.5, 0.5  # q2 -> d2 and [SEP]
    att[0, 1, :, 0] = 1.0  # head 1 attends to [CLS] only
    ids = np.array([101, 10, 11, 102, 12, 13, 102])
    token_idf = np.zeros(200)
    token_idf[10], token_idf[11] = 2.0, 4.0
    x = features_of_pair(
        att, ids, np.array([1, 2]), np.array([4, 5]), [(0, 0), (0, 1)], token_idf
    )
    # sum idf; mass per head; idf-weighted mass per head.
    np.testing.assert_allclose(x, [6.0, 1.25, 0.0, 0.75 * 2 + 0.5 * 4, 0.0])
    assert feature_names([(0, 0), (0, 1)]) == [
        "sum_idf",
        "mass_0.0",
        "mass_0.1",
        "idf_x_mass_0.0",
        "idf_x_mass_0.1",
    ]


def test_split_by_query_keeps_each_query_on_one_side():
    qids = [f"q{i // 4}" for i in range(40)]
    test = split_by_query(qids, 0.3, seed=1)
    assert test.sum() == 12
    for q in set(qids):
        sides = {bool(t) for t, qq in zip(test, qids, strict=True) if qq == q}
        assert len(sides) == 1


def test_fit_probe_recovers_an_exactly_linear_score():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 3)) * [1.0, 10.0, 100.0]
    y = x @ [2.0, -0.5, 0.01] + 4.0
    qids = [f"q{i // 6}" for i in range(120)]
    probe = fit_probe(x, y, qids, ["a", "b", "c"])
    np.testing.assert_allclose(probe.weights, [2.0, -0.5, 0.01, 4.0], atol=1e-8)
    assert probe.r2_test == pytest.approx(1.0)
    assert probe.tau_test == pytest.approx(1.0)
    assert probe.test_metrics["kendall_tau_per_query"] == pytest.approx(1.0)


def test_compare_student_scores_a_reversed_student_as_anti_correlated():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 2))
    y = x[:, 0] + 0.1 * rng.normal(size=60)
    probe = fit_probe(x, y, [f"q{i // 5}" for i in range(60)], ["a", "b"])
    result = compare_student(probe, -3.0 * probe.test_teacher_scores + 7.0)
    assert result["student"]["kendall_tau"] == pytest.approx(-1.0)
    assert result["student"]["r2"] == pytest.approx(1.0)  # after the linear map
    with pytest.raises(ValueError, match="held-out pairs"):
        compare_student(probe, np.zeros(3))


def test_real_pair_features_sum_u0_idf_over_query_tokens(
    analysis_teacher, dl19_small, idf_result
):
    qids = list(dl19_small.queries)[:5]
    queries = [dl19_small.queries[q] for q in qids]
    docs = [dl19_small.docs[dl19_small.candidates[q][0][0]] for q in qids]
    token_idf = idf_result.idf_from_u0()
    x, names = pair_features(
        analysis_teacher, queries, docs, [(2, 9), (0, 0)], token_idf, False
    )
    tok = analysis_teacher.tokenizer
    expected = [
        token_idf[tok.encode(q, add_special_tokens=False).ids].sum() for q in queries
    ]
    np.testing.assert_allclose(x[:, 0], expected, rtol=1e-5)
    n_query_tokens = [len(tok.encode(q, add_special_tokens=False).ids) for q in queries]
    assert (x[:, 1:3] >= 0).all()
    assert (x[:, 1:3] <= np.array(n_query_tokens)[:, None] + 1e-4).all()
    assert names[1] == "mass_2.9"
