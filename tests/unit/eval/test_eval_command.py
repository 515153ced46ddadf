"""The ``eval`` subcommand: argument parsing and ``run`` with a stand-in scorer."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys

import pytest

import rerank_plugins
from rerank_plugins import RankResult, cli
from rerank_plugins.errors import ModelLoadError
from rerank_plugins.eval import _command, trec


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rerank-plugins")
    _command.add_parser(parser.add_subparsers(dest="command", required=True))
    return parser


class OverlapScorer:
    model = "overlap"

    def rank(self, query, passages):
        words = set(query.split())
        scores = [float(len(words & set(p.split()))) for p in passages]
        return sorted((RankResult(i, s) for i, s in enumerate(scores)), key=lambda r: -r.score)


@pytest.fixture
def data_file(tmp_path):
    rows = [
        {
            "qid": "q1",
            "query": "red apple",
            "passages": ["a red apple", "a green pear", "blue sky"],
            "labels": [1, 0, 0],
        },
        {
            "qid": "q2",
            "query": "blue sky",
            "passages": ["a red apple", "blue sky today"],
            "labels": [0, 1],
        },
    ]
    path = tmp_path / "dev.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def fake_get_scorer(monkeypatch):
    calls = []

    def get_scorer(model, **options):
        calls.append((model, options))
        return OverlapScorer()

    monkeypatch.setattr(rerank_plugins, "get_scorer", get_scorer, raising=False)
    return calls


def test_defaults_and_handler():
    args = make_parser().parse_args(
        ["eval", "--data", "d.json", "--format", "squad", "--model", "m"]
    )
    assert args.func is _command.run
    assert (args.first_stage, args.top_k, args.limit, args.json, args.save_run) == (
        "bm25",
        100,
        None,
        None,
        None,
    )
    assert (args.device, args.dtype, args.max_length, args.batch_size, args.no_progress) == (
        None,
        None,
        None,
        None,
        False,
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["--format", "squad", "--model", "m"],
        ["--data", "d", "--format", "msmarco", "--model", "m"],
        ["--data", "d", "--format", "squad", "--model", "m", "--top-k", "0"],
        ["--data", "d", "--format", "squad", "--model", "m", "--first-stage", "dense"],
    ],
    ids=["no-data", "bad-format", "top-k-0", "bad-first-stage"],
)
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        make_parser().parse_args(["eval", *argv])
    assert exit_info.value.code == 2
    assert "rerank-plugins eval: error:" in capsys.readouterr().err


def test_run_writes_table_json_and_runs(data_file, tmp_path, fake_get_scorer, capsys):
    args = make_parser().parse_args(
        [
            "eval",
            *("--data", str(data_file), "--format", "jqara", "--model", "my/model"),
            *("--first-stage", "none", "--top-k", "3", "--device", "cpu", "--batch-size", "8"),
            *(
                "--json",
                str(tmp_path / "out" / "report.json"),
                "--save-run",
                str(tmp_path / "runs"),
            ),
            "--no-progress",
        ]
    )
    assert _command.run(args) == 0
    assert fake_get_scorer == [("my/model", {"device": "cpu", "batch_size": 8})]
    out = capsys.readouterr().out
    assert "model:        overlap" in out
    assert "nDCG@10" in out
    report = json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))
    assert report["metrics"]["reranked"]["ndcg@10"] == 1.0
    assert report["num_queries"] == 2
    assert trec.read_qrels(tmp_path / "runs" / "qrels.txt")["q2"] == {"p0": 0, "p3": 1}
    assert (
        (tmp_path / "runs" / "reranked.run")
        .read_text(encoding="utf-8")
        .startswith("q1 Q0 p0 1 2.0 rerank\n")
    )


def test_run_json_to_stdout_moves_the_table_to_stderr(data_file, fake_get_scorer, capsys):
    args = make_parser().parse_args(
        [
            "eval",
            "--data",
            str(data_file),
            "--format",
            "jqara",
            "--model",
            "m",
            "--json",
            "-",
            "--no-progress",
        ]
    )
    assert _command.run(args) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["model"] == "overlap"
    assert "nDCG@10" in captured.err


def test_missing_data_returns_2(tmp_path, fake_get_scorer, capsys):
    missing = tmp_path / "missing.json"
    status = cli.main(["eval", "--data", str(missing), "--format", "squad", "--model", "m"])
    assert status == 2
    assert capsys.readouterr().err == (
        "rerank-plugins eval: error: "
        f"No such file or directory: {str(missing)!r}; check the path.\n"
    )
    assert fake_get_scorer == []  # failed before loading a model


def test_wrong_format_for_the_data_returns_2(data_file, fake_get_scorer, capsys):
    status = cli.main(["eval", "--data", str(data_file), "--format", "beir", "--model", "m"])
    assert status == 2
    assert "A BEIR data set is a directory" in capsys.readouterr().err


def test_model_load_error_returns_1(data_file, monkeypatch, capsys):
    def get_scorer(model, **options):
        raise ModelLoadError(f"Could not load {model!r}: not found.")

    monkeypatch.setattr(rerank_plugins, "get_scorer", get_scorer, raising=False)
    status = cli.main(["eval", "--data", str(data_file), "--format", "jqara", "--model", "nope"])
    assert status == 1
    assert capsys.readouterr().err.endswith(
        "rerank-plugins eval: error: Could not load 'nope': not found.\n"
    )


def test_debug_shows_the_traceback(data_file, monkeypatch):
    """--debug (-v) lets the exception through, so Python prints its traceback."""

    def get_scorer(model, **options):
        raise ModelLoadError("broken")

    monkeypatch.setattr(rerank_plugins, "get_scorer", get_scorer, raising=False)
    argv = ["eval", "--data", str(data_file), "--format", "jqara", "--model", "m", "-v"]
    with pytest.raises(ModelLoadError, match=r"^broken$"):
        cli.main(argv)


def test_eval_prints_a_time_estimate_after_the_first_queries(tmp_path, fake_get_scorer, capsys):
    """Bug: eval ran for ~25 minutes with no hint of how long it would take."""
    rows = [
        {"qid": f"q{i}", "query": f"word{i}", "passages": [f"word{i}", "other"], "labels": [1, 0]}
        for i in range(8)
    ]
    path = tmp_path / "eight.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    argv = ["eval", "--data", str(path), "--format", "jqara", "--model", "m", "--no-progress"]
    assert cli.main([*argv, "--first-stage", "none", "--top-k", "2"]) == 0
    err = capsys.readouterr().err
    assert re.search(
        r"^Estimated time: about \d+ s for 8 queries \(\d+\.\d\d s per query at top_k=2, "
        r"measured on the first 5\)\. A smaller top_k or limit gives a quicker run\.$",
        err,
        flags=re.MULTILINE,
    ), err


def test_importing_the_command_stays_light():
    code = (
        "import sys; import rerank_plugins.eval._command; "
        "heavy = {'numpy', 'torch', 'transformers', 'tqdm', 'fugashi'} & set(sys.modules); "
        "print(sorted(heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


class RankFails(OverlapScorer):
    """A scorer with a bug: ``rank`` raises a plain ValueError while reranking."""

    def rank(self, query, passages):
        msg = "Expected a 2-D tensor, got 1-D."
        raise ValueError(msg)


def test_value_error_while_evaluating_returns_1(data_file, monkeypatch, capsys):
    """Bug: a ValueError raised while reranking exited 2, as if an option were wrong."""
    monkeypatch.setattr(rerank_plugins, "get_scorer", lambda model, **options: RankFails())
    argv = ["eval", "--data", str(data_file), "--format", "jqara", "--model", "m"]
    status = cli.main([*argv, "--no-progress"])
    assert status == 1
    assert capsys.readouterr().err.endswith(
        "rerank-plugins eval: error: ValueError: Expected a 2-D tensor, got 1-D. "
        "(run with --debug for the traceback)\n"
    )


def test_first_stage_none_without_candidates_returns_2_before_loading(
    tmp_path, fake_get_scorer, capsys
):
    """evaluate()'s option checks stay usage errors (exit 2), and now run before loading."""
    root = tmp_path / "scifact"
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text('{"_id": "d1", "text": "red apple"}\n', "utf-8")
    (root / "queries.jsonl").write_text('{"_id": "q1", "text": "apple"}\n', "utf-8")
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n", "utf-8")
    argv = ["eval", "--data", str(root), "--format", "beir", "--model", "m"]
    status = cli.main([*argv, "--first-stage", "none"])
    assert status == 2
    assert capsys.readouterr().err.endswith(
        "rerank-plugins eval: error: first_stage='none' needs per-query candidates, and the "
        "data set 'scifact' has none; use first_stage='bm25'.\n"
    )
    assert fake_get_scorer == []  # failed before loading a model
