"""build_report + write_report on the real DL19 BM25 run and two synthetic runs:
schema, known BM25 figures, significance family, files and valid PNGs."""

import json
import random
import re

import numpy as np
import pytest

from semb25.data import load_collection, read_run
from semb25.evaluate.report import build_report, model_order, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MEASURES = ["nDCG@10", "RR(rel=2)@10", "AP(rel=2)", "R(rel=2)@100"]


@pytest.fixture(scope="module")
def dl19(data_root):
    coll = load_collection("trec-dl-2019", data_root)
    bm25 = coll.first_stage_run()
    rng = random.Random(0)
    # A "teacher": BM25 plus noise; a "student": BM25 reversed.
    teacher = {
        q: {d: s + rng.gauss(0, 1.0) for d, s in docs.items()}
        for q, docs in bm25.items()
    }
    student = {q: {d: -s for d, s in docs.items()} for q, docs in bm25.items()}
    runs = {"student": student, "bm25": bm25, "teacher": teacher}
    speed = {
        "bm25": {"pairs_per_second": 1e6, "latency_ms_p50": 0.1, "latency_ms_p95": 0.2},
        "teacher": {
            "pairs_per_second": 300.0,
            "latency_ms_p50": 30.0,
            "latency_ms_p95": 45.0,
        },
        "student": {
            "pairs_per_second": 3000.0,
            "latency_ms_p50": 3.0,
            "latency_ms_p95": 4.0,
        },
    }
    report = build_report(coll, runs, "cross-encoder/ms-marco-MiniLM-L-6-v2", speed)
    return coll, runs, report


def test_report_schema_and_bm25_figures(dl19):
    _, _, report = dl19
    assert report["collection"] == "trec-dl-2019"
    assert report["n_queries"] == 43
    assert report["teacher"] == "cross-encoder/ms-marco-MiniLM-L-6-v2"
    assert list(report["models"]) == ["bm25", "teacher", "student"]
    for name, model in report["models"].items():
        assert list(model["metrics"]) == MEASURES
        assert set(model["fidelity"]) == {
            "kendall_tau",
            "teacher_nDCG@10",
            "spearman_rho",
            "top1_agreement",
        }
        assert set(model["latency_ms"]) == {"p50", "p95"}
        lo, hi = model["ci95"]["nDCG@10"]
        assert lo < model["metrics"]["nDCG@10"] < hi, name
        assert len(model["per_query"]["nDCG@10"]) == 43
    bm25 = report["models"]["bm25"]["metrics"]
    assert bm25["nDCG@10"] == pytest.approx(0.5058, abs=5e-4)
    assert bm25["RR(rel=2)@10"] == pytest.approx(0.7024, abs=5e-4)
    assert bm25["AP(rel=2)"] == pytest.approx(0.2476, abs=5e-4)
    assert report["models"]["teacher"]["pairs_per_second"] == 300.0
    assert report["models"]["student"]["latency_ms"] == {"p50": 3.0, "p95": 4.0}
    assert report["created"][:2] == "20" and "T" in report["created"]


def test_fidelity_teacher_is_one_and_reversed_student_is_minus_bm25s(dl19):
    _, _, report = dl19
    models = report["models"]
    assert models["teacher"]["fidelity"]["kendall_tau"] == pytest.approx(1.0)
    assert models["teacher"]["fidelity"]["top1_agreement"] == 1.0
    assert models["teacher"]["fidelity"]["teacher_nDCG@10"] == pytest.approx(1.0)
    # Reversing BM25 flips every pairwise order: tau(student) = -tau(bm25).
    tau_bm25 = models["bm25"]["fidelity"]["kendall_tau"]
    assert 0 < tau_bm25 < 1
    assert models["student"]["fidelity"]["kendall_tau"] == pytest.approx(-tau_bm25)


def test_significance_family_is_holm_corrected(dl19):
    _, _, report = dl19
    tests = report["significance"]
    assert len(tests) == 3 * 4  # model pairs x measures
    assert {(t["a"], t["b"]) for t in tests} == {
        ("teacher", "bm25"),
        ("student", "bm25"),
        ("student", "teacher"),
    }
    ps = np.array([t["p"] for t in tests])
    holm = np.array([t["p_holm"] for t in tests])
    assert np.all(holm >= ps) and np.all(holm <= 1.0)
    # The smallest p is multiplied by the family size (12).
    i = int(np.argmin(ps))
    assert holm[i] == pytest.approx(min(1.0, 12 * ps[i]))
    reversed_vs_bm25 = next(
        t
        for t in tests
        if (t["a"], t["b"], t["measure"]) == ("student", "bm25", "nDCG@10")
    )
    assert reversed_vs_bm25["t"] < 0 and reversed_vs_bm25["p_holm"] < 0.05


