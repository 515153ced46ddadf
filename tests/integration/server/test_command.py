"""``rerank-plugins serve``: argument parsing, and a real process that serves and shuts down.

The process tests run the subcommand in a subprocess with ``rerank_plugins.get_scorer``
replaced by a tiny in-script scorer (no model download), then send SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import httpx
import pytest

from rerank_plugins.server import _command

pytestmark = pytest.mark.integration


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rerank-plugins")
    _command.add_parser(parser.add_subparsers(dest="command"))
    return parser


def test_serve_defaults():
    args = _parser().parse_args(["serve", "--model", "org/model"])

    assert vars(args) == {
        "command": "serve",
        "model": "org/model",
        "revision": None,
        "local_files_only": False,
        "host": "127.0.0.1",
        "port": 8000,
        "api_key": None,
        "device": None,
        "dtype": None,
        "backend": None,
        "max_length": None,
        "batch_size": None,
        "max_documents": 1000,
        "max_document_chars": 20_000,
        "max_body_bytes": None,
        "max_queue_seconds": 30.0,
        "request_timeout": None,
        "log_level": "info",
    }


def test_serve_all_options():
    argv = [
        "serve", "--model", "./m", "--host", "0.0.0.0", "--port", "9000", "--api-key", "k",
        "--device", "cuda:1", "--dtype", "bfloat16", "--backend", "torch", "--max-length", "256",
        "--batch-size", "16", "--max-documents", "50", "--max-document-chars", "4000",
        "--max-body-bytes", "100000", "--max-queue-seconds", "12.5", "--request-timeout", "20",
        "--log-level", "debug",
    ]  # fmt: skip
    args = _parser().parse_args(argv)

    assert (args.host, args.port, args.api_key, args.device, args.dtype, args.backend) == (
        "0.0.0.0",
        9000,
        "k",
        "cuda:1",
        "bfloat16",
        "torch",
    )
    assert (args.max_length, args.batch_size, args.max_documents, args.max_document_chars) == (
        256,
        16,
        50,
        4000,
    )
    assert (args.max_body_bytes, args.max_queue_seconds, args.request_timeout) == (
        100_000,
        12.5,
        20.0,
    )
    assert args.log_level == "debug"


@pytest.mark.parametrize("zero", ["0", "0.0"])
def test_serve_max_queue_seconds_0_turns_the_bound_off(zero):
    """Guards against '0.0' being refused although the help says 0 turns the bound off."""
    args = _parser().parse_args(["serve", "--model", "m", "--max-queue-seconds", zero])

    assert args.max_queue_seconds is None


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["serve"], "the following arguments are required: --model"),
        (
            ["serve", "--model", "m", "--port", "70000"],
            "argument --port: must be an int from 0 to 65535 (0 picks a free port), got '70000'",
        ),
        (
            ["serve", "--model", "m", "--max-documents", "0"],
            "argument --max-documents: must be a positive int, got '0'",
        ),
        (
            ["serve", "--model", "m", "--log-level", "loud"],
            "argument --log-level: invalid choice: 'loud'",
        ),
        (
            ["serve", "--model", "m", "--max-queue-seconds", "-1"],
            "argument --max-queue-seconds: must be a positive number of seconds, or 0 for no "
            "bound, got '-1'",
        ),
        (
            ["serve", "--model", "m", "--request-timeout", "0"],
            "argument --request-timeout: must be a positive number of seconds, got '0'",
        ),
        (
            ["serve", "--model", "m", "--max-body-bytes", "0"],
            "argument --max-body-bytes: must be a positive int, got '0'",
        ),
    ],
    ids=[
        "no-model",
        "port-range",
        "max-documents-0",
        "log-level",
        "max-queue-seconds-negative",
        "request-timeout-0",
        "max-body-bytes-0",
    ],
)
def test_serve_rejects_bad_arguments(argv, error, capsys):
    with pytest.raises(SystemExit) as info:
        _parser().parse_args(argv)

    assert info.value.code == 2
    assert error in capsys.readouterr().err


# A stand-in for `rerank_plugins.get_scorer`, so that the subprocess needs no model.
_SCRIPT = textwrap.dedent(
    """
    import argparse, asyncio, os, sys

    import rerank_plugins
    from rerank_plugins._results import RankResult
    from rerank_plugins.server import _command


    class LengthScorer:
        def __init__(self, model):
            self.model = model

        async def arank(self, query, passages, *, top_n=None):
            if query == "slow":
                await asyncio.sleep(1.0)
            order = sorted(range(len(passages)), key=lambda i: -len(passages[i]))
            results = [RankResult(i, float(len(passages[i])), passages[i]) for i in order]
            return results[:top_n] if top_n else results

        def count_tokens(self, query, passages):
            return len(passages)


    def get_scorer(model, **options):
        if model == "broken":
            raise rerank_plugins.errors.ModelLoadError("broken is not a cross-encoder")
        with open(os.environ["OPTIONS_FILE"], "w") as file:
            file.write(repr(sorted(options.items())))
        return LengthScorer(model)


    rerank_plugins.get_scorer = get_scorer
    parser = argparse.ArgumentParser()
    _command.add_parser(parser.add_subparsers(dest="command"))
    sys.exit(_command.run(parser.parse_args(sys.argv[1:])))
    """
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(*argv: str, options_file: Path | None = None) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OPTIONS_FILE": str(options_file or os.devnull)}
    env.pop("RERANK_PLUGINS_API_KEY", None)
    return subprocess.Popen(
        [sys.executable, "-c", _SCRIPT, "serve", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def _wait_for_health(base_url: str, process: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"server exited early: {process.communicate()[0]}")
        try:
            if httpx.get(f"{base_url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    process.kill()
    pytest.fail(f"server not healthy within {timeout} s: {process.communicate()[0]}")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM semantics differ on Windows")
def test_serve_process_serves_and_shuts_down_gracefully_on_sigterm(tmp_path: Path):
    """A request in flight when SIGTERM arrives still gets its answer."""
    port = _free_port()
    options_file = tmp_path / "options.txt"
    process = _start(
        "--model", "org/model", "--port", str(port), "--api-key", "k", "--device", "cpu",
        "--max-length", "128", options_file=options_file,
    )  # fmt: skip
    base_url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": "Bearer k"}
    in_flight: list[httpx.Response] = []
    try:
        _wait_for_health(base_url, process)
        response = httpx.post(
            f"{base_url}/v1/rerank",
            json={"query": "q", "documents": ["a", "ccc", "bb"]},
            headers=headers,
        )
        slow = threading.Thread(
            target=lambda: in_flight.append(
                httpx.post(
                    f"{base_url}/v1/rerank",
                    json={"query": "slow", "documents": ["a"]},
                    headers=headers,
                    timeout=30,
                )
            )
        )
        slow.start()
        time.sleep(0.3)  # the slow request is being scored
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
        slow.join(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()

    assert response.status_code == 200, response.text
    assert [r["index"] for r in response.json()["results"]] == [1, 2, 0]
    assert response.json()["model"] == "org/model"
    assert options_file.read_text() == "[('device', 'cpu'), ('max_length', 128)]"
    assert [r.status_code for r in in_flight] == [200]
    assert "Application shutdown complete." in output
    # uvicorn re-raises the signal after its graceful shutdown, so the process ends as
    # terminated by SIGTERM (uvicorn < 0.29 exited with 0 instead).
    assert process.returncode in (0, -signal.SIGTERM), output


def test_serve_process_exits_1_when_the_model_fails_to_load():
    process = _start("--model", "broken", "--port", str(_free_port()))
    try:
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()

    assert process.returncode == 1, output
    assert "Could not load model 'broken'" in output
    assert "broken is not a cross-encoder" in output


def test_serve_process_exits_1_when_the_port_is_taken():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = _start("--model", "org/model", "--port", str(port))
        try:
            output, _ = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()

    assert process.returncode == 1, output
