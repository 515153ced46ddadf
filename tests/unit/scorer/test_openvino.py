"""The OpenVINO backend: bf16 where the CPU has it, fp32 equal to torch, forks, concurrency."""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import textwrap
import threading
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from rerank_plugins import (
    CrossEncoderScorer,
    MissingDependencyError,
    ModelLoadError,
    clear_scorers,
    get_scorer,
)
from rerank_plugins._cli_options import add_model_options, model_options
from rerank_plugins.scorer import _onnx_export, _openvino_runtime
from tests._tiny_models import RANKING_CASES

pytest.importorskip("openvino")

QUERY = "How long does a cat sleep each day?"
PASSAGES = [passage for _, passages, _ in RANKING_CASES for passage in passages][:12]
NATIVE_BF16 = _openvino_runtime.native_bf16()
needs_native_bf16 = pytest.mark.skipif(
    not NATIVE_BF16, reason="this CPU has no native bf16 (AVX512_BF16 or AMX)"
)
pytestmark = pytest.mark.usefixtures("cache_dir")


def _no_export(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("exported again although the cache holds the model")


@pytest.mark.parametrize(
    "fixture", ["tiny_bert", "tiny_xlmr", "tiny_bert_2logit", "tiny_modernbert"]
)
def test_openvino_fp32_scores_match_torch(fixture: str, request: pytest.FixtureRequest) -> None:
    model = str(request.getfixturevalue(fixture))
    reference = CrossEncoderScorer(model, device="cpu", backend="torch").score(QUERY, PASSAGES)
    scorer = CrossEncoderScorer(model, device="cpu", backend="openvino")
    assert scorer.score(QUERY, PASSAGES) == pytest.approx(reference, abs=1e-5)
    assert (scorer.backend, scorer.dtype, scorer.device) == ("openvino", "float32", "cpu")
    assert "backend='openvino'" in repr(scorer)


def test_openvino_reads_the_onnx_runtime_export(
    tiny_bert: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One export serves both backends: loading OpenVINO after ONNX Runtime exports nothing."""
    onnx = CrossEncoderScorer(str(tiny_bert), device="cpu", backend="onnx").score(QUERY, PASSAGES)
    monkeypatch.setattr(_onnx_export, "run_export", _no_export)
    scorer = CrossEncoderScorer(str(tiny_bert), device="cpu", backend="openvino")
    assert scorer.score(QUERY, PASSAGES) == pytest.approx(onnx, abs=1e-5)
    assert [path.name for path in cache_dir.glob("onnx/*/*.onnx")] == ["model.onnx"]


@needs_native_bf16
def test_bfloat16_on_a_cpu_with_native_bf16_runs_openvino(tiny_bert: Path) -> None:
    fp32 = CrossEncoderScorer(str(tiny_bert), device="cpu").score(QUERY, PASSAGES)
    bf16 = CrossEncoderScorer(str(tiny_bert), device="cpu", dtype="bfloat16")
    assert (bf16.backend, bf16.dtype) == ("openvino", "bfloat16")
    scores = bf16.score(QUERY, PASSAGES)
    assert scores != pytest.approx(fp32, abs=1e-6)  # really bf16
    assert scores == pytest.approx(fp32, abs=0.05)
    for query, passages, relevant in RANKING_CASES:
        assert bf16.rank(query, passages, top_n=1)[0].index == relevant


def test_bfloat16_without_native_bf16_runs_torch_or_says_why(
    tiny_bert: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_openvino_runtime, "native_bf16", lambda: False)
    scorer = CrossEncoderScorer(str(tiny_bert), device="cpu", dtype="bfloat16")
    assert (scorer.backend, scorer.dtype) == ("torch", "bfloat16")
    message = (
        "backend='openvino' with dtype='bfloat16' needs a CPU with native bf16 (AVX512_BF16 or "
        "AMX); on this one OpenVINO would run float32, and bf16 is emulated (slower than "
        "float32). Use dtype='float32' (the default)."
    )
    monkeypatch.setattr(_onnx_export, "run_export", _no_export)  # refused before exporting
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        CrossEncoderScorer(str(tiny_bert), device="cpu", dtype="bfloat16", backend="openvino")


def test_missing_openvino_is_named_or_torch_runs_instead(
    tiny_bert: Path, pretend_missing: Callable[..., None]
) -> None:
    pretend_missing("openvino", _openvino_runtime)
    message = (
        "The OpenVINO backend needs 'openvino', which is not installed. "
        'Install it with: pip install "rerank-plugins[openvino]"'
    )
    with pytest.raises(MissingDependencyError, match=f"^{re.escape(message)}$"):
        CrossEncoderScorer(str(tiny_bert), device="cpu", backend="openvino")
    scorer = CrossEncoderScorer(str(tiny_bert), device="cpu", dtype="bfloat16")
    assert (scorer.backend, scorer.dtype) == ("torch", "bfloat16")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"backend": "openvino", "dtype": "float16"},
            "backend='openvino' runs in float32 or bfloat16, got dtype='float16'. Use "
            "dtype='auto' or 'bfloat16', or backend='torch' for 'float16'.",
        ),
        (
            {"backend": "openvino", "dtype": "int8"},
            "dtype='int8' runs on ONNX Runtime (dynamic int8), but backend='openvino' was "
            "requested. Use backend='auto' or 'onnx' for int8, or dtype='bfloat16' on openvino.",
        ),
        (
            {"backend": "openvino", "device": "cuda"},
            "backend='openvino' runs on the CPU, got device='cuda'. Use device='cpu', "
            "or backend='auto' or 'torch' on a GPU.",
        ),
        (
            {"backend": "openvino", "onnx_quantize": True},
            "onnx_quantize=True needs backend='onnx', got backend='openvino'. Use dtype='int8' "
            "(ONNX Runtime dynamic int8) instead.",
        ),
    ],
    ids=["fp16", "int8", "cuda", "onnx-quantize"],
)
def test_unsupported_openvino_options_say_what_to_use(
    tiny_bert: Path, monkeypatch: pytest.MonkeyPatch, options: dict[str, Any], message: str
) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # as on a GPU machine
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        CrossEncoderScorer(str(tiny_bert), **{"device": "cpu", **options})


def test_openvino_with_device_auto_runs_on_the_cpu_of_a_gpu_machine(
    tiny_bert: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert CrossEncoderScorer(str(tiny_bert), backend="openvino").device == "cpu"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_concurrent_callers_get_serial_scores_from_two_infer_requests(
    tiny_xlmr: Path, seed: int
) -> None:
    """Seeded random calls from 16 threads at once: each gets its serial scores, and the
    network never holds more infer requests than batches run at once."""
    scorer = CrossEncoderScorer(str(tiny_xlmr), device="cpu", backend="openvino", max_wait_ms=5)
    rng = random.Random(seed)
    queries = [case[0] for case in RANKING_CASES]
    calls = [
        (rng.choice(queries), rng.sample(PASSAGES, rng.randint(1, len(PASSAGES))))
        for _ in range(48)
    ]
    serial = [scorer.score(query, passages) for query, passages in calls]
    barrier = threading.Barrier(16)

    def call(index: int) -> list[float]:
        if index < 16:
            barrier.wait()
        return scorer.score(*calls[index])

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(call, range(len(calls))))
    for got, expected in zip(results, serial, strict=True):
        assert got == pytest.approx(expected, abs=1e-6)
    network = scorer._network
    assert isinstance(network, _openvino_runtime.OpenVinoCrossEncoder)
    assert 1 <= len(network._requests) <= network.parallel_batches


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
@pytest.mark.filterwarnings("default:a forked OpenVINO child hung once:RuntimeWarning")
def test_forked_children_score_and_exit_normally(tiny_bert: Path, cache_dir: Path) -> None:
    """Bug: OpenVINO objects copied into a forked child hang when used, and when destroyed
    at the child's exit. A child that scores gets the parent's scores, and it and a child
    that never scores both exit through sys.exit.

    Runs in a fresh interpreter that never imports onnxruntime (whose own exit handler
    hangs in forked children, see docs/reference/python-api.md, Fork), reading the export
    cached here; a hung process group is killed.
    """
    CrossEncoderScorer(str(tiny_bert), device="cpu", backend="openvino")  # fills the cache
    code = textwrap.dedent(
        f"""
        import json, os, sys
        from rerank_plugins import CrossEncoderScorer
        scorer = CrossEncoderScorer({str(tiny_bert)!r}, device="cpu", backend="openvino")
        query, passages = {QUERY!r}, {PASSAGES!r}
        before = scorer.score(query, passages)
        found = {{"before": before, "child": None, "status": []}}
        for scores_in_child in (True, False):
            read, write = os.pipe()
            pid = os.fork()
            if pid == 0:
                result = scorer.score(query, passages) if scores_in_child else None
                os.write(write, json.dumps(result).encode())
                sys.exit(0)
            os.close(write)
            result = json.loads(os.read(read, 1 << 20))
            found["child"] = found["child"] or result
            found["status"].append(os.waitpid(pid, 0)[1])
        assert "onnxruntime" not in sys.modules
        found["after"] = scorer.score(query, passages)
        print(json.dumps(found))
        """
    )
    environment = {**os.environ, "RERANK_PLUGINS_CACHE_DIR": str(cache_dir)}
    finished = _run_killing_on_hang(code, environment)
    if finished is None:
        # A hang not yet understood, seen once in ~25 runs (the bug itself hung every run):
        # reported, and tried once more, so that the deterministic bug still fails the test.
        warnings.warn("a forked OpenVINO child hung once; retrying", RuntimeWarning, stacklevel=1)
        finished = _run_killing_on_hang(code, environment)
    if finished is None:
        pytest.fail("a forked child hung (it or the parent never exited), twice")
    returncode, stdout, stderr = finished
    assert returncode == 0, stderr[-2000:]
    found = json.loads(stdout.strip().splitlines()[-1])
    assert found["status"] == [0, 0]
    assert found["child"] == pytest.approx(found["before"], abs=1e-6)
    assert found["after"] == pytest.approx(found["before"], abs=1e-6)


def _run_killing_on_hang(code: str, environment: dict[str, str]) -> tuple[int, str, str] | None:
    """Run ``code`` in a fresh interpreter; None if it (or a child) is still running at 90 s."""
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        return None
    return process.returncode, stdout, stderr


def test_an_export_openvino_cannot_run_is_kept_for_onnx_runtime(
    tiny_bert: Path,
    cache_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A sound export that OpenVINO fails to compile is neither removed nor exported again:
    ONNX Runtime reads the same entry. Explicit: a ModelLoadError naming OpenVINO and what to
    use; auto (bf16): torch, with a warning."""
    CrossEncoderScorer(str(tiny_bert), device="cpu", backend="onnx")
    exported = sorted(cache_dir.glob("onnx/*/model.onnx"))

    def refuse(self: Any, path: Path, *, dtype: str) -> None:
        raise RuntimeError("unsupported op (injected)")

    monkeypatch.setattr(_openvino_runtime.OpenVinoCrossEncoder, "__init__", refuse)
    monkeypatch.setattr(_onnx_export, "run_export", _no_export)
    message = (
        r"^OpenVINO could not run the ONNX export of '.+' at .+model\.onnx: unsupported op "
        r"\(injected\)\. The file itself reads; use backend='onnx' or 'torch' for this model\.$"
    )
    with pytest.raises(ModelLoadError, match=message):
        CrossEncoderScorer(str(tiny_bert), device="cpu", backend="openvino")
    if NATIVE_BF16:
        scorer = CrossEncoderScorer(str(tiny_bert), device="cpu", dtype="bfloat16")
        assert scorer.backend == "torch"
        assert "OpenVINO could not run" in caplog.text
    assert sorted(cache_dir.glob("onnx/*/model.onnx")) == exported
    onnx = CrossEncoderScorer(str(tiny_bert), device="cpu", backend="onnx")
    assert onnx.backend == "onnx"


def test_openvino_and_auto_device_is_one_shared_scorer_on_a_gpu_machine(
    tiny_bert: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bug: get_scorer keyed backend='openvino' with device='auto' as CUDA bf16, although it
    loads float32 on the CPU, so a later bf16 request got the float32 scorer."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    clear_scorers()
    try:
        auto = get_scorer(str(tiny_bert), backend="openvino")
        assert (auto.device, auto.dtype) == ("cpu", "float32")
        assert get_scorer(str(tiny_bert), backend="openvino", device="cpu") is auto
        if NATIVE_BF16:
            bf16 = get_scorer(str(tiny_bert), backend="openvino", dtype="bfloat16")
            assert bf16 is not auto
            assert bf16.dtype == "bfloat16"
    finally:
        clear_scorers()


def test_cli_accepts_the_openvino_backend() -> None:
    parser = argparse.ArgumentParser()
    add_model_options(parser)
    args = parser.parse_args(["--model", "m", "--backend", "openvino", "--dtype", "bfloat16"])
    assert model_options(args) == {"backend": "openvino", "dtype": "bfloat16"}


def test_importing_the_backend_loads_neither_openvino_nor_torch() -> None:
    code = (
        "import sys, rerank_plugins.scorer._openvino_runtime; "
        "print(sorted(m for m in ('openvino', 'onnxruntime', 'torch') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
