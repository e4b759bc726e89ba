"""Reranking collections: queries, qrels, first-stage candidates and passages.

A :class:`Collection` is what a reranker is evaluated on: for each query its
first-stage candidates (BM25 top-k, in rank order), the judgements, and a
doc_id -> text lookup. Two sources fill it:

* local files (a folder of ``queries.tsv``, ``docs.jsonl``, ``qrels.txt`` and
  ``bm25.run``, or a ``query<TAB>positive<TAB>negative`` triples ``.tsv``);
* ``ir_datasets`` (MS MARCO passage ids such as ``msmarco-passage/dev/small``):
  ``scoreddocs`` (the official BM25 top-1000) become the candidates and
  passages are fetched one by one from ``docs_store()``, never loaded whole.

Specs are resolved in this order: an ``irds:`` prefix or a known ir_datasets
id; an existing path; a name under the data root (:func:`resolve_data_root`).

>>> coll = load_collection("trec-dl-2019", max_candidates=10)  # doctest: +SKIP
>>> qid, doc_id = coll.pairs()[0]  # doctest: +SKIP
>>> coll.queries[qid], coll.docs[doc_id][:40]  # doctest: +SKIP

Known limitations: a local ``docs.jsonl`` is read into memory (fine for the
samples, not for the 8.8M-passage corpus: use ir_datasets for that). Triples
have no ids, so local triples get ids made from their text (``tq<n>`` for
queries, ``td<sha1 prefix>`` for passages); their only judgement is positive=1.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from semb25.data.trec import LineErrors, iter_lines, read_qrels, read_run_ranked

logger = logging.getLogger(__name__)

DATA_ENV = "SEMB25_DATA"
IRDS_PREFIX = "irds:"
KNOWN_IRDS_IDS = (
    "msmarco-passage/dev/small",
    "msmarco-passage/trec-dl-2019/judged",
    "msmarco-passage/trec-dl-2020/judged",
    "msmarco-passage/train/judged",
    "msmarco-passage/train/triples-small",
)
QUERIES_FILE = "queries.tsv"
DOCS_FILE = "docs.jsonl"
QRELS_FILE = "qrels.txt"
RUN_FILE = "bm25.run"


@dataclass
class Collection:
    """One reranking test collection.

    Attributes:
        name: e.g. ``"trec-dl-2019"`` or ``"msmarco-passage/dev/small"``.
        source: ``"local:/abs/path"`` or ``"ir_datasets:<id>"``.
        queries: qid -> query text, in the collection's query order.
        qrels: qid -> doc_id -> relevance (graded 0-3 on DL, binary on dev).
        candidates: qid -> ``[(doc_id, first-stage score)]`` in rank order.
        docs: doc_id -> passage text (lazy for ir_datasets).
    """

    name: str
    source: str
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    candidates: dict[str, list[tuple[str, float]]]
    docs: Mapping[str, str]

    def pairs(self) -> list[tuple[str, str]]:
        """All ``(qid, doc_id)`` candidate pairs, in query order then rank order."""
        return [
            (qid, doc_id)
            for qid in self.queries
            for doc_id, _ in self.candidates.get(qid, ())
        ]

    def first_stage_run(self) -> dict[str, dict[str, float]]:
        """The candidates as a run ``{qid: {doc_id: score}}`` (the BM25 baseline)."""
        return {
            qid: dict(self.candidates[qid])
            for qid in self.queries
            if qid in self.candidates
        }


class DocsStoreMapping(Mapping):
    """Read-only doc_id -> text view over an ir_datasets ``docs_store()``.

    Each lookup is one ``store.get(doc_id)``; iteration walks the whole store
    (slow on MS MARCO: avoid it).
    """

    def __init__(self, store: Any):
        self._store = store

    def __getitem__(self, doc_id: str) -> str:
        doc = self._store.get(doc_id)
        if doc is None:
            raise KeyError(doc_id)
        return doc.text

    def __iter__(self) -> Iterator[str]:
        return (doc.doc_id for doc in self._store)

    def __len__(self) -> int:
        return len(self._store)


def repo_root() -> Path:
    """The folder holding the ``semb25`` package (the repository root)."""
    return Path(__file__).resolve().parents[2]


def resolve_data_root(data_root: str | os.PathLike | None = None) -> Path | None:
    """Find the folder of local collections.

    Order: the argument (must exist if given), ``$SEMB25_DATA`` (must exist
    if set), then ``<repo root>/../shared/data/msmarco-passage``. Returns
    ``None`` if neither of the last two exists.
    """
    if data_root is not None:
        path = Path(data_root).expanduser().resolve()
        if not path.is_dir():
            raise ValueError(f"data root {path}: expected an existing folder")
        return path
    env = os.environ.get(DATA_ENV)
    if env:
        path = Path(env).expanduser().resolve()
        if path.is_dir():
            return path
        # A typo here must not silently become a multi-GB download.
        raise ValueError(
            f"{DATA_ENV}={env}: not a folder; point it at the local collections "
            f"(e.g. the MS MARCO sample) or unset it to use ir_datasets"
        )
    default = (repo_root() / ".." / "shared" / "data" / "msmarco-passage").resolve()
    return default if default.is_dir() else None


def load_collection(
    spec: str,
    data_root: str | os.PathLike | None = None,
    *,
    max_candidates: int | None = None,
    max_queries: int | None = None,
    on_error: str = "raise",
) -> Collection:
    """Load a collection from local files or ir_datasets.

    Args:
        spec: a folder or triples ``.tsv`` path, a name under the data root
            (``"trec-dl-2019"``, ``"dev-sample"``), or an ir_datasets id
            (``"irds:<id>"`` or one of :data:`KNOWN_IRDS_IDS`).
        data_root: folder of local collections (see :func:`resolve_data_root`).
        max_candidates: keep only each query's top-k candidates.
        max_queries: keep only the first n queries (in candidate order).
        on_error: ``"raise"`` on a malformed line, or ``"skip"`` and count.

    Returns:
        The :class:`Collection`.
    """
    if max_candidates is not None and max_candidates < 1:
        raise ValueError(f"max_candidates: expected >= 1, got {max_candidates}")
    if spec.startswith(IRDS_PREFIX) or spec in KNOWN_IRDS_IDS:
        irds_id = spec.removeprefix(IRDS_PREFIX)
        return load_ir_datasets(
            irds_id, max_candidates=max_candidates, max_queries=max_queries
        )
    path = Path(spec).expanduser()
    if not path.exists():
        root = resolve_data_root(data_root)
        if root is None or not (root / spec).exists():
            raise ValueError(
                f"collection {spec!r}: not a path, not under data root {root} "
                f"(set ${DATA_ENV}), and not an ir_datasets id {KNOWN_IRDS_IDS}"
            )
        path = root / spec
    path = path.resolve()
    if path.is_file():
        return load_triples_tsv(path, max_queries=max_queries, on_error=on_error)
    return load_local(
        path, max_candidates=max_candidates, max_queries=max_queries, on_error=on_error
    )


def read_queries(path: str | os.PathLike, on_error: str = "raise") -> dict[str, str]:
    """Read ``qid<TAB>text`` lines into ``{qid: text}``."""
    errors = LineErrors(path, on_error)
    queries: dict[str, str] = {}
    for line_no, line in iter_lines(path):
        cols = line.split("\t")
        if len(cols) != 2:
            errors(
                line_no,
                "bad column count",
                f"expected 2 tab-separated columns 'qid<TAB>text', got {len(cols)}",
            )
            continue
        qid, text = cols[0].strip(), cols[1]
        if qid in queries:
            errors(line_no, "duplicate qid", f"duplicate query id {qid!r}")
            continue
        queries[qid] = text
    errors.report()
    return queries


def read_docs(path: str | os.PathLike, on_error: str = "raise") -> dict[str, str]:
    """Read ``{"doc_id": ..., "text": ...}`` JSON lines into ``{doc_id: text}``."""
    errors = LineErrors(path, on_error)
    docs: dict[str, str] = {}
    for line_no, line in iter_lines(path):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            errors(
                line_no, "bad JSON", f"expected a JSON object, got invalid JSON ({e})"
            )
            continue
        if (
            not isinstance(record, dict)
            or not isinstance(record.get("doc_id"), str)
            or not isinstance(record.get("text"), str)
        ):
            errors(line_no, "bad record", 'expected {"doc_id": str, "text": str}')
            continue
        if record["doc_id"] in docs:
            errors(
                line_no, "duplicate doc id", f"duplicate doc id {record['doc_id']!r}"
            )
            continue
        docs[record["doc_id"]] = record["text"]
    errors.report()
    return docs


def find_run_file(folder: Path) -> Path:
    """``bm25.run`` if present, else the folder's only ``*.run`` file."""
    if (folder / RUN_FILE).is_file():
        return folder / RUN_FILE
    runs = sorted(folder.glob("*.run"))
    if len(runs) != 1:
        raise ValueError(
            f"collection {folder}: expected {RUN_FILE} or exactly one *.run file, "
            f"found {[p.name for p in runs]}"
        )
    return runs[0]


