"""The optional contextualiser: identity at the start, every form agrees."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

QUERY = "how long is life cycle of flea"


@pytest.fixture(scope="module")
def contextual(minilm_embeddings, minilm_dir):
    """A one-layer contextual student whose context layer is no longer zero."""
    from semb25 import SemanticBM25
    from semb25.student.config import StudentConfig

    cfg = StudentConfig(context_layers=1)
    model = SemanticBM25.create(minilm_embeddings, minilm_dir / "tokenizer.json", cfg)
    rng = np.random.default_rng(0)
    layer = model.circuit.contextualiser.layers[0]
    layer.out.kernel[...] = jnp.asarray(
        rng.normal(scale=0.05, size=layer.out.kernel.shape), jnp.float32
    )
    model.refresh()
    return model


def test_untrained_contextualiser_is_the_identity(
    student, minilm_embeddings, minilm_dir, dl19_passages
):
    from semb25 import SemanticBM25
    from semb25.student.config import StudentConfig

    fresh = SemanticBM25.create(
        minilm_embeddings,
        minilm_dir / "tokenizer.json",
        StudentConfig(context_layers=2),
    )
    docs = dl19_passages[:12]
    np.testing.assert_allclose(
        fresh.score([QUERY] * len(docs), docs),
        student.score([QUERY] * len(docs), docs),
        rtol=1e-5,
        atol=1e-5,
    )


def test_context_changes_scores_and_explanations_still_sum(
    contextual, student, dl19_passages
):
    docs = dl19_passages[:12]
    scores = contextual.score([QUERY] * len(docs), docs)
    assert np.all(np.isfinite(scores))
    assert np.abs(scores - student.score([QUERY] * len(docs), docs)).max() > 1e-3
    for doc, score in zip(docs[:4], scores[:4], strict=True):
        ex = contextual.explain(QUERY, doc)
        total = sum(t.contribution for t in ex.terms) + ex.bias
        assert abs(total - ex.score) < 1e-5
        assert abs(ex.score - score) < 1e-4


def test_contextual_training_form_matches_the_reranking_form(contextual, dl19_passages):
    """contributions_for_lists (training) = contributions_for_query (rerank)."""
    from semb25.distill.examples import BatchSampler, QueryGroup

    tok = contextual.tokenizer
    docs = dl19_passages[:6]
    group = QueryGroup(
        qid="q",
        query_tokens=tok.token_ids([QUERY])[0],
        doc_ids=[f"d{i}" for i in range(len(docs))],
        doc_tokens=tok.token_ids(docs),
        teacher=np.arange(len(docs), dtype=np.float32),
    )
    cfg = contextual.config
    sampler = BatchSampler(
        [group], 1, 8, cfg.max_query_len, cfg.max_doc_len, 0, 0.0, 1.0,
        positional=True,
    )  # fmt: skip
    batch = next(sampler.full_lists())
    out = contextual.circuit.contributions_for_lists(
        jnp.asarray(batch["q_tokens"]),
        jnp.asarray(batch["q_mask"]),
        jnp.asarray(batch["d_tokens"]),
        jnp.asarray(batch["d_mask"]),
    )
    np.testing.assert_allclose(
        np.asarray(out["score"])[0, : len(docs)],
        contextual.score([QUERY] * len(docs), docs),
        rtol=1e-5,
        atol=1e-5,
    )
    with pytest.raises(ValueError, match="contextual circuit needs token positions"):
        contextual.circuit.contributions_from_counts(
            jnp.asarray(batch["q_ids"]),
            jnp.asarray(batch["q_mask"]),
            jnp.asarray(batch["counts"]),
            tables=contextual.circuit.tables(),
        )


def test_contextual_index_stores_keys_and_refuses_other_weights(
    contextual, dl19_passages, tmp_path
):
    from semb25 import DocIndex

    docs = {f"d{i}": p for i, p in enumerate(dl19_passages[:16])}
    index = DocIndex.build(contextual, docs)
    assert index.keys is not None
    assert index.keys.shape == (len(index.tokens), 4, 32)
    index.save(tmp_path / "ctx.npz")
    loaded = DocIndex.load(tmp_path / "ctx.npz")
    by_text = contextual.rerank(QUERY, docs)
    by_index = contextual.rerank(QUERY, list(docs), index=loaded)
    assert [d for d, _ in by_index] == [d for d, _ in by_text]
    np.testing.assert_allclose(
        [s for _, s in by_index], [s for _, s in by_text], rtol=1e-5, atol=1e-5
    )

    # Keys belong to the weights they were computed with.
    layer = contextual.circuit.contextualiser.layers[0]
    saved = layer.out.kernel[...]
    layer.out.kernel[...] = saved * 2
    contextual.refresh()
    try:
        with pytest.raises(ValueError, match="student with other weights"):
            contextual.rerank(QUERY, list(docs), index=loaded)
    finally:
        layer.out.kernel[...] = saved
        contextual.refresh()


def test_contextual_student_saves_and_loads(contextual, dl19_passages, tmp_path):
    from semb25 import SemanticBM25

    contextual.save_pretrained(tmp_path / "s")
    loaded = SemanticBM25.from_pretrained(tmp_path / "s")
    assert loaded.config.context_layers == 1
    docs = dl19_passages[:5]
    np.testing.assert_allclose(
        loaded.score([QUERY] * 5, docs), contextual.score([QUERY] * 5, docs)
    )
    s = loaded.summary()
    assert s["context_layers"] == 1
    assert s["flops_per_pair"] > contextual.summary()["flops_per_pair"] // 2


@pytest.mark.parametrize("bad", [{"context_layers": 3}, {"context_dim": 30}])
def test_context_config_is_checked(bad):
    from semb25.student.config import StudentConfig

    with pytest.raises(ValueError, match="student config: context_"):
        StudentConfig(**bad)
