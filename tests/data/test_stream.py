"""Candidate streams: ir_datasets lists ranked as the in-memory adapter ranks
them, read lazily up to max_queries, ungrouped streams rejected, triples and
qrels; a local collection viewed as a stream."""

from collections import namedtuple

import pytest

from semb25.data import load_collection
from semb25.data.collection import from_ir_datasets
from semb25.data.stream import (
    iter_scoreddocs_lists,
    stream_collection,
    stream_ir_datasets,
)

Query = namedtuple("Query", "query_id text")
Qrel = namedtuple("Qrel", "query_id doc_id relevance iteration")
ScoredDoc = namedtuple("ScoredDoc", "query_id doc_id score")
DocPair = namedtuple("DocPair", "query_id doc_id_a doc_id_b")
Doc = namedtuple("Doc", "doc_id text")


class FakeStore:
    def __init__(self, docs):
        self.docs = {d.doc_id: d for d in docs}

    def get(self, doc_id):
        return self.docs.get(doc_id)

    def __len__(self):
        return len(self.docs)


class FakeRerank:
    def __init__(self, rows):
        self.rows = rows
        self.read = 0
        self.queries_read = 0

    def has_scoreddocs(self):
        return True

    def has_docpairs(self):
        return False

    def has_qrels(self):
        return True

    def queries_iter(self):
        self.queries_read += 1
        return iter([Query(q, f"text {q}") for q in ("q0", "q1", "q2", "q3")])

    def qrels_iter(self):
        return iter([Qrel("q1", "p1", 2, "0"), Qrel("q2", "p0", 1, "0")])

    def scoreddocs_iter(self):
        for row in self.rows:
            self.read += 1
            yield ScoredDoc(*row)

    def docs_store(self):
        return FakeStore([Doc(f"p{i}", f"passage {i}") for i in range(6)])


ROWS = [
    ("q1", "p3", 1.0),
    ("q1", "p1", 7.0),
    ("q1", "p2", 4.0),
    ("q2", "p5", 0.0),
    ("q2", "p0", 0.0),
    ("q2", "p4", 0.0),
    ("q3", "p1", 0.0),
    ("q3", "p2", 0.0),
]


def test_stream_lists_are_the_in_memory_adapters_candidates():
    stream = stream_ir_datasets(FakeRerank(ROWS), "fake/train", max_candidates=2)
    coll = from_ir_datasets(FakeRerank(ROWS), "fake/train", max_candidates=2)
    assert list(stream) == [
        (q, [d for d, _ in rows]) for q, rows in coll.candidates.items()
    ]
    assert list(stream)[:2] == [("q1", ["p1", "p2"]), ("q2", ["p5", "p0"])]
    assert stream.qrels(["q1", "q3"]) == {"q1": {"p1": 2}}
    assert stream.docs["p4"] == "passage 4"
    assert stream.source == "ir_datasets:fake/train"


def test_stream_reads_rows_lazily_and_stops_at_max_queries():
    ds = FakeRerank(ROWS)
    stream = stream_ir_datasets(ds, "fake/train", max_queries=2)
    assert ds.read == 0 and ds.queries_read == 0  # nothing read until iterated
    it = iter(stream)
    assert next(it) == ("q1", ["p1", "p2", "p3"])
    assert ds.read == 4  # q1's rows and the first of q2
    assert next(it)[0] == "q2"
    assert list(it) == [] and ds.read == 7  # stopped at q3's first row
    assert ds.queries_read == 0
    assert stream.queries["q2"] == "text q2" and ds.queries_read == 1
    assert "q9" not in stream.queries and ds.queries_read == 1


def test_ungrouped_scoreddocs_name_the_query_and_row():
    rows = ROWS[:4] + [("q1", "p4", 2.0)]
    with pytest.raises(
        ValueError,
        match=r"fake/x: scoreddocs not grouped by query \(query 'q1' "
        r"reappears at row 5\)",
    ):
        list(iter_scoreddocs_lists(FakeRerank(rows), "fake/x"))


class FakeTriples:
    def queries_iter(self):
        return iter([Query("a", "query a"), Query("b", "query b")])

    def docpairs_iter(self):
        return iter(
            [
                DocPair("a", "p1", "p2"),
                DocPair("b", "p3", "p4"),
                DocPair("a", "p5", "p2"),
            ]
        )

    def docs_store(self):
        return FakeStore([Doc(f"p{i}", f"text {i}") for i in range(1, 6)])


def test_triples_stream_gives_positives_first_and_their_qrels():
    stream = stream_ir_datasets(FakeTriples(), "fake/triples")
    assert list(stream) == [("a", ["p1", "p5", "p2"]), ("b", ["p3", "p4"])]
    assert stream.qrels({"a"}) == {"a": {"p1": 1, "p5": 1}}


def test_local_collection_as_a_stream_keeps_query_order(data_root):
    coll = load_collection("trec-dl-2019", data_root, max_candidates=3, max_queries=4)
    stream = stream_collection(coll)
    lists = list(stream)
    assert [q for q, _ in lists] == list(coll.queries)
    assert lists[0] == ("264014", [d for d, _ in coll.candidates["264014"]])
    assert len(lists[0][1]) == 3
    assert stream.qrels(["264014"]) == {"264014": coll.qrels["264014"]}
