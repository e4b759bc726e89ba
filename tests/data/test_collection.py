"""Collections: the real DL19, dev and triples samples load with their known
sizes; malformed files fail with file and line; data-root resolution order;
the ir_datasets adapter on a duck-typed fake dataset."""

import json
import logging
from collections import namedtuple
from pathlib import Path

import pytest

from semb25.data import collection as collection_module
from semb25.data import load_collection, resolve_data_root
from semb25.data.collection import DocsStoreMapping, from_ir_datasets


def test_dl19_sizes_match_the_sample_readme(data_root, caplog):
    with caplog.at_level(logging.INFO, logger="semb25.data.collection"):
        coll = load_collection("trec-dl-2019", data_root)
    assert coll.name == "trec-dl-2019"
    assert coll.source == f"local:{(data_root / 'trec-dl-2019').resolve()}"
    assert len(coll.queries) == 43
    assert len(coll.pairs()) == 4300
    assert len({doc_id for _, doc_id in coll.pairs()}) == 4297
    assert len(coll.qrels) == 43
    assert (
        "local files in" in caplog.text
        and "(43 queries, 4300 candidates" in caplog.text
    )


def test_dl19_real_text_and_rank_order(data_root):
    coll = load_collection("trec-dl-2019", data_root)
    assert coll.queries["264014"] == "how long is life cycle of flea"
    first_doc, first_score = coll.candidates["264014"][0]
    assert first_doc == "5611210"
    assert first_score == pytest.approx(15.780599594116211)
    assert coll.docs[first_doc].startswith("5. Cancel. A flea can live up to a year")
    assert coll.pairs()[0] == ("264014", "5611210")


def test_dev_sample_is_600_by_20_with_binary_qrels(data_root):
    coll = load_collection("dev-sample", data_root)
    assert len(coll.queries) == 600
    assert {len(rows) for rows in coll.candidates.values()} == {20}
    assert {rel for j in coll.qrels.values() for rel in j.values()} == {1}
    # The source kept ranks, not scores: score = -rank.
    qid = next(iter(coll.candidates))
    assert [s for _, s in coll.candidates[qid][:3]] == [-1.0, -2.0, -3.0]


def test_max_candidates_and_max_queries_truncate(data_root):
    full = load_collection("trec-dl-2019", data_root)
    coll = load_collection("trec-dl-2019", data_root, max_candidates=10, max_queries=5)
    assert len(coll.queries) == 5 and len(coll.pairs()) == 50
    qid = next(iter(coll.queries))
    assert coll.candidates[qid] == full.candidates[qid][:10]
    assert set(coll.qrels) == set(coll.queries)


def test_spec_may_be_an_absolute_folder_path(data_root):
    coll = load_collection(str(data_root / "dev-sample"), max_candidates=1)
    assert coll.name == "dev-sample" and len(coll.pairs()) == 600


def test_triples_sample_gives_positive_then_negative(data_root):
    coll = load_collection("train-triples-sample.tsv", data_root)
    assert len(coll.queries) == 100
    assert len(coll.pairs()) == 200
    first_query = next(iter(coll.queries.values()))
    assert first_query == "is a little caffeine ok during pregnancy"
    qid = next(iter(coll.queries))
    (pos, pos_score), (neg, neg_score) = coll.candidates[qid]
    assert (pos_score, neg_score) == (1.0, 0.0)
    assert coll.qrels[qid] == {pos: 1}
    assert "200 milligrams" in coll.docs[pos]
    assert "chocolate" in coll.docs[neg]


def test_unknown_spec_names_the_options():
    with pytest.raises(ValueError, match="not a path, not under data root"):
        load_collection("no-such-collection-xyz")


def _write_folder(folder: Path, docs_lines, run_lines) -> Path:
    folder.mkdir()
    (folder / "queries.tsv").write_text("q1\tfirst query\nq2\tsecond query\n")
    (folder / "docs.jsonl").write_text("\n".join(docs_lines) + "\n")
    (folder / "qrels.txt").write_text("q1 0 d1 2\nq2 0 d2 0\nq9 0 d1 1\n")
    (folder / "bm25.run").write_text("\n".join(run_lines) + "\n")
    return folder


GOOD_DOCS = [
    json.dumps({"doc_id": "d1", "text": "one"}),
    json.dumps({"doc_id": "d2", "text": "two"}),
]
GOOD_RUN = ["q1 Q0 d1 1 2.0 bm25", "q1 Q0 d2 2 1.0 bm25", "q2 Q0 d2 1 5.0 bm25"]


