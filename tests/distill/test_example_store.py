"""The on-disk example store: the same groups, batches and corpus statistics as
the in-memory path on the real dev sample; streamed from a duck-typed
ir_datasets object without reading past max_queries; a build killed midway
resumes to the same store; cross-query negatives; the config field's checks."""

from __future__ import annotations

import math
from collections import Counter, namedtuple

import numpy as np
import pytest

from semb25.corpus import corpus_stats
from semb25.data import load_collection
from semb25.data.collection import from_ir_datasets
from semb25.data.stream import stream_collection, stream_ir_datasets
from semb25.distill.example_store import (
    ARRAYS,
    ExampleStore,
    build_example_store,
    cross_query_negatives,
)
from semb25.distill.examples import BatchSampler, build_groups, read_score_file
from semb25.student.tokenization import StudentTokenizer

SPECIAL = (0, 100, 101, 102, 103)
VOCAB = 30522


@pytest.fixture(scope="module")
def tokenizer(minilm_dir):
    return StudentTokenizer.from_file(
        minilm_dir / "tokenizer.json", pad_id=0, special_ids=SPECIAL
    )


def _file_scorer(scores):
    calls = []

    def scorer(pairs, queries, docs):
        calls.append(list(pairs))
        return scores

    scorer.calls = calls
    return scorer


def _assert_same_groups(stored, groups):
    assert len(stored) == len(groups)
    for s, g in zip(stored, groups, strict=True):
        s = s.to_group()
        assert s.qid == g.qid and s.doc_ids == g.doc_ids
        np.testing.assert_array_equal(s.query_tokens, g.query_tokens)
        assert s.query_tokens.dtype == g.query_tokens.dtype == np.int64
        np.testing.assert_array_equal(s.teacher, g.teacher)
        assert len(s.doc_tokens) == len(g.doc_tokens)
        for a, b in zip(s.doc_tokens, g.doc_tokens, strict=True):
            np.testing.assert_array_equal(a, b)


def test_dev_sample_store_equals_the_in_memory_groups_stats_and_batches(
    data_root, small_scores, tokenizer, tmp_path
):
    coll = load_collection("dev-sample", data_root, max_candidates=12)
    scores = read_score_file(small_scores)
    # A few bad rows, so the skip counts are compared too.
    first = next(iter(coll.candidates))
    scores[(first, coll.candidates[first][0][0])] = float("nan")
    del scores[(first, coll.candidates[first][1][0])]

    store = build_example_store(
        tmp_path / "examples",
        stream_collection(coll),
        tokenizer,
        _file_scorer(scores),
        vocab_size=VOCAB,
        exclude_ids=SPECIAL,
        chunk_queries=64,
        show_progress=False,
    )
    candidates = {q: [d for d, _ in rows] for q, rows in coll.candidates.items()}
    groups, skipped = build_groups(
        candidates, coll.queries, coll.docs, scores, tokenizer
    )
    assert len(store.chunks) == 10  # 600 queries, 64 a chunk
    assert len(store) == 600 and store.n_pairs == 600 * 12 - 2
    _assert_same_groups(store, groups)
    assert store.skipped == skipped == Counter(missing_score=1, non_finite_score=1)
    # Token ids are stored as uint16 (MiniLM's vocabulary fits).
    assert store[0].query_tokens.dtype == np.uint16

    doc_ids = sorted({d for _, d in coll.pairs()})
    expected = corpus_stats(
        tokenizer.token_ids([coll.docs[d] for d in doc_ids]), VOCAB, SPECIAL
    )
    got = store.corpus_stats()
    assert got.n_docs == expected.n_docs == len(doc_ids)
    assert got.avgdl == expected.avgdl
    np.testing.assert_array_equal(got.df, expected.df)

    # BatchSampler works unchanged on the store's groups: identical batches.
    a = BatchSampler(list(store), 16, 8, 32, 256, 0, 0.0, 1.0)
    b = BatchSampler(groups, 16, 8, 32, 256, 0, 0.0, 1.0)
    for step in (0, 1, 37):
        x, y = a.batch(step), b.batch(step)
        assert x.keys() == y.keys()
        for key in x:
            np.testing.assert_array_equal(x[key], y[key], err_msg=key)


# A duck-typed stand-in for an ir_datasets dataset, counting what is read.
Query = namedtuple("Query", "query_id text")
ScoredDoc = namedtuple("ScoredDoc", "query_id doc_id score")
Doc = namedtuple("Doc", "doc_id text")


