"""The resumable score store, including a kill -9 in the middle of a job."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from semb25.teacher.store import ScoreStore, score_with_store

REPO = Path(__file__).resolve().parents[2]

# Scores 200 real DL19 pairs into a store; logs every pair it sends to the
# teacher; with KILL_AFTER_CHUNKS=k it SIGKILLs itself right after commit k.
WORKER = textwrap.dedent(
    """
    import json, os, signal, sys
    from semb25.teacher import load_teacher
    from semb25.teacher.store import ScoreStore, score_with_store

    db, log_file, kill_after = sys.argv[1], sys.argv[2], int(sys.argv[3])
    spec = json.load(sys.stdin)
    teacher = load_teacher(spec["teacher"], max_length=128, show_progress=False)
    store = ScoreStore(db, teacher.name)

    real_score, real_put = teacher.score, store.put_many
    def logged_score(queries, docs, **kwargs):
        with open(log_file, "a") as f:
            f.write(json.dumps([queries, docs]) + "\\n")
        return real_score(queries, docs, **kwargs)
    commits = []
    def put_then_maybe_die(rows):
        real_put(rows)
        commits.append(len(rows))
        if len(commits) == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
    teacher.score, store.put_many = logged_score, put_then_maybe_die

    pairs = [tuple(p) for p in spec["pairs"]]
    scores = score_with_store(teacher, store, pairs, spec["queries"], spec["docs"],
                              chunk_size=48, show_progress=False)
    print(json.dumps([float(s) for s in scores]))
    """
)


def run_worker(tmp_path, spec, db, log_file, kill_after=0):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    # A persistent compilation cache spares the second run XLA's compile time.
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "JAX_PLATFORMS": "cpu",
        "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "xla_cache"),
    }
    return subprocess.run(
        [sys.executable, str(script), str(db), str(log_file), str(kill_after)],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_store_round_trip_and_teacher_isolation(tmp_path):
    store = ScoreStore(tmp_path / "s.sqlite", "teacher-a")
    store.put_many([("q1", "d1", 1.5), ("q1", "d2", -0.25), ("q2", "d1", 3.0)])
    assert len(store) == 3
    assert store.get_many([("q1", "d2"), ("q9", "d1"), ("q2", "d1")]) == {
        ("q1", "d2"): -0.25,
        ("q2", "d1"): 3.0,
    }
    other = ScoreStore(tmp_path / "s.sqlite", "teacher-b")
    assert len(other) == 0 and other.get_many([("q1", "d1")]) == {}
    store.put_many([("q1", "d1", 2.0)])  # rescoring replaces, not duplicates
    assert len(store) == 3 and store.get_many([("q1", "d1")]) == {("q1", "d1"): 2.0}


def test_score_with_store_scores_only_missing_pairs(tmp_path, bi_teacher, dl19):
    queries, docs, pairs = dl19
    pairs = pairs[:20]
    store = ScoreStore(tmp_path / "s.sqlite", bi_teacher.name)
    calls = []
    real_score = bi_teacher.score

    class Counting:
        name = bi_teacher.name

        def score(self, q, d, **kwargs):
            calls.append(len(q))
            return real_score(q, d, **kwargs)

    first = score_with_store(
        Counting(), store, pairs[:12], queries, docs, chunk_size=5, show_progress=False
    )
    assert calls == [5, 5, 2]
    both = score_with_store(
        Counting(),
        store,
        pairs + pairs[:3],
        queries,
        docs,
        chunk_size=5,
        show_progress=False,
    )
    assert calls == [5, 5, 2, 5, 3]  # only the 8 new pairs were scored
    assert both.shape == (23,) and both.dtype == np.float32
    np.testing.assert_array_equal(both[:12], first)
    np.testing.assert_array_equal(both[20:], first[:3])
    direct = real_score([queries[q] for q, _ in pairs], [docs[d] for _, d in pairs])
    np.testing.assert_allclose(both[:20], direct, atol=1e-5)


@pytest.mark.slow
def test_killed_job_resumes_without_rescoring_and_matches_uninterrupted(
    tmp_path, minilm_dir, dl19, bi_teacher
):
    queries, docs, pairs = dl19
    chosen = pairs[:100] + pairs[2000:2100]  # 200 real pairs, 2 queries
    spec = {
        "teacher": str(minilm_dir),
        "pairs": chosen,
        "queries": {q: queries[q] for q, _ in chosen},
        "docs": {d: docs[d] for _, d in chosen},
    }
    db, log_file = tmp_path / "scores.sqlite", tmp_path / "calls.jsonl"

    killed = run_worker(tmp_path, spec, db, log_file, kill_after=2)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert len(ScoreStore(db, "model")) == 96  # two committed chunks of 48

    resumed = run_worker(tmp_path, spec, db, log_file)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    scored = [
        pair
        for line in log_file.read_text().splitlines()
        for pair in zip(*json.loads(line), strict=True)
    ]
    assert len(scored) == 200 and len(set(scored)) == 200  # every pair once

    # The uninterrupted reference: the same teacher (max_length 128), in process.
    fresh_store = ScoreStore(tmp_path / "fresh.sqlite", bi_teacher.name)
    fresh_scores = score_with_store(
        bi_teacher,
        fresh_store,
        [tuple(p) for p in chosen],
        spec["queries"],
        spec["docs"],
        show_progress=False,
    )
    resumed_scores = np.array(json.loads(resumed.stdout.strip().splitlines()[-1]))
    assert resumed_scores.shape == (200,)
    np.testing.assert_allclose(resumed_scores, fresh_scores, atol=1e-5)
