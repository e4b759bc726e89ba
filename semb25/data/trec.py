"""TREC run and qrels files: read with line-numbered errors, write atomically.

Formats (trec_eval's, whitespace-separated):

    run:    qid Q0 docid rank score tag     (ranks 1.., best first)
    qrels:  qid 0 docid relevance           (relevance an integer)

A run is held as ``{qid: {doc_id: score}}`` (the shape ``ir_measures`` takes);
``read_run_ranked`` keeps the file's rank order as ``{qid: [(doc_id, score)]}``.
Writing sorts each query's documents by score, descending, ties broken by
doc_id ascending, and numbers ranks from 1, so a written run reads back in the
order it will be evaluated in.

>>> run = {"q1": {"d2": 0.5, "d1": 0.5, "d3": 2.0}}
>>> format_run(run, tag="demo").splitlines()[0]
'q1 Q0 d3 1 2.0 demo'
"""

from __future__ import annotations

import logging
import math
import os
from collections import Counter
from collections.abc import Container, Iterator, Mapping
from pathlib import Path

from semb25.atomic import atomic_write_text

logger = logging.getLogger(__name__)

Run = dict[str, dict[str, float]]
Qrels = dict[str, dict[str, int]]

RUN_COLUMNS = "qid Q0 docid rank score tag"
QRELS_COLUMNS = "qid 0 docid relevance"


class LineErrors:
    """Collects malformed lines of one file: raise at once, or skip and count.

    ``on_error="raise"`` turns the first problem into a one-line ``ValueError``
    naming the file and line; ``"skip"`` counts problems by kind and logs the
    counts once, at WARNING, when :meth:`report` is called.
    """

    def __init__(self, path: str | os.PathLike, on_error: str = "raise"):
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error: expected 'raise' or 'skip', got {on_error!r}")
        self.path = Path(path)
        self.on_error = on_error
        self.skipped: Counter[str] = Counter()

    def __call__(self, line_no: int, kind: str, message: str) -> None:
        """Record a bad line: ``kind`` groups the skip counts, ``message`` says
        what was expected."""
        if self.on_error == "raise":
            raise ValueError(f"{self.path} line {line_no}: {message}")
        self.skipped[kind] += 1

    def report(self) -> int:
        """Log the skip counts (if any) and return how many lines were skipped."""
        total = sum(self.skipped.values())
        if total:
            detail = ", ".join(
                f"{n} {kind}" for kind, n in sorted(self.skipped.items())
            )
            logger.warning(
                "%s: skipped %d malformed lines (%s)", self.path, total, detail
            )
        return total


def iter_lines(path: str | os.PathLike) -> Iterator[tuple[int, str]]:
    """Yield ``(line_no, line)`` for the non-blank lines of a UTF-8 text file,
    numbering from 1 and without the trailing newline."""
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            line = line.rstrip("\r\n")
            if line.strip():
                yield line_no, line


def read_run_ranked(
    path: str | os.PathLike,
    *,
    doc_ids: Container[str] | None = None,
    qids: Container[str] | None = None,
    on_error: str = "raise",
) -> dict[str, list[tuple[str, float]]]:
    """Read a TREC run, keeping each query's documents in the file's rank order.

    Args:
        path: the run file.
        doc_ids: if given, every doc id must be in it ("unknown doc id" otherwise).
        qids: if given, every query id must be in it.
        on_error: ``"raise"`` or ``"skip"`` (see :class:`LineErrors`).

    Returns:
        ``{qid: [(doc_id, score), ...]}`` ordered by the rank column.
    """
    errors = LineErrors(path, on_error)
    ranked: dict[str, list[tuple[int, str, float]]] = {}
    seen: set[tuple[str, str]] = set()
    for line_no, line in iter_lines(path):
        cols = line.split()
        if len(cols) != 6:
            errors(
                line_no,
                "bad column count",
                f"expected 6 columns '{RUN_COLUMNS}', got {len(cols)}",
            )
            continue
        qid, _, doc_id, rank_text, score_text, _ = cols
        try:
            rank = int(rank_text)
        except ValueError:
            errors(line_no, "bad rank", f"expected an integer rank, got {rank_text!r}")
            continue
        try:
            score = float(score_text)
        except ValueError:
            errors(line_no, "bad score", f"expected a float score, got {score_text!r}")
            continue
        if not math.isfinite(score):
            errors(line_no, "bad score", f"expected a finite score, got {score_text!r}")
            continue
        if qids is not None and qid not in qids:
            errors(line_no, "unknown qid", f"unknown query id {qid!r} (not in queries)")
            continue
        if doc_ids is not None and doc_id not in doc_ids:
            errors(
                line_no, "unknown doc id", f"unknown doc id {doc_id!r} (not in docs)"
            )
            continue
        if (qid, doc_id) in seen:
            errors(
                line_no,
                "duplicate pair",
                f"duplicate doc id {doc_id!r} for query {qid!r}",
            )
            continue
        seen.add((qid, doc_id))
        ranked.setdefault(qid, []).append((rank, doc_id, score))
    errors.report()
    # Stable sort on the rank column: files are usually in rank order already.
    return {
        qid: [(doc_id, score) for _, doc_id, score in sorted(rows, key=lambda r: r[0])]
        for qid, rows in ranked.items()
    }


