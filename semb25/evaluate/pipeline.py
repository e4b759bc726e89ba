"""The main job's second half: BM25, teacher and student on one collection.

``eval/evaluate.py`` is a thin command over :func:`evaluate`. It reranks the
collection's first-stage candidates with the teacher (through the score
cache) and the student, measures effectiveness against qrels, fidelity to the
teacher and speed in this one run, and writes ``report.md``, ``report.json``,
PNG plots and one TREC run file per model.

Speed is measured per query, as reranking is used: for each of the first
``speed_queries`` queries, the time to score all its candidates from their
text (teacher: not from the cache; BM25: rescoring the candidates with a
bm25s index over the collection's passages), after one untimed pass over the
same queries in which XLA compiles. Pairs per second is candidates scored
over the summed time.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from semb25.corpus import corpus_stats
from semb25.data import Collection, load_collection
from semb25.evaluate.report import build_report, write_report
from semb25.student import SemanticBM25
from semb25.student.weights import resolve_student_dir

log = logging.getLogger(__name__)

MODEL_ORDER = ("bm25", "teacher", "student")


def _timed_per_query(score_query, collection: Collection, qids: list[str]) -> dict:
    """Pairs/s and p50/p95 latency of ``score_query(qid, doc_ids)``."""
    times, pairs = [], 0
    for qid in qids:
        doc_ids = [d for d, _ in collection.candidates[qid]]
        t0 = time.perf_counter()
        score_query(qid, doc_ids)
        times.append(time.perf_counter() - t0)
        pairs += len(doc_ids)
    ms = np.asarray(times) * 1000
    return {
        "pairs_per_second": pairs / max(sum(times), 1e-12),
        "latency_ms_p50": float(np.percentile(ms, 50)),
        "latency_ms_p95": float(np.percentile(ms, 95)),
        "timed_queries": len(qids),
        "timed_pairs": pairs,
    }


def student_run(
    model: SemanticBM25, collection: Collection, show_progress: bool = True
) -> dict[str, dict[str, float]]:
    """``{qid: {doc_id: student score}}`` over all candidates."""
    pairs = collection.pairs()
    scores = model.score(
        [collection.queries[q] for q, _ in pairs],
        [collection.docs[d] for _, d in pairs],
        show_progress=show_progress,
    )
    run: dict[str, dict[str, float]] = {}
    for (qid, doc_id), s in zip(pairs, scores, strict=True):
        run.setdefault(qid, {})[doc_id] = float(s)
    return run


def student_extras(
    model: SemanticBM25,
    collection: Collection,
    student_run_: dict,
    run_dir: Path | None,
    n_heatmaps: int = 2,
) -> dict:
    """Data for the student-side plots: IDF, saturation, heatmaps, training."""
    cfg = model.config
    extras: dict = {}

    # Learned IDF against this collection's corpus IDF, for tokens it contains.
    doc_ids = sorted({d for _, d in collection.pairs()})
    stats = corpus_stats(
        model.tokenizer.token_ids([collection.docs[d] for d in doc_ids]),
        cfg.vocab_size,
        cfg.special_ids,
    )
    seen = np.flatnonzero(stats.df > 0)
    learned = np.asarray(model.lookup_tables()["idf"])[seen]
    extras["idf"] = {
        "learned": learned.tolist(),
        "corpus": stats.idf[seen].tolist(),
        "tokens": model.tokenizer.tokens(seen),
    }

    k1 = np.asarray(model.circuit.k1).tolist()
    b = np.asarray(model.circuit.b).tolist()
    names = [f"soft{h}" for h in range(cfg.n_heads)]
    names += ["exact"] if cfg.exact_match_head else []
    extras["saturation"] = {
        "k1": k1,
        "b": b,
        "avgdl": cfg.avgdl,
        "heads": names,
        "bm25_k1": 0.9,
        "bm25_b": 0.4,
    }

    # Heatmaps for the first queries' top student passage.
    extras["heatmaps"] = []
    for qid in list(student_run_)[:n_heatmaps]:
        doc_id = max(student_run_[qid], key=student_run_[qid].get)
        ex = model.explain(collection.queries[qid], collection.docs[doc_id])
        extras["heatmaps"].append(
            {
                "query": collection.queries[qid],
                "doc_id": doc_id,
                "query_tokens": [t.token for t in ex.terms],
                "doc_tokens": ex.doc_tokens[:80],
                "weights": ex.match_matrix[:, :80].tolist(),
            }
        )

    metrics = run_dir / "metrics.jsonl" if run_dir else None
    if metrics and metrics.is_file():
        rows = [json.loads(line) for line in metrics.read_text().splitlines() if line]
        val = [r for r in rows if "val" in r]
        extras["training"] = {
            "step": [r["step"] for r in rows],
            "loss": [r["loss"] for r in rows],
            "val_step": [r["step"] for r in val],
            "val_nDCG@10": [r["val"]["nDCG@10"] for r in val],
            "val_kendall_tau": [r["val"]["kendall_tau"] for r in val],
        }
    return extras


def evaluate(
    model_dir: str | Path,
    collection_spec: str | None,
    out_dir: str | Path,
    teacher_id: str | None = None,
    data_root=None,
    cache_path=None,
    speed_queries: int = 3,
    max_candidates: int | None = None,
    axioms: bool = True,
    show_progress: bool = True,
) -> dict:
    """Run step 4 of the main job and return the report dict (also written).

    Args:
        model_dir: a run directory or student directory.
        collection_spec: a local collection folder/name or an ir_datasets id;
            None takes the ``eval`` collection of the run's config.
        out_dir: where the report goes.
        teacher_id: the teacher (default: the one the student was trained on).
        speed_queries: queries timed per model for pairs/s and latency.
        max_candidates: rerank only each query's top-k candidates.
        axioms: also run the axiomatic diagnostics (TFC1, LNC, STMC1).
    """
    from semb25.bm25 import BM25Index
    from semb25.distill.pipeline import collection_teacher_scores
    from semb25.teacher import load_teacher

    student_dir = resolve_student_dir(model_dir)
    model = SemanticBM25.from_pretrained(student_dir)
    provenance = json.loads((student_dir / "semb25_config.json").read_text()).get(
        "provenance", {}
    )
    teacher_id = teacher_id or provenance.get("teacher")
    if not teacher_id:
        raise ValueError(f"student {student_dir}: no teacher recorded; pass --teacher")
    collection = _eval_collection(model_dir, collection_spec, data_root, max_candidates)
    qids = [q for q in collection.queries if collection.candidates.get(q)]
    warnings = []
    if provenance.get("train_collection") == collection.name:
        warnings.append(
            f"{collection.name} is the collection the student was "
            "trained on: its scores here are not held-out results"
        )
        log.warning("%s", warnings[-1])
    log.info(
        "evaluating on %s (%s): %d queries, %d pairs",
        collection.name,
        collection.source,
        len(qids),
        len(collection.pairs()),
    )

    # Runs: the first stage as BM25, the teacher (cached) and the student.
    teacher = load_teacher(teacher_id, show_progress=show_progress)
    teacher_scores = collection_teacher_scores(
        teacher, collection, cache_path, show_progress
    )
    runs = {"bm25": collection.first_stage_run(), "teacher": {}}
    for (qid, doc_id), s in teacher_scores.items():
        runs["teacher"].setdefault(qid, {})[doc_id] = s
    runs["student"] = student_run(model, collection, show_progress)

    # Speed, each model on the same queries in this run, after one untimed
    # pass over them (XLA compiles each model's shapes there).
    timed = qids[:speed_queries]
    bm25 = BM25Index.from_collection(collection)
    scorers = {
        "bm25": lambda q, d: bm25.score(collection.queries[q], d),
        "teacher": lambda q, d: teacher.score(
            [collection.queries[q]] * len(d),
            [collection.docs[x] for x in d],
            show_progress=False,
        ),
        "student": lambda q, d: model.score(
            [collection.queries[q]] * len(d), [collection.docs[x] for x in d]
        ),
    }
    speed = {}
    for name, score_query in scorers.items():
        _timed_per_query(score_query, collection, timed)
        speed[name] = _timed_per_query(score_query, collection, timed)
        log.info("speed %s: %.0f pairs/s", name, speed[name]["pairs_per_second"])

    report = build_report(collection, runs, teacher.name, speed)
    report["speed_protocol"] = (
        f"per query over the first {len(timed)} queries' candidates, same machine, "
        "same run, after one untimed warm-up pass; teacher scores not cached; "
        "BM25's speed is rescoring with a bm25s index over the collection's "
        "passages, its effectiveness the collection's own first-stage run"
    )
    report["warnings"] = warnings
    report["student"] = {
        "dir": str(student_dir),
        **model.summary(),
        "provenance": provenance,
    }
    extras = student_extras(
        model,
        collection,
        runs["student"],
        student_dir if (student_dir / "metrics.jsonl").exists() else Path(model_dir),
    )
    if axioms:
        extras.update(_axioms(collection, teacher, model, bm25))
    write_report(out_dir, report, runs, extras)
    return report


def _eval_collection(model_dir, spec, data_root, max_candidates) -> Collection:
    """The given collection, else the run config's ``eval`` one (the local
    sample when present, else its ir_datasets id)."""
    if spec:
        return load_collection(spec, data_root, max_candidates=max_candidates)
    from semb25.distill.pipeline import load_config, resolve_collection

    config_path = Path(model_dir) / "config.toml"
    if not config_path.is_file():
        raise ValueError(
            f"{model_dir}: no config.toml to take the evaluation "
            "collection from; pass --collection"
        )
    data = dict(load_config(config_path)["data"])
    data["eval_max_candidates"] = max_candidates
    return resolve_collection(data, "eval", data_root)


def _axioms(collection, teacher, model, bm25) -> dict:
    """Axiomatic shares per model, if the axioms module is available."""
    try:
        from semb25.evaluate import axioms
    except ImportError:
        return {}
    cases = axioms.build_axiom_cases(
        collection, teacher.token_embeddings, teacher.tokenizer, n_pairs=100, seed=0
    )
    scorers = {"teacher": teacher.score, "student": model.score}
    scorers.update(
        axioms.bm25_scorers(collection) if hasattr(axioms, "bm25_scorers") else {}
    )
    return {"axioms": axioms.axioms_for_models(scorers, cases)}


def headline(report: dict, measure: str = "nDCG@10") -> str:
    """One line: ``trec-dl-2019 (43 queries)  nDCG@10  BM25 0.506  teacher ...``."""
    models = report["models"]
    parts = [f"{report['collection']} ({report['n_queries']} queries)  {measure}"]
    for name in MODEL_ORDER:
        if name in models:
            label = "BM25" if name == "bm25" else name
            parts.append(f"{label} {models[name]['metrics'][measure]:.3f}")
    return "  ".join(parts)


def summary_table(report: dict) -> str:
    """A plain-text table of every model's metrics, fidelity and speed."""
    measures = report["measures"]
    head = f"{'model':<9}" + "".join(f"{m:>14}" for m in measures)
    head += f"{'tau(teacher)':>14}{'pairs/s':>11}"
    lines = [head]
    for name in MODEL_ORDER:
        m = report["models"].get(name)
        if m is None:
            continue
        row = f"{name:<9}" + "".join(f"{m['metrics'][x]:>14.4f}" for x in measures)
        tau = m["fidelity"]["kendall_tau"]
        row += f"{tau:>14.3f}" if tau is not None else f"{'-':>14}"
        pps = m["pairs_per_second"]
        row += f"{pps:>11.0f}" if pps is not None else f"{'-':>11}"
        lines.append(row)
    return "\n".join(lines)