def load_local(
    folder: str | os.PathLike,
    *,
    name: str | None = None,
    max_candidates: int | None = None,
    max_queries: int | None = None,
    on_error: str = "raise",
) -> Collection:
    """Load a local collection folder (``queries.tsv``, ``docs.jsonl``,
    ``qrels.txt``, ``bm25.run`` or one ``*.run``)."""
    folder = Path(folder).resolve()
    for needed in (QUERIES_FILE, DOCS_FILE, QRELS_FILE):
        if not (folder / needed).is_file():
            raise ValueError(f"collection {folder}: missing {needed}")

    # Docs and queries first: the run is checked against both.
    queries = read_queries(folder / QUERIES_FILE, on_error)
    docs = read_docs(folder / DOCS_FILE, on_error)
    run_path = find_run_file(folder)
    candidates = read_run_ranked(
        run_path, doc_ids=docs, qids=queries, on_error=on_error
    )

    # Keep queries in queries.tsv order; truncate to the requested sizes.
    queries = {qid: text for qid, text in queries.items() if qid in candidates}
    if max_queries is not None:
        queries = dict(list(queries.items())[:max_queries])
    candidates = {qid: candidates[qid][:max_candidates] for qid in queries}
    qrels = read_qrels(folder / QRELS_FILE, qids=queries, on_error=on_error)

    collection = Collection(
        name=name or folder.name,
        source=f"local:{folder}",
        queries=queries,
        qrels=qrels,
        candidates=candidates,
        docs=docs,
    )
    logger.info(
        "collection %s: local files in %s (%d queries, %d candidates, run %s)",
        collection.name,
        folder,
        len(queries),
        len(collection.pairs()),
        run_path.name,
    )
    return collection


