"""Effectiveness of a ranking against qrels, through ``ir_measures``.

The four measures reported for MS MARCO passage reranking:

    nDCG@10        graded gains, log2 discount (Järvelin & Kekäläinen 2002)
    RR(rel=r)@10   1 / rank of the first document with relevance >= r
    AP(rel=r)      average precision, relevant meaning relevance >= r
    R(rel=r)@100   recall in the top 100

``r`` is the relevance level a document must reach to count as relevant: 2 on
the graded TREC DL qrels (0-3, the track's convention) and 1 on binary qrels
(MS MARCO dev), where ``rel=2`` would find nothing. :func:`default_measures`
picks it from the highest grade in the qrels, and names follow
``str(measure)`` as ir_measures prints them (``RR(rel=2)@10`` or ``RR@10``).

Queries are scored only where the run and the qrels meet: queries without
qrels are dropped (DEBUG log); judged queries the run lacks are dropped too,
with a WARNING, since a mean over fewer queries is not comparable.

>>> qrels = {"q1": {"d1": 2, "d2": 0}}
>>> agg, per_q = evaluate_run({"q1": {"d2": 2.0, "d1": 1.0}}, qrels)
>>> agg["RR(rel=2)@10"]
0.5
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import ir_measures
from ir_measures import AP, RR, R, nDCG

logger = logging.getLogger(__name__)

Run = Mapping[str, Mapping[str, float]]
Qrels = Mapping[str, Mapping[str, int]]


def relevance_level(qrels: Qrels) -> int:
    """2 for graded qrels (highest grade >= 2), 1 for binary ones."""
    top = max((rel for judged in qrels.values() for rel in judged.values()), default=0)
    return 2 if top >= 2 else 1


def default_measures(qrels: Qrels) -> list:
    """``nDCG@10, RR@10, AP, R@100`` at the qrels' relevance level."""
    rel = relevance_level(qrels)
    if rel == 1:
        return [nDCG @ 10, RR @ 10, AP, R @ 100]
    return [nDCG @ 10, RR(rel=rel) @ 10, AP(rel=rel), R(rel=rel) @ 100]


def measure_names(qrels: Qrels) -> list[str]:
    """The names :func:`evaluate_run` reports for these qrels by default."""
    return [str(m) for m in default_measures(qrels)]


def evaluate_run(
    run: Run,
    qrels: Qrels,
    measures: Sequence | None = None,
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Mean and per-query effectiveness of ``run``.

    Args:
        run: ``{qid: {doc_id: score}}``, higher is better.
        qrels: ``{qid: {doc_id: relevance}}``.
        measures: ir_measures measures or their names (``"nDCG@10"``); default
            :func:`default_measures`.

    Returns:
        ``(aggregate, per_query)``: ``aggregate[name]`` is the mean over the
        scored queries, ``per_query[name][qid]`` each query's value.
    """
    if measures is None:
        measures = default_measures(qrels)
    measures = [
        ir_measures.parse_measure(m) if isinstance(m, str) else m for m in measures
    ]

    # Score only queries both sides know; say which were left out and why.
    unjudged = [qid for qid in run if qid not in qrels]
    if unjudged:
        logger.debug(
            "evaluate_run: dropped %d queries without qrels, e.g. %s",
            len(unjudged),
            unjudged[0],
        )
    missing = [qid for qid in qrels if qid not in run]
    if missing:
        logger.warning(
            "evaluate_run: %d judged queries are not in the run, e.g. %s;"
            " they are left out of the means",
            len(missing),
            missing[0],
        )
    scored = [qid for qid in run if qid in qrels]
    if not scored:
        raise ValueError("evaluate_run: no query of the run has qrels")
    run_part = {qid: {d: float(s) for d, s in run[qid].items()} for qid in scored}
    qrels_part = {qid: {d: int(r) for d, r in qrels[qid].items()} for qid in scored}

    # Per-query values, in the run's query order; the mean is taken over them.
    per_query: dict[str, dict[str, float]] = {str(m): {} for m in measures}
    for metric in ir_measures.iter_calc(measures, qrels_part, run_part):
        per_query[str(metric.measure)][metric.query_id] = float(metric.value)
    per_query = {
        name: {qid: values.get(qid, 0.0) for qid in scored}
        for name, values in per_query.items()
    }
    aggregate = {name: sum(v.values()) / len(v) for name, v in per_query.items()}
    return aggregate, per_query
