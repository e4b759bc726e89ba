"""Data parallelism: 4 (forced host) devices give the 1-device scores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from semb25.teacher import load_teacher

REPO = Path(__file__).resolve().parents[2]

WORKER = textwrap.dedent(
    """
    import json, sys
    import jax
    from semb25.teacher import load_teacher

    spec = json.load(sys.stdin)
    out = {"n_devices": len(jax.devices())}
    for kind, path in spec["teachers"].items():
        teacher = load_teacher(path, max_length=128, batch_size=6, show_progress=False)
        out[kind] = {
            "batch_size": teacher.batch_size,
            "scores": teacher.score(spec["queries"], spec["docs"]).tolist(),
        }
    print(json.dumps(out))
    """
)


@pytest.mark.slow
def test_four_device_scores_equal_one_device_scores(
    minilm_dir, cross_dir, dl19_pair_texts
):
    queries, docs = (t[:30] for t in dl19_pair_texts)
    teachers = {"bi": str(minilm_dir), "cross": str(cross_dir)}
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
    }
    result = subprocess.run(
        [sys.executable, "-c", WORKER],
        input=json.dumps({"teachers": teachers, "queries": queries, "docs": docs}),
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    sharded = json.loads(result.stdout.strip().splitlines()[-1])
    assert sharded["n_devices"] == 4

    for kind, path in teachers.items():
        assert sharded[kind]["batch_size"] == 8  # 6 rounded up to 4 devices
        single = load_teacher(path, max_length=128, batch_size=8, show_progress=False)
        assert len(single.devices) == 1
        expected = single.score(queries, docs)
        got = np.array(sharded[kind]["scores"], dtype=np.float32)
        assert got.shape == (30,)
        assert np.abs(got - expected).max() <= 1e-6