def text_doc_id(text: str) -> str:
    """A stable id for a passage known only by its text (local triples)."""
    return "td" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


def load_triples_tsv(
    path: str | os.PathLike,
    *,
    max_queries: int | None = None,
    on_error: str = "raise",
) -> Collection:
    """Load ``query<TAB>positive<TAB>negative`` lines as a collection: each
    query's candidates are its (positive, 1.0), (negative, 0.0) pairs and its
    qrels mark the positives 1."""
    path = Path(path).resolve()
    errors = LineErrors(path, on_error)
    qid_of: dict[str, str] = {}
    docs: dict[str, str] = {}
    candidates: dict[str, list[tuple[str, float]]] = {}
    qrels: dict[str, dict[str, int]] = {}
    for line_no, line in iter_lines(path):
        cols = line.split("\t")
        if len(cols) != 3:
            errors(
                line_no,
                "bad column count",
                "expected 3 tab-separated columns 'query<TAB>positive<TAB>negative',"
                f" got {len(cols)}",
            )
            continue
        query, positive, negative = cols
        if query not in qid_of:
            if max_queries is not None and len(qid_of) >= max_queries:
                break
            qid_of[query] = f"tq{len(qid_of)}"
        qid = qid_of[query]

        # Same text, same id: repeated passages collapse into one doc.
        pos_id, neg_id = text_doc_id(positive), text_doc_id(negative)
        docs[pos_id], docs[neg_id] = positive, negative
        seen = {doc_id for doc_id, _ in candidates.get(qid, ())}
        for doc_id, score in ((pos_id, 1.0), (neg_id, 0.0)):
            if doc_id not in seen:
                candidates.setdefault(qid, []).append((doc_id, score))
        qrels.setdefault(qid, {})[pos_id] = 1
    errors.report()

    # A query's candidates in rank order: positives (1.0) before negatives.
    candidates = {
        qid: sorted(rows, key=lambda r: -r[1]) for qid, rows in candidates.items()
    }
    collection = Collection(
        name=path.stem,
        source=f"local:{path}",
        queries={qid: query for query, qid in qid_of.items()},
        qrels=qrels,
        candidates=candidates,
        docs=docs,
    )
    logger.info(
        "collection %s: local triples in %s (%d queries, %d candidates)",
        collection.name,
        path,
        len(collection.queries),
        len(collection.pairs()),
    )
    return collection


