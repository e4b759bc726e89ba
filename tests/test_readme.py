"""The README's library example runs as written (on a saved student)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _library_blocks() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Use it as a library", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_readme_library_example_runs(student, tmp_path, monkeypatch, capsys):
    blocks = _library_blocks()
    assert len(blocks) >= 2, "the README lost its library examples"
    student.save_pretrained(tmp_path / "runs" / "demo")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102
    out = capsys.readouterr().out
    assert "[(0, " in out and "[('d1', " in out
    assert (tmp_path / "flea.png").stat().st_size > 0
    assert (tmp_path / "passages.index.npz").is_file()
