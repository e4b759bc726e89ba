"""On-disk training examples: query groups in flat, memory-mapped arrays.

At MS MARCO scale (100k queries x 32 candidates) every query group's token
arrays held as Python objects take GBs. An :class:`ExampleStore` keeps them on
disk instead, built from a :class:`~semb25.data.stream.CandidateStream` chunk
by chunk: ``chunk_queries`` stream queries are teacher-scored (through the
resumable score store), tokenised, filtered exactly as
:func:`~semb25.distill.examples.build_groups` does, and written as one folder::

    store.json                 fingerprint of what built it; "complete" flag
    chunks/000000/
        qids.npy               [n_q] str
        query_offsets.npy      [n_q + 1] int64 into query_tokens.npy (ids)
        list_offsets.npy       [n_q + 1] int64: rows of each query's candidates
        first_stage.npy        [n_q] int32: how many rows are its own candidates
        doc_ids.npy            [n_rows] str
        teacher.npy            [n_rows] float32 raw teacher scores
        doc_offsets.npy        [n_rows + 1] int64 into doc_tokens.npy (ids)
        df_ids.npy, df_counts.npy  df of the docs first met in this chunk
        seen.npy               [n_new] uint64: 64-bit hashes of those doc ids
        chunk.json             stream items read, skipped counts, n_docs, length

Token ids are uint16 when the vocabulary fits (MiniLM's 30,522 ids), else
int32. A chunk is written to a temporary folder and renamed when complete, so
a kill loses at most the chunk being built and a rerun continues after the
last complete one (the stream is re-read up to there, not re-scored: the
teacher scores are in the score store anyway).

The store is a sequence of :class:`StoredGroup` items, duck-typed
:class:`~semb25.distill.examples.QueryGroup` views over the memory-mapped
arrays, so :class:`~semb25.distill.examples.BatchSampler` works on it
unchanged and ``list(store)`` costs about a hundred bytes per query.

Cross-query negatives (``[data] cross_query_negatives = k``): each training
query also gets k candidates drawn uniformly, without replacement, from the
candidate lists of the other training queries in its chunk (docs in its own
list excluded), scored by the teacher like the rest; the draw is seeded by
(seed, chunk index), so it is the same on every run and on resume. They follow
the query's own candidates in its group (``n_first_stage`` marks the split)
and are filtered and counted like them. Validation queries get none and lend
none. Whether a query keeps its group (two usable candidates) is decided on
its own candidates alone.

Corpus statistics (for the student's IDF) are counted over the distinct
passages of the known queries' candidate lists, as the in-memory path does;
passages are told apart by a 64-bit hash of their id (a collision among the
3.2M passages of the full-scale run has probability ~3e-7).

Known limitation: the store cannot tell whether the tokenizer's code changed
between runs (only its JSON is fingerprinted); delete the folder after such a
change.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from semb25.atomic import atomic_write_json
from semb25.corpus import CorpusStats
from semb25.distill.examples import QueryGroup

log = logging.getLogger(__name__)

STORE_VERSION = 1
CHUNK_QUERIES = 1024
STORE_FILE = "store.json"
CHUNK_FILE = "chunk.json"
ARRAYS = (
    "qids",
    "query_offsets",
    "query_tokens",
    "list_offsets",
    "first_stage",
    "doc_ids",
    "teacher",
    "doc_offsets",
    "doc_tokens",
    "df_ids",
    "df_counts",
    "seen",
)
# Read into memory when a store opens (small); the rest stay memory-mapped.
IN_MEMORY = ("query_offsets", "list_offsets", "first_stage", "doc_offsets")

Pairs = list[tuple[str, str]]
Scorer = Callable[
    [Pairs, Mapping[str, str], Mapping[str, str]], Mapping[tuple[str, str], float]
]


class TeacherScorer:
    """Teacher scores through the resumable score store (``semb25.teacher``).

    Call with ``(pairs, queries, docs)``; returns ``{(qid, doc_id): score}``.
    ``seconds`` accumulates the time spent (cache lookups included).
    """

    def __init__(self, teacher, store):
        self.teacher, self.store = teacher, store
        self.seconds = 0.0

    def __call__(self, pairs: Pairs, queries, docs) -> dict[tuple[str, str], float]:
        from semb25.teacher.store import score_with_store

        started = time.perf_counter()
        scores = score_with_store(
            self.teacher, self.store, pairs, queries, docs, show_progress=False
        )
        self.seconds += time.perf_counter() - started
        return dict(zip(pairs, (float(s) for s in scores), strict=True))


def cross_query_negatives(
    lists: Sequence[tuple[str, Sequence[str]]], k: int, rng: np.random.Generator
) -> dict[str, list[str]]:
    """For each query, k docs of the other queries' lists, not in its own.

    Args:
        lists: ``(qid, doc_ids)`` of the queries that draw and lend.
        k: negatives per query.
        rng: the seeded generator (draws depend on it and on ``lists`` only).

    Returns:
        ``{qid: [doc_id, ...]}``: k distinct docs each, drawn uniformly from the
        pool of the lists' distinct docs minus the query's own; all of them, in
        pool order, when fewer than k are left.
    """
    pool = list(dict.fromkeys(d for _, docs in lists for d in docs))
    drawn: dict[str, list[str]] = {}
    for qid, docs in lists:
        own = set(docs)
        if len(pool) - len(own) <= k:  # own is a subset of the pool
            drawn[qid] = [d for d in pool if d not in own]
            continue
        chosen: list[str] = []
        while len(chosen) < k:
            d = pool[int(rng.integers(len(pool)))]
            if d not in own and d not in chosen:
                chosen.append(d)
        drawn[qid] = chosen
    return drawn


def doc_hashes(doc_ids: Sequence[str]) -> np.ndarray:
    """``[n]`` uint64: the first 8 bytes of each id's BLAKE2b digest."""
    return np.fromiter(
        (
            int.from_bytes(hashlib.blake2b(d.encode(), digest_size=8).digest(), "big")
            for d in doc_ids
        ),
        dtype=np.uint64,
        count=len(doc_ids),
    )