def test_small_local_folder_loads_and_drops_qrels_of_unknown_queries(tmp_path):
    coll = load_collection(str(_write_folder(tmp_path / "c", GOOD_DOCS, GOOD_RUN)))
    assert coll.pairs() == [("q1", "d1"), ("q1", "d2"), ("q2", "d2")]
    assert coll.qrels == {"q1": {"d1": 2}, "q2": {"d2": 0}}
    assert coll.first_stage_run() == {"q1": {"d1": 2.0, "d2": 1.0}, "q2": {"d2": 5.0}}


def test_unknown_doc_id_in_run_names_file_and_line(tmp_path):
    run = GOOD_RUN + ["q2 Q0 d7 2 0.5 bm25"]
    folder = _write_folder(tmp_path / "c", GOOD_DOCS, run)
    with pytest.raises(ValueError, match=r"bm25\.run line 4: unknown doc id 'd7'"):
        load_collection(str(folder))


def test_bad_json_and_duplicate_doc_id_name_file_and_line(tmp_path):
    folder = _write_folder(tmp_path / "a", GOOD_DOCS + ['{"doc_id": "d3", '], GOOD_RUN)
    with pytest.raises(ValueError, match=r"docs\.jsonl line 3: expected a JSON object"):
        load_collection(str(folder))
    folder = _write_folder(tmp_path / "b", GOOD_DOCS + [GOOD_DOCS[0]], GOOD_RUN)
    with pytest.raises(ValueError, match=r"docs\.jsonl line 3: duplicate doc id 'd1'"):
        load_collection(str(folder))


def test_query_line_without_tab_names_file_and_line(tmp_path):
    folder = _write_folder(tmp_path / "c", GOOD_DOCS, GOOD_RUN)
    (folder / "queries.tsv").write_text("q1\tfirst\nq2 second\n")
    with pytest.raises(ValueError, match=r"queries\.tsv line 2: expected 2 tab-sep"):
        load_collection(str(folder))


def test_skip_mode_loads_the_good_lines(tmp_path, caplog):
    run = GOOD_RUN + ["q2 Q0 d7 2 0.5 bm25", "q2 Q0 d1"]
    folder = _write_folder(tmp_path / "c", GOOD_DOCS + ["not json"], run)
    with caplog.at_level(logging.WARNING):
        coll = load_collection(str(folder), on_error="skip")
    assert len(coll.docs) == 2 and len(coll.pairs()) == 3
    assert (
        "skipped 2 malformed lines (1 bad column count, 1 unknown doc id)"
        in caplog.text
    )
    assert "skipped 1 malformed lines (1 bad JSON)" in caplog.text


def test_other_run_name_is_used_when_bm25_run_is_absent(tmp_path):
    folder = _write_folder(tmp_path / "c", GOOD_DOCS, GOOD_RUN)
    (folder / "bm25.run").rename(folder / "first-stage.run")
    assert len(load_collection(str(folder)).pairs()) == 3
    (folder / "other.run").write_text("q1 Q0 d1 1 1.0 x\n")
    with pytest.raises(ValueError, match=r"expected bm25\.run or exactly one \*\.run"):
        load_collection(str(folder))


def test_data_root_order_argument_then_env_then_default(tmp_path, monkeypatch):
    arg, env = tmp_path / "arg", tmp_path / "env"
    arg.mkdir()
    env.mkdir()
    monkeypatch.setenv("SEMB25_DATA", str(env))
    assert resolve_data_root(arg) == arg.resolve()
    assert resolve_data_root() == env.resolve()
    # A set but missing $SEMB25_DATA is a typo, not a reason to download.
    monkeypatch.setenv("SEMB25_DATA", str(tmp_path / "missing"))
    with pytest.raises(ValueError, match=r"SEMB25_DATA=.*missing: not a folder"):
        resolve_data_root()
    monkeypatch.delenv("SEMB25_DATA")
    default = (
        collection_module.repo_root() / ".." / "shared" / "data" / "msmarco-passage"
    ).resolve()
    assert resolve_data_root() == (default if default.is_dir() else None)
    with pytest.raises(ValueError, match="expected an existing folder"):
        resolve_data_root(tmp_path / "missing")


def test_repo_root_is_the_folder_above_the_package():
    assert (
        collection_module.repo_root() / "semb25" / "data" / "collection.py"
    ).is_file()


# A duck-typed stand-in for an ir_datasets dataset (downloads fail offline).
Query = namedtuple("Query", "query_id text")
Qrel = namedtuple("Qrel", "query_id doc_id relevance iteration")
ScoredDoc = namedtuple("ScoredDoc", "query_id doc_id score")
DocPair = namedtuple("DocPair", "query_id doc_id_a doc_id_b")
Doc = namedtuple("Doc", "doc_id text")


class FakeStore:
    def __init__(self, docs):
        self.docs = {d.doc_id: d for d in docs}
        self.gets = 0

    def get(self, doc_id):
        self.gets += 1
        return self.docs.get(doc_id)

    def __iter__(self):
        return iter(self.docs.values())

    def __len__(self):
        return len(self.docs)