def load_ir_datasets(
    irds_id: str,
    *,
    max_candidates: int | None = None,
    max_queries: int | None = None,
) -> Collection:
    """Load an ir_datasets collection by id (downloads on first use)."""
    import ir_datasets

    try:
        dataset = ir_datasets.load(irds_id)
        return from_ir_datasets(
            dataset, irds_id, max_candidates=max_candidates, max_queries=max_queries
        )
    except (OSError, ConnectionError, KeyError, RuntimeError) as e:
        raise RuntimeError(
            f"collection ir_datasets:{irds_id}: could not load "
            f"({type(e).__name__}: {e}); offline? use a local folder via ${DATA_ENV}"
        ) from e


def _has(dataset: Any, part: str) -> bool:
    """Whether a (possibly duck-typed) ir_datasets dataset provides ``part``."""
    has = getattr(dataset, f"has_{part}", None)
    if callable(has):
        return bool(has())
    return hasattr(dataset, f"{part}_iter")


def from_ir_datasets(
    dataset: Any,
    irds_id: str,
    *,
    max_candidates: int | None = None,
    max_queries: int | None = None,
) -> Collection:
    """Build a collection from an ir_datasets dataset object.

    Duck-typed: ``dataset`` needs ``queries_iter()``, ``docs_store()`` and
    either ``scoreddocs_iter()`` (candidates; ``qrels_iter()`` for judgements)
    or ``docpairs_iter()`` (training triples; the positive is judged 1). Pairs
    are used when the id names triples or there are no scoreddocs.

    ``max_queries`` keeps the first n queries met in the candidate stream and
    stops reading when a further query starts, so it assumes the stream is
    grouped by query (true of the MS MARCO top-1000 files, not of shuffled
    triples, where it keeps the pairs seen before the (n+1)-th query).
    """
    # Candidates first: they decide which queries (of possibly 800k) to keep.
    # Triples ids (train/triples-small) also carry scoreddocs: the id decides.
    triples = _has(dataset, "docpairs") and (
        "triples" in irds_id or not _has(dataset, "scoreddocs")
    )
    if triples:
        candidates = _candidates_from_docpairs(dataset, max_queries)
        qrels = {
            qid: {doc_id: 1 for doc_id, score in rows if score == 1.0}
            for qid, rows in candidates.items()
        }
    else:
        if not _has(dataset, "scoreddocs"):
            raise ValueError(
                f"ir_datasets {irds_id}: expected scoreddocs or docpairs, found neither"
            )
        candidates = _candidates_from_scoreddocs(dataset, max_candidates, max_queries)
        qrels = {}
        if _has(dataset, "qrels"):
            for qrel in dataset.qrels_iter():
                if qrel.query_id in candidates:
                    qrels.setdefault(qrel.query_id, {})[qrel.doc_id] = int(
                        qrel.relevance
                    )

    # Query texts, kept in candidate order.
    texts = {
        q.query_id: q.text for q in dataset.queries_iter() if q.query_id in candidates
    }
    missing = [qid for qid in candidates if qid not in texts]
    if missing:
        raise ValueError(
            f"ir_datasets {irds_id}: {len(missing)} candidate query ids have no query "
            f"text, e.g. {missing[0]!r}"
        )
    collection = Collection(
        name=irds_id,
        source=f"ir_datasets:{irds_id}",
        queries={qid: texts[qid] for qid in candidates},
        qrels=qrels,
        candidates=candidates,
        docs=DocsStoreMapping(dataset.docs_store()),
    )
    logger.info(
        "collection %s: ir_datasets (%d queries, %d candidates)",
        irds_id,
        len(collection.queries),
        len(collection.pairs()),
    )
    return collection


