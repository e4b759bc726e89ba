"""Evaluate a trained student against its teacher and BM25 (step 4 of the main job).

    python eval/evaluate.py --model RUN_DIR [--collection DIR_OR_IR_DATASETS_ID]
        [--teacher ID_OR_DIR] --out OUT_DIR

Writes OUT_DIR/report.md, report.json, PNG plots and run.<model>.trec, and
prints the headline table.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from semb25.evaluate.pipeline import evaluate, headline, summary_table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="run or student directory")
    parser.add_argument(
        "--collection",
        help="collection folder, a name under the data root "
        "(trec-dl-2019), or an ir_datasets id (default: the run config's "
        "[data] eval, else its eval_ir_datasets id)",
    )
    parser.add_argument(
        "--teacher",
        help="teacher id or directory (default: the "
        "one the student was distilled from)",
    )
    parser.add_argument("--out", required=True, help="report directory")
    parser.add_argument("--data", help="folder of local collections")
    parser.add_argument("--cache", help="teacher-score cache file")
    parser.add_argument(
        "--max-candidates", type=int, help="rerank only each query's top-k candidates"
    )
    parser.add_argument(
        "--speed-queries",
        type=int,
        default=3,
        help="queries timed per model (default 3)",
    )
    parser.add_argument(
        "--no-axioms", action="store_true", help="skip the axiomatic diagnostics"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("absl").setLevel(logging.WARNING)
    try:
        report = evaluate(
            args.model,
            args.collection,
            args.out,
            args.teacher,
            args.data,
            args.cache,
            args.speed_queries,
            args.max_candidates,
            not args.no_axioms,
            show_progress=not args.quiet,
        )
    except (FileNotFoundError, ValueError, ConnectionError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    out = Path(args.out)
    print()
    print(headline(report))
    print()
    print(summary_table(report))
    print(f"\nreport: {out / 'report.md'} (and report.json, *.png, run.*.trec)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
