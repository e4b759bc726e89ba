"""Benchmark: teacher pairs/second, our JAX teacher vs sentence-transformers.

Both score the same first ``--pairs`` (query, passage) pairs of the TREC DL 2019
BM25 run, with the same batch size, on this machine, in one run. A bi-encoder
embeds each distinct query and passage once on both sides (then dot products);
a cross-encoder scores every pair (``sentence_transformers.CrossEncoder`` on
the reference side). Each side first makes one untimed warm-up pass over the
same pairs (JAX compiles its bucket shapes there; torch warms its allocator),
then ``--repeats`` timed passes, alternating the two sides so that load from
other processes hits both alike. Prints every pass, the ratio of the best
passes, and the largest score difference. ``--breakdown`` also prints where our
time goes (tokenisation, batch assembly, forward per padded length) and the
padded token counts of both sides.

    python eval/bench_teacher.py --pairs 1000 --batch-size 32 \\
        --teacher sentence-transformers/all-MiniLM-L6-v2
    python eval/bench_teacher.py --make-cross-from all-MiniLM-L6-v2   # cross path

``--make-cross-from DIR_OR_ID`` builds a ``BertForSequenceClassification``
from that BERT body with a seeded random 1-logit head (as the parity tests do)
in a temporary folder and benchmarks it as a cross-encoder; the scores are
meaningless but the work is exactly a MiniLM cross-encoder's.

Where the time goes (measured on an idle 2-core CPU, 2026-12-04, bi-encoder
all-MiniLM-L6-v2, 1,000 DL19 pairs = 1,010 distinct texts, batch 32, ``--breakdown``):

- JAX: tokenisation 0.23 s, batch assembly and dispatch 0.16 s, forward 26.45 s.
  Forward is everything: 104,192 padded tokens (1.10x the 94,932 real ones;
  length buckets of 8, 17 compiled shapes) at 3,939 padded tokens/s.
- sentence-transformers: forward 27.02 s of 27.49 s; 126,152 padded tokens
  (1.33x real: it pads each batch to its longest text) at 4,669 tokens/s.
- So torch's CPU kernels are about 1.19x faster per padded token, and our
  finer padding (17% fewer tokens) buys that back: the two are at parity.
  Best-of-passes ratios over several idle runs: 1.02x, 1.04x, 1.12x with
  buckets of 8 (the default), 0.90x with buckets of 32. Per-token cost grows
  with length on both sides (attention), 4,700-5,300 tokens/s at L <= 64 to
  2,500 at L = 272 for JAX.
- Tried, parity kept (<= 1e-6): one fused QKV matmul and a head-by-head
  attention loop (``jax.lax.map``, keeps each [batch, L, L] block in cache;
  -20-30% forward time at L = 64-128 in isolation, now the default); exact
  erf GELU variants (no gain). ``XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=``
  (YNNPACK fusions off) gave 1.28x and 1.12x in two passes of one run; too
  noisy to rely on, so it is not set by the library.

The 1.2x target is therefore not met reliably on this machine: the JAX
teacher is as fast as sentence-transformers (0.9-1.3x across runs), not
faster. The remaining gap is XLA:CPU's dense kernels against oneDNN/MKL.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
)


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


def make_cross_encoder(body: str, out_dir: Path, seed: int = 0) -> Path:
    """A BertForSequenceClassification on body's weights, random 1-logit head."""
    import torch
    from transformers import BertForSequenceClassification

    from semb25.teacher import resolve_checkpoint

    source = resolve_checkpoint(body)
    torch.manual_seed(seed)
    model = BertForSequenceClassification.from_pretrained(
        str(source), num_labels=1
    ).eval()
    model.save_pretrained(out_dir, safe_serialization=True)
    for name in TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copy(source / name, out_dir / name)
    return out_dir


def reference_scorer(teacher, batch_size: int):
    """``(score, encoder)``: a function scoring pairs with sentence-transformers on
    the same weights, and its first module, which runs the Hugging Face model
    (the torch forward timed by ``--breakdown``)."""
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

        return score, model[0]

    model = SentenceTransformer(str(teacher.checkpoint_dir), device="cpu")
    model.max_seq_length = teacher.max_length

    def score(queries, docs):
        # Same work as ours: each distinct text is embedded once.
        index: dict[str, int] = {}
        q_rows = [index.setdefault(q, len(index)) for q in queries]
        d_rows = [index.setdefault(d, len(index)) for d in docs]
        emb = model.encode(list(index), batch_size=batch_size, show_progress_bar=False)
        return np.einsum("nd,nd->n", emb[q_rows], emb[d_rows])

    return score, model[0]


def timed(fn, *args) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    out = np.asarray(fn(*args))
    return time.perf_counter() - start, out


def reference_breakdown(score, encoder, queries, docs) -> dict[str, float]:
    """Time one sentence-transformers pass and, with torch hooks, its forwards."""
    shapes: list[tuple[int, int]] = []
    seconds: list[float] = []
    clock: list[float] = []

    def before(module, args):
        shapes.append(tuple(args[0]["input_ids"].shape))
        clock.append(time.perf_counter())

    def after(module, args, output):
        seconds.append(time.perf_counter() - clock[-1])

    hooks = [
        encoder.register_forward_pre_hook(before),
        encoder.register_forward_hook(after),
    ]
    try:
        total, _ = timed(score, queries, docs)
    finally:
        for hook in hooks:
            hook.remove()
    return {
        "total": total,
        "forward": sum(seconds),
        "padded": sum(b * n for b, n in shapes),
        "shapes": len(set(shapes)),
        "batches": len(shapes),
    }


