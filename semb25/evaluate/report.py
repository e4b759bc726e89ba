"""The evaluation report: effectiveness, fidelity, speed and significance.

:func:`build_report` turns runs on a collection into a JSON-ready dict;
:func:`write_report` writes it as ``report.json``, a readable ``report.md``,
one TREC run per model and PNG figures.

Statistics used (stated again in report.md):

* effectiveness: :mod:`semb25.evaluate.metrics` (ir_measures), per query and
  mean; 95% Student-t confidence intervals of each mean;
* fidelity to the teacher: :mod:`semb25.evaluate.fidelity` (the teacher's own
  fidelity is computed too, and is 1.0 unless it has tied scores);
* significance: paired two-sided t-tests on per-query values for every pair
  of models and every measure, Holm–Bonferroni-corrected over that whole
  family (m = pairs x measures).

>>> runs = {"bm25": coll.first_stage_run(), "teacher": ce_run}  # doctest: +SKIP
>>> report = build_report(coll, runs, "MiniLM", speed={})  # doctest: +SKIP
>>> files = write_report("out/dl19", report, runs)  # doctest: +SKIP
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import string
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from semb25.atomic import atomic_write_json, atomic_write_text
from semb25.data.collection import Collection
from semb25.data.trec import write_run
from semb25.evaluate import plots
from semb25.evaluate.fidelity import fidelity
from semb25.evaluate.metrics import evaluate_run, measure_names
from semb25.evaluate.significance import confidence_interval, holm, paired_ttest

logger = logging.getLogger(__name__)

Run = Mapping[str, Mapping[str, float]]

ALPHA = 0.05
FIRST_MODELS = ("bm25", "teacher", "student")
FIDELITY_KEYS = ("kendall_tau", "spearman_rho", "teacher_nDCG@10", "top1_agreement")
AXIOMS = ("TFC1", "LNC", "STMC1")


def model_order(names: list[str] | Mapping[str, Any]) -> list[str]:
    """bm25, teacher, student first (those present), then the rest as given."""
    names = list(names)
    return [n for n in FIRST_MODELS if n in names] + [
        n for n in names if n not in FIRST_MODELS
    ]


def _finite_or_none(value: float | None) -> float | None:
    """JSON has no NaN: undefined values become null."""
    if value is None or math.isnan(value):
        return None
    return float(value)


def build_report(
    collection: Collection,
    runs: Mapping[str, Run],
    teacher: str,
    speed: Mapping[str, Mapping[str, float]],
    teacher_run_key: str = "teacher",
    ci_method: str = "t",
) -> dict:
    """Evaluate ``runs`` on ``collection`` and collect everything the report shows.

    Args:
        collection: gives the qrels and the name.
        runs: model -> ``{qid: {doc_id: score}}`` ("bm25", "teacher", "student",
            others allowed).
        teacher: the teacher model's name, recorded in the report.
        speed: model -> ``{"pairs_per_second", "latency_ms_p50",
            "latency_ms_p95"}``; a model without an entry gets nulls.
        teacher_run_key: which run is the teacher's (fidelity reference).
        ci_method: ``"t"`` or ``"bootstrap"`` (see ``confidence_interval``).

    Returns:
        ``{"collection", "source", "n_queries", "teacher", "teacher_run_key",
        "measures", "models": {name: {"metrics": {measure: mean}, "fidelity":
        {...}, "pairs_per_second", "latency_ms": {"p50", "p95"}, "ci95":
        {measure: [lo, hi]}, "per_query": {measure: {qid: value}},
        "n_queries"}}, "significance": [{"a", "b", "measure", "t", "p",
        "mean_diff", "p_holm"}], "statistics": {...}, "created"}``; undefined
        values (no speed given, no defined correlation) are ``None``.
    """
    if teacher_run_key not in runs:
        raise ValueError(
            f"build_report: runs has no teacher run {teacher_run_key!r}, "
            f"expected one of {sorted(runs)}"
        )
    measures = measure_names(collection.qrels)
    order = model_order(runs)

    # Per model: effectiveness (mean, per query, CI), fidelity and speed.
    models: dict[str, dict] = {}
    for name in order:
        aggregate, per_query = evaluate_run(runs[name], collection.qrels, measures)
        fid = fidelity(runs[name], runs[teacher_run_key])
        measured = speed.get(name, {})
        models[name] = {
            "metrics": aggregate,
            "fidelity": {k: _finite_or_none(fid[k]) for k in FIDELITY_KEYS},
            "pairs_per_second": _finite_or_none(measured.get("pairs_per_second")),
            "latency_ms": {
                "p50": _finite_or_none(measured.get("latency_ms_p50")),
                "p95": _finite_or_none(measured.get("latency_ms_p95")),
            },
            "ci95": {
                m: list(
                    confidence_interval(list(per_query[m].values()), method=ci_method)
                )
                for m in measures
            },
            "per_query": per_query,
            "n_queries": len(per_query[measures[0]]),
        }
        logger.info(
            "report %s: %s %s = %.4f",
            collection.name,
            name,
            measures[0],
            aggregate[measures[0]],
        )

    # Every pair of models on every measure, one Holm family.
    tests = []
    for i, j in itertools.combinations(range(len(order)), 2):
        a, b = order[j], order[i]
        for m in measures:
            qa, qb = models[a]["per_query"][m], models[b]["per_query"][m]
            t, p = paired_ttest(qa, qb)
            shared = [q for q in qa if q in qb]
            diff = sum(qa[q] - qb[q] for q in shared) / len(shared)
            tests.append(
                {"a": a, "b": b, "measure": m, "t": t, "p": p, "mean_diff": diff}
            )
    for test, p_holm in zip(tests, holm([x["p"] for x in tests]), strict=True):
        test["p_holm"] = p_holm
        test["t"] = test["t"] if math.isfinite(test["t"]) else None

    n_queries = max(model["n_queries"] for model in models.values())
    if any(model["n_queries"] != n_queries for model in models.values()):
        logger.warning(
            "report %s: models were scored on different numbers of queries: %s",
            collection.name,
            {n: m["n_queries"] for n, m in models.items()},
        )
    return {
        "collection": collection.name,
        "source": collection.source,
        "n_queries": n_queries,
        "teacher": teacher,
        "teacher_run_key": teacher_run_key,
        "measures": measures,
        "models": models,
        "significance": tests,
        "statistics": {
            "test": "paired two-sided t-test (scipy.stats.ttest_rel) on per-query "
            "values",
            "correction": f"Holm-Bonferroni over all {len(tests)} tests "
            f"({len(tests) // max(len(measures), 1)} model pairs x "
            f"{len(measures)} measures)",
            "alpha": ALPHA,
            "ci95": "Student-t" if ci_method == "t" else "percentile bootstrap",
        },
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _fmt(value: float | None, digits: int = 4) -> str:
    """A table cell: fixed digits, or 'n/a' for null."""
    return "n/a" if value is None else f"{value:.{digits}f}"


def _significance_markers(report: dict, order: list[str]) -> dict[tuple[str, str], str]:
    """(model, measure) -> letters of the models it beats after correction."""
    letter = {name: string.ascii_lowercase[i % 26] for i, name in enumerate(order)}
    wins: dict[tuple[str, str], list[str]] = {}
    for test in report["significance"]:
        if test["p_holm"] >= report["statistics"]["alpha"]:
            continue
        winner, loser = (
            (test["a"], test["b"]) if test["mean_diff"] > 0 else (test["b"], test["a"])
        )
        wins.setdefault((winner, test["measure"]), []).append(letter[loser])
    return {key: "".join(sorted(v)) for key, v in wins.items()}


def write_report(
    out_dir: str | os.PathLike,
    report: dict,
    runs: Mapping[str, Run],
    extras: Mapping[str, Any] | None = None,
) -> dict[str, Path]:
    """Write the report's files into ``out_dir`` (all atomically).

    Files: ``report.json``, ``report.md``, ``run.<model>.trec`` per run,
    ``effectiveness.png``, ``efficiency.png`` (models with a measured speed),
    and, when their key is in ``extras``: ``idf.png``, ``saturation.png``,
    ``heatmap_<i>.png``, ``training.png``, ``axioms.png``.

    Returns:
        file name -> path written.
    """
    out = Path(out_dir)
    extras = dict(extras or {})
    order = model_order(report["models"])
    measures = report["measures"]
    written: dict[str, Path] = {}

    # Runs, one TREC file per model.
    for name in model_order(runs):
        fname = f"run.{name}.trec"
        written[fname] = write_run(out / fname, runs[name], tag=name)

    # Core figures: effectiveness with CIs and the efficiency frontier.
    models = report["models"]
    fig = plots.plot_effectiveness(
        order,
        [[models[n]["metrics"][m] for m in measures] for n in order],
        [[models[n]["ci95"][m][0] for m in measures] for n in order],
        [[models[n]["ci95"][m][1] for m in measures] for n in order],
        measures,
    )
    written["effectiveness.png"] = plots.save_png(fig, out / "effectiveness.png")
    timed = [n for n in order if models[n]["pairs_per_second"]]
    if timed:
        fig = plots.plot_efficiency(
            timed,
            [models[n]["pairs_per_second"] for n in timed],
            [models[n]["metrics"][measures[0]] for n in timed],
        )
        written["efficiency.png"] = plots.save_png(fig, out / "efficiency.png")

    # Student-side figures, each when its data came along.
    written.update(_write_extra_plots(out, extras))

    # The readable report and the machine-readable one.
    md = render_markdown(report, written, extras)
    written["report.md"] = atomic_write_text(out / "report.md", md)
    payload = dict(report)
    if "axioms" in extras:
        payload["axioms"] = extras["axioms"]
    payload["files"] = sorted(written)
    written["report.json"] = atomic_write_json(out / "report.json", payload)
    logger.info("report written to %s (%d files)", out, len(written))
    return written


def _write_extra_plots(out: Path, extras: Mapping[str, Any]) -> dict[str, Path]:
    """Draw the plots whose keys are present in ``extras``."""
    written: dict[str, Path] = {}
    if "idf" in extras:
        idf = extras["idf"]
        fig = plots.plot_idf(idf["learned"], idf["corpus"], idf["tokens"])
        written["idf.png"] = plots.save_png(fig, out / "idf.png")
    if "saturation" in extras:
        sat = extras["saturation"]
        fig = plots.plot_saturation(
            sat["k1"],
            sat["b"],
            sat["avgdl"],
            sat.get("bm25_k1", 0.9),
            sat.get("bm25_b", 0.4),
        )
        written["saturation.png"] = plots.save_png(fig, out / "saturation.png")
    for i, hm in enumerate(extras.get("heatmaps", [])):
        fig = plots.plot_heatmap(
            hm["query_tokens"],
            hm["doc_tokens"],
            hm["weights"],
            title=f"{hm['query']} / {hm['doc_id']}",
        )
        written[f"heatmap_{i}.png"] = plots.save_png(fig, out / f"heatmap_{i}.png")
    if "training" in extras:
        tr = extras["training"]
        fig = plots.plot_training(
            tr["step"],
            tr["loss"],
            tr["val_step"],
            tr["val_nDCG@10"],
            tr["val_kendall_tau"],
        )
        written["training.png"] = plots.save_png(fig, out / "training.png")
    if "axioms" in extras:
        names = list(extras["axioms"])
        axioms = _axiom_names(extras["axioms"])
        shares = [[extras["axioms"][n].get(a, math.nan) for a in axioms] for n in names]
        fig = plots.plot_axioms(names, axioms, shares)
        written["axioms.png"] = plots.save_png(fig, out / "axioms.png")
    return written


def _axiom_names(axioms: Mapping[str, Mapping[str, float]]) -> list[str]:
    """TFC1, LNC, STMC1 first, then any other axiom names in first-seen order."""
    seen = [a for shares in axioms.values() for a in shares]
    return [a for a in AXIOMS if a in seen] + list(
        dict.fromkeys(a for a in seen if a not in AXIOMS)
    )


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def render_markdown(
    report: dict, written: Mapping[str, Path], extras: Mapping[str, Any]
) -> str:
    """report.md: headline, fidelity, speed, significance and extra sections."""
    order = model_order(report["models"])
    models, measures = report["models"], report["measures"]
    stats_info = report["statistics"]
    letter = {n: string.ascii_lowercase[i % 26] for i, n in enumerate(order)}
    markers = _significance_markers(report, order)
    lines = [
        f"# Reranking report: {report['collection']}",
        "",
        f"Teacher: `{report['teacher']}` (run `{report['teacher_run_key']}`). "
        f"Queries: {report['n_queries']}. Source: `{report.get('source', '')}`. "
        f"Created: {report['created']}.",
        "",
        "## Effectiveness",
        "",
    ]

    # Headline: means with letters of the models each is significantly above.
    rows = []
    for n in order:
        cells = [f"{n} ({letter[n]})"]
        for m in measures:
            mark = markers.get((n, m), "")
            cells.append(
                _fmt(models[n]["metrics"][m]) + (f"<sup>{mark}</sup>" if mark else "")
            )
        rows.append(cells)
    lines += _table(["model"] + measures, rows)
    lines += [
        "",
        f"A superscript letter marks a significant improvement over the model with "
        f"that letter: {stats_info['test']}, {stats_info['correction']}, "
        f"corrected p < {stats_info['alpha']}. Whiskers in the figure are "
        f"{stats_info['ci95']} 95% confidence intervals of the mean.",
        "",
    ]
    if "effectiveness.png" in written:
        lines += ["![effectiveness](effectiveness.png)", ""]

    # Fidelity to the teacher.
    lines += ["## Fidelity to the teacher", ""]
    lines += _table(
        ["model", *FIDELITY_KEYS],
        [[n] + [_fmt(models[n]["fidelity"][k]) for k in FIDELITY_KEYS] for n in order],
    )
    lines += [
        "",
        "Per-query Kendall tau-b and Spearman rho of scores over shared candidates; "
        "teacher_nDCG@10 grades the teacher's top 10 with gains 10..1 by teacher "
        "rank; top1_agreement is the share of queries with the same first document.",
        "",
    ]

    # Speed.
    lines += ["## Speed", ""]
    lines += _table(
        ["model", "pairs/s", "latency p50 (ms)", "latency p95 (ms)"],
        [
            [
                n,
                _fmt(models[n]["pairs_per_second"], 1),
                _fmt(models[n]["latency_ms"]["p50"], 2),
                _fmt(models[n]["latency_ms"]["p95"], 2),
            ]
            for n in order
        ],
    )
    lines.append("")
    if "efficiency.png" in written:
        lines += ["![efficiency frontier](efficiency.png)", ""]

    # Significance tests in full.
    lines += [
        "## Significance",
        "",
        f"{stats_info['test']}; {stats_info['correction']}.",
        "",
    ]
    lines += _table(
        ["a", "b", "measure", "t", "p", "p (Holm)"],
        [
            [
                x["a"],
                x["b"],
                x["measure"],
                _fmt(x["t"], 3),
                f"{x['p']:.3g}",
                f"{x['p_holm']:.3g}",
            ]
            for x in report["significance"]
        ],
    )
    lines.append("")

    lines += _extra_sections(written, extras)
    lines += (
        ["## Files", ""]
        + [f"- [{name}]({name})" for name in sorted(written) if name.startswith("run.")]
        + [""]
    )
    return "\n".join(lines)


def _extra_sections(
    written: Mapping[str, Path], extras: Mapping[str, Any]
) -> list[str]:
    """report.md sections for the student-side extras."""
    lines: list[str] = []
    if "idf.png" in written:
        lines += ["## Learned IDF vs corpus IDF", "", "![idf](idf.png)", ""]
    if "saturation.png" in written:
        sat = extras["saturation"]
        lines += [
            "## Term-frequency saturation",
            "",
            f"Per-head saturation curves against BM25's "
            f"(k1={sat.get('bm25_k1', 0.9)}, b={sat.get('bm25_b', 0.4)}), "
            f"avgdl = {sat['avgdl']:.1f}.",
            "",
            "![saturation](saturation.png)",
            "",
        ]
    heatmaps = sorted(n for n in written if n.startswith("heatmap_"))
    if heatmaps:
        lines += ["## Soft-match heatmaps", ""]
        for name, hm in zip(heatmaps, extras["heatmaps"], strict=True):
            lines += [
                f"Query: {hm['query']} — doc {hm['doc_id']}",
                "",
                f"![{name}]({name})",
                "",
            ]
    if "training.png" in written:
        lines += ["## Training", "", "![training](training.png)", ""]
    if "axioms.png" in written:
        axioms = _axiom_names(extras["axioms"])
        lines += ["## IR axioms", ""]
        lines += _table(
            ["model", *axioms],
            [
                [n] + [_fmt(shares.get(a), 3) for a in axioms]
                for n, shares in extras["axioms"].items()
            ],
        )
        lines += ["", "![axioms](axioms.png)", ""]
    return lines
