"""The ``semb25`` command: library-side actions on a trained student.

    semb25 rerank  --model RUN_DIR --query "..." PASSAGES.txt [--top-k 10]
    semb25 index   --model RUN_DIR DOCS.jsonl --out INDEX.npz
    semb25 rerank  --model RUN_DIR --query "..." --index INDEX.npz DOC_IDS.txt
    semb25 explain --model RUN_DIR --query "..." --doc "..." [--html F] [--png F]
    semb25 summary --model RUN_DIR

Training, evaluation and the circuit analyses are the scripts in ``train/``
and ``eval/``; this command only loads a student and uses it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="semb25", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="action", required=True)
    rerank = sub.add_parser("rerank", help="rerank passages (one per line) for a query")
    rerank.add_argument(
        "passages",
        help="text file, one passage per line (with --index: one doc id per line)",
    )
    rerank.add_argument("--index", help="a DocIndex built by 'semb25 index'")
    index = sub.add_parser(
        "index", help="precompute a DocIndex of passages for fast reranking"
    )
    index.add_argument("docs", help='JSON lines {"doc_id": ..., "text": ...}')
    index.add_argument("--out", required=True, help="the index file (.npz)")
    explain = sub.add_parser("explain", help="per-term breakdown of one score")
    explain.add_argument("--doc", required=True)
    explain.add_argument("--html", help="also write an HTML snippet here")
    explain.add_argument("--png", help="also write a heatmap PNG here")
    summary = sub.add_parser("summary", help="parameter counts and FLOPs per pair")
    for p in (rerank, explain, summary, index):
        p.add_argument("--model", required=True, help="run or student directory")
    for p in (rerank, explain):
        p.add_argument("--query", required=True)
    rerank.add_argument("--top-k", type=int, default=10)
    args = parser.parse_args(argv)

    from semb25 import SemanticBM25

    try:
        model = SemanticBM25.from_pretrained(args.model)
        if args.action == "index":
            return _index(model, args)
        if args.action == "rerank" and args.index:
            return _rerank_indexed(model, args)
    except (OSError, ValueError, ConnectionError, KeyError) as e:
        # A KeyError's str() quotes its message; print the message itself.
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"error: {message}", file=sys.stderr)
        return 1
    if args.action == "rerank":
        path = Path(args.passages)
        if not path.is_file():
            print(f"error: passages file {path}: not found", file=sys.stderr)
            return 1
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
            # Blank lines are skipped; the printed number is the file's line.
            numbered = [(n, line) for n, line in enumerate(lines, 1) if line.strip()]
            ranked = model.rerank(
                args.query, [line for _, line in numbered], args.top_k
            )
        except UnicodeDecodeError as e:
            print(f"error: passages file {path}: not UTF-8 text ({e})", file=sys.stderr)
            return 1
        except (TypeError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        if not numbered:
            print(f"error: passages file {path}: no passages", file=sys.stderr)
            return 1
        print("rank     score  line  passage")
        for rank, (i, score) in enumerate(ranked, 1):
            line_no, text = numbered[i]
            print(f"{rank:>4}  {score:8.4f}  {line_no:>4}  {text[:100]}")
    elif args.action == "explain":
        ex = model.explain(args.query, args.doc)
        print(ex.to_text())
        if args.html:
            Path(args.html).write_text(ex.to_html(), encoding="utf-8")
        if args.png:
            ex.heatmap_png(args.png)
    else:
        print(json.dumps(model.summary(), indent=2))
    return 0


def _index(model, args) -> int:
    from semb25.data.collection import read_docs
    from semb25.student.index import DocIndex

    path = Path(args.docs)
    if not path.is_file():
        raise FileNotFoundError(f"docs file {path}: not found")
    docs = read_docs(path)
    index = DocIndex.build(model, docs, show_progress=True)
    index.save(args.out)
    kind = "ids and key vectors" if index.keys is not None else "ids"
    print(f"indexed {len(index)} passages ({kind}) to {args.out}")
    return 0


def _rerank_indexed(model, args) -> int:
    from semb25.student.index import DocIndex

    path = Path(args.passages)
    if not path.is_file():
        raise FileNotFoundError(f"doc ids file {path}: not found")
    doc_ids = [x.strip() for x in path.read_text(encoding="utf-8").splitlines()]
    index = DocIndex.load(args.index)
    ranked = model.rerank(args.query, [d for d in doc_ids if d], args.top_k, index)
    print("rank     score  doc_id")
    for rank, (doc_id, score) in enumerate(ranked, 1):
        print(f"{rank:>4}  {score:8.4f}  {doc_id}")
    return 0


def run() -> int:
    """Console entry point: ``main`` with a closed pipe (``| head``) tolerated."""
    try:
        return main()
    except BrokenPipeError:
        # Python flushes stdout again at exit; point it at devnull first.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(run())
