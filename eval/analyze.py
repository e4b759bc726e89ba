"""Find the BM25 circuit in a teacher: IDF direction, matching heads, probe, edit.

Writes into ``--out`` one JSON and one PNG per analysis and ``analysis.md``::

    python eval/analyze.py all --teacher sentence-transformers/all-MiniLM-L6-v2 \\
        --collection trec-dl-2019,dev-sample --out out/analysis --pairs 200

``--collection`` takes one or more comma-separated collections (names under
the data root, or folders): IDF is counted over the passages of all of them
(union by doc_id); heads, probe and edit use the pairs of the first, which
should have graded qrels (TREC DL: relevant means qrel >= 2; binary qrels: 1).
``probe`` and ``edit`` run the analyses they depend on first.
"""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path

from semb25.analysis.editing import choose_edit_token, editing_study
from semb25.analysis.idf_direction import collection_idf, idf_direction
from semb25.analysis.matching_heads import ablation_study, matching_heads
from semb25.analysis.probe import fit_probe, pair_features
from semb25.analysis.report import (
    plot_edit,
    plot_heads,
    plot_idf,
    plot_probe,
    write_analysis_md,
)
from semb25.atomic import atomic_write_json
from semb25.data import load_collection
from semb25.teacher import load_teacher

log = logging.getLogger("analyze")

BI_NOTE = (
    "this teacher is a bi-encoder, so the pair input is OUT OF DISTRIBUTION for "
    "it (it encodes query and passage separately): its attention here shows "
    "what its heads would do, not what it does when scoring."
)
CROSS_NOTE = "this is the cross-encoder's native input."


