"""Effectiveness: the shared BM25 runs reproduce their published figures, the
relevance level follows the qrels, and hand-computed values come out."""

import logging
import math

import pytest

from semb25.data import load_collection
from semb25.evaluate.metrics import (
    default_measures,
    evaluate_run,
    measure_names,
    relevance_level,
)


def test_dl19_bm25_run_reproduces_published_figures(data_root):
    coll = load_collection("trec-dl-2019", data_root)
    aggregate, per_query = evaluate_run(coll.first_stage_run(), coll.qrels)
    assert list(aggregate) == ["nDCG@10", "RR(rel=2)@10", "AP(rel=2)", "R(rel=2)@100"]
    assert aggregate["nDCG@10"] == pytest.approx(0.5058, abs=5e-4)
    assert aggregate["RR(rel=2)@10"] == pytest.approx(0.7024, abs=5e-4)
    assert aggregate["AP(rel=2)"] == pytest.approx(0.2476, abs=5e-4)
    assert len(per_query["nDCG@10"]) == 43
    mean = sum(per_query["nDCG@10"].values()) / 43
    assert mean == pytest.approx(aggregate["nDCG@10"])


def test_dev_sample_uses_binary_level_and_reproduces_rr10(data_root):
    coll = load_collection("dev-sample", data_root)
    assert relevance_level(coll.qrels) == 1
    aggregate, per_query = evaluate_run(coll.first_stage_run(), coll.qrels)
    assert list(aggregate) == ["nDCG@10", "RR@10", "AP", "R@100"]
    # README of the sample: BM25 RR@10 = 0.3678; 540 of 600 have a relevant in 20.
    assert aggregate["RR@10"] == pytest.approx(0.3678, abs=5e-4)
    assert sum(v > 0 for v in per_query["R@100"].values()) == 540


def test_measure_names_follow_the_highest_grade():
    assert measure_names({"q": {"d": 3, "e": 0}}) == [
        "nDCG@10",
        "RR(rel=2)@10",
        "AP(rel=2)",
        "R(rel=2)@100",
    ]
    assert measure_names({"q": {"d": 1}}) == ["nDCG@10", "RR@10", "AP", "R@100"]
    assert [str(m) for m in default_measures({"q": {"d": 2}})][1] == "RR(rel=2)@10"


def test_hand_computed_values_on_a_tiny_graded_run():
    qrels = {"q": {"a": 3, "b": 1, "c": 2, "z": 2}}
    run = {"q": {"b": 3.0, "a": 2.0, "x": 1.0, "c": 0.5}}
    aggregate, _ = evaluate_run(run, qrels)
    # Relevant (>= 2): a, c, z. First relevant (a) at rank 2.
    assert aggregate["RR(rel=2)@10"] == pytest.approx(1 / 2)
    # AP: precision at a (2/2... no: rank 2 -> 1/2) and c (rank 4 -> 2/4), over 3.
    assert aggregate["AP(rel=2)"] == pytest.approx((1 / 2 + 2 / 4) / 3)
    assert aggregate["R(rel=2)@100"] == pytest.approx(2 / 3)
    # nDCG@10, linear gains: DCG = 1/log2(2) + 3/log2(3) + 0 + 2/log2(5);
    # ideal order a(3), c(2), z(2), b(1).
    dcg = 1 + 3 / math.log2(3) + 2 / math.log2(5)
    idcg = 3 + 2 / math.log2(3) + 2 / 2 + 1 / math.log2(5)
    assert aggregate["nDCG@10"] == pytest.approx(dcg / idcg)


def test_queries_without_qrels_are_dropped_and_missing_ones_warned(caplog):
    qrels = {"q1": {"a": 2}, "q3": {"a": 2}}
    run = {"q1": {"a": 1.0}, "q2": {"a": 1.0}}
    with caplog.at_level(logging.DEBUG, logger="semb25.evaluate.metrics"):
        aggregate, per_query = evaluate_run(run, qrels)
    assert per_query["nDCG@10"] == {"q1": 1.0}
    assert "dropped 1 queries without qrels" in caplog.text
    assert "1 judged queries are not in the run" in caplog.text


def test_measures_can_be_given_by_name():
    aggregate, _ = evaluate_run(
        {"q": {"a": 1.0, "b": 2.0}}, {"q": {"a": 1}}, measures=["P@1", "RR@10"]
    )
    assert aggregate == {"P@1": 0.0, "RR@10": 0.5}


def test_empty_ranking_of_a_judged_query_scores_zero():
    _, per_query = evaluate_run(
        {"q": {}, "r": {"a": 1.0}}, {"q": {"a": 1}, "r": {"a": 1}}
    )
    assert per_query["RR@10"] == {"q": 0.0, "r": 1.0}
