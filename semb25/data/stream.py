"""Candidate lists as a stream: one query's first-stage candidates at a time.

Training at MS MARCO scale reads ``msmarco-passage/train/judged`` (503k queries,
each with the BM25 top-1000: about 478M ``scoreddocs`` rows). A
:class:`CandidateStream` yields ``(qid, [doc_id, ...])`` query by query and
holds one query's rows at a time, so the example store
(:mod:`semb25.distill.example_store`) can score and tokenise the lists chunk
by chunk instead of loading them all.

Two sources:

* :func:`stream_collection`: a loaded :class:`~semb25.data.Collection` (local
  files; already in memory, the stream is a view of it);
* :func:`stream_ir_datasets`: an ir_datasets dataset (duck-typed, as in
  :func:`~semb25.data.collection.from_ir_datasets`), read lazily: query texts
  on first use, passages one by one through ``docs_store()``.

``max_queries`` keeps the first n queries met in the candidate stream and
``max_candidates`` each query's top-k, as :func:`~semb25.data.load_collection`
does.

Known limitations: the scoreddocs stream must be grouped by query (each
query's rows consecutive); a query met again after its list was yielded is an
error, not a silent merge. Triples (``docpairs``) are shuffled, so they are
grouped in memory up to ``max_queries`` queries before the first is yielded.
The query texts of the whole split are held in memory once (808k MS MARCO
train queries: about 0.15 GB).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from semb25.data.collection import (
    DATA_ENV,
    Collection,
    DocsStoreMapping,
    _candidates_from_docpairs,
    _has,
    rank_candidates,
)

logger = logging.getLogger(__name__)


@dataclass
class CandidateStream:
    """Training queries' candidate lists, read one query at a time.

    Attributes:
        name: collection name, e.g. ``"msmarco-passage/train/judged"``.
        source: ``"local:/abs/path"`` or ``"ir_datasets:<id>"``.
        queries: qid -> query text (may lack some streamed qids).
        docs: doc_id -> passage text (lazy for ir_datasets).
        lists: returns a fresh iterator of ``(qid, [doc_id, ...])`` in stream
            order, candidates best first.
        qrels_of: ``qids -> {qid: {doc_id: relevance}}`` for those queries.
    """

    name: str
    source: str
    queries: Mapping[str, str]
    docs: Mapping[str, str]
    lists: Callable[[], Iterator[tuple[str, list[str]]]]
    qrels_of: Callable[[set[str]], dict[str, dict[str, int]]]

    def __iter__(self) -> Iterator[tuple[str, list[str]]]:
        return self.lists()

    def qrels(self, qids: Iterable[str]) -> dict[str, dict[str, int]]:
        """Judgements of ``qids`` (queries without any are left out)."""
        return self.qrels_of(set(qids))


def stream_collection(collection: Collection) -> CandidateStream:
    """A loaded collection as a stream (its candidates in query order)."""

    def lists() -> Iterator[tuple[str, list[str]]]:
        for qid, rows in collection.candidates.items():
            yield qid, [doc_id for doc_id, _ in rows]

    return CandidateStream(
        name=collection.name,
        source=collection.source,
        queries=collection.queries,
        docs=collection.docs,
        lists=lists,
        qrels_of=lambda qids: {
            q: dict(j) for q, j in collection.qrels.items() if q in qids
        },
    )


class LazyQueries(Mapping):
    """qid -> text over ``dataset.queries_iter()``, read in full on first use."""

    def __init__(self, dataset: Any):
        self._dataset = dataset
        self._texts: dict[str, str] | None = None

    def _load(self) -> dict[str, str]:
        if self._texts is None:
            self._texts = {q.query_id: q.text for q in self._dataset.queries_iter()}
            logger.info("query texts: %d read", len(self._texts))
        return self._texts

    def __getitem__(self, qid: str) -> str:
        return self._load()[qid]

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())


def iter_scoreddocs_lists(
    dataset: Any,
    irds_id: str,
    max_candidates: int | None = None,
    max_queries: int | None = None,
) -> Iterator[tuple[str, list[tuple[str, float]]]]:
    """``(qid, [(doc_id, score)])`` per query from a grouped scoreddocs stream.

    Each list is ranked as :func:`~semb25.data.collection.rank_candidates`
    does; reading stops when the ``(max_queries + 1)``-th query starts.

    Raises:
        ValueError: naming the query and row when the stream is not grouped
            by query.
    """
    done: set[str] = set()
    qid: str | None = None
    rows: list[tuple[str, float]] = []
    for row, sd in enumerate(dataset.scoreddocs_iter(), 1):
        if sd.query_id != qid:
            if qid is not None:
                yield qid, rank_candidates(qid, rows, max_candidates)
                done.add(qid)
            if sd.query_id in done:
                raise ValueError(
                    f"ir_datasets {irds_id}: scoreddocs not grouped by query "
                    f"(query {sd.query_id!r} reappears at row {row}); streaming "
                    "needs each query's rows consecutive"
                )
            if max_queries is not None and len(done) >= max_queries:
                return
            qid, rows = sd.query_id, []
        rows.append((sd.doc_id, float(sd.score)))
    if qid is not None:
        yield qid, rank_candidates(qid, rows, max_candidates)


def stream_ir_datasets(
    dataset: Any,
    irds_id: str,
    *,
    max_candidates: int | None = None,
    max_queries: int | None = None,
) -> CandidateStream:
    """A stream over an ir_datasets dataset object (see the module docstring).

    Triples are used when the id names triples or there are no scoreddocs,
    as in :func:`~semb25.data.collection.from_ir_datasets`.
    """
    triples = _has(dataset, "docpairs") and (
        "triples" in irds_id or not _has(dataset, "scoreddocs")
    )
    if triples:
        grouped: dict[str, list[tuple[str, float]]] = {}

        def pairs() -> dict[str, list[tuple[str, float]]]:
            # As in from_ir_datasets, max_candidates does not cut triples.
            if not grouped:
                grouped.update(_candidates_from_docpairs(dataset, max_queries))
            return grouped

        def lists() -> Iterator[tuple[str, list[str]]]:
            for qid, rows in pairs().items():
                yield qid, [doc_id for doc_id, _ in rows]

        def qrels_of(qids: set[str]) -> dict[str, dict[str, int]]:
            # Positives of the triples are the judgements (relevance 1).
            return {
                q: {d: 1 for d, s in rows if s == 1.0}
                for q, rows in pairs().items()
                if q in qids
            }

    else:
        if not _has(dataset, "scoreddocs"):
            raise ValueError(
                f"ir_datasets {irds_id}: expected scoreddocs or docpairs, found neither"
            )

        def lists() -> Iterator[tuple[str, list[str]]]:
            for qid, rows in iter_scoreddocs_lists(
                dataset, irds_id, max_candidates, max_queries
            ):
                yield qid, [doc_id for doc_id, _ in rows]

        def qrels_of(qids: set[str]) -> dict[str, dict[str, int]]:
            qrels: dict[str, dict[str, int]] = {}
            if _has(dataset, "qrels"):
                for qrel in dataset.qrels_iter():
                    if qrel.query_id in qids:
                        qrels.setdefault(qrel.query_id, {})[qrel.doc_id] = int(
                            qrel.relevance
                        )
            return qrels

    return CandidateStream(
        name=irds_id,
        source=f"ir_datasets:{irds_id}",
        queries=LazyQueries(dataset),
        docs=DocsStoreMapping(dataset.docs_store()),
        lists=lists,
        qrels_of=qrels_of,
    )


def load_ir_datasets_stream(
    irds_id: str,
    *,
    max_candidates: int | None = None,
    max_queries: int | None = None,
) -> CandidateStream:
    """:func:`stream_ir_datasets` of ``ir_datasets.load(irds_id)``.

    Nothing is downloaded here: ir_datasets fetches each part on first read.
    """
    import ir_datasets

    try:
        dataset = ir_datasets.load(irds_id)
    except (OSError, ConnectionError, KeyError, RuntimeError) as e:
        raise RuntimeError(
            f"collection ir_datasets:{irds_id}: could not load "
            f"({type(e).__name__}: {e}); offline? use a local folder via ${DATA_ENV}"
        ) from e
    return stream_ir_datasets(
        dataset, irds_id, max_candidates=max_candidates, max_queries=max_queries
    )
