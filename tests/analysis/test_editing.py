"""Editing a token along the IDF axis of all-MiniLM-L6-v2."""

from __future__ import annotations

import numpy as np
import pytest

from semb25.analysis.editing import (
    choose_edit_token,
    edit_embedding,
    edited_teacher,
    editing_study,
)


def test_edit_scales_only_the_tokens_component_along_the_axis():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(6, 4)).astype(np.float32)
    axis = np.array([3.0, 0.0, 4.0, 0.0])  # not unit: normalised inside
    edited = edit_embedding(emb, 2, axis, 2.5)
    unit = axis / 5.0
    assert edited[2] @ unit == pytest.approx(2.5 * (emb[2] @ unit), rel=1e-5)
    residual = lambda e: e - (e @ unit) * unit  # noqa: E731
    np.testing.assert_allclose(residual(edited[2]), residual(emb[2]), atol=1e-6)
    np.testing.assert_array_equal(np.delete(edited, 2, 0), np.delete(emb, 2, 0))


def test_edited_teacher_changes_only_pairs_that_contain_the_token(
    analysis_teacher, idf_result
):
    tok = analysis_teacher.tokenizer
    token_id = tok.token_to_id("coffee")
    queries = ["how much caffeine is in coffee", "what is the capital of france"]
    docs = ["Coffee has about 95 mg of caffeine per cup.", "Paris is in France."]
    before = analysis_teacher.score(queries, docs, show_progress=False)
    same = edited_teacher(analysis_teacher, token_id, idf_result.idf_axis, 1.0)
    np.testing.assert_allclose(same.score(queries, docs, show_progress=False), before)
    edited = edited_teacher(analysis_teacher, token_id, idf_result.idf_axis, 4.0)
    after = edited.score(queries, docs, show_progress=False)
    assert after[1] == before[1]
    assert abs(after[0] - before[0]) > 1e-4


@pytest.mark.slow
def test_editing_study_splits_pairs_into_matches_and_query_only(
    analysis_teacher, dl19_small, idf_result, idf_stats
):
    token_id = choose_edit_token(analysis_teacher.tokenizer, dl19_small, idf_stats.idf)
    assert analysis_teacher.tokenizer.id_to_token(token_id).isalpha()
    study = editing_study(
        analysis_teacher,
        dl19_small,
        token_id,
        idf_result.idf_axis,
        lambdas=(0.0, 3.0),
        max_pairs=10,
        show_progress=False,
    )
    assert study.n_match >= 3 and study.n_query_only >= 1
    assert study.n_match + study.n_query_only == 10
    moves = [e["idf_moves"] for e in study.edits]
    assert moves == (["down", "up"] if study.component > 0 else ["up", "down"])
    for e in study.edits:
        assert e["match_minus_query_only"] == pytest.approx(
            e["delta_match"] - e["delta_query_only"]
        )