class StoredGroup:
    """One query group of an :class:`ExampleStore`, read from its arrays.

    Has the attributes of :class:`~semb25.distill.examples.QueryGroup`
    (``qid``, ``query_tokens``, ``doc_ids``, ``doc_tokens``, ``teacher``;
    token ids as stored, uint16 or int32) plus ``n_first_stage``.
    """

    __slots__ = ("_chunk", "_i", "_lo", "_hi")

    def __init__(self, chunk: _Chunk, i: int):
        self._chunk, self._i = chunk, i
        # The rows of its candidates, looked up once (assemble reads them per pick).
        self._lo, self._hi = int(chunk.list_offsets[i]), int(chunk.list_offsets[i + 1])

    @property
    def qid(self) -> str:
        return self._chunk.qids[self._i]

    @property
    def query_tokens(self) -> np.ndarray:
        o = self._chunk.query_offsets
        return self._chunk.query_tokens[o[self._i] : o[self._i + 1]]

    @property
    def doc_ids(self) -> list[str]:
        return self._chunk.doc_ids[self._lo : self._hi].tolist()

    @property
    def doc_tokens(self) -> _DocTokens:
        return _DocTokens(self._chunk, self._lo, self._hi)

    @property
    def teacher(self) -> np.ndarray:
        return self._chunk.teacher[self._lo : self._hi]

    @property
    def n_first_stage(self) -> int:
        """How many of the candidates are the query's own (the rest: negatives)."""
        return int(self._chunk.first_stage[self._i])

    def to_group(self) -> QueryGroup:
        """The same group as an in-memory QueryGroup (int64 ids, as build_groups)."""
        return QueryGroup(
            qid=self.qid,
            query_tokens=np.asarray(self.query_tokens, dtype=np.int64),
            doc_ids=self.doc_ids,
            doc_tokens=[np.asarray(d, dtype=np.int64) for d in self.doc_tokens],
            teacher=np.array(self.teacher, dtype=np.float32),
        )

    def __repr__(self) -> str:
        return f"StoredGroup({self.qid!r}, {len(self.teacher)} candidates)"


class _DocTokens(Sequence):
    """The candidates' token arrays of one group (views, not copies)."""

    def __init__(self, chunk: _Chunk, lo: int, hi: int):
        self._chunk, self._lo, self._n = chunk, lo, hi - lo

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, j):
        if isinstance(j, slice):
            return [self[i] for i in range(*j.indices(self._n))]
        if j < 0:
            j += self._n
        if not 0 <= j < self._n:
            raise IndexError(j)
        o = self._chunk.doc_offsets
        return self._chunk.doc_tokens[o[self._lo + j] : o[self._lo + j + 1]]


def _load_array(path: Path) -> np.ndarray:
    """The array memory-mapped, as a plain ndarray view (slicing an np.memmap
    runs Python code per slice, which slowed batch assembly measurably)."""
    try:
        return np.load(path, mmap_mode="r").view(np.ndarray)
    except ValueError:  # an empty array cannot be memory-mapped
        return np.load(path)