def read_run(path: str | os.PathLike, **kwargs) -> Run:
    """Read a TREC run as ``{qid: {doc_id: score}}`` (rank order kept in the dicts).
    Keyword arguments as for :func:`read_run_ranked`."""
    return {qid: dict(rows) for qid, rows in read_run_ranked(path, **kwargs).items()}


def read_qrels(
    path: str | os.PathLike,
    *,
    qids: Container[str] | None = None,
    on_error: str = "raise",
) -> Qrels:
    """Read TREC qrels as ``{qid: {doc_id: relevance}}``.

    Judgements for query ids outside ``qids`` (when given) are dropped without
    error: a qrels file routinely covers more queries than a sample holds. The
    number dropped is logged at DEBUG.
    """
    errors = LineErrors(path, on_error)
    qrels: Qrels = {}
    dropped = 0
    for line_no, line in iter_lines(path):
        cols = line.split()
        if len(cols) != 4:
            errors(
                line_no,
                "bad column count",
                f"expected 4 columns '{QRELS_COLUMNS}', got {len(cols)}",
            )
            continue
        qid, _, doc_id, rel_text = cols
        try:
            relevance = int(rel_text)
        except ValueError:
            errors(
                line_no,
                "bad relevance",
                f"expected an integer relevance, got {rel_text!r}",
            )
            continue
        if doc_id in qrels.get(qid, {}):
            errors(
                line_no,
                "duplicate pair",
                f"duplicate judgement of doc id {doc_id!r} for query {qid!r}",
            )
            continue
        if qids is not None and qid not in qids:
            dropped += 1
            continue
        qrels.setdefault(qid, {})[doc_id] = relevance
    errors.report()
    if dropped:
        logger.debug("%s: dropped %d judgements of queries not loaded", path, dropped)
    return qrels


def ranked(scores: Mapping[str, float]) -> list[tuple[str, float]]:
    """One query's ``{doc_id: score}`` as ``[(doc_id, score)]``, best first,
    ties broken by doc_id ascending (the order runs are written in)."""
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


def format_run(run: Mapping[str, Mapping[str, float]], tag: str = "semb25") -> str:
    """A run as TREC run text: queries in the run's order, ranks from 1."""
    if not tag or any(ch.isspace() for ch in tag):
        raise ValueError(f"run tag: expected one word without spaces, got {tag!r}")
    lines = []
    for qid, scores in run.items():
        for rank, (doc_id, score) in enumerate(ranked(scores), start=1):
            lines.append(f"{qid} Q0 {doc_id} {rank} {float(score)!r} {tag}")
    return "\n".join(lines) + ("\n" if lines else "")


def write_run(
    path: str | os.PathLike, run: Mapping[str, Mapping[str, float]], tag: str = "semb25"
) -> Path:
    """Write ``run`` (``{qid: {doc_id: score}}``) as a TREC run file, atomically."""
    return atomic_write_text(path, format_run(run, tag=tag))


def write_qrels(
    path: str | os.PathLike, qrels: Mapping[str, Mapping[str, int]]
) -> Path:
    """Write ``qrels`` (``{qid: {doc_id: relevance}}``) as TREC qrels, atomically."""
    lines = [
        f"{qid} 0 {doc_id} {int(rel)}"
        for qid, judged in qrels.items()
        for doc_id, rel in judged.items()
    ]
    return atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))