def test_write_report_files_runs_and_pngs(dl19, tmp_path):
    coll, runs, report = dl19
    extras = {
        "idf": {
            "learned": [1.0, 2.1, 2.9, 4.2],
            "corpus": [1.1, 2.0, 3.0, 4.0],
            "tokens": ["the", "flea", "cycle", "declaratory"],
        },
        "saturation": {
            "k1": [0.5, 1.2, 2.0],
            "b": [0.2, 0.5, 0.9],
            "avgdl": 72.0,
            "bm25_k1": 0.9,
            "bm25_b": 0.4,
        },
        "heatmaps": [
            {
                "query": "how long is life cycle of flea",
                "doc_id": "5611210",
                "query_tokens": ["life", "cycle", "flea"],
                "doc_tokens": ["a", "flea", "can", "live"],
                "weights": [[0, 0.1, 0, 0.6], [0, 0, 0, 0], [0, 0.9, 0, 0]],
            }
        ],
        "training": {
            "step": [0, 10, 20],
            "loss": [2.0, 1.2, 0.9],
            "val_step": [10, 20],
            "val_nDCG@10": [0.55, 0.61],
            "val_kendall_tau": [0.4, 0.5],
        },
        "axioms": {
            "bm25": {"TFC1": 1.0, "LNC": 0.9, "STMC1": 0.5},
            "student": {"TFC1": 0.8, "LNC": 0.7, "STMC1": 0.75},
        },
    }
    files = write_report(tmp_path / "out", report, runs, extras)
    expected = {
        "report.json",
        "report.md",
        "run.bm25.trec",
        "run.teacher.trec",
        "run.student.trec",
        "effectiveness.png",
        "efficiency.png",
        "idf.png",
        "saturation.png",
        "heatmap_0.png",
        "training.png",
        "axioms.png",
    }
    assert set(files) == expected
    for name in expected:
        assert (tmp_path / "out" / name).stat().st_size > 0
    for name in (n for n in expected if n.endswith(".png")):
        assert files[name].read_bytes()[:8] == PNG_MAGIC, name

    # The written BM25 run is the shared one, re-ranked identically.
    back = read_run(files["run.bm25.trec"])
    assert {q: list(d) for q, d in back.items()} == {
        q: [d for d, _ in coll.candidates[q]] for q in coll.queries
    }

    saved = json.loads(files["report.json"].read_text())
    assert saved["models"]["bm25"]["metrics"]["nDCG@10"] == pytest.approx(
        0.5058, abs=5e-4
    )
    assert saved["axioms"]["student"]["STMC1"] == 0.75

    md = files["report.md"].read_text()
    for needle in (
        "| bm25 (a) | 0.5058",
        "Holm-Bonferroni over all 12 tests",
        "![effectiveness](effectiveness.png)",
        "## Fidelity to the teacher",
        "## Speed",
        "## IR axioms",
        "![axioms](axioms.png)",
        "![heatmap_0.png](heatmap_0.png)",
        "[run.student.trec]",
    ):
        assert needle in md, needle
    # BM25 beats its own reversal (c) on nDCG@10 after correction.
    assert re.search(r"\| bm25 \(a\) \| 0\.5058<sup>b?c</sup>", md)


def test_missing_teacher_run_is_one_line_error(dl19):
    coll, runs, _ = dl19
    with pytest.raises(ValueError, match="runs has no teacher run 'teacher'"):
        build_report(coll, {"bm25": runs["bm25"]}, "t", {})


def test_model_order_puts_known_models_first():
    assert model_order(["x", "student", "bm25"]) == ["bm25", "student", "x"]


def test_models_without_speed_get_nulls_and_no_frontier(dl19, tmp_path):
    coll, runs, _ = dl19
    sub = {"bm25": runs["bm25"], "teacher": runs["teacher"]}
    report = build_report(coll, sub, "t", speed={})
    assert report["models"]["bm25"]["pairs_per_second"] is None
    files = write_report(tmp_path, report, sub)
    assert "efficiency.png" not in files
    assert "| bm25 | n/a | n/a | n/a |" in files["report.md"].read_text()
