"""Axiom cases on real DL19 passages and MiniLM's real vocabulary and embeddings."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest
import safetensors.numpy
from tokenizers import Tokenizer

from semb25.bm25 import BM25Index
from semb25.data import load_collection
from semb25.evaluate.axioms import (
    AXIOMS,
    AxiomCase,
    BM25TextScorer,
    axiom_agreement,
    axioms_for_models,
    bm25_terms,
    build_axiom_cases,
)

N_PAIRS = 12


@pytest.fixture(scope="module")
def embeddings(minilm_dir) -> np.ndarray:
    weights = safetensors.numpy.load_file(minilm_dir / "model.safetensors")
    return weights["embeddings.word_embeddings.weight"]  # [vocab, hidden]


@pytest.fixture(scope="module")
def tokenizer(minilm_dir) -> Tokenizer:
    tok = Tokenizer.from_file(str(minilm_dir / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    return tok


@pytest.fixture(scope="module")
def dl19(data_root):
    return load_collection("trec-dl-2019", data_root=data_root)


@pytest.fixture(scope="module")
def cases(dl19, embeddings, tokenizer):
    return build_axiom_cases(
        dl19, embeddings, tokenizer, n_pairs=N_PAIRS, seed=0, show_progress=False
    )


def word_pieces(tokenizer: Tokenizer, text: str) -> int:
    return len(tokenizer.encode(text, add_special_tokens=False).ids)


def cosine(embeddings: np.ndarray, tokenizer: Tokenizer, a: str, b: str) -> float:
    x, y = (embeddings[tokenizer.token_to_id(w)] for w in (a, b))
    return float(x @ y / np.linalg.norm(x) / np.linalg.norm(y))


def changed_words(better: str, worse: str) -> tuple[str, str]:
    """The one letter run that differs, as ``(in better, in worse)``."""
    b, w = (re.findall(r"[A-Za-z]+|[^A-Za-z]+", t) for t in (better, worse))
    assert len(b) == len(w)
    diff = [(x, y) for x, y in zip(b, w, strict=True) if x != y]
    assert len(diff) == 1, diff
    return diff[0]


def test_every_axiom_gets_the_requested_number_of_cases(cases):
    assert {axiom: len(rows) for axiom, rows in cases.items()} == {
        axiom: N_PAIRS for axiom in AXIOMS
    }


def test_text_scorer_equals_bm25_index_on_unperturbed_passages(dl19):
    # Two independent BM25 implementations over the same candidate statistics.
    index = BM25Index.from_collection(dl19, show_progress=False)
    scorer = BM25TextScorer.from_collection(dl19)
    for qid in list(dl19.queries)[:3]:
        doc_ids = [doc_id for doc_id, _ in dl19.candidates[qid][:20]]
        expected = index.score(dl19.queries[qid], doc_ids)
        got = scorer(
            [dl19.queries[qid]] * len(doc_ids), [dl19.docs[d] for d in doc_ids]
        )
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
        assert got.max() > 0


def test_text_scorer_matches_the_bm25_formula_on_a_tiny_collection():
    scorer = BM25TextScorer.from_texts(
        ["fleas bite dogs", "cats sleep", "fleas fleas jump high"], k1=1.2, b=0.75
    )
    # N=3, df(fleas)=2, |d|=2, avgdl=3: idf * tf / (tf + k1 (1 - b + b |d|/avgdl)).
    idf = np.log1p((3 - 2 + 0.5) / (2 + 0.5))
    expected = idf * 1 / (1 + 1.2 * (0.25 + 0.75 * 2 / 3))
    assert scorer(["fleas"], ["fleas run"])[0] == pytest.approx(expected)
    assert scorer(["unicorns"], ["unicorns run"])[0] == 0.0


def test_bm25_satisfies_tfc1_and_lnc_and_ties_on_stmc1(dl19, cases):
    result = axiom_agreement(BM25TextScorer.from_collection(dl19), cases)
    assert result["TFC1"] == {"share": 1.0, "ties": 0.0, "n": N_PAIRS}
    assert result["LNC"] == {"share": 1.0, "ties": 0.0, "n": N_PAIRS}
    # Neither inserted word is a query term: lexical BM25 cannot tell them apart.
    assert result["STMC1"] == {"share": 0.0, "ties": 1.0, "n": N_PAIRS}


def test_cases_are_deterministic_for_a_seed(dl19, embeddings, tokenizer, cases):
    again = build_axiom_cases(
        dl19, embeddings, tokenizer, n_pairs=N_PAIRS, seed=0, show_progress=False
    )
    other = build_axiom_cases(
        dl19, embeddings, tokenizer, n_pairs=N_PAIRS, seed=1, show_progress=False
    )
    assert again == cases
    assert other["TFC1"] != cases["TFC1"]
    assert other["STMC1"] != cases["STMC1"]


def test_tfc1_adds_one_query_term_occurrence_at_equal_length(cases, tokenizer):
    for query, better, worse in cases["TFC1"]:
        q_terms = set(bm25_terms([query])[0])
        b_terms, w_terms = (Counter(t) for t in bm25_terms([better, worse]))
        gained, lost = b_terms - w_terms, w_terms - b_terms
        assert len(gained) == 1 and sum(gained.values()) == 1
        assert len(lost) == 1 and sum(lost.values()) == 1
        (term,), (removed,) = gained, lost
        assert term in q_terms and w_terms[term] >= 1  # one more, not the first
        assert removed not in q_terms
        assert sum(b_terms.values()) == sum(w_terms.values())
        assert word_pieces(tokenizer, better) == word_pieces(tokenizer, worse)


def test_lnc_appends_words_without_query_terms(cases, tokenizer):
    for query, better, worse in cases["LNC"]:
        q_terms = set(bm25_terms([query])[0])
        assert worse.startswith(better + " ")
        appended = worse[len(better) + 1 :]
        assert 0 < len(appended.split()) <= 30
        assert q_terms & set(bm25_terms([better])[0])
        assert not q_terms & set(bm25_terms([appended])[0])
        assert word_pieces(tokenizer, worse) > word_pieces(tokenizer, better)


def test_stmc1_related_word_is_nearer_the_query_than_unrelated(
    cases, embeddings, tokenizer
):
    for query, better, worse in cases["STMC1"]:
        q_terms = [
            t for t in bm25_terms([query])[0] if tokenizer.token_to_id(t) is not None
        ]
        related, unrelated = (w.lower() for w in changed_words(better, worse))
        assert related not in q_terms and unrelated not in q_terms
        assert not related.startswith("##") and related.isalpha()
        near = max(cosine(embeddings, tokenizer, related, t) for t in q_terms)
        far = max(cosine(embeddings, tokenizer, unrelated, t) for t in q_terms)
        assert near > far
        assert word_pieces(tokenizer, better) == word_pieces(tokenizer, worse)
        assert len(bm25_terms([better])[0]) == len(bm25_terms([worse])[0])


def test_agreement_counts_ties_apart_from_wins():
    cases = {
        "LNC": [AxiomCase("q", "short text", "short text plus more words")] * 3,
        "EMPTY": [],
    }

    def by_length(queries, docs):
        return np.array([len(d) for d in docs], dtype=float)

    def constant(queries, docs):
        return np.zeros(len(docs))

    assert axiom_agreement(by_length, cases)["LNC"] == {
        "share": 0.0,
        "ties": 0.0,
        "n": 3,
    }
    assert axiom_agreement(constant, cases)["LNC"] == {
        "share": 0.0,
        "ties": 1.0,
        "n": 3,
    }
    assert axiom_agreement(lambda q, d: -by_length(q, d), cases)["LNC"]["share"] == 1.0
    assert axiom_agreement(constant, cases)["EMPTY"]["n"] == 0


def test_agreement_rejects_non_finite_scores():
    cases = {"TFC1": [AxiomCase("q", "a", "b")]}
    with pytest.raises(ValueError, match="axiom TFC1: score_fn must return 2 finite"):
        axiom_agreement(lambda q, d: np.array([np.nan, 0.0]), cases)


@pytest.mark.slow
def test_teacher_and_student_shares_are_fractions_in_the_report_shape(
    dl19, minilm_dir, embeddings, tokenizer
):
    from semb25.student.model import SemanticBM25
    from semb25.teacher import load_teacher

    small = build_axiom_cases(
        dl19, embeddings, tokenizer, n_pairs=4, seed=0, show_progress=False
    )
    teacher = load_teacher(
        "sentence-transformers/all-MiniLM-L6-v2", show_progress=False
    )
    student = SemanticBM25.create(embeddings, minilm_dir / "tokenizer.json")
    models = {"teacher": teacher.score, "student": student.score}
    shares = axioms_for_models(models, small, show_progress=False)
    assert set(shares) == {"teacher", "student"}
    for name, per_axiom in shares.items():
        assert set(per_axiom) == set(AXIOMS), name
        for share in per_axiom.values():
            assert np.isfinite(share) and 0.0 <= share <= 1.0
    detail = axiom_agreement(teacher.score, small)
    for result in detail.values():
        assert result["n"] == 4 and result["share"] + result["ties"] <= 1.0
