"""The IDF direction of all-MiniLM-L6-v2 against word-piece IDF of real passages."""

from __future__ import annotations

import numpy as np
import pytest

from semb25.analysis.idf_direction import (
    collection_idf,
    idf_direction,
    r_squared,
    special_token_ids,
)


def test_minilm_u0_reproduces_the_published_idf_correlations(idf_result):
    # Target figures given for this checkpoint and corpus (16k MS MARCO passages).
    assert idf_result.pearson[0] == pytest.approx(-0.584, abs=0.005)
    assert idf_result.spearman[0] == pytest.approx(-0.577, abs=0.005)
    assert idf_result.probe_r2_in_sample == pytest.approx(0.677, abs=0.005)


def test_u0_is_the_component_most_correlated_with_idf(idf_result):
    assert np.argmax(np.abs(idf_result.pearson)) == 0
    assert idf_result.variance_share[0] == idf_result.variance_share.max()


def test_held_out_probe_r2_is_below_the_in_sample_ceiling_but_close(idf_result):
    assert idf_result.probe_r2_held_out < idf_result.probe_r2_in_sample
    assert idf_result.probe_r2_held_out > idf_result.probe_r2_in_sample - 0.1


def test_idf_axis_points_to_higher_idf(analysis_teacher, idf_stats, idf_result):
    seen = idf_stats.df > 0
    projection = analysis_teacher.token_embeddings[seen] @ idf_result.idf_axis
    assert np.corrcoef(projection, idf_stats.idf[seen])[0, 1] > 0.5


def test_svd_matches_numpy_svd_up_to_sign():
    rng = np.random.default_rng(3)
    emb = rng.normal(size=(400, 16)) + np.linspace(0, 2, 16)
    idf = emb[:, 0] * 2 + rng.normal(size=400)
    result = idf_direction(emb, idf, np.ones(400, bool), top_k=4)
    u, s, vt = np.linalg.svd(emb, full_matrices=False)
    np.testing.assert_allclose(result.singular_values, s[:4], rtol=1e-9)
    np.testing.assert_allclose(np.abs(result.u), np.abs(u[:, :4]), atol=1e-5)
    np.testing.assert_allclose(result.variance_share, s[:4] ** 2 / (s**2).sum())
    assert (result.u.sum(axis=0) < 0).all()


def test_probe_recovers_an_exactly_linear_idf():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(300, 8))
    idf = emb @ np.arange(1.0, 9.0) + 3.0
    result = idf_direction(emb, idf, np.ones(300, bool), top_k=2)
    assert result.probe_r2_in_sample == pytest.approx(1.0, abs=1e-9)
    assert result.probe_r2_held_out == pytest.approx(1.0, abs=1e-9)
    assert r_squared(idf, np.full(300, idf.mean())) == pytest.approx(0.0)


def test_collection_idf_counts_word_pieces_once_per_passage(analysis_teacher):
    tokenizer = analysis_teacher.tokenizer
    texts = ["the cat sat on the cat mat", "a dog", "the dog barked"]
    stats = collection_idf(tokenizer, texts, show_progress=False)
    the, cat, dog = (tokenizer.token_to_id(w) for w in ("the", "cat", "dog"))
    assert (stats.n_docs, stats.df[the], stats.df[cat], stats.df[dog]) == (3, 2, 1, 2)
    assert stats.df[special_token_ids(tokenizer)].sum() == 0
    # ln(1 + (3 - 1 + 0.5) / (1 + 0.5))
    assert stats.idf[cat] == pytest.approx(np.log(1 + 2.5 / 1.5), rel=1e-6)
