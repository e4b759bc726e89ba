"""Benchmark: distillation steps/s and examples/s, 1 device vs 4 simulated devices.

    python eval/bench_distill.py [--config train/configs/demo.toml] [--steps 60]

Builds the demo's student (all-MiniLM-L6-v2 embeddings) and training batches
on the shared dev sample, with the sample's BM25 ranks standing in for teacher
scores (speed does not depend on the values), and times ``--steps`` train
steps after ``--warmup`` untimed ones (XLA compiles the batch shapes there).
It runs once on the CPU as one device and once with
``XLA_FLAGS=--xla_force_host_platform_device_count=4`` (the same 2 cores split
into 4 devices: this measures sharding overhead, not a speed-up), each in its
own process, and prints both and the ratio. An example is one
(query, candidate) pair.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def worker(config_path: str, steps: int, warmup: int) -> dict:
    """Time train steps in this process; returns the figures as a dict."""
    import jax

    from semb25.corpus import corpus_stats
    from semb25.data import load_collection
    from semb25.distill.examples import BatchSampler, build_groups
    from semb25.distill.pipeline import _train_config, load_config
    from semb25.student import SemanticBM25, StudentConfig
    from semb25.teacher import load_teacher

    config = load_config(config_path)
    train_cfg = _train_config(config)
    collection = load_collection(
        config["data"]["train"], max_candidates=config["data"].get("max_candidates")
    )
    teacher = load_teacher(config["teacher"]["id"], show_progress=False)
    student_cfg = StudentConfig(**config.get("student", {}))
    model = SemanticBM25.create(
        teacher.token_embeddings, teacher.tokenizer, student_cfg
    )
    docs = sorted({d for _, d in collection.pairs()})
    stats = corpus_stats(
        model.tokenizer.token_ids([collection.docs[d] for d in docs]),
        model.config.vocab_size,
        model.config.special_ids,
    )
    model = SemanticBM25.create(
        teacher.token_embeddings, teacher.tokenizer, student_cfg, corpus=stats
    )
    scores = {
        (q, d): -float(rank)
        for q, cands in collection.candidates.items()
        for rank, (d, _) in enumerate(cands)
    }
    candidates = {q: [d for d, _ in c] for q, c in collection.candidates.items()}
    groups, _ = build_groups(
        candidates, collection.queries, collection.docs, scores, model.tokenizer
    )
    sampler = BatchSampler(
        groups,
        train_cfg.queries_per_batch,
        train_cfg.docs_per_query,
        model.config.max_query_len,
        model.config.max_doc_len,
        0,
        -10.0,
        6.0,
    )

    from semb25.distill.trainer import Trainer

    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(model.circuit, sampler, train_cfg, tmp)
        state = (trainer.params, trainer.opt_state)
        for step in range(warmup):
            out = trainer._train_step(*state, trainer._shard(sampler.batch(step)))
            state = out[:2]
        jax.block_until_ready(state)
        start = time.perf_counter()
        for step in range(warmup, warmup + steps):
            out = trainer._train_step(*state, trainer._shard(sampler.batch(step)))
            state = out[:2]
        jax.block_until_ready(state)
        seconds = time.perf_counter() - start
    pairs = train_cfg.queries_per_batch * train_cfg.docs_per_query
    return {
        "devices": len(jax.devices()),
        "steps_per_second": steps / seconds,
        "examples_per_second": steps * pairs / seconds,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="train/configs/demo.toml")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.config, args.steps, args.warmup)))
        return 0

    results = {}
    for devices in (1, 4):
        env = dict(os.environ)
        if devices > 1:
            env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--worker",
                "--config",
                args.config,
                "--steps",
                str(args.steps),
                "--warmup",
                str(args.warmup),
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        results[devices] = json.loads(out.stdout.strip().splitlines()[-1])
        r = results[devices]
        print(
            f"{r['devices']} device(s): {r['steps_per_second']:.2f} steps/s, "
            f"{r['examples_per_second']:.0f} examples/s",
            flush=True,
        )
    ratio = results[4]["steps_per_second"] / results[1]["steps_per_second"]
    print(
        f"4 simulated devices / 1 device: {ratio:.2f}x steps/s "
        "(same 2 cores: this is the sharding overhead)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