def _candidates_from_scoreddocs(
    dataset: Any, max_candidates: int | None, max_queries: int | None
) -> dict[str, list[tuple[str, float]]]:
    """``scoreddocs`` grouped by query, best first, truncated to max_candidates.

    The MS MARCO top-1000 files carry ranks, not scores (ir_datasets yields one
    constant score); a query whose scores are all equal keeps the file order
    and gets score = -rank, as in the local ``dev-sample``.
    """
    grouped: dict[str, list[tuple[str, float]]] = {}
    for sd in dataset.scoreddocs_iter():
        if sd.query_id not in grouped:
            if max_queries is not None and len(grouped) >= max_queries:
                break
            grouped[sd.query_id] = []
        grouped[sd.query_id].append((sd.doc_id, float(sd.score)))
    return {
        qid: rank_candidates(qid, rows, max_candidates) for qid, rows in grouped.items()
    }


def rank_candidates(
    qid: str, rows: list[tuple[str, float]], max_candidates: int | None
) -> list[tuple[str, float]]:
    """One query's scoreddocs rows best first, truncated to ``max_candidates``.

    Rows whose scores are all equal (the top-1000 files' constant score) keep
    the stream order and get score = -rank; others are sorted by score, then
    doc id.
    """
    if len({score for _, score in rows}) == 1 and len(rows) > 1:
        rows = [(doc_id, -float(rank)) for rank, (doc_id, _) in enumerate(rows, 1)]
        logger.debug("query %s: constant scoreddocs scores, using -rank", qid)
    else:
        rows = sorted(rows, key=lambda r: (-r[1], r[0]))
    return rows[:max_candidates]


def _candidates_from_docpairs(
    dataset: Any, max_queries: int | None
) -> dict[str, list[tuple[str, float]]]:
    """Training triples as candidates: per query, positives 1.0, negatives 0.0."""
    pairs: dict[str, dict[str, float]] = {}
    for pair in dataset.docpairs_iter():
        if pair.query_id not in pairs:
            if max_queries is not None and len(pairs) >= max_queries:
                break
            pairs[pair.query_id] = {}
        scores = pairs[pair.query_id]
        scores[pair.doc_id_a] = 1.0
        scores.setdefault(pair.doc_id_b, 0.0)
    return {
        qid: sorted(scores.items(), key=lambda r: -r[1])
        for qid, scores in pairs.items()
    }
