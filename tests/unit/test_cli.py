"""``rerank-plugins`` as a user runs it: a subprocess, its exit status and its stderr.

Every subcommand reports errors as one line, ``rerank-plugins <command>: error: ...``, with
exit status 2 for usage errors and 1 for runtime failures; ``--debug`` (``-v``) shows the
traceback instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import rerank_plugins
import rerank_plugins.scorer
from rerank_plugins import cli

ERROR = "rerank-plugins {command}: error: {message}\n"


def run_cli(
    *argv: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONIOENCODING": "utf-8",
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "rerank_plugins.cli", *argv],
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=environment,
        timeout=300,
        check=False,
    )


def assert_one_line_error(
    result: subprocess.CompletedProcess[str], status: int, command: str, message: str
) -> None:
    assert (result.returncode, result.stderr) == (
        status,
        ERROR.format(command=command, message=message),
    ), result.stderr[-3000:]


def test_missing_model_directory_is_one_line_exit_1(tmp_path: Path) -> None:
    """Bug: `score` printed a 52-line traceback for a missing model directory."""
    missing = tmp_path / "nope" / "model"
    result = run_cli("score", "--model", str(missing), "--query", "q", "a passage")
    assert_one_line_error(
        result,
        1,
        "score",
        f"Could not load model {str(missing)!r}: no such directory. "
        "Pass the path of a saved model.",
    )


def test_model_file_instead_of_directory(tiny_bert: Path) -> None:
    """Bug: a path to a file was reported as "Could not fetch ... from the Hugging Face hub"."""
    config = tiny_bert / "config.json"
    result = run_cli("score", "--model", str(config), "--query", "q", "a passage")
    assert_one_line_error(
        result,
        1,
        "score",
        f"Could not load model {str(config)!r}: it is a file; a model directory is needed, the "
        "folder with config.json, the weights and the tokenizer files (pass its folder "
        f"{str(tiny_bert)!r}).",
    )


def test_preset_typo_suggests_the_preset_at_once() -> None:
    """Bug: a preset name with a typo was sent to the hub (25 s of retries)."""
    started = time.monotonic()
    result = run_cli(
        "score", "--model", "ms-marco-MiniLM-L7", "--query", "q", "a passage",
        env={"HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0"},
    )  # fmt: skip
    assert_one_line_error(
        result,
        1,
        "score",
        "Unknown model 'ms-marco-MiniLM-L7': not a preset, an existing directory or a Hugging "
        "Face hub id of the form 'owner/name'. Did you mean 'ms-marco-MiniLM-L6'? "
        "`rerank-plugins models` lists the presets.",
    )
    assert time.monotonic() - started < 20  # imports only; the hub retries took 25 s


def test_offline_hub_model_fails_at_once_with_the_fix() -> None:
    """Bug: offline, a hub id spent ~27 s on retries, then a 91-line traceback."""
    result = run_cli("score", "--model", "cross-encoder/not-cached", "--query", "q", "p")
    assert_one_line_error(
        result,
        1,
        "score",
        "Could not load model 'cross-encoder/not-cached': offline mode is on (HF_HUB_OFFLINE "
        "is set) and the model is not in the local Hugging Face cache. Pass the path of a "
        "saved model directory instead (--model /path/to/dir on the command line), or "
        "download the model once with network access: local_files_only=True "
        "(--local-files-only) then loads it from the Hugging Face cache.",
    )


def test_unreachable_hub_fails_within_seconds(tmp_path: Path) -> None:
    """Bug: with the hub unreachable, loading retried for ~27 s before failing.

    The proxy at 127.0.0.1:9 refuses connections, as a machine without network does; the
    old path slept 1+2+4+8+8 = 23 s in huggingface_hub's backoff alone.
    """
    env = {
        "HF_HUB_OFFLINE": "0",
        "TRANSFORMERS_OFFLINE": "0",
        "HF_HOME": str(tmp_path / "hf"),
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
        "NO_PROXY": "",
        "no_proxy": "",
    }
    started = time.monotonic()
    result = run_cli("score", "--model", "cross-encoder/not-cached", "--query", "q", "p", env=env)
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stderr[-3000:]
    assert result.stderr.startswith(
        "rerank-plugins score: error: Could not load model 'cross-encoder/not-cached': the "
        "Hugging Face hub cannot be reached ("
    ), result.stderr
    assert result.stderr.endswith(
        ") and the model is not in the local cache. Pass the path of a saved model directory "
        "instead (--model /path/to/dir on the command line), or download the model once with "
        "network access: local_files_only=True (--local-files-only) then loads it from the "
        "Hugging Face cache.\n"
    )
    assert result.stderr.count("\n") == 1
    assert elapsed < 20, f"took {elapsed:.1f} s"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--query", "  ", "a"], "--query must be a non-empty string, got '  '."),
        (["--query", "q", "--file", "missing.txt"], "--file 'missing.txt': no such file."),
        (["--query", "q"], "no passages; give them as arguments or with --file."),
    ],
    ids=["empty-query", "missing-file", "no-passages"],
)
def test_score_usage_errors_exit_2(tiny_bert: Path, argv: list[str], message: str) -> None:
    """Bug: an empty --query and a missing --file gave raw tracebacks."""
    result = run_cli("score", "--model", str(tiny_bert), *argv)
    assert_one_line_error(result, 2, "score", message)


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    for flag in ("--debug", "-v"):
        result = run_cli("score", "--model", str(missing), "--query", "q", "p", flag)
        assert result.returncode == 1
        assert result.stderr.startswith("Traceback (most recent call last):"), result.stderr
        assert result.stderr.rstrip().endswith(
            f"ModelLoadError: Could not load model {str(missing)!r}: no such directory. "
            "Pass the path of a saved model."
        )


def test_score_file_reports_line_numbers(tiny_bert: Path, tmp_path: Path) -> None:
    """Bug: `score --file` dropped blank lines, so indexes no longer matched line numbers."""
    passages = tmp_path / "passages.txt"
    passages.write_text("the cat sat\n\nparis is in france\n   \ncats purr\n", encoding="utf-8")
    result = run_cli(
        "score", "--model", str(tiny_bert), "--query", "cat", "an argument", "--file",
        str(passages),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    payload = json.loads(result.stdout)
    by_text = {item["text"]: item for item in payload}
    assert set(by_text) == {"an argument", "the cat sat", "paris is in france", "cats purr"}
    assert "line" not in by_text["an argument"]
    assert {text: item.get("line") for text, item in by_text.items()} == {
        "an argument": None,
        "the cat sat": 1,
        "paris is in france": 3,
        "cats purr": 5,
    }
    assert [item["index"] for item in payload] != []
    assert by_text["cats purr"]["index"] == 3  # position among the scored passages


def test_score_reads_standard_input(tiny_bert: Path) -> None:
    result = run_cli(
        "score", "--model", str(tiny_bert), "--query", "q", "--file", "-", stdin="a\n\nb\n"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted((item["text"], item["line"]) for item in json.loads(result.stdout)) == [
        ("a", 1),
        ("b", 3),
    ]


def test_serve_bad_option_is_one_line_exit_2() -> None:
    """``serve`` goes through the same handler: create_app's ValueError is a usage error."""
    pytest.importorskip("uvicorn")
    result = run_cli("serve", "--model", "org/model", "--api-key", "")
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.startswith(
        "rerank-plugins serve: error: api_key must be a non-empty string or None, got ''."
    )
    assert result.stderr.count("\n") == 1


