"""Benchmark: student pairs/second vs the MiniLM teacher, and rerank latency.

Both models score the same first ``--pairs`` (query, passage) pairs of the TREC
DL 2019 BM25 run (query order, then rank order), on this machine's CPU, in one
run. Each model first makes one untimed warm-up pass over the same pairs (JAX
compiles its length-bucket shapes there); the teacher is then timed once and
the student ``--student-passes`` times (median kept: one pass is short),
once more on pre-tokenised inputs (``score_tokens``) to show how much of
its time is tokenisation, and once through a :class:`DocIndex` of the passages
(built untimed: ids, plus key vectors for a contextual student), which is
reranking's query-side-only cost.
Then the student's ``rerank`` latency for one query is timed over 100 and over
1,000 candidates (its 100 BM25 candidates, plus 900 other DL19 passages drawn
with ``--seed``), ``--repeats`` times each after one warm-up call per size;
p50 and p95 are printed.

With ``--model DIR`` the trained student there is timed; otherwise an untrained
one built from the teacher's token embeddings and tokenizer, with
``--context-layers`` light context layers (default 0). Speed does not depend
on training (same shapes and operations; only weight values differ).

    python eval/bench_student.py --pairs 1000 --repeats 20 [--model runs/demo]
    python eval/bench_student.py --context-layers 1   # the contextual variant
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def timed(fn, *args) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    out = np.asarray(fn(*args))
    return time.perf_counter() - start, out


def rerank_latency(student, query: str, docs: list[str], repeats: int) -> list[float]:
    """Seconds per ``student.rerank(query, docs)`` call, after one warm-up call."""
    student.rerank(query, docs)
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        student.rerank(query, docs)
        seconds.append(time.perf_counter() - start)
    return seconds


def percentile_ms(seconds: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(seconds) * 1e3, q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--model", type=Path, default=None, help="trained student")
    parser.add_argument("--teacher", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--teacher-batch-size", type=int, default=32)
    parser.add_argument("--student-passes", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--context-layers", type=int, default=0, help="untrained student only"
    )
    default_data = os.environ.get(
        "SEMB25_DATA", str(REPO.parent / "shared" / "data" / "msmarco-passage")
    )
    parser.add_argument("--data", type=Path, default=Path(default_data))
    args = parser.parse_args()

    import jax

    from semb25.data import load_collection
    from semb25.student.config import StudentConfig
    from semb25.student.index import DocIndex
    from semb25.student.model import SemanticBM25
    from semb25.teacher import load_teacher

    # The same pairs for both models: the first n of the DL19 BM25 run.
    collection = load_collection("trec-dl-2019", data_root=args.data)
    pairs = collection.pairs()[: args.pairs]
    if len(pairs) < args.pairs:
        raise SystemExit(f"--pairs {args.pairs}: DL19 has only {len(pairs)} pairs")
    queries = [collection.queries[qid] for qid, _ in pairs]
    docs = [collection.docs[doc_id] for _, doc_id in pairs]

    teacher = load_teacher(
        args.teacher, batch_size=args.teacher_batch_size, show_progress=False
    )
    if args.model is not None:
        student = SemanticBM25.from_pretrained(args.model)
        origin = f"trained, from {args.model}"
    else:
        tokenizer_json = Path(teacher.checkpoint_dir) / "tokenizer.json"
        student = SemanticBM25.create(
            teacher.token_embeddings,
            tokenizer_json,
            StudentConfig(context_layers=args.context_layers),
        )
        origin = "untrained, built from the teacher's embeddings"
    cfg = student.config
    print(
        f"{len(pairs)} DL19 pairs ({len(set(queries))} queries, "
        f"{len(set(docs))} distinct passages), devices {jax.devices()}"
    )
    print(
        f"student ({origin}): {cfg.n_heads} soft heads + "
        f"{int(cfg.exact_match_head)} exact-match head, "
        f"{cfg.context_layers} context layers, max_doc_len "
        f"{cfg.max_doc_len}, batch {student.batch_size}"
    )
    print(
        f"teacher {teacher.name} ({teacher.kind}), batch "
        f"{teacher.batch_size}, max_length {teacher.max_length}"
    )

    # Throughput: warm-up passes (compilation) excluded from the timing.
    warm_student, _ = timed(student.score, queries, docs)
    warm_teacher, _ = timed(teacher.score, queries, docs)
    t_student = statistics.median(
        timed(student.score, queries, docs)[0] for _ in range(args.student_passes)
    )
    t_teacher, _ = timed(teacher.score, queries, docs)

    # Where the student's time goes: the same pass on pre-tokenised inputs.
    unique, q_index = np.unique(np.asarray(queries, dtype=object), return_inverse=True)
    q_batch = student.encode_queries(list(unique))
    doc_ids = student.encode_docs(docs)
    t_tokens = statistics.median(
        timed(student.score_tokens, q_batch, q_index, doc_ids)[0]
        for _ in range(args.student_passes)
    )

    # Reranking's form: passages indexed beforehand (untimed), query-side work.
    ids = [d for _, d in pairs]
    index = DocIndex.build(student, dict(zip(ids, docs, strict=True)))
    indexed = (index.token_ids(ids), index.key_vectors(ids))
    student.score_tokens(q_batch, q_index, indexed[0], doc_keys=indexed[1])
    t_index = statistics.median(
        timed(
            lambda: student.score_tokens(
                q_batch, q_index, indexed[0], doc_keys=indexed[1]
            )
        )[0]
        for _ in range(args.student_passes)
    )
    n = len(pairs)
    print(
        f"warm-up (excluded): student {warm_student:.2f} s, "
        f"teacher {warm_teacher:.2f} s"
    )
    print(
        f"student: {n / t_student:10.1f} pairs/s ({t_student * 1e3:.1f} ms, "
        f"median of {args.student_passes} passes)"
    )
    print(
        f"student, pre-tokenised (score_tokens): {n / t_tokens:10.1f} pairs/s "
        f"({t_tokens * 1e3:.1f} ms; tokenisation is the rest)"
    )
    print(
        f"student, from a DocIndex: {n / t_index:10.1f} pairs/s "
        f"({t_index * 1e3:.1f} ms)"
    )
    print(f"teacher: {n / t_teacher:10.1f} pairs/s ({t_teacher:.2f} s, one pass)")
    print(f"student / teacher throughput, from text: {t_teacher / t_student:.0f}x")
    print(f"student / teacher throughput, from a DocIndex: {t_teacher / t_index:.0f}x")

    # Latency: one query, its 100 candidates, then 1,000 with other passages.
    qid = next(iter(collection.queries))
    query = collection.queries[qid]
    own = [doc_id for doc_id, _ in collection.candidates[qid][:100]]
    others = sorted(set(collection.docs) - set(own))
    rng = np.random.default_rng(args.seed)
    extra = [others[i] for i in rng.choice(len(others), 1000 - len(own), False)]
    for size, doc_ids in ((100, own), (1000, own + extra)):
        texts = [collection.docs[d] for d in doc_ids]
        seconds = rerank_latency(student, query, texts, args.repeats)
        print(
            f"student rerank {size:5d} candidates: p50 "
            f"{percentile_ms(seconds, 50):7.2f} ms, p95 "
            f"{percentile_ms(seconds, 95):7.2f} ms ({args.repeats} calls, "
            f"query {qid})"
        )


if __name__ == "__main__":
    main()
