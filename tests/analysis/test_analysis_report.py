"""The analysis report renders sections from JSON and writes real PNGs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from semb25.analysis.matching_heads import MatchingHeads
from semb25.analysis.report import plot_heads, write_analysis_md


def test_report_renders_only_the_analyses_present(tmp_path):
    found = MatchingHeads(
        exact_mass=np.array([[0.5, 0.1]]),
        soft_mass=np.array([[0.1, 0.0]]),
        other_mass=np.array([[0.4, 0.9]]),
        exact_chance=0.05,
        soft_chance=0.05,
        n_pairs=3,
        n_query_tokens=12,
        n_neighbours=10,
    )
    summary = {
        "data": "three made-up pairs",
        "input_note": "native.",
        **found.summary(),
    }
    (tmp_path / "heads.json").write_text(json.dumps(summary))
    plot_heads(found, None, tmp_path / "heads.png")
    text = write_analysis_md(tmp_path).read_text()
    assert "## 2. Matching heads" in text and "## 1." not in text
    assert "| 0.0 | 0.500 | 0.100 | 0.400 | 6.0 |" in text  # (0.5+0.1)/(0.1)
    assert (tmp_path / "heads.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_without_any_analysis_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no analysis JSON"):
        write_analysis_md(tmp_path)