class _Chunk:
    """The arrays of one complete chunk folder."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.meta = json.loads((folder / CHUNK_FILE).read_text(encoding="utf-8"))
        for name in ARRAYS:
            array = _load_array(folder / f"{name}.npy")
            setattr(self, name, np.array(array) if name in IN_MEMORY else array)
        self.qids = np.asarray(self.qids).tolist()
        self.n_groups = len(self.qids)


class ExampleStore(Sequence):
    """The query groups of a built store folder (see the module docstring)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        path = self.folder / STORE_FILE
        if not path.is_file():
            raise FileNotFoundError(f"example store {self.folder}: no {STORE_FILE}")
        meta = json.loads(path.read_text(encoding="utf-8"))
        self.fingerprint: dict = meta["fingerprint"]
        self.complete: bool = bool(meta.get("complete"))
        self.chunks = [_Chunk(p) for p in _chunk_folders(self.folder)]
        self._starts = np.cumsum([0] + [c.n_groups for c in self.chunks])

    def __len__(self) -> int:
        return int(self._starts[-1])

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = int(i)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"example store {self.folder}: no group {i}")
        c = int(np.searchsorted(self._starts, i, side="right")) - 1
        return StoredGroup(self.chunks[c], i - int(self._starts[c]))

    def __iter__(self) -> Iterator[StoredGroup]:
        for chunk in self.chunks:
            for i in range(chunk.n_groups):
                yield StoredGroup(chunk, i)

    @property
    def skipped(self) -> Counter:
        """Skipped items by reason (as :func:`build_groups` counts them)."""
        total = Counter(unknown_query=0)
        for chunk in self.chunks:
            total.update(chunk.meta["skipped"])
        return total

    @property
    def n_pairs(self) -> int:
        return sum(len(c.teacher) for c in self.chunks)

    @property
    def stream_items(self) -> int:
        """Stream queries read into the complete chunks."""
        return sum(c.meta["stream_items"] for c in self.chunks)

    def corpus_stats(self) -> CorpusStats:
        """df, N and avgdl over the distinct passages of the candidate lists."""
        df = np.zeros(self.fingerprint["vocab_size"], dtype=np.int64)
        n_docs = total_len = 0
        for chunk in self.chunks:
            df[np.asarray(chunk.df_ids)] += np.asarray(chunk.df_counts)
            n_docs += chunk.meta["n_docs"]
            total_len += chunk.meta["total_len"]
        if n_docs == 0:
            raise ValueError(f"example store {self.folder}: no documents")
        return CorpusStats(df=df, n_docs=n_docs, avgdl=total_len / n_docs)

    def nbytes(self) -> int:
        """Bytes on disk of all complete chunks."""
        return sum(p.stat().st_size for c in self.chunks for p in c.folder.iterdir())


def _chunk_folders(folder: Path) -> list[Path]:
    """Complete chunk folders ``000000, 000001, ...`` (the contiguous prefix)."""
    chunks = folder / "chunks"
    found = (
        {int(p.name) for p in chunks.iterdir() if p.name.isdigit()}
        if chunks.is_dir()
        else set()
    )
    out = []
    for i in itertools.count():
        if i not in found:
            return out
        out.append(chunks / f"{i:06d}")


