"""Student fixtures: real DL19 passages."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="session")
def dl19_passages(data_root) -> list[str]:
    """The first 60 real DL19 passages."""
    out = []
    with open(data_root / "trec-dl-2019" / "docs.jsonl", encoding="utf-8") as f:
        for line in f:
            out.append(json.loads(line)["text"])
            if len(out) == 60:
                break
    return out
