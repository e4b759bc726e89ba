"""TREC run/qrels files: real DL19 files read right, writes sort and round-trip,
malformed lines raise with file and line number or are skipped and counted."""

import logging

import pytest

from semb25.data.trec import (
    format_run,
    read_qrels,
    read_run,
    read_run_ranked,
    write_qrels,
    write_run,
)


def test_real_dl19_run_has_43_queries_of_100_in_rank_order(data_root):
    ranked = read_run_ranked(data_root / "trec-dl-2019" / "bm25.run")
    assert len(ranked) == 43
    assert all(len(rows) == 100 for rows in ranked.values())
    # First line of the file: 264014 Q0 5611210 1 15.780599594116211 bm25
    assert ranked["264014"][0] == ("5611210", pytest.approx(15.780599594116211))
    scores = [s for _, s in ranked["264014"]]
    assert scores == sorted(scores, reverse=True)


def test_real_dl19_qrels_count_and_grades(data_root):
    qrels = read_qrels(data_root / "trec-dl-2019" / "qrels.txt")
    assert len(qrels) == 43
    assert sum(len(j) for j in qrels.values()) == 9260
    grades = {rel for judged in qrels.values() for rel in judged.values()}
    assert grades == {0, 1, 2, 3}


def test_write_run_sorts_by_score_then_doc_id_and_ranks_from_one(tmp_path):
    run = {"q2": {"b": 1.0, "a": 1.0, "c": 3.5}, "q1": {"x": -2.0}}
    path = write_run(tmp_path / "r.trec", run, tag="demo")
    lines = path.read_text().splitlines()
    assert lines == [
        "q2 Q0 c 1 3.5 demo",
        "q2 Q0 a 2 1.0 demo",
        "q2 Q0 b 3 1.0 demo",
        "q1 Q0 x 1 -2.0 demo",
    ]
    assert read_run(path) == {"q2": {"c": 3.5, "a": 1.0, "b": 1.0}, "q1": {"x": -2.0}}


def test_run_scores_round_trip_exactly(tmp_path):
    run = {"q": {"d1": 0.1 + 0.2, "d2": 1e-17, "d3": -123456.789}}
    back = read_run(write_run(tmp_path / "r.trec", run))
    assert back == run


def test_run_tag_with_space_is_rejected():
    with pytest.raises(ValueError, match="run tag"):
        format_run({"q": {"d": 1.0}}, tag="my tag")


def test_qrels_round_trip(tmp_path):
    qrels = {"q1": {"d1": 3, "d2": 0}, "q2": {"d9": 1}}
    assert read_qrels(write_qrels(tmp_path / "qrels.txt", qrels)) == qrels


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "q Q0 d 1 2.0 t\nq Q0 e 2 1.0\n",
            r"line 2: expected 6 columns 'qid Q0 docid rank score tag', got 5",
        ),
        ("q Q0 d one 2.0 t\n", r"line 1: expected an integer rank, got 'one'"),
        ("q Q0 d 1 high t\n", r"line 1: expected a float score, got 'high'"),
        ("q Q0 d 1 nan t\n", r"line 1: expected a finite score"),
        (
            "q Q0 d 1 2.0 t\n\nq Q0 d 2 1.0 t\n",
            r"line 3: duplicate doc id 'd' for query 'q'",
        ),
    ],
)
def test_malformed_run_line_raises_naming_file_and_line(tmp_path, content, message):
    path = tmp_path / "bad.run"
    path.write_text(content)
    with pytest.raises(ValueError, match=rf"bad\.run {message}"):
        read_run(path)


def test_run_with_unknown_doc_id_raises(tmp_path):
    path = tmp_path / "x.run"
    path.write_text("q Q0 d1 1 2.0 t\nq Q0 zz 2 1.0 t\n")
    with pytest.raises(ValueError, match=r"x\.run line 2: unknown doc id 'zz'"):
        read_run(path, doc_ids={"d1"})


def test_ranks_out_of_file_order_are_sorted_by_rank_column(tmp_path):
    path = tmp_path / "x.run"
    path.write_text("q Q0 b 2 1.0 t\nq Q0 a 1 2.0 t\n")
    assert read_run_ranked(path) == {"q": [("a", 2.0), ("b", 1.0)]}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("q 0 d\n", r"line 1: expected 4 columns 'qid 0 docid relevance', got 3"),
        ("q 0 d 1\nq 0 e high\n", r"line 2: expected an integer relevance, got 'high'"),
        ("q 0 d 1\nq 0 d 2\n", r"line 2: duplicate judgement of doc id 'd'"),
    ],
)
def test_malformed_qrels_line_raises_naming_file_and_line(tmp_path, content, message):
    path = tmp_path / "qrels.txt"
    path.write_text(content)
    with pytest.raises(ValueError, match=rf"qrels\.txt {message}"):
        read_qrels(path)


def test_skip_mode_drops_bad_lines_and_logs_counts(tmp_path, caplog):
    path = tmp_path / "mixed.run"
    path.write_text(
        "q Q0 a 1 3.0 t\n"
        "q Q0 b 2\n"  # short
        "q Q0 c x 1.0 t\n"  # bad rank
        "q Q0 d 4 1.0 t\n"
    )
    with caplog.at_level(logging.WARNING, logger="semb25.data.trec"):
        run = read_run(path, on_error="skip")
    assert run == {"q": {"a": 3.0, "d": 1.0}}
    assert "skipped 2 malformed lines (1 bad column count, 1 bad rank)" in caplog.text


def test_qrels_of_queries_not_loaded_are_dropped_without_error(tmp_path):
    path = tmp_path / "qrels.txt"
    path.write_text("q1 0 d 1\nq2 0 d 2\n")
    assert read_qrels(path, qids={"q2"}) == {"q2": {"d": 2}}
