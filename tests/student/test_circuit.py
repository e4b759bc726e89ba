"""The circuit's equation: exact decomposition, BM25 as a special case, both
evaluation forms agreeing, constraints held by parameterisation."""

from __future__ import annotations

from collections import Counter

import jax.numpy as jnp
import numpy as np
import pytest

from semb25.corpus import corpus_stats

QUERIES = [
    "how long is life cycle of flea",
    "cost of interior concrete flooring",
    "what is the definition of declaratory judgment",
]


def test_score_is_sum_of_term_contributions(student, dl19_passages):
    for query in QUERIES:
        for doc in dl19_passages[:10]:
            ex = student.explain(query, doc)
            assert abs(ex.total - ex.score) < 1e-5
            direct = float(student.score([query], [doc])[0])
            assert abs(direct - ex.score) < 1e-4
            assert len(ex.terms) == len(student.tokenizer.token_ids([query])[0])


def _reference_bm25(q_ids, d_ids, idf, k1, b, avgdl):
    """BM25 over word pieces, summed over query-token occurrences."""
    tf = Counter(d_ids.tolist())
    norm = k1 * (1 - b + b * len(d_ids) / avgdl)
    return sum(idf[t] * tf[t] * (k1 + 1) / (tf[t] + norm) for t in q_ids.tolist())


def test_exact_match_head_reproduces_bm25_over_word_pieces(student, dl19_passages):
    tok = student.tokenizer
    docs_ids = tok.token_ids(dl19_passages)
    stats = corpus_stats(
        docs_ids, student.config.vocab_size, student.config.special_ids
    )
    k1, b = 0.9, 0.4
    circuit = student.circuit
    saved = (circuit.k1_raw[...], circuit.b_raw[...])
    # Fix k1 and b of the exact head through the parameterisation's inverse.
    circuit.k1_raw[...] = circuit.k1_raw[...].at[-1].set(np.log(np.expm1(k1)))
    circuit.b_raw[...] = circuit.b_raw[...].at[-1].set(np.log(b / (1 - b)))
    object.__setattr__(circuit.config, "avgdl", stats.avgdl)
    try:
        for query in QUERIES:
            q = tok.token_ids([query])[0]
            qb = tok.pad([q] * len(docs_ids), 32)
            db = tok.pad(docs_ids, 512)
            idf = jnp.asarray(stats.idf[qb.ids])
            out = circuit.contributions(
                jnp.asarray(qb.ids),
                jnp.asarray(qb.mask),
                jnp.asarray(db.ids),
                jnp.asarray(db.mask),
                idf=idf,
                exact_only=True,
            )
            ref = [
                _reference_bm25(q, d, stats.idf, k1, b, stats.avgdl) for d in docs_ids
            ]
            np.testing.assert_allclose(
                np.asarray(out["score"]), ref, atol=1e-5, rtol=1e-5
            )
            assert max(ref) > 1.0  # real matches, not a trivial all-zero case
    finally:
        circuit.k1_raw[...], circuit.b_raw[...] = saved
        object.__setattr__(circuit.config, "avgdl", 80.0)


def test_count_form_equals_positional_form(student, dl19_passages):
    tok = student.tokenizer
    circuit = student.circuit
    q = tok.token_ids([QUERIES[0]])[0]
    docs = tok.token_ids(dl19_passages[:8])
    qb, db = tok.pad([q] * 8, 32), tok.pad(docs, 256)
    positional = circuit.contributions(
        jnp.asarray(qb.ids),
        jnp.asarray(qb.mask),
        jnp.asarray(db.ids),
        jnp.asarray(db.mask),
    )
    vocab = np.unique(np.concatenate([q] + [d[:256] for d in docs]))
    local = {int(t): i for i, t in enumerate(vocab)}
    counts = np.zeros((1, 8, len(vocab)), np.float32)
    for j, d in enumerate(docs):
        for t in d[:256]:
            counts[0, j, local[int(t)]] += 1
    q_local = np.zeros((1, 32), np.int32)
    q_local[0, : len(q)] = [local[int(t)] for t in q]
    by_counts = circuit.contributions_from_counts(
        jnp.asarray(q_local),
        jnp.asarray(qb.mask[:1]),
        jnp.asarray(counts),
        tables=circuit.tables(jnp.asarray(vocab)),
    )
    np.testing.assert_allclose(
        np.asarray(by_counts["score"][0]),
        np.asarray(positional["score"]),
        rtol=1e-5,
        atol=1e-5,
    )


def test_constraints_hold_for_extreme_raw_parameters(student):
    circuit = student.circuit
    saved = (circuit.k1_raw[...], circuit.b_raw[...], circuit.idf_offset[...])
    try:
        circuit.k1_raw[...] = jnp.full_like(saved[0], -50.0)
        circuit.b_raw[...] = jnp.linspace(-60.0, 60.0, saved[1].shape[0])
        circuit.idf_offset[...] = jnp.asarray(-1e3)
        assert np.all(np.asarray(circuit.k1) > 0)
        b = np.asarray(circuit.b)
        assert np.all((b >= 0) & (b <= 1))
        assert np.all(np.asarray(circuit.tables()["idf"]) >= 0)
    finally:
        circuit.k1_raw[...], circuit.b_raw[...], circuit.idf_offset[...] = saved


def test_idf_direction_is_fitted_to_corpus_idf(
    minilm_embeddings, minilm_dir, data_root, student
):
    from semb25 import SemanticBM25
    from semb25.data import load_collection

    docs = load_collection("trec-dl-2019", data_root).docs
    stats = corpus_stats(
        student.tokenizer.token_ids(list(docs.values())),
        student.config.vocab_size,
        student.config.special_ids,
    )
    fitted = SemanticBM25.create(
        minilm_embeddings, minilm_dir / "tokenizer.json", corpus=stats
    )
    seen = stats.df > 0
    learned = np.asarray(fitted.circuit.tables()["idf"])[seen]
    r = np.corrcoef(learned, stats.idf[seen])[0, 1]
    # The rank-1 direction carries IDF (the study's finding; Pearson -0.58 for
    # U_0 on the 16k shared passages): once its sign is fitted the learned idf
    # correlates clearly and positively, far from perfectly.
    assert 0.4 < r < 0.8
    assert fitted.config.avgdl == pytest.approx(stats.avgdl)