def build_example_store(
    folder: str | Path,
    stream,
    tokenizer,
    scorer: Scorer,
    *,
    vocab_size: int,
    exclude_ids: Sequence[int] = (),
    is_train: Callable[[str], bool] | None = None,
    cross_query_negatives: int = 0,
    seed: int = 0,
    chunk_queries: int = CHUNK_QUERIES,
    fingerprint: Mapping | None = None,
    total: int | None = None,
    show_progress: bool = True,
) -> ExampleStore:
    """Build (or finish, or reopen) the example store in ``folder``.

    Args:
        folder: the store folder; one built with another fingerprint is
            deleted and rebuilt.
        stream: a :class:`~semb25.data.stream.CandidateStream` (``iter`` gives
            ``(qid, [doc_id, ...])``; ``.queries`` and ``.docs`` give texts).
        tokenizer: has ``token_ids(texts) -> [array]`` (the student's).
        scorer: ``(pairs, queries, docs) -> {(qid, doc_id): score}``; pairs
            it leaves out are skipped as ``missing_score``.
        vocab_size: token ids must be below it (sets the stored id width).
        exclude_ids: ids not counted in the corpus statistics.
        is_train: whether a query is a training one (draws negatives); all
            are when None.
        cross_query_negatives: k extra candidates per training query.
        seed: seeds the negatives' draw.
        chunk_queries: stream queries per chunk.
        fingerprint: what else decides the contents (source, teacher...).
        total: number of stream queries if known (for the progress bar).

    Returns:
        The complete :class:`ExampleStore`.
    """
    folder = Path(folder)
    if cross_query_negatives < 0:
        raise ValueError(
            f"cross_query_negatives: expected >= 0, got {cross_query_negatives!r}"
        )
    to_str = getattr(tokenizer, "to_str", None)
    full = {
        **(fingerprint or {}),
        "version": STORE_VERSION,
        "vocab_size": int(vocab_size),
        "exclude_ids": sorted(int(i) for i in exclude_ids),
        "cross_query_negatives": int(cross_query_negatives),
        "seed": int(seed),
        "chunk_queries": int(chunk_queries),
        "tokenizer": hashlib.sha256(to_str().encode()).hexdigest()[:16]
        if callable(to_str)
        else type(tokenizer).__name__,
    }
    full = json.loads(json.dumps(full))  # as it reads back from store.json
    meta_path = folder / STORE_FILE
    if meta_path.is_file():
        old = json.loads(meta_path.read_text(encoding="utf-8"))
        if old.get("fingerprint") != full:
            log.warning(
                "example store %s: built for other settings; rebuilding", folder
            )
            shutil.rmtree(folder)
    if not meta_path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(meta_path, {"fingerprint": full, "complete": False})
    (folder / "chunks").mkdir(exist_ok=True)
    for tmp in (folder / "chunks").glob(".*.tmp"):
        shutil.rmtree(tmp)

    store = ExampleStore(folder)
    if store.complete:
        log.info("example store %s: complete, %d groups", folder, len(store))
        return store
    done, read = len(store.chunks), store.stream_items
    if done:
        log.info(
            "example store %s: resuming after %d complete chunks (%d queries)",
            folder,
            done,
            read,
        )
    builder = _ChunkBuilder(
        stream,
        tokenizer,
        scorer,
        vocab_size,
        exclude_ids,
        is_train or (lambda _: True),
        cross_query_negatives,
        seed,
        np.sort(
            np.concatenate([np.asarray(c.seen) for c in store.chunks] or [[]])
        ).astype(np.uint64),
    )
    items = itertools.islice(iter(stream), read, None)
    bar = tqdm(
        total=total,
        initial=read,
        desc="training examples",
        unit="query",
        disable=not show_progress,
    )
    for index in itertools.count(done):
        batch = list(itertools.islice(items, chunk_queries))
        if not batch:
            break
        arrays, meta = builder.chunk(index, batch)
        _write_chunk(folder / "chunks", index, arrays, meta)
        bar.update(len(batch))
        if len(batch) < chunk_queries:
            break
    bar.close()
    atomic_write_json(meta_path, {"fingerprint": full, "complete": True})
    store = ExampleStore(folder)
    skipped = store.skipped
    if sum(skipped.values()):
        log.warning("training data: skipped %s", dict(skipped))
    log.info(
        "training data: %d queries, %d candidate pairs (example store %s, %.1f MB)",
        len(store),
        store.n_pairs,
        folder,
        store.nbytes() / 1e6,
    )
    return store