class FakeStore:
    def __init__(self, docs):
        self.docs = {d.doc_id: d for d in docs}

    def get(self, doc_id):
        return self.docs.get(doc_id)

    def __len__(self):
        return len(self.docs)


class FakeRerank:
    """n_queries queries x 6 candidates, grouped; rows read are counted."""

    def __init__(self, n_queries=20, fail_after=None, empty=True):
        self.n_queries, self.fail_after = n_queries, fail_after
        self.rows_read = 0
        words = "flea cycle life egg cat dog food sleep bm25 rank query term".split()
        self.texts = {
            f"p{i}": f"{words[i % 12]} {words[(i * 5) % 12]} {i}" for i in range(60)
        }
        if empty:
            self.texts["p7"] = "   "  # an empty passage

    def has_scoreddocs(self):
        return True

    def has_docpairs(self):
        return False

    def has_qrels(self):
        return False

    def queries_iter(self):
        return iter(Query(f"q{i}", f"query {i} flea") for i in range(self.n_queries))

    def scoreddocs_iter(self):
        for i in range(self.n_queries):
            if self.fail_after is not None and i == self.fail_after:
                raise RuntimeError("killed")
            for r in range(6):
                self.rows_read += 1
                yield ScoredDoc(f"q{i}", f"p{(i * 3 + r) % 60}", 10.0 - r)

    def docs_store(self):
        return FakeStore([Doc(d, t) for d, t in self.texts.items()])


def _fake_scores(ds):
    return {
        (f"q{i}", f"p{j}"): math.sin(i * 7 + j)
        for i in range(ds.n_queries)
        for j in range(60)
    }


def test_ir_datasets_stream_stops_at_max_queries_and_matches_in_memory(
    tokenizer, tmp_path
):
    ds = FakeRerank(n_queries=20)
    stream = stream_ir_datasets(ds, "fake/train", max_candidates=4, max_queries=5)
    scores = _fake_scores(ds)
    scores[("q1", "p3")] = float("inf")
    store = build_example_store(
        tmp_path / "s",
        stream,
        tokenizer,
        _file_scorer(scores),
        vocab_size=VOCAB,
        chunk_queries=2,
        show_progress=False,
    )
    # Five queries' rows plus the first row of the sixth: nothing more is read.
    assert ds.rows_read == 5 * 6 + 1
    coll = from_ir_datasets(
        FakeRerank(20), "fake/train", max_candidates=4, max_queries=5
    )
    candidates = {q: [d for d, _ in rows] for q, rows in coll.candidates.items()}
    groups, skipped = build_groups(
        candidates, coll.queries, coll.docs, scores, tokenizer
    )
    assert [g.qid for g in store] == ["q0", "q1", "q2", "q3", "q4"]
    _assert_same_groups(store, groups)
    # q2's candidates p6..p9 hold the empty p7; q1's p3 has an infinite score.
    assert store.skipped == skipped == Counter(empty_doc=1, non_finite_score=1)
    assert len(store.chunks) == 3


def _store_arrays(store: ExampleStore):
    return [
        {name: np.asarray(getattr(c, name)) for name in ARRAYS if name != "qids"}
        | {"qids": c.qids, "meta": c.meta}
        for c in store.chunks
    ]


def test_build_killed_midway_resumes_to_the_same_store(tokenizer, tmp_path):
    scores = _fake_scores(FakeRerank(23))

    def build(folder, ds, scorer):
        return build_example_store(
            folder,
            stream_ir_datasets(ds, "fake/train", max_candidates=5),
            tokenizer,
            scorer,
            vocab_size=VOCAB,
            cross_query_negatives=2,
            chunk_queries=4,
            show_progress=False,
        )

    whole = build(tmp_path / "whole", FakeRerank(23), _file_scorer(scores))
    assert len(whole.chunks) == 6  # 23 queries, 4 a chunk

    # The stream fails while the 11th query is read: chunks 0 and 1 are kept,
    # the chunk being filled (queries 8-10) is lost.
    with pytest.raises(RuntimeError, match="killed"):
        build(tmp_path / "resumed", FakeRerank(23, fail_after=10), _file_scorer(scores))
    partial = ExampleStore(tmp_path / "resumed")
    assert not partial.complete and len(partial.chunks) == 2
    assert partial.stream_items == 8

    scorer = _file_scorer(scores)
    resumed = build(tmp_path / "resumed", FakeRerank(23), scorer)
    assert resumed.complete and len(scorer.calls) == 4  # chunks 2-5 only
    assert {q for q, _ in scorer.calls[0]} == {"q8", "q9", "q10", "q11"}
    got, expected = _store_arrays(resumed), _store_arrays(whole)
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        assert a["qids"] == b["qids"] and a["meta"] == b["meta"]
        for name in ARRAYS:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)

    # A complete store is reopened without reading the stream at all.
    untouched = FakeRerank(23)
    again = build(tmp_path / "resumed", untouched, _file_scorer(scores))
    assert untouched.rows_read == 0 and len(again) == len(whole)


