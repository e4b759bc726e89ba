"""Benchmark: teacher pairs/second, our JAX teacher vs sentence-transformers.

Both score the same first ``--pairs`` (query, passage) pairs of the TREC DL 2019
BM25 run, with the same batch size, on this machine, in one run. A bi-encoder
embeds each distinct query and passage once on both sides (then dot products);
a cross-encoder scores every pair (``sentence_transformers.CrossEncoder`` on
the reference side). Each side first makes one untimed warm-up pass over the
same pairs (JAX compiles its bucket shapes there; torch warms its allocator),
then one timed pass. Prints both rates, their ratio and the largest score
difference.

    python eval/bench_teacher.py --pairs 1000 --batch-size 32 \\
        --teacher sentence-transformers/all-MiniLM-L6-v2
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def read_dl19_pairs(data_dir: Path, n_pairs: int) -> tuple[list[str], list[str]]:
    """Query and passage texts of the first n_pairs lines of the BM25 run."""
    collection = data_dir / "trec-dl-2019"
    queries = dict(
        line.rstrip("\n").split("\t", 1)
        for line in (collection / "queries.tsv").open(encoding="utf-8")
    )
    docs = {}
    for line in (collection / "docs.jsonl").open(encoding="utf-8"):
        row = json.loads(line)
        docs[row["doc_id"]] = row["text"]
    q_texts, d_texts = [], []
    for line in (collection / "bm25.run").open(encoding="utf-8"):
        qid, _, doc_id, *_ = line.split()
        q_texts.append(queries[qid])
        d_texts.append(docs[doc_id])
        if len(q_texts) == n_pairs:
            break
    return q_texts, d_texts


def reference_scorer(teacher, batch_size: int):
    """A function scoring pairs with sentence-transformers on the same weights."""
    import torch
    from sentence_transformers import CrossEncoder, SentenceTransformer

    torch.set_grad_enabled(False)
    if teacher.kind == "cross":
        model = CrossEncoder(
            str(teacher.checkpoint_dir), device="cpu", max_length=teacher.max_length
        )

        def score(queries, docs):
            return model.predict(
                list(zip(queries, docs, strict=True)),
                batch_size=batch_size,
                show_progress_bar=False,
                activation_fn=torch.nn.Identity(),
            )

        return score

    model = SentenceTransformer(str(teacher.checkpoint_dir), device="cpu")
    model.max_seq_length = teacher.max_length

    def score(queries, docs):
        # Same work as ours: each distinct text is embedded once.
        index: dict[str, int] = {}
        q_rows = [index.setdefault(q, len(index)) for q in queries]
        d_rows = [index.setdefault(d, len(index)) for d in docs]
        emb = model.encode(list(index), batch_size=batch_size, show_progress_bar=False)
        return np.einsum("nd,nd->n", emb[q_rows], emb[d_rows])

    return score


def timed(fn, *args) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    out = np.asarray(fn(*args))
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--teacher", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--bucket", type=int, default=32)
    default_data = os.environ.get(
        "SEMB25_DATA", str(REPO.parent / "shared" / "data" / "msmarco-passage")
    )
    parser.add_argument("--data", type=Path, default=Path(default_data))
    args = parser.parse_args()

    from semb25.teacher import load_teacher

    queries, docs = read_dl19_pairs(args.data, args.pairs)
    teacher = load_teacher(
        args.teacher,
        max_length=args.max_length,
        batch_size=args.batch_size,
        show_progress=False,
        bucket=args.bucket,
    )
    reference = reference_scorer(teacher, args.batch_size)
    n_texts = len(set(queries) | set(docs))
    print(
        f"teacher {teacher.name} ({teacher.kind}), {len(queries)} DL19 pairs "
        f"({n_texts} distinct texts), batch {args.batch_size}, max_length "
        f"{teacher.max_length}, {len(teacher.devices)} JAX device(s)"
    )

    # Warm-up passes (compilation, allocator) are excluded from the timing.
    warm_ours, _ = timed(teacher.score, queries, docs)
    warm_ref, _ = timed(reference, queries, docs)
    t_ours, ours = timed(teacher.score, queries, docs)
    t_ref, ref = timed(reference, queries, docs)

    n = len(queries)
    print(
        f"warm-up (excluded): jax {warm_ours:.1f} s, sentence-transformers "
        f"{warm_ref:.1f} s"
    )
    print(f"jax (semb25):          {n / t_ours:8.1f} pairs/s ({t_ours:.2f} s)")
    print(f"sentence-transformers: {n / t_ref:8.1f} pairs/s ({t_ref:.2f} s)")
    print(
        f"speed-up: {t_ref / t_ours:.2f}x   max |score diff|: "
        f"{np.abs(ours - ref).max():.2e}"
    )


if __name__ == "__main__":
    main()
