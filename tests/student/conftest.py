"""Student fixtures: a student built from the real all-MiniLM-L6-v2 embeddings."""

from __future__ import annotations

import json

import pytest
from safetensors.numpy import load_file


@pytest.fixture(scope="session")
def minilm_embeddings(minilm_dir):
    return load_file(minilm_dir / "model.safetensors")[
        "embeddings.word_embeddings.weight"
    ]


@pytest.fixture(scope="session")
def dl19_passages(data_root) -> list[str]:
    """The first 60 real DL19 passages."""
    out = []
    with open(data_root / "trec-dl-2019" / "docs.jsonl", encoding="utf-8") as f:
        for line in f:
            out.append(json.loads(line)["text"])
            if len(out) == 60:
                break
    return out


@pytest.fixture(scope="session")
def student(minilm_embeddings, minilm_dir):
    from semb25 import SemanticBM25

    return SemanticBM25.create(minilm_embeddings, minilm_dir / "tokenizer.json")
