"""Distil a SemanticBM25 student from a MiniLM teacher (steps 1-3 of the main job).

    python train/distill.py --config train/configs/demo.toml [--data DIR]
        [--teacher ID_OR_DIR] [--out RUN_DIR] [--resume]

RUN_DIR then holds the best student by validation nDCG@10 (load it with
``semb25.SemanticBM25.from_pretrained(RUN_DIR)``), ``final/``, checkpoints,
``metrics.jsonl``, ``train.log``, ``config.toml`` and ``run.json``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from semb25.distill.pipeline import distill, load_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="TOML run config")
    parser.add_argument(
        "--data",
        help="folder of local collections "
        "(default: $SEMB25_DATA, then ../shared/data/msmarco-passage)",
    )
    parser.add_argument(
        "--teacher",
        help="teacher hub id or local HF directory (overrides [teacher] id)",
    )
    parser.add_argument("--out", help="run directory (default runs/<config name>)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its last checkpoint",
    )
    parser.add_argument(
        "--scores",
        help="precomputed teacher scores, "
        "'query_id doc_id score' lines, instead of running the teacher",
    )
    parser.add_argument(
        "--cache",
        help="teacher-score cache file (default $SEMB25_CACHE or ~/.cache/semb25)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)

    try:
        config = load_config(args.config)
    except (OSError, ValueError) as e:
        parser.error(str(e))
    name = config.get("name", Path(args.config).stem)
    if not isinstance(name, str) or not name:
        parser.error(f"config {args.config}: name must be a non-empty string")
    out = Path(args.out or Path("runs") / name)
    out.mkdir(parents=True, exist_ok=True)
    _setup_logging(out / "train.log")
    try:
        run_dir = distill(
            args.config,
            args.data,
            args.teacher,
            out,
            args.resume,
            args.scores,
            args.cache,
            show_progress=not args.quiet,
        )
    except (
        FileExistsError,
        FileNotFoundError,
        ValueError,
        ConnectionError,
        RuntimeError,
    ) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        # ir_datasets downloads lazily, on first read: a network failure then
        # surfaces as requests' ConnectionError (an OSError) mid-stream.
        print(
            f"error: {type(e).__name__}: {str(e)[:300]} (a download failed? "
            "offline, set SEMB25_DATA to a folder of local collections)",
            file=sys.stderr,
        )
        return 1
    print(f"trained student in {run_dir}")
    return 0


def _setup_logging(log_file: Path) -> None:
    """Milestones to the terminal and to RUN_DIR/train.log."""
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=[logging.StreamHandler(), logging.FileHandler(log_file)],
        force=True,  # replace handlers that imported libraries installed
    )
    logging.getLogger("absl").setLevel(logging.WARNING)  # orbax's chatter


if __name__ == "__main__":
    sys.exit(main())