def test_other_settings_rebuild_the_store(tokenizer, tmp_path):
    ds = FakeRerank(6)
    scores = _fake_scores(ds)

    def build(k):
        return build_example_store(
            tmp_path / "s",
            stream_ir_datasets(FakeRerank(6), "fake/train"),
            tokenizer,
            _file_scorer(scores),
            vocab_size=VOCAB,
            cross_query_negatives=k,
            show_progress=False,
        )

    plain = build(0)
    assert all(len(g.doc_ids) == g.n_first_stage for g in plain)
    assert plain.fingerprint["cross_query_negatives"] == 0
    more = build(3)
    assert more.fingerprint["cross_query_negatives"] == 3
    assert all(len(g.doc_ids) > g.n_first_stage for g in more)


def test_two_cross_query_negatives_come_from_other_training_queries(
    tokenizer, tmp_path
):
    ds = FakeRerank(30, empty=False)
    scores = _fake_scores(ds)
    held_out = {"q4", "q17"}

    def build(folder, seed):
        scorer = _file_scorer(scores)
        store = build_example_store(
            folder,
            stream_ir_datasets(
                FakeRerank(30, empty=False), "fake/train", max_candidates=4
            ),
            tokenizer,
            scorer,
            vocab_size=VOCAB,
            is_train=lambda q: q not in held_out,
            cross_query_negatives=2,
            seed=seed,
            chunk_queries=10,
            show_progress=False,
        )
        return store, scorer

    store, scorer = build(tmp_path / "a", seed=0)
    coll = from_ir_datasets(FakeRerank(30, empty=False), "fake/train", max_candidates=4)
    own = {q: [d for d, _ in rows] for q, rows in coll.candidates.items()}
    chunk_of = {f"q{i}": i // 10 for i in range(30)}
    extras = {}
    for g in store:
        n = g.n_first_stage
        assert g.doc_ids[:n] == own[g.qid]
        extras[g.qid] = g.doc_ids[n:]
        if g.qid in held_out:
            assert extras[g.qid] == []
            continue
        assert len(extras[g.qid]) == 2 and len(set(extras[g.qid])) == 2
        lenders = {
            d
            for q, docs in own.items()
            if q != g.qid and q not in held_out and chunk_of[q] == chunk_of[g.qid]
            for d in docs
        }
        for d in extras[g.qid]:
            assert d not in own[g.qid] and d in lenders
        # Scored by the teacher (the scorer) like the query's own candidates.
        np.testing.assert_allclose(
            g.teacher[n:], [scores[(g.qid, d)] for d in extras[g.qid]], rtol=1e-6
        )
    sent = {pair for call in scorer.calls for pair in call}
    assert all((q, d) in sent for q, docs in extras.items() for d in docs)

    same, _ = build(tmp_path / "b", seed=0)
    assert [g.doc_ids for g in same] == [g.doc_ids for g in store]
    other, _ = build(tmp_path / "c", seed=1)
    changed = [
        a.qid for a, b in zip(store, other, strict=True) if a.doc_ids != b.doc_ids
    ]
    assert len(changed) >= 10


def test_cross_query_negatives_take_all_when_the_pool_is_small():
    rng = np.random.default_rng(0)
    drawn = cross_query_negatives([("a", ["x", "y"]), ("b", ["y", "z"])], 5, rng)
    assert drawn == {"a": ["z"], "b": ["x"]}


@pytest.mark.parametrize("value", ["-1", "2.5", '"2"', "true"])
def test_cross_query_negatives_field_is_checked_before_teacher_work(
    small_config, small_scores, tmp_path, data_root, value
):
    from semb25.distill.pipeline import distill

    text = small_config().read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(
        text.replace("[data]\n", f"[data]\ncross_query_negatives = {value}\n")
    )
    with pytest.raises(
        ValueError, match=r"\[data\] cross_query_negatives must be an integer >= 0"
    ):
        distill(bad, data_root, out=tmp_path / "run", scores_file=small_scores)
    assert not (tmp_path / "run" / "examples").exists()
