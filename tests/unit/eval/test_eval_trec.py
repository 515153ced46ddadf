"""TREC run and qrels files."""

from __future__ import annotations

import pytest

from rerank_plugins.eval import trec


def test_run_is_written_in_trec_eval_order_and_round_trips(tmp_path):
    run = {"q1": {"a": 0.5, "b": 0.5, "c": 1 / 3, "d": 2.0}, "q2": {"x": -1e-12}}
    path = trec.write_run(tmp_path / "sub" / "r.run", run, tag="mine")
    assert path.read_text(encoding="utf-8").splitlines() == [
        "q1 Q0 d 1 2.0 mine",
        "q1 Q0 b 2 0.5 mine",  # ties: docid descending
        "q1 Q0 a 3 0.5 mine",
        "q1 Q0 c 4 0.3333333333333333 mine",
        "q2 Q0 x 1 -1e-12 mine",
    ]
    assert trec.read_run(path) == run  # exact: repr round-trips floats


def test_qrels_round_trip(tmp_path):
    qrels = {"q1": {"a": 1, "b": 0, "c": 2}, "q2": {"a": -1}}
    path = trec.write_qrels(tmp_path / "qrels.txt", qrels)
    assert path.read_text(encoding="utf-8").splitlines()[0] == "q1 0 a 1"
    assert trec.read_qrels(path) == qrels


@pytest.mark.parametrize(
    ("run", "message"),
    [
        ({"q 1": {"a": 1.0}}, r"^query id 'q 1' cannot be written to a TREC file"),
        ({"q": {"a\tb": 1.0}}, r"^document id 'a\\tb' cannot be written to a TREC file"),
        (
            {"q": {"a": float("inf")}},
            r"^The score of document 'a' for query 'q' is inf; scores must be finite\.$",
        ),
    ],
)
def test_unwritable_runs(tmp_path, run, message):
    with pytest.raises(ValueError, match=message):
        trec.write_run(tmp_path / "r.run", run)


def test_malformed_files_name_the_line(tmp_path):
    path = tmp_path / "r.run"
    path.write_text("q Q0 a 1 0.5 t\nq Q0 b 2 high t\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"r\.run:2: the score 'high' is not a number\.$"):
        trec.read_run(path)
    path.write_text("q 0 a\n", encoding="utf-8")
    with pytest.raises(
        ValueError, match=r"r\.run:1: expected 4 space-separated fields, got 3: 'q 0 a'\.$"
    ):
        trec.read_qrels(path)
