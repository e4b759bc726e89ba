"""A small real training set: 48 dev-sample queries, BM25 ranks as 'teacher'."""

from __future__ import annotations

from pathlib import Path

import pytest

SMALL_CONFIG = """
name = "small"
[teacher]
id = "{teacher}"
max_length = 128
[data]
train = "dev-sample"
max_candidates = 8
max_queries = 48
validation_fraction = 0.25
[student]
n_heads = 2
head_dim = 8
max_doc_len = 128
[train]
steps = {steps}
queries_per_batch = 8
docs_per_query = 8
warmup_steps = 2
checkpoint_every = {checkpoint_every}
validate_every = 5
seed = 3
"""


@pytest.fixture(scope="session")
def small_scores(data_root, tmp_path_factory) -> Path:
    """Teacher scores file from the dev sample's BM25 ranks (no teacher run)."""
    path = tmp_path_factory.mktemp("scores") / "scores.tsv"
    lines = []
    with open(data_root / "dev-sample" / "bm25.run", encoding="utf-8") as f:
        for line in f:
            qid, _, doc_id, rank, _, _ = line.split()
            lines.append(f"{qid}\t{doc_id}\t{1.0 / float(rank):.6f}\n")
    path.write_text("".join(lines))
    return path


@pytest.fixture
def small_config(tmp_path, minilm_dir):
    def make(steps=12, checkpoint_every=4) -> Path:
        path = tmp_path / f"small-{steps}-{checkpoint_every}.toml"
        path.write_text(
            SMALL_CONFIG.format(
                teacher=minilm_dir, steps=steps, checkpoint_every=checkpoint_every
            )
        )
        return path

    return make
