"""Training never loses a run: kill -9 and resume, devices, bad data, NaN loss."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from semb25.distill.examples import BatchSampler, QueryGroup, build_groups
from semb25.distill.trainer import NonFiniteLossError, TrainConfig, Trainer

REPO = Path(__file__).resolve().parents[2]


def _distill(config, out, scores, *extra, env=None):
    cmd = [
        sys.executable,
        str(REPO / "train" / "distill.py"),
        "--config",
        str(config),
        "--out",
        str(out),
        "--scores",
        str(scores),
        "--quiet",
        *extra,
    ]
    return subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )


def _losses(run_dir):
    rows = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(r)["loss"] for r in rows]


@pytest.mark.slow
def test_kill_9_then_resume_equals_uninterrupted_run(
    small_config, small_scores, tmp_path
):
    config = small_config(steps=12, checkpoint_every=4)
    whole = _distill(config, tmp_path / "whole", small_scores)
    assert whole.returncode == 0, whole.stderr[-2000:]

    # Killed at step 7: the checkpoint of step 4 is the last good one.
    killed = _distill(
        config, tmp_path / "resumed", small_scores, env={"SEMB25_KILL_AT_STEP": "7"}
    )
    assert killed.returncode == -9
    steps = sorted(
        int(p.name)
        for p in (tmp_path / "resumed" / "checkpoints").iterdir()
        if p.name.isdigit()
    )
    assert steps[-1] == 4
    resumed = _distill(config, tmp_path / "resumed", small_scores, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resumed from the checkpoint at step 4" in resumed.stderr

    a = load_file(tmp_path / "whole" / "final" / "model.safetensors")
    b = load_file(tmp_path / "resumed" / "final" / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_allclose(a[key], b[key], atol=1e-6, err_msg=key)
    # The metrics log has each step once, as in the uninterrupted run.
    np.testing.assert_allclose(
        _losses(tmp_path / "resumed"), _losses(tmp_path / "whole"), rtol=1e-6
    )
    moved = np.abs(
        a["w_key"]
        - load_file(tmp_path / "whole" / "final" / "model.safetensors")["w_query"]
    ).max()
    assert moved > 0  # training changed the parameters (W_K and W_Q diverged)


@pytest.mark.slow
def test_four_simulated_devices_give_the_same_loss_curve(
    small_config, small_scores, tmp_path
):
    config = small_config(steps=6, checkpoint_every=6)
    one = _distill(config, tmp_path / "one", small_scores)
    four = _distill(
        config,
        tmp_path / "four",
        small_scores,
        env={"XLA_FLAGS": "--xla_force_host_platform_device_count=4"},
    )
    assert one.returncode == 0 and four.returncode == 0, four.stderr[-2000:]
    assert "4 device(s)" in four.stderr and "1 device(s)" in one.stderr
    np.testing.assert_allclose(
        _losses(tmp_path / "four"), _losses(tmp_path / "one"), rtol=1e-5, atol=1e-6
    )


def test_existing_run_is_not_overwritten_without_resume(
    small_config, small_scores, tmp_path
):
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    out = _distill(small_config(), tmp_path / "run", small_scores)
    assert out.returncode == 1
    assert "already holds a run; pass --resume" in out.stderr


class _Tok:
    def token_ids(self, texts):
        return [np.array([hash(w) % 50 + 5 for w in t.split()]) for t in texts]


def test_bad_training_data_is_skipped_and_counted():
    queries = {"q1": "flea life", "q2": "cat", "q3": "   ", "q4": "dog"}
    docs = {"a": "flea eggs", "b": "life cycle", "c": "", "d": "cat food", "e": "x"}
    candidates = {
        "q1": ["a", "b", "c"],
        "q2": ["d", "e"],
        "q3": ["a", "b"],
        "q4": ["a", "b"],
    }
    scores = {
        ("q1", "a"): 1.0,
        ("q1", "b"): 0.5,
        ("q1", "c"): 0.2,
        ("q2", "d"): float("nan"),
        ("q2", "e"): 0.1,
        ("q3", "a"): 1.0,
        ("q3", "b"): 1.0,
        ("q4", "a"): float("inf"),
    }
    groups, skipped = build_groups(candidates, queries, docs, scores, _Tok())
    assert [g.qid for g in groups] == ["q1"]
    assert groups[0].doc_ids == ["a", "b"]
    assert skipped == Counter(
        empty_doc=1,
        non_finite_score=2,
        missing_score=1,
        empty_query=1,
        fewer_than_two_candidates=2,
    )


def test_nan_loss_stops_with_step_and_batch_and_keeps_checkpoint(student, tmp_path):
    rng = np.random.default_rng(0)
    groups = [
        QueryGroup(
            f"q{i}",
            rng.integers(1000, 2000, 4),
            ["a", "b", "c"],
            [rng.integers(1000, 2000, 20) for _ in range(3)],
            np.array([1.0, 0.0, 0.5], np.float32),
        )
        for i in range(4)
    ]
    cfg = TrainConfig(
        steps=6,
        queries_per_batch=2,
        docs_per_query=3,
        checkpoint_every=2,
        validate_every=100,
        warmup_steps=1,
    )
    sampler = BatchSampler(groups, 2, 3, 8, 32, 0, 0.0, 1.0)
    trainer = Trainer(student.circuit, sampler, cfg, tmp_path / "run")
    real_batch = sampler.batch

    def poisoned(step):
        batch = real_batch(step)
        if step == 3:
            batch["teacher"][:] = np.nan
        return batch

    sampler.batch = poisoned
    with pytest.raises(
        NonFiniteLossError,
        match=r"loss is nan at step 4 \(batch "
        r"queries \['q\d', 'q\d'\]\)",
    ):
        trainer.fit(show_progress=False)
    assert trainer.checkpoints.latest_step() == 2
    restored = Trainer(student.circuit, sampler, cfg, tmp_path / "run")
    assert restored.restore_latest() and restored.step == 2


@pytest.mark.parametrize(
    ("section", "line", "message"),
    [
        ("train", "steps = -5", r"\[train\] steps must be >= 1"),
        ("train", "steps = 400.5", r"\[train\] steps: expected an integer, got 400.5"),
        ("train", "queries_per_batch = 0", r"queries_per_batch must be >= 1"),
        ("student", 'n_heads = "four"', r"n_heads expected int, got 'four'"),
        (
            "data",
            "validation_fraction = 1.5",
            r"validation_fraction must be in \[0, 1\)",
        ),
        (
            "data",
            'train = "dev-sampel"',
            r"'dev-sampel': no such folder under the data",
        ),
        ("data", "max_candidate = 50", r"\[data\] has unknown field\(s\) \['max_c"),
        (
            "teacher",
            'max_length = "x"',
            r"\[teacher\] max_length must be an integer >= 1, got 'x'",
        ),
        ("teacher", 'kind = "banana"', r"\[teacher\] kind must be 'cross' or 'bi'"),
        (
            "student",
            "context_layers = 5",
            r"bad\.toml: student config: context_layers must be 0, 1 or 2",
        ),
        (
            "train",
            "losses = {listwise_kl = -1.0}",
            r"listwise_kl: expected a weight >= 0, got -1.0",
        ),
        ("train", "losses = {listwise_kl = true}", r"listwise_kl: expected a weight"),
    ],
)
def test_config_errors_name_the_field_before_any_teacher_work(
    small_config, small_scores, tmp_path, data_root, section, line, message
):
    from semb25.distill.pipeline import distill

    text = small_config().read_text()
    key = line.split(" =")[0]
    lines = [ln for ln in text.splitlines() if not ln.startswith(f"{key} =")]
    at = lines.index(f"[{section}]") + 1
    bad = tmp_path / "bad.toml"
    bad.write_text("\n".join(lines[:at] + [line] + lines[at:]) + "\n")
    with pytest.raises(ValueError, match=message):
        distill(bad, data_root, out=tmp_path / "run", scores_file=small_scores)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_rerank_rejects_argument_mix_ups(student):
    with pytest.raises(TypeError, match="single string"):
        student.rerank("flea", "a flea passage")
    with pytest.raises(TypeError, match="query: expected str"):
        student.rerank(None, ["a"])
    with pytest.raises(ValueError, match="top_k"):
        student.rerank("flea", ["a"], top_k=-1)
