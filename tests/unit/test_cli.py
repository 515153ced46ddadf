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

import pytest

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