def select_pairs(collection, n_pairs: int) -> list[tuple[str, str]]:
    """About n_pairs (qid, doc_id): each query's top-c candidates, queries in
    order, with c chosen to spread the pairs over all queries (at least 2)."""
    per_query = max(2, math.ceil(n_pairs / max(1, len(collection.queries))))
    pairs = [
        (q, d)
        for q in collection.queries
        for d, _ in collection.candidates[q][:per_query]
    ]
    return pairs[:n_pairs]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("analysis", choices=["idf", "heads", "probe", "edit", "all"])
    parser.add_argument("--teacher", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--collection", default="trec-dl-2019,dev-sample")
    parser.add_argument("--data", default=None, help="data root (else $SEMB25_DATA)")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument(
        "--pairs", type=int, default=200, help="pairs for ablation/probe/edit"
    )
    parser.add_argument("--attention-pairs", type=int, default=30)
    parser.add_argument("--top-k", type=int, default=5, help="heads ablated / probed")
    parser.add_argument("--random-draws", type=int, default=3)
    parser.add_argument("--neighbours", type=int, default=10)
    parser.add_argument(
        "--edit-token", default=None, help="word piece (default: chosen)"
    )
    parser.add_argument("--lambdas", default="0,3")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    show = not args.no_progress
    wanted = (
        {"idf", "heads", "probe", "edit"} if args.analysis == "all" else {args.analysis}
    )
    needs_heads = wanted & {"heads", "probe"}

    # Teacher and collections; the first collection supplies the pairs.
    teacher = load_teacher(args.teacher, max_length=args.max_length, show_progress=show)
    specs = [s for s in args.collection.split(",") if s]
    collections = [load_collection(s, args.data) for s in specs]
    pairs_coll = collections[0]
    rel_threshold = (
        2
        if max((r for q in pairs_coll.qrels.values() for r in q.values()), default=1)
        > 1
        else 1
    )
    note = BI_NOTE if teacher.kind == "bi" else CROSS_NOTE
    args.out.mkdir(parents=True, exist_ok=True)

    # 1. The IDF direction (every other analysis reads IDF from it).
    docs: dict[str, str] = {}
    for coll in collections:
        docs.update(coll.docs)
    stats = collection_idf(teacher.tokenizer, docs.values(), show_progress=show)
    direction = idf_direction(
        teacher.token_embeddings, stats.idf, stats.df > 0, seed=args.seed
    )
    if "idf" in wanted:
        data = (
            f"teacher {teacher.name}; word-piece IDF over {stats.n_docs} passages of "
            f"{' + '.join(c.name for c in collections)}"
        )
        atomic_write_json(args.out / "idf.json", {"data": data, **direction.summary()})
        plot_idf(direction, stats.idf, stats.df > 0, args.out / "idf.png")

    pairs = select_pairs(pairs_coll, args.pairs)
    queries = [pairs_coll.queries[q] for q, _ in pairs]
    texts = [pairs_coll.docs[d] for _, d in pairs]

    # 2. Matching heads, and the causal check when asked for.
    if needs_heads:
        head_pairs = select_pairs(pairs_coll, args.attention_pairs)
        found = matching_heads(
            teacher,
            [pairs_coll.queries[q] for q, _ in head_pairs],
            [pairs_coll.docs[d] for _, d in head_pairs],
            n_neighbours=args.neighbours,
            show_progress=show,
        )
        top_heads = found.ranked()[: args.top_k]
    if "heads" in wanted:
        ablation = ablation_study(
            teacher, queries, texts, [q for q, _ in pairs], [d for _, d in pairs],
            pairs_coll.qrels, found.ranked(), k=args.top_k,
            n_random=args.random_draws, seed=args.seed,
            rel_threshold=rel_threshold, show_progress=show,
        )  # fmt: skip
        data = (
            f"teacher {teacher.name}; {found.n_pairs} {pairs_coll.name} pairs "
            f"(top BM25 candidates) for attention"
        )
        summary = {"data": data, "input_note": note, **found.summary()}
        summary["ablation"] = {
            "n_pairs": len(pairs), "rel_threshold": rel_threshold, **ablation.summary()
        }  # fmt: skip
        atomic_write_json(args.out / "heads.json", summary)
        plot_heads(found, ablation, args.out / "heads.png")

    # 3. The linear probe on U_0 IDF x matching-head attention.
    if "probe" in wanted:
        x, names = pair_features(
            teacher, queries, texts, top_heads, direction.idf_from_u0(), show
        )
        scores = teacher.score(queries, texts, show_progress=show)
        probe = fit_probe(x, scores, [q for q, _ in pairs], names, seed=args.seed)
        data = f"teacher {teacher.name}; {len(pairs)} {pairs_coll.name} pairs"
        summary = {
            "data": data,
            "input_note": note if teacher.kind == "bi" else "",
            "heads": [f"{a}.{b}" for a, b in top_heads],
            **probe.summary(),
        }
        atomic_write_json(args.out / "probe.json", summary)
        plot_probe(probe, args.out / "probe.png")

    # 4. Editing one token along the IDF axis.
    if "edit" in wanted:
        if args.edit_token:
            token_id = teacher.tokenizer.token_to_id(args.edit_token)
            if token_id is None:
                raise SystemExit(
                    f"--edit-token {args.edit_token!r}: not in the vocabulary"
                )
        else:
            token_id = choose_edit_token(teacher.tokenizer, pairs_coll, stats.idf)
        lambdas = [float(v) for v in args.lambdas.split(",")]
        study = editing_study(
            teacher, pairs_coll, token_id, direction.idf_axis, lambdas,
            max_pairs=args.pairs, show_progress=show,
        )  # fmt: skip
        data = (
            f"teacher {teacher.name}; all {pairs_coll.name} candidates of the queries "
            f"containing the token (at most {args.pairs} pairs)"
        )
        summary = {"data": data, **study.summary()}
        atomic_write_json(args.out / "edit.json", summary)
        plot_edit(summary, args.out / "edit.png")

    write_analysis_md(args.out)
    log.info("wrote %s", args.out / "analysis.md")


if __name__ == "__main__":
    main()
