"""A resumable cache of teacher scores, keyed by (teacher, query id, doc id).

Scoring all training pairs with a teacher takes hours on a CPU; this store makes
the job restartable. It is one SQLite file in WAL mode and every chunk of scores
is one transaction, so a process killed at any instant (even ``kill -9``)
leaves the file consistent: a chunk is either wholly there or absent, and a
rerun scores only what is absent.

Usage::

    store = ScoreStore("runs/teacher_scores.sqlite", teacher.name)
    scores = score_with_store(teacher, store, [("1037798", "7130104")],
                              queries={"1037798": "..."}, docs={"7130104": "..."})

Known limitation: one writer at a time per file (SQLite's rule); many readers
are fine. Do not put the file on a network file system.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS scores (
    teacher TEXT NOT NULL,
    qid TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    score REAL NOT NULL,
    PRIMARY KEY (teacher, qid, doc_id)
) WITHOUT ROWID
"""
_LOOKUP_CHUNK = 400  # pairs per SELECT: 2 bound values each, SQLite allows 32,766


class ScoreStore:
    """Teacher scores of (qid, doc_id) pairs for one teacher, in an SQLite file."""

    def __init__(self, path: str | Path, teacher_name: str):
        self.path = Path(path)
        self.teacher_name = teacher_name
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=60.0)
        # WAL + a transaction per chunk: a crash never leaves a half-written chunk.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        with self._db:
            self._db.execute(_SCHEMA)

    def get_many(
        self, pairs: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], float]:
        """The stored scores among ``pairs`` (pairs not stored are left out)."""
        found: dict[tuple[str, str], float] = {}
        unique = list(dict.fromkeys((str(q), str(d)) for q, d in pairs))
        for start in range(0, len(unique), _LOOKUP_CHUNK):
            chunk = unique[start : start + _LOOKUP_CHUNK]
            values = ",".join(["(?,?)"] * len(chunk))
            rows = self._db.execute(
                f"SELECT qid, doc_id, score FROM scores WHERE teacher = ? "
                f"AND (qid, doc_id) IN (VALUES {values})",
                [self.teacher_name, *(x for pair in chunk for x in pair)],
            )
            found.update(((q, d), s) for q, d, s in rows)
        return found

    def put_many(self, rows: Sequence[tuple[str, str, float]]) -> None:
        """Store ``(qid, doc_id, score)`` rows in one transaction (replacing old)."""
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO scores VALUES (?, ?, ?, ?)",
                [(self.teacher_name, str(q), str(d), float(s)) for q, d, s in rows],
            )

    def __len__(self) -> int:
        (n,) = self._db.execute(
            "SELECT COUNT(*) FROM scores WHERE teacher = ?", (self.teacher_name,)
        ).fetchone()
        return int(n)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ScoreStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def score_with_store(
    teacher,
    store: ScoreStore,
    pairs: Sequence[tuple[str, str]],
    queries: Mapping[str, str],
    docs: Mapping[str, str],
    chunk_size: int = 2048,
    show_progress: bool = True,
) -> np.ndarray:
    """Teacher scores of ``pairs`` (qid, doc_id): ``[len(pairs)] float32``.

    Only pairs missing from the store are scored, ``chunk_size`` at a time, and
    each chunk is committed before the next starts.
    """
    if store.teacher_name != teacher.name:
        raise ValueError(
            f"score store {store.path}: opened for teacher {store.teacher_name!r}, "
            f"not {teacher.name!r}"
        )
    pairs = [(str(q), str(d)) for q, d in pairs]
    cached = store.get_many(pairs)
    missing = [p for p in dict.fromkeys(pairs) if p not in cached]
    for qid, doc_id in missing:  # fail before any scoring, not hours in
        if qid not in queries:
            raise KeyError(f"score_with_store: query id {qid!r} not in queries")
        if doc_id not in docs:
            raise KeyError(f"score_with_store: doc id {doc_id!r} not in docs")
    n_cached = sum(p in cached for p in pairs)
    log.info(
        "teacher scores for %d pairs: %d from cache %s, %d distinct to score",
        len(pairs),
        n_cached,
        store.path,
        len(missing),
    )

    # Score and commit chunk by chunk, so a kill loses at most one chunk of work.
    starts = range(0, len(missing), chunk_size)
    for start in tqdm(
        starts,
        desc="teacher scoring",
        unit="chunk",
        disable=not show_progress or len(starts) < 2,
    ):
        chunk = missing[start : start + chunk_size]
        scores = teacher.score(
            [queries[q] for q, _ in chunk],
            [docs[d] for _, d in chunk],
            show_progress=False,
        )
        store.put_many([(q, d, s) for (q, d), s in zip(chunk, scores, strict=True)])
        cached.update(zip(chunk, (float(s) for s in scores), strict=True))
        log.debug("committed %d scores to %s", len(chunk), store.path)
    return np.array([cached[p] for p in pairs], dtype=np.float32)
