"""Wall time of the demo (distil + evaluate), cold and with the teacher cache warm.

    python eval/bench_demo.py [--config train/configs/demo.toml] [--keep DIR]

Runs the two commands of ``make demo`` twice in one session on this machine:
first with an empty teacher-score cache (cold: the teacher scores every
training and evaluation pair), then again with the cache the first run
filled (warm). JAX's compilation cache is not used in either run. Prints both
wall times and their ratio; the targets are < 15 min cold and < 3 min warm on
2 cores.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def demo(config: str, work: Path, cache: Path, tag: str) -> float:
    """Run distil + evaluate once; return the wall time in seconds."""
    env = {**os.environ, "SEMB25_CACHE": str(cache)}
    run_dir, report_dir = work / f"run-{tag}", work / f"report-{tag}"
    start = time.perf_counter()
    for cmd in (
        ["train/distill.py", "--config", config, "--out", str(run_dir), "--quiet"],
        [
            "eval/evaluate.py",
            "--model",
            str(run_dir),
            "--collection",
            "trec-dl-2019",
            "--out",
            str(report_dir),
            "--quiet",
        ],
    ):
        subprocess.run(
            [sys.executable, *cmd],
            cwd=REPO,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="train/configs/demo.toml")
    parser.add_argument("--keep", help="keep runs and reports in this folder")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.keep or tmp)
        cache = work / "cache"
        print("demo, cold teacher cache ...", flush=True)
        cold = demo(args.config, work, cache, "cold")
        print(f"  cold: {cold / 60:.1f} min", flush=True)
        print("demo, warm teacher cache ...", flush=True)
        warm = demo(args.config, work, cache, "warm")
        print(f"  warm: {warm / 60:.1f} min")
        print(
            f"cold {cold:.0f} s (target < 900 s), warm {warm:.0f} s (target < 180 s),"
            f" cold/warm = {cold / warm:.1f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
