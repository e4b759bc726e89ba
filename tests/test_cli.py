"""The ``semb25`` command on a saved student and real DL19 passages."""

from __future__ import annotations

import json

import pytest

QUERY = "how long is life cycle of flea"


@pytest.fixture(scope="module")
def saved(student, data_root, tmp_path_factory):
    """A saved student directory and 12 real passages as JSON lines."""
    root = tmp_path_factory.mktemp("cli")
    student.save_pretrained(root / "student")
    docs = []
    with open(data_root / "trec-dl-2019" / "docs.jsonl", encoding="utf-8") as f:
        for line in f:
            docs.append(json.loads(line))
            if len(docs) == 12:
                break
    (root / "docs.jsonl").write_text(
        "".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8"
    )
    (root / "passages.txt").write_text(
        "".join(d["text"].replace("\n", " ") + "\n" for d in docs), encoding="utf-8"
    )
    (root / "ids.txt").write_text("".join(d["doc_id"] + "\n" for d in docs))
    return root, docs


def _rows(text: str) -> list[tuple[int, float, str]]:
    """``(rank, score, rest)`` of each ranked line, after the header."""
    lines = text.strip().splitlines()
    assert lines[0].split()[:2] == ["rank", "score"]
    out = []
    for line in lines[1:]:
        rank, score, rest = line.split(None, 2)
        out.append((int(rank), float(score), rest))
    return out


def test_rerank_by_index_equals_rerank_by_text(saved, capsys):
    from semb25.cli import main

    root, docs = saved
    model = str(root / "student")
    assert main(["index", "--model", model, str(root / "docs.jsonl"),
                 "--out", str(root / "i.npz")]) == 0  # fmt: skip
    assert "indexed 12 passages (ids)" in capsys.readouterr().out

    rerank = ["rerank", "--model", model, "--query", QUERY, "--top-k", "12"]
    assert main([*rerank, str(root / "passages.txt")]) == 0
    by_text = _rows(capsys.readouterr().out)
    assert main([*rerank, "--index", str(root / "i.npz"), str(root / "ids.txt")]) == 0
    by_index = _rows(capsys.readouterr().out)

    assert len(by_index) == len(by_text) == 12
    # Text rows print the passage's line number: line k holds docs[k - 1].
    for (_, s_text, rest), (_, s_index, doc_id) in zip(by_text, by_index, strict=True):
        line_no = int(rest.split(None, 1)[0])
        assert abs(s_text - s_index) < 1e-3
        assert docs[line_no - 1]["doc_id"] == doc_id


def test_summary_and_explain_print(saved, capsys):
    from semb25.cli import main

    root, docs = saved
    model = str(root / "student")
    assert main(["summary", "--model", model]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["frozen_params"] == 30522 * 384
    html = root / "ex.html"
    assert main(["explain", "--model", model, "--query", QUERY,
                 "--doc", docs[0]["text"], "--html", str(html)]) == 0  # fmt: skip
    assert "flea" in capsys.readouterr().out
    assert "<table" in html.read_text(encoding="utf-8")


def test_cli_errors_are_one_line(saved, capsys):
    from semb25.cli import main

    root, _ = saved
    model = str(root / "student")
    assert main(["rerank", "--model", model, "--query", "q", "nope.txt"]) == 1
    assert capsys.readouterr().err.strip() == "error: passages file nope.txt: not found"
    (root / "unknown.txt").write_text("no-such-doc\n")
    assert main(["index", "--model", model, str(root / "docs.jsonl"),
                 "--out", str(root / "j.npz")]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["rerank", "--model", model, "--query", "q", "--index",
                 str(root / "j.npz"), str(root / "unknown.txt")]) == 1  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"error: document index {root / 'j.npz'}: unknown doc id 'no-such-doc'"
    ]
    assert main(["summary", "--model", str(root / "missing")]) == 1
    assert "no such directory" in capsys.readouterr().err
    passages = root / "passages.txt"
    assert main(["rerank", "--model", model, "--query", "q", "--top-k", "-3",
                 str(passages)]) == 1  # fmt: skip
    assert capsys.readouterr().err.startswith("error: top_k: expected None or")
    (root / "latin1.txt").write_bytes(b"caf\xe9 au lait\n")
    assert main(["rerank", "--model", model, "--query", "q",
                 str(root / "latin1.txt")]) == 1  # fmt: skip
    assert "latin1.txt: not UTF-8 text" in capsys.readouterr().err
    (root / "blank.txt").write_text("\n  \n")
    assert main(["rerank", "--model", model, "--query", "q",
                 str(root / "blank.txt")]) == 1  # fmt: skip
    assert capsys.readouterr().err.strip().endswith("blank.txt: no passages")
