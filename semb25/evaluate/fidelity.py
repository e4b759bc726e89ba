"""Fidelity of a ranking to the teacher's: does the student rank like the teacher?

Per query, over the documents both runs scored (the shared candidates):

    kendall_tau      Kendall's tau-b of the two score lists (scipy)
    spearman_rho     Spearman's rank correlation (scipy)
    teacher_nDCG@10  nDCG@10 of the run, with the teacher as the judge: the
                     teacher's top 10 get graded gains 10, 9, ..., 1 by teacher
                     rank, all other documents 0 (linear gains, log2 discount,
                     via ir_measures); 1.0 iff the run's top 10 is the teacher's,
                     in the teacher's order
    top1_agreement   1 if both runs put the same document first, else 0

Each is averaged over the queries both runs hold. Ties are broken by doc_id
ascending when picking top documents, as in written runs. A query with fewer
than two shared documents, or with constant scores on either side, has no
defined correlation; it is left out of the tau and rho means (DEBUG log) and
still counts for the other two.

>>> teacher = {"q": {"a": 3.0, "b": 2.0, "c": 1.0}}
>>> fidelity({"q": {"a": 1.0, "b": 2.0, "c": 3.0}}, teacher)["kendall_tau"]
-1.0
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

import ir_measures
import numpy as np
from ir_measures import nDCG
from scipy import stats

from semb25.data.trec import ranked

logger = logging.getLogger(__name__)

Run = Mapping[str, Mapping[str, float]]

TEACHER_DEPTH = 10


def teacher_qrels(
    teacher_run: Run, depth: int = TEACHER_DEPTH
) -> dict[str, dict[str, int]]:
    """Graded pseudo-qrels from the teacher: its rank-1 document gets ``depth``,
    rank 2 ``depth - 1``, ..., rank ``depth`` gets 1."""
    return {
        qid: {doc_id: depth - i for i, (doc_id, _) in enumerate(ranked(scores)[:depth])}
        for qid, scores in teacher_run.items()
    }


def fidelity_per_query(run: Run, teacher_run: Run) -> dict[str, dict[str, float]]:
    """Per-query fidelity values: ``{name: {qid: value}}`` (nan where undefined)."""
    qids = [qid for qid in run if qid in teacher_run and teacher_run[qid]]
    if not qids:
        raise ValueError("fidelity: the run and the teacher run share no query")
    out: dict[str, dict[str, float]] = {
        "kendall_tau": {},
        "spearman_rho": {},
        "teacher_nDCG@10": {},
        "top1_agreement": {},
    }

    # Rank correlations and top-1 agreement over each query's shared documents.
    for qid in qids:
        shared = [d for d in teacher_run[qid] if d in run[qid]]
        a = np.array([run[qid][d] for d in shared], dtype=np.float64)
        t = np.array([teacher_run[qid][d] for d in shared], dtype=np.float64)
        if len(shared) >= 2 and np.ptp(a) > 0 and np.ptp(t) > 0:
            out["kendall_tau"][qid] = float(stats.kendalltau(a, t).statistic)
            out["spearman_rho"][qid] = float(stats.spearmanr(a, t).statistic)
        else:
            out["kendall_tau"][qid] = out["spearman_rho"][qid] = math.nan
            logger.debug("fidelity: query %s has no defined rank correlation", qid)
        top_run = ranked(run[qid])[0][0] if run[qid] else None
        out["top1_agreement"][qid] = float(top_run == ranked(teacher_run[qid])[0][0])

    # nDCG@10 against the teacher's top 10 as graded judgements.
    pseudo = teacher_qrels({qid: teacher_run[qid] for qid in qids})
    part = {qid: {d: float(s) for d, s in run[qid].items()} for qid in qids}
    values = {
        m.query_id: float(m.value)
        for m in ir_measures.iter_calc([nDCG @ 10], pseudo, part)
    }
    out["teacher_nDCG@10"] = {qid: values.get(qid, 0.0) for qid in qids}
    return out


def fidelity(run: Run, teacher_run: Run) -> dict[str, float]:
    """Mean fidelity of ``run`` to ``teacher_run`` (both ``{qid: {doc_id: score}}``).

    Returns:
        ``{"kendall_tau", "spearman_rho", "teacher_nDCG@10", "top1_agreement"}``
        means over shared queries (correlations over queries where defined;
        nan if defined nowhere).
    """
    per_query = fidelity_per_query(run, teacher_run)
    means = {}
    for name, values in per_query.items():
        defined = [v for v in values.values() if not math.isnan(v)]
        means[name] = float(np.mean(defined)) if defined else math.nan
    return means