def breakdown(teacher, queries, docs, batch_size: int, reference) -> None:
    """Print where each side's time goes on these pairs (both already warm)."""
    import jax

    from semb25.teacher.tokenization import encode_pairs, encode_texts

    start = time.perf_counter()
    if teacher.kind == "bi":
        inputs = list(dict.fromkeys([*queries, *docs]))
        encoded = encode_texts(teacher.tokenizer, inputs, teacher.max_length)
    else:
        encoded = encode_pairs(teacher.tokenizer, queries, docs, teacher.max_length)
    t_tok = time.perf_counter() - start

    # Our batches one at a time (blocking on each), timed per padded length.
    per_length: dict[int, list[float]] = defaultdict(list)
    batches = teacher._batches(encoded, batch_size, False, None)
    t_assemble = 0.0
    while True:
        start = time.perf_counter()
        try:  # padded numpy batch, device_put and dispatch
            _, length, out = next(batches)
        except StopIteration:
            break
        t_assemble += time.perf_counter() - start
        start = time.perf_counter()
        jax.block_until_ready(out)
        per_length[length].append(time.perf_counter() - start)
    t_fwd = sum(sum(ts) for ts in per_length.values())
    real = sum(encoded.lengths)
    padded = sum(batch_size * n * len(ts) for n, ts in per_length.items())

    ref = reference_breakdown(*reference, queries, docs)
    print(f"breakdown ({real} real tokens; 'padded' = batch rows x padded length):")
    print(
        f"  jax: tokenise {t_tok:.2f} s, assemble+dispatch {t_assemble:.2f} s, "
        f"forward {t_fwd:.2f} s; {padded} padded tokens ({padded / real:.3f}x, "
        f"bucket {teacher.bucket}, {len(per_length)} shapes), "
        f"{padded / t_fwd:.0f} padded tokens/s in forward"
    )
    print(
        f"  sentence-transformers: total {ref['total']:.2f} s, forward "
        f"{ref['forward']:.2f} s, rest (tokenise, pooling, python) "
        f"{ref['total'] - ref['forward']:.2f} s; {ref['padded']} padded tokens "
        f"({ref['padded'] / real:.3f}x, {ref['shapes']} shapes), "
        f"{ref['padded'] / ref['forward']:.0f} padded tokens/s in forward"
    )
    for n in sorted(per_length):
        ts = per_length[n]
        rate = batch_size * n * len(ts) / sum(ts)
        print(
            f"  jax L={n:3d}: {len(ts):3d} batches, {sum(ts):6.2f} s, "
            f"{1e3 * np.mean(ts):7.1f} ms/batch, {rate:7.0f} padded tokens/s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--teacher", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument(
        "--make-cross-from",
        metavar="DIR_OR_ID",
        help="build a random-head cross-encoder on this BERT body and time it",
    )
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--bucket", type=int, default=None, help="default: library's")
    parser.add_argument("--repeats", type=int, default=2, help="timed passes per side")
    parser.add_argument("--breakdown", action="store_true")
    default_data = os.environ.get(
        "SEMB25_DATA", str(REPO.parent / "shared" / "data" / "msmarco-passage")
    )
    parser.add_argument("--data", type=Path, default=Path(default_data))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_cross_") as tmp:
        teacher_id = args.teacher
        if args.make_cross_from:
            teacher_id = str(make_cross_encoder(args.make_cross_from, Path(tmp)))
        run(args, teacher_id)


def run(args, teacher_id: str) -> None:
    from semb25.teacher import load_teacher

    queries, docs = read_dl19_pairs(args.data, args.pairs)
    extra = {} if args.bucket is None else {"bucket": args.bucket}
    teacher = load_teacher(
        teacher_id,
        max_length=args.max_length,
        batch_size=args.batch_size,
        show_progress=False,
        **extra,
    )
    reference = reference_scorer(teacher, args.batch_size)
    score_ref = reference[0]
    n_texts = len(set(queries) | set(docs))
    print(
        f"teacher {teacher.name} ({teacher.kind}), {len(queries)} DL19 pairs "
        f"({n_texts} distinct texts), batch {args.batch_size}, max_length "
        f"{teacher.max_length}, bucket {teacher.bucket}, "
        f"{len(teacher.devices)} JAX device(s), XLA_FLAGS="
        f"{os.environ.get('XLA_FLAGS', '')!r}"
    )

    # Warm-up passes (compilation, allocator) are excluded from the timing.
    warm_ours, _ = timed(teacher.score, queries, docs)
    warm_ref, _ = timed(score_ref, queries, docs)
    print(
        f"warm-up (excluded): jax {warm_ours:.1f} s, sentence-transformers "
        f"{warm_ref:.1f} s"
    )
    n = len(queries)
    t_ours, t_ref = [], []
    for i in range(args.repeats):
        t, ours = timed(teacher.score, queries, docs)
        t_ours.append(t)
        t, ref = timed(score_ref, queries, docs)
        t_ref.append(t)
        print(
            f"pass {i + 1}: jax {n / t_ours[-1]:7.1f} pairs/s ({t_ours[-1]:.2f} s), "
            f"sentence-transformers {n / t_ref[-1]:7.1f} pairs/s ({t_ref[-1]:.2f} s),"
            f" ratio {t_ref[-1] / t_ours[-1]:.2f}x"
        )
    best_ours, best_ref = min(t_ours), min(t_ref)
    print(
        f"jax (semb25):          {n / best_ours:8.1f} pairs/s (best {best_ours:.2f} s)"
    )
    print(f"sentence-transformers: {n / best_ref:8.1f} pairs/s (best {best_ref:.2f} s)")
    print(
        f"speed-up: {best_ref / best_ours:.2f}x   max |score diff|: "
        f"{np.abs(ours - ref).max():.2e}"
    )
    if args.breakdown:
        breakdown(teacher, queries, docs, teacher.batch_size, reference)


if __name__ == "__main__":
    main()
