"""Axiomatic diagnostics: does a model prefer the axiomatically better document?

Each case is ``(query, better, worse)``, two texts that differ by one controlled
edit of a real candidate passage d of the query; a model agrees with the axiom
on a case when ``score(q, better) > score(q, worse)`` strictly. Ties are
counted apart. Axioms after Fang, Tao & Zhai, "A Formal Study of Information
Retrieval Heuristics" (SIGIR 2004) and Fang & Zhai, "Semantic Term Matching in
Axiomatic Approaches to Information Retrieval" (SIGIR 2006):

    TFC1   better = d with one non-query word replaced by a query term that d
           already contains (one more occurrence, same length); worse = d.
    LNC    better = d; worse = d + the first ``lnc_words`` words of a passage
           retrieved for another query that holds none of the query's terms
           (longer, same query-term counts). d holds a query term; the
           appended words may hold the query's stop words.
    STMC1  one non-query word of d replaced, at the same position, by a term
           related to a query term (better) or by an unrelated one (worse).

Words and terms. A query's terms are its BM25 terms (bm25s's tokenizer as in
``semb25.bm25``: lower-cased ``\\w\\w+``, English stop words removed). Edits
work on whole words of the passage: a replaceable word is a run of 2+ ASCII
letters not joined to other word characters, apostrophes or hyphens, not in
bm25s's extended stop-word list, not sharing its first 4 letters with a query
term (so neither a query term nor a crude variant of one is removed), and one
word piece of the teacher's vocabulary. Inserted words are single word pieces
too, so an edit keeps the length both in BM25 terms and in word pieces. The
replaced word is drawn with the seed among the replaceable ones.

Related and unrelated terms (STMC1). The query term is a content term of the
query (not an extended stop word, one word piece). The related term is its
nearest neighbour by cosine over the teacher's token-embedding matrix among
whole-word tokens (no ``##`` pieces, 3+ ASCII letters, not a stop word, not a
query term, not the term itself). The unrelated term is drawn with the seed
from the ``pool_size`` most frequent such words of the collection's passages
(by document frequency), among the ``far_share`` of them least similar to the
query (highest cosine to any of its content terms is lowest).

Reference BM25 scorer. :class:`BM25TextScorer` scores arbitrary (perturbed)
text with Lucene BM25 and the N, df and avgdl of the collection's distinct
candidate passages, the same statistics as ``BM25Index.from_collection``; a
perturbed passage is scored as if added to the collection without changing
them. BM25 with b > 0 satisfies TFC1 and LNC on every case by construction,
and ties on every STMC1 case (neither inserted word is a query term).

Known limitation: LNC's appended words can push a passage past a model's input
limit (the student keeps 256 word pieces, the teacher 256 tokens); a truncated
pair is then scored on its cut text and can tie.

>>> coll = load_collection("trec-dl-2019")                    # doctest: +SKIP
>>> teacher = load_teacher("sentence-transformers/all-MiniLM-L6-v2")  # doctest: +SKIP
>>> cases = build_axiom_cases(coll, teacher.token_embeddings,
...                           teacher.tokenizer, n_pairs=100)  # doctest: +SKIP
>>> axioms_for_models({"BM25": BM25TextScorer.from_collection(coll),
...                    "teacher": teacher.score}, cases)      # doctest: +SKIP
{'BM25': {'TFC1': 1.0, 'LNC': 1.0, 'STMC1': 0.0}, 'teacher': {...}}
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import bm25s
import numpy as np
import tokenizers
from bm25s.stopwords import STOPWORDS_EN_PLUS
from tqdm.auto import tqdm

from semb25.bm25 import ANSERINI_MSMARCO, STOPWORDS

logger = logging.getLogger(__name__)

AXIOMS = ("TFC1", "LNC", "STMC1")
AXIOM_DESCRIPTIONS = {
    "TFC1": "a non-query word replaced by a query term the passage already holds "
    "(one more occurrence, same length) beats the original",
    "LNC": "the original beats itself with words of another query's passage "
    "appended (longer, no query term added)",
    "STMC1": "a non-query word replaced by the query term's nearest neighbour in "
    "the teacher's token-embedding space beats the same word replaced by a "
    "frequent word far from the query in that space",
}
# Content-word filter for chosen terms and replaced words (a superset of BM25's).
CONTENT_STOPWORDS = frozenset(STOPWORDS_EN_PLUS)
# A whole word of 2+ ASCII letters, not part of a longer word, contraction or
# hyphenation: one bm25s term, and one word piece when it is in the vocabulary.
WORD = re.compile(r"(?<![\w'’\-])[A-Za-z]{2,}(?![\w'’\-])")

# Passage words sharing this many leading letters with a query term stay put.
STEM_PREFIX = 4

ScoreFn = Callable[[Sequence[str], Sequence[str]], np.ndarray]


class AxiomCase(NamedTuple):
    """One diagnostic pair: the axiom says ``better`` should outscore ``worse``."""

    query: str
    better: str
    worse: str


def bm25_terms(texts: Sequence[str]) -> list[list[str]]:
    """BM25 terms of each text (bm25s's tokenizer, as in ``semb25.bm25``)."""
    if not texts:
        return []
    return bm25s.tokenize(
        list(texts), stopwords=STOPWORDS, return_ids=False, show_progress=False
    )


def replace_span(text: str, span: tuple[int, int], word: str) -> str:
    """``text`` with the characters ``[start, end)`` replaced by ``word``."""
    start, end = span
    return text[:start] + word + text[end:]


class BM25TextScorer:
    """Lucene BM25 on arbitrary text with fixed collection statistics.

    score(q, d) = sum over q's terms t with df(t) > 0 (repeats count again) of
    idf(t) tf(t, d) / (tf(t, d) + k1 (1 - b + b |d| / avgdl)), with
    idf(t) = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5)), |d| in BM25 terms.
    Terms absent from the collection score 0, as in an index over it.

    Attributes:
        df: term -> number of passages holding it.
        n_docs, avgdl: N and the mean passage length in BM25 terms.
        k1, b: BM25 parameters.
    """

    def __init__(
        self,
        df: Mapping[str, int],
        n_docs: int,
        avgdl: float,
        k1: float = ANSERINI_MSMARCO[0],
        b: float = ANSERINI_MSMARCO[1],
    ):
        if n_docs < 1 or avgdl <= 0:
            raise ValueError(
                f"BM25TextScorer: expected n_docs >= 1 and avgdl > 0, got "
                f"{n_docs} and {avgdl}"
            )
        self.df = dict(df)
        self.n_docs = int(n_docs)
        self.avgdl = float(avgdl)
        self.k1 = float(k1)
        self.b = float(b)

    @classmethod
    def from_texts(
        cls,
        texts: Sequence[str],
        k1: float = ANSERINI_MSMARCO[0],
        b: float = ANSERINI_MSMARCO[1],
    ) -> BM25TextScorer:
        """Statistics counted over ``texts`` (one passage each)."""
        terms = bm25_terms(texts)
        if not terms:
            raise ValueError("BM25TextScorer.from_texts: expected at least one text")
        df = Counter(t for doc in terms for t in set(doc))
        avgdl = sum(len(doc) for doc in terms) / len(terms)
        return cls(df, len(terms), avgdl, k1, b)

    @classmethod
    def from_collection(
        cls,
        collection,
        k1: float = ANSERINI_MSMARCO[0],
        b: float = ANSERINI_MSMARCO[1],
    ) -> BM25TextScorer:
        """Statistics of a ``Collection``'s distinct candidate passages."""
        doc_ids = dict.fromkeys(doc_id for _, doc_id in collection.pairs())
        return cls.from_texts([collection.docs[d] for d in doc_ids], k1, b)

    def idf(self, term: str) -> float:
        df = self.df.get(term, 0)
        return math.log1p((self.n_docs - df + 0.5) / (df + 0.5)) if df else 0.0

    def __call__(self, queries: Sequence[str], docs: Sequence[str]) -> np.ndarray:
        """Scores of aligned pairs ``(queries[i], docs[i])``: ``[n]`` float64."""
        if len(queries) != len(docs):
            raise ValueError(
                f"BM25TextScorer: {len(queries)} queries but {len(docs)} docs"
            )
        unique = list(dict.fromkeys(queries))
        q_terms = dict(zip(unique, bm25_terms(unique), strict=True))
        out = np.zeros(len(docs), dtype=np.float64)
        for i, (query, d_terms) in enumerate(
            zip(queries, bm25_terms(docs), strict=True)
        ):
            tf = Counter(d_terms)
            norm = self.k1 * (1 - self.b + self.b * len(d_terms) / self.avgdl)
            out[i] = sum(
                self.idf(t) * tf[t] / (tf[t] + norm) for t in q_terms[query] if tf[t]
            )
        return out


class _Vocabulary:
    """The teacher's word pieces seen as whole words, with unit embeddings."""

    def __init__(self, embeddings: np.ndarray, tokenizer: tokenizers.Tokenizer):
        vocab = tokenizer.get_vocab()
        if embeddings.ndim != 2 or embeddings.shape[0] < len(vocab):
            raise ValueError(
                f"embeddings: expected [vocab >= {len(vocab)}, hidden], got shape "
                f"{embeddings.shape}"
            )
        self.ids = {token: i for token, i in vocab.items()}
        tokens = [""] * embeddings.shape[0]
        for token, i in vocab.items():
            tokens[i] = token
        self.tokens = tokens
        emb = np.asarray(embeddings, dtype=np.float32)
        self.unit = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        # [vocab] bool: tokens that may stand in a passage as a related word.
        self.word_like = np.array(
            [_is_content_word(t) and len(t) >= 3 for t in tokens], dtype=bool
        )

    def nearest_word(self, term: str, excluded: set[str]) -> str | None:
        """The whole-word token closest to ``term`` by cosine, not in ``excluded``."""
        cos = self.unit @ self.unit[self.ids[term]]  # [vocab]
        cos = np.where(self.word_like, cos, -np.inf)
        for i in np.argsort(-cos, kind="stable")[:64]:
            token = self.tokens[i]
            if np.isfinite(cos[i]) and token != term and token not in excluded:
                return token
        return None


def _is_content_word(word: str) -> bool:
    """ASCII letters only, at least 2, and no (extended) stop word."""
    return (
        len(word) >= 2
        and word.isascii()
        and word.isalpha()
        and word not in CONTENT_STOPWORDS
    )


def _replaceable_spans(
    text: str, query_terms: set[str], vocab: Mapping[str, int]
) -> list[tuple[int, int]]:
    """Character spans of the passage's words that an edit may replace.

    Words sharing their first ``STEM_PREFIX`` letters with a query term
    ("cooking" for "cook") are kept: replacing them would remove a near match.
    """
    stems = {t[:STEM_PREFIX] for t in query_terms}
    spans = []
    for match in WORD.finditer(text):
        word = match.group().lower()
        if _is_content_word(word) and word in vocab and word[:STEM_PREFIX] not in stems:
            spans.append(match.span())
    return spans


def build_axiom_cases(
    collection,
    embeddings: np.ndarray,
    tokenizer: tokenizers.Tokenizer,
    n_pairs: int = 200,
    seed: int = 0,
    *,
    depth: int = 10,
    lnc_words: int = 30,
    pool_size: int = 2000,
    far_share: float = 0.1,
    show_progress: bool = True,
) -> dict[str, list[AxiomCase]]:
    """Perturbed pairs for TFC1, LNC and STMC1 from a collection's top candidates.

    Args:
        collection: a ``semb25.data.Collection``; its queries' top ``depth``
            candidates are visited in an order shuffled with ``seed``.
        embeddings: ``[vocab, hidden]`` teacher token embeddings (STMC1).
        tokenizer: the teacher's WordPiece tokenizer (its vocabulary only).
        n_pairs: cases wanted per axiom (fewer if the candidates run out).
        seed: drives the visiting order and every choice of word and filler.
        depth: candidates per query to draw from.
        lnc_words: words of the other passage appended for LNC.
        pool_size, far_share: the unrelated-word pool (see the module doc).
        show_progress: tqdm bar over visited pairs.

    Returns:
        ``{"TFC1": [AxiomCase], "LNC": [...], "STMC1": [...]}``.
    """
    if not 0 < far_share <= 1:
        raise ValueError(f"far_share: expected a value in (0, 1], got {far_share}")
    rng = np.random.default_rng(seed)
    vocab = _Vocabulary(embeddings, tokenizer)

    # Query-candidate pairs in a seeded order; BM25 terms of every passage.
    pairs = [
        (qid, doc_id)
        for qid in collection.queries
        for doc_id, _ in collection.candidates.get(qid, ())[:depth]
    ]
    pairs = [pairs[i] for i in rng.permutation(len(pairs))]
    passage_ids = list(dict.fromkeys(d for _, d in collection.pairs()))
    passage_terms = dict(
        zip(
            passage_ids,
            bm25_terms([collection.docs[d] for d in passage_ids]),
            strict=True,
        )
    )
    filler_order = [passage_ids[i] for i in rng.permutation(len(passage_ids))]

    # The unrelated-word pool: the collection's most frequent content words.
    df = Counter(t for terms in passage_terms.values() for t in set(terms))
    pool = [
        t
        for t, _ in sorted(df.items(), key=lambda kv: (-kv[1], kv[0]))
        if t in vocab.ids and vocab.word_like[vocab.ids[t]]
    ][:pool_size]
    pool_unit = vocab.unit[[vocab.ids[t] for t in pool]]  # [pool, hidden]
    logger.debug("axioms: unrelated-word pool of %d words", len(pool))

    cases: dict[str, list[AxiomCase]] = {axiom: [] for axiom in AXIOMS}
    query_terms_of = dict(
        zip(
            collection.queries,
            bm25_terms(list(collection.queries.values())),
            strict=True,
        )
    )
    bar = tqdm(pairs, desc="axiom cases", disable=not show_progress)
    for qid, doc_id in bar:
        if all(len(rows) >= n_pairs for rows in cases.values()):
            break
        query, doc = collection.queries[qid], collection.docs[doc_id]
        q_terms = set(query_terms_of[qid])
        content = sorted(t for t in q_terms if _is_content_word(t) and t in vocab.ids)
        spans = _replaceable_spans(doc, q_terms, vocab.ids)
        d_terms = set(passage_terms[doc_id])

        # TFC1: one more occurrence of a query term the passage already holds.
        present = [t for t in content if t in d_terms]
        if len(cases["TFC1"]) < n_pairs and present and spans:
            term = present[rng.integers(len(present))]
            span = spans[rng.integers(len(spans))]
            cases["TFC1"].append(AxiomCase(query, replace_span(doc, span, term), doc))

        # LNC: append words of another query's passage holding no query term.
        if len(cases["LNC"]) < n_pairs and q_terms & d_terms:
            own = {d for d, _ in collection.candidates[qid]}
            start = int(rng.integers(len(filler_order)))
            for other in filler_order[start:] + filler_order[:start]:
                if other not in own and not q_terms & set(passage_terms[other]):
                    words = collection.docs[other].split()[:lnc_words]
                    longer = doc + " " + " ".join(words)
                    cases["LNC"].append(AxiomCase(query, doc, longer))
                    break

        # STMC1: the same word replaced by a related vs an unrelated term.
        if len(cases["STMC1"]) < n_pairs and content and spans:
            term = content[rng.integers(len(content))]
            related = vocab.nearest_word(term, q_terms)
            content_unit = vocab.unit[[vocab.ids[t] for t in content]]  # [c, hidden]
            closeness = (pool_unit @ content_unit.T).max(axis=1)  # [pool]
            cutoff = np.quantile(closeness, far_share)
            far = [
                w
                for w, c in zip(pool, closeness, strict=True)
                if c <= cutoff and w not in q_terms and w != related
            ]
            unrelated = far[rng.integers(len(far))] if far else None
            spans_ok = [
                s for s in spans if doc[s[0] : s[1]].lower() not in (related, unrelated)
            ]
            if related is not None and unrelated is not None and spans_ok:
                span = spans_ok[rng.integers(len(spans_ok))]
                logger.debug(
                    "STMC1 %s: %r related %r, unrelated %r",
                    qid,
                    term,
                    related,
                    unrelated,
                )
                cases["STMC1"].append(
                    AxiomCase(
                        query,
                        replace_span(doc, span, related),
                        replace_span(doc, span, unrelated),
                    )
                )
    bar.close()

    counts = {axiom: len(rows) for axiom, rows in cases.items()}
    if any(n < n_pairs for n in counts.values()):
        logger.warning(
            "axioms: asked for %d cases per axiom, built %s from %d pairs",
            n_pairs,
            counts,
            len(pairs),
        )
    logger.info("axiom cases from %s: %s", collection.name, counts)
    return cases


def axiom_agreement(
    score_fn: ScoreFn,
    cases: Mapping[str, Sequence[AxiomCase]],
    tie_tolerance: float = 0.0,
) -> dict[str, dict[str, float | int]]:
    """Per axiom, the share of cases where ``score(better) > score(worse)``.

    Args:
        score_fn: ``(queries [n], docs [n]) -> scores [n]`` over aligned pairs.
        cases: ``{axiom: [(query, better, worse)]}``.
        tie_tolerance: ``|score(better) - score(worse)| <= tie_tolerance`` is a
            tie (default 0: exact equality only).

    Returns:
        ``{axiom: {"share": float, "ties": float, "n": int}}``; shares of the n
        cases, nan for an axiom without cases.
    """
    out: dict[str, dict[str, float | int]] = {}
    for axiom, rows in cases.items():
        n = len(rows)
        if n == 0:
            out[axiom] = {"share": math.nan, "ties": math.nan, "n": 0}
            continue
        queries = [c.query for c in rows]
        docs = [c.better for c in rows] + [c.worse for c in rows]
        scores = np.asarray(score_fn(queries + queries, docs), dtype=np.float64)
        if scores.shape != (2 * n,) or not np.isfinite(scores).all():
            raise ValueError(
                f"axiom {axiom}: score_fn must return {2 * n} finite scores, got "
                f"shape {scores.shape} with {int((~np.isfinite(scores)).sum())} "
                "non-finite"
            )
        diff = scores[:n] - scores[n:]  # [n] better minus worse
        tie = np.abs(diff) <= tie_tolerance
        out[axiom] = {
            "share": float(np.mean((diff > 0) & ~tie)),
            "ties": float(np.mean(tie)),
            "n": n,
        }
    return out


def axioms_for_models(
    models: Mapping[str, ScoreFn],
    cases: Mapping[str, Sequence[AxiomCase]],
    *,
    show_progress: bool = True,
) -> dict[str, dict[str, float]]:
    """``{model: {axiom: share}}``, the shape of the report's ``extras["axioms"]``.

    Tie shares and case counts go to the log (INFO); use
    :func:`axiom_agreement` to keep them.
    """
    shares: dict[str, dict[str, float]] = {}
    for name in tqdm(models, desc="axioms", disable=not show_progress):
        result = axiom_agreement(models[name], cases)
        shares[name] = {axiom: r["share"] for axiom, r in result.items()}
        logger.info(
            "axioms %s: %s",
            name,
            ", ".join(
                f"{a} {r['share']:.3f} (ties {r['ties']:.3f}, n={r['n']})"
                for a, r in result.items()
            ),
        )
    return shares