def test_load_error_embeds_the_cause_on_one_line_without_doubled_periods() -> None:
    """Bug: "offline-mode'.. Check the id's spelling": the embedded cause kept its period."""
    from rerank_plugins.scorer._model_source import load_error

    cause = OSError("We couldn't connect.\nSee 'https://example.org/offline-mode'.")
    message = str(load_error("org/model", cause, local_files_only=False))
    assert message == (
        "Could not fetch model 'org/model' from the Hugging Face hub: We couldn't connect. "
        "See 'https://example.org/offline-mode'. Check the id's spelling, and that you are "
        "logged in for private repos. Offline, pass the path of a local copy, or set "
        "local_files_only=True to use the local cache."
    )


class _ScoringFails:
    """A scorer with a bug deep inside scoring: ``rank`` raises a plain ValueError."""

    model = "scoring-fails"

    def count_text_tokens(self, text: str) -> int:
        return len(text.split())

    def rank(self, query: str, passages: list[str], **options: Any) -> list[Any]:
        msg = "Expected input batch_size (3) to match target batch_size (2)."
        raise ValueError(msg)


@pytest.fixture
def scoring_fails(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """``get_scorer`` returns a :class:`_ScoringFails`; the list records the models asked for."""
    asked: list[str] = []

    def get_scorer(model: str, **options: Any) -> _ScoringFails:
        asked.append(model)
        return _ScoringFails()

    monkeypatch.setattr(rerank_plugins.scorer, "get_scorer", get_scorer)
    return asked


def test_value_error_while_scoring_exits_1(
    scoring_fails: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Bug: any ValueError was a usage error, so a failure while scoring exited 2, like a typo.

    Only the checks of the command line's values are usage errors; the same exception type
    raised while running is a failure (exit 1), named by its type, as unexpected errors are.
    """
    status = cli.main(["score", "--model", "m", "--query", "q", "a", "b"])
    assert (status, capsys.readouterr().err) == (
        1,
        "rerank-plugins score: error: ValueError: Expected input batch_size (3) to match "
        "target batch_size (2). (run with --debug for the traceback)\n",
    )
    assert scoring_fails == ["m"]


@pytest.mark.parametrize(
    ("argv", "message", "loads"),
    [
        (
            ["--device", "bogus"],
            "device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got 'bogus'.",
            False,
        ),
        (
            ["--tokenizer", "no-such-encoding/tokenizer!"],
            "length_function='no-such-encoding/tokenizer!' is neither a tiktoken encoding",
            True,
        ),
    ],
    ids=["get_scorer-option", "rank-option"],
)
def test_bad_option_still_exits_2(
    argv: list[str],
    message: str,
    loads: bool,
    request: pytest.FixtureRequest,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The other half of the bug above: an option the library rejects is a usage error (2).

    ``--device`` is rejected by ``get_scorer``; ``--tokenizer`` once a model is loaded
    (a stand-in here), when the context options are checked before scoring.
    """
    if loads:
        request.getfixturevalue("scoring_fails")
    status = cli.main(["score", "--model", "m", "--query", "q", "a", *argv])
    err = capsys.readouterr().err
    assert status == 2, err
    assert err.startswith(f"rerank-plugins score: error: {message}"), err
    assert err.count("\n") == 1


def test_score_context_options_rank_as_the_scorer_does(
    tiny_bert: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``score`` checks its context options apart from scoring; the results stay rank()'s."""
    passages = ["cats purr", "cats purr", "the cat sat on the mat", "paris is in france", "dogs"]
    options = ["--top-n", "3", "--max-context-tokens", "12", "--deduplicate"]
    model = ["--model", str(tiny_bert), "--device", "cpu"]
    status = cli.main(
        ["score", *model, "--query", "cat", *passages, *options, "--order", "long_context"]
    )
    assert status == 0
    got = json.loads(capsys.readouterr().out)
    expected = rerank_plugins.get_scorer(str(tiny_bert), device="cpu").rank(
        "cat",
        passages,
        top_n=3,
        max_context_tokens=12,
        deduplicate=True,
        order="long_context",
    )
    assert [(r["index"], r.get("tokens"), r.get("duplicates")) for r in got] == [
        (r.index, r.tokens, list(r.duplicates) or None) for r in expected
    ]
    assert [r["score"] for r in got] == pytest.approx([r.score for r in expected])
    # The case exercises every option: a merged copy, counted tokens, a cut.
    assert any(r.duplicates for r in expected)
    assert all(r.tokens is not None for r in expected)
    assert len(expected) < len(passages) - 1