class FakeRerankDataset:
    def __init__(self):
        self.store = FakeStore([Doc(f"p{i}", f"passage {i}") for i in range(6)])

    def has_scoreddocs(self):
        return True

    def has_docpairs(self):
        return False

    def has_qrels(self):
        return True

    def queries_iter(self):
        return iter([Query("q0", "zero"), Query("q1", "one"), Query("q2", "two")])

    def qrels_iter(self):
        return iter([Qrel("q1", "p1", 2, "0"), Qrel("q2", "p0", 1, "0")])

    def scoreddocs_iter(self):
        # q1 has real scores out of order; q2 has the top-1000 files' constant ones.
        return iter(
            [
                ScoredDoc("q1", "p3", 1.0),
                ScoredDoc("q1", "p1", 7.0),
                ScoredDoc("q1", "p2", 4.0),
                ScoredDoc("q2", "p5", 0.0),
                ScoredDoc("q2", "p0", 0.0),
                ScoredDoc("q2", "p4", 0.0),
            ]
        )

    def docs_store(self):
        return self.store


class FakeTriplesDataset:
    def queries_iter(self):
        return iter([Query("a", "query a"), Query("b", "query b"), Query("c", "c")])

    def docpairs_iter(self):
        return iter(
            [
                DocPair("a", "p1", "p2"),
                DocPair("b", "p3", "p4"),
                DocPair("a", "p5", "p6"),
                DocPair("c", "p1", "p3"),
            ]
        )

    def docs_store(self):
        return FakeStore([Doc(f"p{i}", f"text {i}") for i in range(1, 7)])


def test_ir_datasets_adapter_sorts_scores_and_ranks_constant_ones():
    ds = FakeRerankDataset()
    coll = from_ir_datasets(ds, "fake/rerank", max_candidates=2)
    assert coll.source == "ir_datasets:fake/rerank"
    assert list(coll.queries) == ["q1", "q2"]  # q0 has no candidates
    assert coll.candidates["q1"] == [("p1", 7.0), ("p2", 4.0)]
    assert coll.candidates["q2"] == [("p5", -1.0), ("p0", -2.0)]
    assert coll.qrels == {"q1": {"p1": 2}, "q2": {"p0": 1}}
    # Docs are looked up one by one, not loaded.
    assert ds.store.gets == 0
    assert coll.docs["p2"] == "passage 2"
    assert ds.store.gets == 1


def test_ir_datasets_adapter_max_queries_stops_at_the_next_query():
    coll = from_ir_datasets(FakeRerankDataset(), "fake/rerank", max_queries=1)
    assert list(coll.queries) == ["q1"] and len(coll.pairs()) == 3


def test_ir_datasets_triples_become_positive_negative_candidates():
    coll = from_ir_datasets(FakeTriplesDataset(), "fake/triples", max_queries=2)
    assert coll.candidates == {
        "a": [("p1", 1.0), ("p5", 1.0), ("p2", 0.0), ("p6", 0.0)],
        "b": [("p3", 1.0), ("p4", 0.0)],
    }
    assert coll.qrels == {"a": {"p1": 1, "p5": 1}, "b": {"p3": 1}}
    assert coll.queries == {"a": "query a", "b": "query b"}


def test_triples_id_prefers_docpairs_even_when_scoreddocs_exist():
    class Both(FakeRerankDataset):
        def has_docpairs(self):
            return True

        def docpairs_iter(self):
            return iter([DocPair("q1", "p1", "p2")])

    assert from_ir_datasets(Both(), "x/train/triples-small").candidates == {
        "q1": [("p1", 1.0), ("p2", 0.0)]
    }
    assert len(from_ir_datasets(Both(), "x/train/judged").pairs()) == 6


def test_docs_store_mapping_raises_key_error_for_unknown_id():
    docs = DocsStoreMapping(FakeStore([Doc("x", "text x")]))
    assert docs["x"] == "text x" and len(docs) == 1 and list(docs) == ["x"]
    with pytest.raises(KeyError):
        docs["nope"]


def test_known_irds_id_goes_to_ir_datasets(monkeypatch):
    seen = {}

    def fake_load(irds_id, **kwargs):
        seen["id"], seen["kwargs"] = irds_id, kwargs
        return "sentinel"

    monkeypatch.setattr(collection_module, "load_ir_datasets", fake_load)
    assert load_collection("msmarco-passage/dev/small", max_candidates=50) == "sentinel"
    assert seen == {
        "id": "msmarco-passage/dev/small",
        "kwargs": {"max_candidates": 50, "max_queries": None},
    }
    load_collection("irds:msmarco-passage/trec-dl-2020/judged")
    assert seen["id"] == "msmarco-passage/trec-dl-2020/judged"