class _ChunkBuilder:
    """Turns one chunk of stream queries into the chunk's arrays."""

    def __init__(
        self,
        stream,
        tokenizer,
        scorer: Scorer,
        vocab_size: int,
        exclude_ids: Sequence[int],
        is_train: Callable[[str], bool],
        k: int,
        seed: int,
        seen: np.ndarray,
    ):
        self.stream, self.tokenizer, self.scorer = stream, tokenizer, scorer
        self.vocab_size, self.is_train, self.k, self.seed = (
            vocab_size,
            is_train,
            k,
            seed,
        )
        self.exclude = np.asarray(sorted(set(exclude_ids)), dtype=np.int64)
        self.dtype = np.uint16 if vocab_size <= 2**16 else np.int32
        self.seen = seen  # sorted hashes of the docs counted so far

    def chunk(self, index: int, batch: list[tuple[str, list[str]]]):
        queries, docs = self.stream.queries, self.stream.docs
        skipped: Counter = Counter()
        known = [(q, list(ds)) for q, ds in batch if q in queries]
        skipped["unknown_query"] += len(batch) - len(known)

        extras: dict[str, list[str]] = {}
        if self.k:
            rng = np.random.default_rng([self.seed, 2, index])
            lenders = [(q, ds) for q, ds in known if self.is_train(q)]
            extras = cross_query_negatives(lenders, self.k, rng)

        # Texts once per chunk (each lookup may be a docstore read).
        texts: dict[str, str] = {}
        for d in dict.fromkeys(d for _, ds in known for d in ds):
            try:
                texts[d] = docs[d]
            except KeyError:
                pass
        pairs = [(q, d) for q, ds in known for d in ds]
        pairs += [(q, d) for q, ds in extras.items() for d in ds]
        scores = self.scorer(pairs, queries, texts)
        q_tokens = self.tokenizer.token_ids([queries[q] for q, _ in known])
        d_tokens = dict(
            zip(texts, self.tokenizer.token_ids(list(texts.values())), strict=True)
        )

        qids, q_arrays, first, doc_ids, teacher, d_arrays, lengths = (
            [] for _ in range(7)
        )
        for (qid, ds), q_tok in zip(known, q_tokens, strict=True):
            if not queries[qid].strip() or q_tok.size == 0:
                skipped["empty_query"] += 1
                continue
            kept, values = _usable(qid, ds, scores, texts, skipped)
            if len(kept) < 2:
                skipped["fewer_than_two_candidates"] += 1
                continue
            more, more_values = _usable(
                qid, extras.get(qid, ()), scores, texts, skipped
            )
            qids.append(qid)
            q_arrays.append(q_tok)
            first.append(len(kept))
            lengths.append(len(kept) + len(more))
            doc_ids += kept + more
            teacher += values + more_values
            d_arrays += [d_tokens[d] for d in kept + more]

        stats = self._new_doc_stats(texts, d_tokens)
        arrays = {
            "qids": np.array(qids, dtype=str),
            "query_offsets": _offsets(len(q) for q in q_arrays),
            "query_tokens": self._ids(q_arrays),
            "list_offsets": _offsets(lengths),
            "first_stage": np.asarray(first, dtype=np.int32),
            "doc_ids": np.array(doc_ids, dtype=str),
            "teacher": np.asarray(teacher, dtype=np.float32),
            "doc_offsets": _offsets(len(d) for d in d_arrays),
            "doc_tokens": self._ids(d_arrays),
            **stats.pop("arrays"),
        }
        meta = {"stream_items": len(batch), "skipped": dict(skipped), **stats}
        return arrays, meta

    def _ids(self, arrays: list[np.ndarray]) -> np.ndarray:
        flat = np.concatenate([np.asarray(a, np.int64) for a in arrays] or [[]])
        if flat.size and (flat.min() < 0 or flat.max() >= self.vocab_size):
            raise ValueError(
                f"example store: token id {int(flat.max())} outside the "
                f"vocabulary of {self.vocab_size}"
            )
        return flat.astype(self.dtype)

    def _new_doc_stats(self, texts: dict[str, str], tokens: dict) -> dict:
        """df, count and total length of the docs not met in earlier chunks."""
        ids = list(texts)
        hashes = doc_hashes(ids)
        new = ~np.isin(hashes, self.seen)
        df = np.zeros(self.vocab_size, dtype=np.int64)
        total_len = 0
        for d in itertools.compress(ids, new):
            t = np.asarray(tokens[d], dtype=np.int64)
            if self.exclude.size:
                t = t[~np.isin(t, self.exclude)]
            total_len += int(t.size)
            df[np.unique(t)] += 1
        self.seen = np.union1d(self.seen, hashes[new]).astype(np.uint64)
        nz = np.flatnonzero(df)
        return {
            "n_docs": int(new.sum()),
            "total_len": total_len,
            "arrays": {
                "df_ids": nz.astype(np.int32),
                "df_counts": df[nz],
                "seen": hashes[new],
            },
        }


def _usable(qid, doc_ids, scores, texts, skipped: Counter):
    """The candidates with a finite score and a non-empty text, and the scores."""
    kept, values = [], []
    for did in doc_ids:
        value = scores.get((qid, did))
        if value is None:
            skipped["missing_score"] += 1
        elif not np.isfinite(value):
            skipped["non_finite_score"] += 1
        elif not texts.get(did, "").strip():
            skipped["empty_doc"] += 1
        else:
            kept.append(did)
            values.append(value)
    return kept, values


def _offsets(lengths) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(list(lengths), dtype=np.int64)]).astype(
        np.int64
    )


def _write_chunk(chunks: Path, index: int, arrays: dict, meta: dict) -> None:
    """Write a chunk folder atomically: a temporary folder, then a rename."""
    tmp = chunks / f".{index:06d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for name in ARRAYS:
        with open(tmp / f"{name}.npy", "wb") as f:
            np.save(f, arrays[name], allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
    atomic_write_json(tmp / CHUNK_FILE, meta)
    os.rename(tmp, chunks / f"{index:06d}")
    fd = os.open(chunks, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
