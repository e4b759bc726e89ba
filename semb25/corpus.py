"""Corpus statistics over word pieces: document frequency, IDF and avgdl.

The student's IDF direction is fitted to, and the BM25 special case uses, the
Robertson–Spärck Jones IDF with BM25's +1 inside the log (as in Lucene and
bm25s), counted on word-piece ids:

    idf(t) = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))

Robertson & Zaragoza, "The Probabilistic Relevance Framework: BM25 and
Beyond", 2009.

>>> import numpy as np
>>> stats = corpus_stats([[5, 6, 6], [6, 7]], vocab_size=8)
>>> int(stats.df[6]), stats.n_docs, float(stats.avgdl)
(2, 2, 2.5)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CorpusStats:
    """Document frequencies and lengths of a tokenised collection.

    Attributes:
        df: ``[vocab]`` int64, number of documents containing each token id.
        n_docs: number of documents N.
        avgdl: mean document length in word pieces (special tokens excluded).
    """

    df: np.ndarray
    n_docs: int
    avgdl: float

    @property
    def idf(self) -> np.ndarray:
        """``[vocab]`` float32 BM25 IDF, ln(1 + (N - df + 0.5) / (df + 0.5))."""
        df = self.df.astype(np.float64)
        return np.log1p((self.n_docs - df + 0.5) / (df + 0.5)).astype(np.float32)


def corpus_stats(
    docs_token_ids: Iterable[Sequence[int]],
    vocab_size: int,
    exclude_ids: Iterable[int] = (),
) -> CorpusStats:
    """Count df over token-id lists (one per document), skipping ``exclude_ids``.

    Args:
        docs_token_ids: for each document, its word-piece ids (no specials
            needed; any in ``exclude_ids`` are dropped before counting).
        vocab_size: size of the tokenizer's vocabulary.
        exclude_ids: ids never counted (``[CLS]``, ``[SEP]``, ``[PAD]``...).

    Returns:
        The collection's :class:`CorpusStats`.
    """
    excluded = np.asarray(sorted(set(exclude_ids)), dtype=np.int64)
    df = np.zeros(vocab_size, dtype=np.int64)
    n_docs = 0
    total_len = 0
    for ids in docs_token_ids:
        ids = np.asarray(ids, dtype=np.int64)
        if excluded.size:
            ids = ids[~np.isin(ids, excluded)]
        n_docs += 1
        total_len += ids.size
        df[np.unique(ids)] += 1
    if n_docs == 0:
        raise ValueError("corpus_stats: the collection has no documents")
    return CorpusStats(df=df, n_docs=n_docs, avgdl=total_len / n_docs)
