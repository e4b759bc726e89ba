"""Matching heads of all-MiniLM-L6-v2 on real DL19 pairs, and their bookkeeping."""

from __future__ import annotations

import numpy as np
import pytest

from semb25.analysis.matching_heads import (
    ablation_mask,
    ablation_study,
    match_masks,
    matching_heads,
    matching_masses,
    separation,
    soft_neighbours,
)


@pytest.fixture(scope="module")
def five_pairs(dl19_small):
    """The top BM25 candidate of each of the first five DL19 queries."""
    qids = list(dl19_small.queries)[:5]
    doc_ids = [dl19_small.candidates[q][0][0] for q in qids]
    return (
        [dl19_small.queries[q] for q in qids],
        [dl19_small.docs[d] for d in doc_ids],
    )


@pytest.fixture(scope="module")
def found(analysis_teacher, five_pairs):
    return matching_heads(analysis_teacher, *five_pairs, show_progress=False)


def test_best_head_puts_several_times_chance_mass_on_exact_matches(found):
    best = found.ranked()[0]
    assert found.exact_mass[best] > 3 * found.exact_chance
    assert found.lift[best] > 3
    # Most heads are not matching heads: the median lift is far below the best.
    assert np.median(found.lift) < found.lift[best] / 2


def test_exact_soft_and_other_mass_sum_to_one_per_head(found):
    total = found.exact_mass + found.soft_mass + found.other_mass
    np.testing.assert_allclose(total, 1.0, atol=1e-4)
    assert found.lift.shape == (6, 12)


def test_soft_neighbours_are_the_top_cosine_tokens(analysis_teacher):
    emb = analysis_teacher.token_embeddings
    cat = analysis_teacher.tokenizer.token_to_id("cat")
    found = soft_neighbours(emb, [cat, cat], k=5, exclude_ids=[0, 100, 101, 102, 103])
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    cosine = unit @ unit[cat]
    cosine[[cat, 0, 100, 101, 102, 103]] = -np.inf
    assert list(found) == [cat]
    assert set(found[cat]) == set(np.argsort(-cosine)[:5])
    words = {analysis_teacher.tokenizer.id_to_token(int(i)) for i in found[cat]}
    assert "cats" in words


def test_match_masks_split_exact_from_soft_matches_in_the_doc_only():
    # [CLS] 7 8 [SEP] 7 9 5 [SEP]: query tokens 7, 8; 9 is a neighbour of 7.
    ids = np.array([101, 7, 8, 102, 7, 9, 5, 102])
    exact, soft = match_masks(
        ids,
        np.array([1, 2]),
        np.array([4, 5, 6]),
        {7: np.array([9, 8]), 8: np.array([3])},
    )
    assert exact.nonzero() == (np.array([0]), np.array([4]))
    assert soft.nonzero() == (np.array([0]), np.array([5]))  # 8 is in q, not d


def test_uniform_attention_has_lift_one_and_focused_attention_its_inverse():
    ids = np.array([101, 7, 8, 102, 7, 9, 5, 5, 102])
    q_pos, d_pos = np.array([1, 2]), np.array([4, 5, 6, 7])
    att = np.full((1, 2, 9, 9), 1 / 9, dtype=np.float32)
    att[0, 1, 1] = 0.0
    att[0, 1, 1, 4] = 1.0  # head 1: token 7 attends only to its exact match
    pair = {"attention": att, "query_positions": q_pos, "doc_positions": d_pos}
    found = matching_masses([pair], [ids], {7: np.array([9]), 8: np.array([1])}, 1)
    assert found.exact_chance == pytest.approx(0.5 / 9)
    assert found.soft_chance == pytest.approx(0.5 / 9)
    assert found.lift[0, 0] == pytest.approx(1.0, rel=1e-5)
    assert found.exact_mass[0, 1] == pytest.approx(0.5)  # 1 of 2 query tokens
    assert found.lift[0, 1] == pytest.approx(0.5 / (1 / 9), rel=1e-5)
    assert found.ranked()[0] == (0, 1)


def test_separation_gap_and_auc_by_hand():
    qrels = {"a": {"d1": 3, "d2": 1}, "b": {"d4": 2}}
    scores = np.array([3.0, 1.0, 2.0, 5.0, 5.0])
    qids = ["a", "a", "a", "b", "b"]
    docs = ["d1", "d2", "d3", "d4", "d5"]
    result = separation(scores, qids, docs, qrels)
    assert result["gap"] == pytest.approx(4.0 - (1.0 + 2.0 + 5.0) / 3)
    assert result["auc"] == pytest.approx((1.0 + 0.5) / 2)  # a: 1, b: a tie
    assert result["n_queries"] == 2


def test_ablation_mask_marks_exactly_the_given_heads():
    mask = ablation_mask([(0, 3), (5, 11)], 6, 12)
    assert mask.sum() == 2 and mask[0, 3] and mask[5, 11]


@pytest.mark.slow
def test_ablating_heads_changes_separation_and_no_ablation_matches_plain_scores(
    analysis_teacher, dl19_small, found
):
    qids = list(dl19_small.queries)[:2]
    pairs = [(q, d) for q in qids for d, _ in dl19_small.candidates[q][:6]]
    queries = [dl19_small.queries[q] for q, _ in pairs]
    docs = [dl19_small.docs[d] for _, d in pairs]
    study = ablation_study(
        analysis_teacher,
        queries,
        docs,
        [q for q, _ in pairs],
        [d for _, d in pairs],
        dl19_small.qrels,
        found.ranked(),
        k=5,
        n_random=2,
        show_progress=False,
    )
    plain = analysis_teacher.score(queries, docs, show_progress=False)
    expected = separation(
        plain, [q for q, _ in pairs], [d for _, d in pairs], dl19_small.qrels
    )
    assert study.base["gap"] == pytest.approx(expected["gap"], abs=1e-6)
    assert study.top["gap"] != pytest.approx(study.base["gap"], abs=1e-4)
    assert not set(study.top_heads) & {h for d in study.random_heads for h in d}
