"""BM25 over a collection's passages with ``bm25s``: retrieve, rescore, save, load.

Lucene's BM25 (Robertson & Zaragoza, "The Probabilistic Relevance Framework:
BM25 and Beyond", 2009; Lucene drops the constant ``(k1 + 1)`` numerator, which
leaves rankings unchanged), summed over query terms t:

    score(q, d) = sum_t idf(t) * tf(t, d) / (tf(t, d) + k1 (1 - b + b |d| / avgdl))
    idf(t)      = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))

Text is lower-cased, split on ``\\w\\w+`` and English stop words are removed
(bm25s's tokenizer); no stemming (PyStemmer is not a dependency), unlike
Anserini's Porter-stemmed index. Presets: ``ANSERINI_MSMARCO = (0.9, 0.4)``
(Anserini's MS MARCO passage default) and ``ANSERINI_TUNED = (0.82, 0.68)``.

Known limitation: an index over a sample's pooled passages (e.g. the 4,297
DL19 candidates) has its own N, df and avgdl, so it is a different, much
smaller index than the official run's over all 8.8M passages: its scores and
its figures differ from the official BM25 run's.

>>> index = BM25Index.build({"d1": "fleas live a year", "d2": "concrete floors"})
>>> list(index.retrieve({"q1": "how long do fleas live"}, k=1)["q1"])
['d1']
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import bm25s
import numpy as np
from tqdm.auto import tqdm

from semb25.atomic import atomic_write_json

logger = logging.getLogger(__name__)

ANSERINI_MSMARCO = (0.9, 0.4)
ANSERINI_TUNED = (0.82, 0.68)
STOPWORDS = "en"
DOC_IDS_FILE = "doc_ids.json"


class BM25Index:
    """A bm25s index plus the doc ids of its rows.

    Attributes:
        retriever: the ``bm25s.BM25`` index.
        doc_ids: ``[n_docs]`` doc id of each index row.
        k1, b: the BM25 parameters the index was built with.
    """

    def __init__(self, retriever: bm25s.BM25, doc_ids: Sequence[str]):
        self.retriever = retriever
        self.doc_ids = list(doc_ids)
        self._row = {doc_id: i for i, doc_id in enumerate(self.doc_ids)}
        self.k1 = float(retriever.k1)
        self.b = float(retriever.b)

    @classmethod
    def build(
        cls,
        docs: Mapping[str, str] | Iterable[tuple[str, str]],
        k1: float = ANSERINI_MSMARCO[0],
        b: float = ANSERINI_MSMARCO[1],
        *,
        show_progress: bool = True,
    ) -> BM25Index:
        """Index ``docs`` (doc_id -> text, or ``(doc_id, text)`` pairs).

        Use a preset with ``BM25Index.build(docs, *ANSERINI_TUNED)``.
        """
        items = list(docs.items() if isinstance(docs, Mapping) else docs)
        if not items:
            raise ValueError("BM25Index.build: expected at least one document")
        doc_ids = [doc_id for doc_id, _ in items]
        if len(set(doc_ids)) != len(doc_ids):
            raise ValueError("BM25Index.build: doc ids must be unique")
        tokens = bm25s.tokenize(
            [text for _, text in items],
            stopwords=STOPWORDS,
            return_ids=False,
            show_progress=show_progress,
        )
        retriever = bm25s.BM25(k1=k1, b=b, method="lucene")
        retriever.index(tokens, show_progress=show_progress)
        logger.info("BM25 index: %d passages (k1=%g, b=%g)", len(doc_ids), k1, b)
        return cls(retriever, doc_ids)

    @classmethod
    def from_collection(
        cls,
        collection,
        k1: float = ANSERINI_MSMARCO[0],
        b: float = ANSERINI_MSMARCO[1],
        *,
        show_progress: bool = True,
    ) -> BM25Index:
        """Index the distinct candidate passages of a ``Collection``."""
        doc_ids = dict.fromkeys(doc_id for _, doc_id in collection.pairs())
        docs = [(doc_id, collection.docs[doc_id]) for doc_id in doc_ids]
        return cls.build(docs, k1, b, show_progress=show_progress)

    def _query_tokens(self, text: str) -> list[str]:
        """The query's terms that occur in the index (others cannot score)."""
        tokens = bm25s.tokenize(
            [text], stopwords=STOPWORDS, return_ids=False, show_progress=False
        )[0]
        return [t for t in tokens if t in self.retriever.vocab_dict]

    def _all_scores(self, text: str) -> np.ndarray:
        """``[n_docs]`` BM25 score of every indexed passage for one query."""
        tokens = self._query_tokens(text)
        if not tokens:
            return np.zeros(len(self.doc_ids), dtype=np.float32)
        return self.retriever.get_scores(tokens)

    def score(self, query: str, doc_ids: Sequence[str]) -> np.ndarray:
        """``[len(doc_ids)]`` BM25 scores of given passages (reranking baseline)."""
        missing = [d for d in doc_ids if d not in self._row]
        if missing:
            raise KeyError(
                f"BM25Index.score: {len(missing)} doc ids not in the index, "
                f"e.g. {missing[0]!r}"
            )
        rows = np.fromiter(
            (self._row[d] for d in doc_ids), dtype=np.int64, count=len(doc_ids)
        )
        return self._all_scores(query)[rows]

    def rerank(
        self,
        queries: Mapping[str, str],
        candidates: Mapping[str, Sequence[tuple[str, float]]],
        *,
        show_progress: bool = True,
    ) -> dict[str, dict[str, float]]:
        """Rescore each query's candidates: ``{qid: {doc_id: bm25 score}}``."""
        run = {}
        for qid in tqdm(queries, desc="bm25 rerank", disable=not show_progress):
            doc_ids = [doc_id for doc_id, _ in candidates.get(qid, ())]
            scores = self.score(queries[qid], doc_ids)
            run[qid] = {d: float(s) for d, s in zip(doc_ids, scores, strict=True)}
        return run

    def retrieve(
        self, queries: Mapping[str, str], k: int = 1000, *, show_progress: bool = True
    ) -> dict[str, dict[str, float]]:
        """Top-``k`` passages per query: ``{qid: {doc_id: score}}`` best first.

        Passages scoring 0 (no query term) are left out.
        """
        k = min(k, len(self.doc_ids))
        run = {}
        for qid in tqdm(queries, desc="bm25 retrieve", disable=not show_progress):
            scores = self._all_scores(queries[qid])
            top = np.argpartition(-scores, k - 1)[:k]
            top = top[np.lexsort((top, -scores[top]))]
            run[qid] = {self.doc_ids[i]: float(scores[i]) for i in top if scores[i] > 0}
        return run

    def save(self, folder: str | os.PathLike) -> Path:
        """Save with bm25s's native format, plus ``doc_ids.json``, into ``folder``."""
        folder = Path(folder)
        self.retriever.save(str(folder), show_progress=False)
        atomic_write_json(folder / DOC_IDS_FILE, self.doc_ids)
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike) -> BM25Index:
        """Load an index written by :meth:`save`."""
        folder = Path(folder)
        ids_path = folder / DOC_IDS_FILE
        if not ids_path.is_file():
            raise ValueError(f"BM25 index {folder}: missing {DOC_IDS_FILE}")
        retriever = bm25s.BM25.load(str(folder), show_progress=False)
        doc_ids = json.loads(ids_path.read_text(encoding="utf-8"))
        n_docs = retriever.scores["num_docs"]
        if not isinstance(doc_ids, list) or len(doc_ids) != n_docs:
            raise ValueError(
                f"BM25 index {ids_path}: expected a list of {n_docs} doc ids, "
                f"got {type(doc_ids).__name__} of length {len(doc_ids)}"
            )
        return cls(retriever, doc_ids)
