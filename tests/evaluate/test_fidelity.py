"""Fidelity to the teacher on hand-built runs whose values are known by hand."""

import math

import pytest

from semb25.evaluate.fidelity import fidelity, fidelity_per_query, teacher_qrels

TEACHER = {
    "q1": {f"d{i}": float(20 - i) for i in range(12)},  # d0 best ... d11 worst
    "q2": {"a": 3.0, "b": 2.0, "c": 1.0},
}


def test_identical_run_has_perfect_fidelity():
    assert fidelity(TEACHER, TEACHER) == pytest.approx(
        {
            "kendall_tau": 1.0,
            "spearman_rho": 1.0,
            "teacher_nDCG@10": 1.0,
            "top1_agreement": 1.0,
        }
    )


def test_monotone_transform_of_scores_keeps_perfect_fidelity():
    run = {
        q: {d: math.exp(s) - 5 for d, s in docs.items()} for q, docs in TEACHER.items()
    }
    assert fidelity(run, TEACHER)["kendall_tau"] == pytest.approx(1.0)


def test_reversed_run_has_minus_one_correlations_and_no_top1():
    run = {q: {d: -s for d, s in docs.items()} for q, docs in TEACHER.items()}
    result = fidelity(run, TEACHER)
    assert result["kendall_tau"] == pytest.approx(-1.0)
    assert result["spearman_rho"] == pytest.approx(-1.0)
    assert result["top1_agreement"] == 0.0


def test_teacher_qrels_grade_top10_ten_to_one():
    grades = teacher_qrels(TEACHER)["q1"]
    assert grades == {f"d{i}": 10 - i for i in range(10)}


def test_teacher_ndcg_of_swapped_top_two_by_hand():
    # Swap d0 and d1 in q1: gains 9, 10, 8, 7, ... instead of 10, 9, 8, ...
    run = {"q1": dict(TEACHER["q1"], d0=TEACHER["q1"]["d1"] - 0.5)}
    run["q1"]["d1"] = 100.0
    per_query = fidelity_per_query(run, TEACHER)
    ideal = sum((10 - i) / math.log2(i + 2) for i in range(10))
    dcg = 9 + 10 / math.log2(3) + sum((10 - i) / math.log2(i + 2) for i in range(2, 10))
    assert per_query["teacher_nDCG@10"]["q1"] == pytest.approx(dcg / ideal)
    assert per_query["top1_agreement"]["q1"] == 0.0
    # One discordant pair out of C(12, 2) = 66: tau = (65 - 1) / 66.
    assert per_query["kendall_tau"]["q1"] == pytest.approx(64 / 66)


def test_one_swap_of_three_by_hand():
    run = {"q2": {"a": 3.0, "b": 1.0, "c": 2.0}}  # a, c, b
    result = fidelity(run, TEACHER)
    assert result["kendall_tau"] == pytest.approx(1 / 3)  # 2 concordant, 1 discordant
    assert result["spearman_rho"] == pytest.approx(0.5)  # 1 - 6*2 / (3*8)
    assert result["top1_agreement"] == 1.0


def test_only_shared_docs_and_queries_count():
    run = {"q2": {"a": 1.0, "b": 2.0, "zz": 9.0}, "q9": {"a": 1.0}}
    per_query = fidelity_per_query(run, TEACHER)
    assert set(per_query["kendall_tau"]) == {"q2"}
    assert per_query["kendall_tau"]["q2"] == pytest.approx(-1.0)  # a < b vs a > b
    # Top-1 compares whole rankings: the run's first is zz, the teacher's a.
    assert per_query["top1_agreement"]["q2"] == 0.0


def test_constant_scores_leave_correlation_undefined_but_count_elsewhere():
    run = {"q1": {d: 0.0 for d in TEACHER["q1"]}, "q2": {"a": 3.0, "b": 2.0, "c": 1.0}}
    per_query = fidelity_per_query(run, TEACHER)
    assert math.isnan(per_query["kendall_tau"]["q1"])
    assert fidelity(run, TEACHER)["kendall_tau"] == pytest.approx(1.0)  # q2 only
    # Ties break by doc id: d0 first, as the teacher's, so top-1 still agrees.
    assert per_query["top1_agreement"] == {"q1": 1.0, "q2": 1.0}


def test_no_shared_query_raises():
    with pytest.raises(ValueError, match="share no query"):
        fidelity({"x": {"a": 1.0}}, TEACHER)
