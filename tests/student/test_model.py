"""The library API: CrossEncoder-shaped calls, save/load, bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from semb25 import SemanticBM25


def test_predict_rank_rerank_agree(student, dl19_passages):
    query = "how long is life cycle of flea"
    docs = dl19_passages[:12]
    scores = student.predict([(query, d) for d in docs])
    assert scores.shape == (12,) and scores.dtype == np.float32
    ranked = student.rank(query, docs, top_k=5, return_documents=True)
    assert [r["corpus_id"] for r in ranked] == list(np.argsort(-scores)[:5])
    assert ranked[0]["text"] == docs[ranked[0]["corpus_id"]]
    by_id = student.rerank(query, {f"d{i}": d for i, d in enumerate(docs)})
    assert by_id[0] == (f"d{ranked[0]['corpus_id']}", pytest.approx(ranked[0]["score"]))
    assert [s for _, s in by_id] == sorted((s for _, s in by_id), reverse=True)


def test_batching_does_not_change_scores(student, dl19_passages):
    queries = ["flea life cycle", "concrete flooring cost"] * 15
    docs = dl19_passages[:30]
    whole = student.score(queries, docs, batch_size=256)
    small = student.score(queries, docs, batch_size=7)
    np.testing.assert_allclose(whole, small, rtol=1e-6, atol=1e-6)


def test_save_and_load_round_trip(student, dl19_passages, tmp_path):
    student.save_pretrained(tmp_path / "s", {"teacher": "test"})
    loaded = SemanticBM25.from_pretrained(tmp_path / "s")
    q, d = ["flea life cycle"] * 5, dl19_passages[:5]
    np.testing.assert_array_equal(student.score(q, d), loaded.score(q, d))
    config = json.loads((tmp_path / "s" / "semb25_config.json").read_text())
    assert config["version"] == 1 and config["provenance"] == {"teacher": "test"}


def test_truncated_weights_give_a_clear_error(student, tmp_path):
    student.save_pretrained(tmp_path / "s")
    weights = tmp_path / "s" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ValueError, match=r"model\.safetensors: unreadable"):
        SemanticBM25.from_pretrained(tmp_path / "s")


def test_mismatching_config_names_key_and_shapes(student, tmp_path):
    student.save_pretrained(tmp_path / "s")
    path = tmp_path / "s" / "semb25_config.json"
    config = json.loads(path.read_text())
    config["head_dim"] = 16
    path.write_text(json.dumps(config))
    with pytest.raises(
        ValueError,
        match=r"key 'w_key' has shape \(4, 384, 32\), "
        r"config expects \(4, 384, 16\)",
    ):
        SemanticBM25.from_pretrained(tmp_path / "s")


def test_unknown_or_future_config_is_rejected(student, tmp_path):
    student.save_pretrained(tmp_path / "s")
    path = tmp_path / "s" / "semb25_config.json"
    config = json.loads(path.read_text())
    path.write_text(json.dumps({**config, "version": 99}))
    with pytest.raises(ValueError, match="newer than this semb25"):
        SemanticBM25.from_pretrained(tmp_path / "s")
    path.write_text(json.dumps({**config, "n_layers": 2}))
    with pytest.raises(
        ValueError, match=r"unknown student config field\(s\) \['n_layers'\]"
    ):
        SemanticBM25.from_pretrained(tmp_path / "s")


def test_bad_inputs_give_finite_scores(student):
    queries = [
        "",
        "   ",
        "flea",
        "flea",
        "flea",
        "ノミのライフサイクル 🐜",
        "fl\x00ea\udcff",
    ]
    docs = [
        "a flea",
        "a flea",
        "",
        "flea " * 4000,
        "Fleas 跳蚤 🐜 café",
        "ノミ",
        "flea",
    ]
    scores = student.score(queries, docs)
    assert np.all(np.isfinite(scores))
    bias = float(student.circuit.bias[...])
    assert scores[0] == pytest.approx(bias) and scores[1] == pytest.approx(bias)


def test_empty_query_explanation_is_empty_and_long_doc_is_flagged(student):
    empty = student.explain("", "a flea jumps")
    assert empty.terms == [] and empty.score == pytest.approx(empty.bias)
    long = student.explain("flea", "flea jumps " * 2000)
    assert long.doc_truncated and long.doc_length == student.config.max_doc_len
    assert "truncated" in long.to_text()


def test_explanation_renders_text_html_and_png(student, tmp_path):
    ex = student.explain("life cycle of a flea", "The flea life cycle has four stages.")
    text = ex.to_text()
    assert "flea" in text and f"{ex.score:.4f}" in text
    html = ex.to_html()
    assert html.startswith("<div") and "flea" in html
    ex.heatmap_png(tmp_path / "h.png")
    assert (tmp_path / "h.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    flea = next(t for t in ex.terms if t.token == "flea")
    assert flea.matches[0][0] == "flea" and flea.matches[0][2] > 0.5


def test_summary_counts_parameters(student):
    s = student.summary()
    assert s["frozen_params"] == 30522 * 384
    heads = student.config.total_heads
    expected = 384 + 2 + 2 * 4 * 384 * 32 + 4 + 3 * heads + 1
    assert s["trainable_params"] == expected
    assert s["flops_per_pair"] > 0


def test_document_index_reranks_like_text_and_survives_save_load(
    student, dl19_passages, tmp_path
):
    from semb25 import DocIndex

    docs = {f"d{i}": p for i, p in enumerate(dl19_passages[:20])}
    index = DocIndex.build(student, docs)
    index.save(tmp_path / "i.npz")
    loaded = DocIndex.load(tmp_path / "i.npz")
    query = "how long is life cycle of flea"
    by_text = student.rerank(query, docs)
    by_index = student.rerank(query, list(docs), index=loaded)
    assert [d for d, _ in by_index] == [d for d, _ in by_text]
    np.testing.assert_allclose(
        [s for _, s in by_index], [s for _, s in by_text], rtol=1e-6
    )
    with pytest.raises(KeyError, match="unknown doc id 'nope'"):
        student.rerank(query, ["nope"], index=loaded)
    (tmp_path / "bad.npz").write_bytes(b"not an index")
    with pytest.raises(ValueError, match=r"document index .*bad\.npz: unreadable"):
        DocIndex.load(tmp_path / "bad.npz")
