"""Shared fixtures of the teacher tests: real MiniLM weights and real MS MARCO text.

Missing data or weights fail the tests when ``CI`` is set and skip them otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
)


def missing(what: str) -> None:
    """Fail under CI, skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} (required when CI is set)")
    pytest.skip(what)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = Path(
        os.environ.get(
            "SEMB25_DATA", REPO.parent / "shared" / "data" / "msmarco-passage"
        )
    )
    if not (path / "trec-dl-2019" / "docs.jsonl").is_file():
        missing(f"MS MARCO data not found at {path}; set SEMB25_DATA")
    return path


@pytest.fixture(scope="session")
def dl19(data_dir):
    """``(queries {qid: text}, docs {doc_id: text}, run pairs [(qid, doc_id)])``."""
    folder = data_dir / "trec-dl-2019"
    queries = dict(
        line.rstrip("\n").split("\t", 1)
        for line in (folder / "queries.tsv").open(encoding="utf-8")
    )
    docs = {}
    for line in (folder / "docs.jsonl").open(encoding="utf-8"):
        row = json.loads(line)
        docs[row["doc_id"]] = row["text"]
    pairs = [tuple(line.split()[0:3:2]) for line in (folder / "bm25.run").open()]
    return queries, docs, pairs


@pytest.fixture(scope="session")
def dl19_pair_texts(dl19):
    """60 real (query, passage) texts: 3 candidates from each of 20 queries."""
    queries, docs, pairs = dl19
    chosen = [p for i, p in enumerate(pairs) if i % 100 < 3][:60]
    return [queries[q] for q, _ in chosen], [docs[d] for _, d in chosen]


@pytest.fixture(scope="session")
def bi_teacher(minilm_dir):
    from semb25.teacher import load_teacher

    return load_teacher(str(minilm_dir), max_length=128, show_progress=False)


def save_cross_encoder(model, tokenizer_dir: Path, out_dir: Path) -> Path:
    """Save a transformers model as safetensors plus the tokenizer files."""
    model.save_pretrained(out_dir, safe_serialization=True)
    for name in TOKENIZER_FILES:
        if (tokenizer_dir / name).is_file():
            shutil.copy(tokenizer_dir / name, out_dir / name)
    return out_dir


@pytest.fixture(scope="session")
def cross_dir(minilm_dir, tmp_path_factory) -> Path:
    """all-MiniLM-L6-v2's body under a seeded random 1-logit classification head."""
    import torch
    from transformers import BertForSequenceClassification

    torch.manual_seed(0)
    model = BertForSequenceClassification.from_pretrained(
        str(minilm_dir), num_labels=1
    ).eval()
    return save_cross_encoder(model, minilm_dir, tmp_path_factory.mktemp("cross"))


@pytest.fixture(scope="session")
def save_hf_dir():
    """``save_hf_dir(model, tokenizer_dir, out_dir)``: a loadable checkpoint folder."""
    return save_cross_encoder
