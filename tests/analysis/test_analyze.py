"""eval/analyze.py end to end on a few real DL19 pairs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_analyze_all_writes_every_section_json_and_plot(
    tmp_path, analysis_data_root, analysis_teacher
):
    spec = importlib.util.spec_from_file_location(
        "analyze", REPO / "eval" / "analyze.py"
    )
    analyze = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(analyze)
    analyze.main(
        [
            "all",
            "--collection", "trec-dl-2019",
            "--data", str(analysis_data_root),
            "--out", str(tmp_path),
            "--pairs", "24",
            "--attention-pairs", "4",
            "--random-draws", "2",
            "--no-progress",
        ]
    )  # fmt: skip
    for name in ("idf", "heads", "probe", "edit"):
        assert (tmp_path / f"{name}.png").stat().st_size > 1000
    heads = json.loads((tmp_path / "heads.json").read_text())
    assert heads["ablation"]["n_pairs"] == 24
    assert heads["top_heads"][0]["lift"] > 1.0
    assert "OUT OF DISTRIBUTION" in heads["input_note"]
    idf = json.loads((tmp_path / "idf.json").read_text())
    assert idf["pearson"][0] < -0.4  # IDF over DL19 passages only
    text = (tmp_path / "analysis.md").read_text()
    assert [text.count(f"## {i}.") for i in (1, 2, 3, 4)] == [1, 1, 1, 1]
