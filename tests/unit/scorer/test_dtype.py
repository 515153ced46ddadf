"""One keyword for reduced precision: ``dtype="bfloat16"`` (torch; OpenVINO in test_openvino) and
``dtype="int8"`` (ONNX)."""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path
from typing import Any

import pytest

from rerank_plugins import CrossEncoderScorer, clear_scorers, get_scorer
from rerank_plugins._cli_options import add_model_options, model_options
from tests._tiny_models import RANKING_CASES

QUERY = "How long does a cat sleep each day?"
PASSAGES = [passage for _, passages, _ in RANKING_CASES for passage in passages][:12]


pytestmark = pytest.mark.usefixtures("cache_dir")


def test_int8_is_the_quantized_onnx_model(tiny_bert: Path, cache_dir: Path) -> None:
    """dtype='int8' runs the same quantized graph as the old backend='onnx', onnx_quantize=True."""
    int8 = CrossEncoderScorer(str(tiny_bert), device="cpu", dtype="int8")
    alias = CrossEncoderScorer(str(tiny_bert), device="cpu", backend="onnx", onnx_quantize=True)
    fp32 = CrossEncoderScorer(str(tiny_bert), device="cpu", backend="onnx")
    scores = int8.score(QUERY, PASSAGES)
    assert (int8.backend, int8.dtype, int8.device) == ("onnx", "int8", "cpu")
    assert scores == alias.score(QUERY, PASSAGES)
    assert scores != fp32.score(QUERY, PASSAGES)  # really quantized
    assert scores == pytest.approx(fp32.score(QUERY, PASSAGES), abs=0.1)
    assert sorted(path.name for path in cache_dir.glob("onnx/*/model*.onnx")) == [
        "model.int8.onnx",
        "model.onnx",
    ]


def test_int8_with_backend_onnx_and_auto_is_one_shared_scorer(tiny_bert: Path) -> None:
    """Guards against loading the int8 model twice for its two spellings."""
    clear_scorers()
    try:
        first = get_scorer(str(tiny_bert), device="cpu", dtype="int8")
        assert get_scorer(str(tiny_bert), device="cpu", dtype="int8", backend="onnx") is first
        assert get_scorer(str(tiny_bert), device="cpu", backend="onnx", onnx_quantize=True) is first
        assert get_scorer(str(tiny_bert), device="cpu") is not first
    finally:
        clear_scorers()


def test_bfloat16_runs_on_torch_close_to_float32(tiny_bert: Path) -> None:
    bf16 = CrossEncoderScorer(str(tiny_bert), device="cpu", dtype="bfloat16", backend="torch")
    fp32 = CrossEncoderScorer(str(tiny_bert), device="cpu", backend="torch")
    assert (bf16.backend, bf16.dtype) == ("torch", "bfloat16")
    scores = bf16.score(QUERY, PASSAGES)
    assert scores == pytest.approx(fp32.score(QUERY, PASSAGES), abs=0.02)
    for query, passages, relevant in RANKING_CASES:
        assert bf16.rank(query, passages, top_n=1)[0].index == relevant


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"dtype": "int8", "backend": "torch"},
            "dtype='int8' runs on ONNX Runtime (dynamic int8), but backend='torch' was "
            "requested. Use backend='auto' or 'onnx' for int8, or dtype='bfloat16' on torch.",
        ),
        (
            {"dtype": "int8", "device": "cuda"},
            "dtype='int8' runs on the CPU only (ONNX Runtime dynamic int8), got "
            "device='cuda'. Use device='cpu', or dtype='auto' (bf16/fp16) on a GPU.",
        ),
        (
            {"dtype": "bfloat16", "backend": "onnx"},
            "backend='onnx' runs in float32 or int8, got dtype='bfloat16'. Use "
            "dtype='auto' or 'int8', or backend='torch' for 'bfloat16'.",
        ),
        (
            {"dtype": "bfloat16", "backend": "onnx", "onnx_quantize": True},
            "backend='onnx' runs in float32 or int8, got dtype='bfloat16'. Use "
            "dtype='auto' or 'int8', or backend='torch' for 'bfloat16'.",
        ),
        (
            {"dtype": "int4"},
            "dtype must be 'auto', 'float32', 'float16', 'bfloat16' or 'int8', got 'int4'.",
        ),
    ],
    ids=[
        "int8-on-torch",
        "int8-on-gpu",
        "bf16-on-onnx",
        "bf16-with-onnx-quantize",
        "unknown-dtype",
    ],
)
def test_unsupported_dtype_combinations_say_what_to_use(
    tiny_bert: Path, monkeypatch: pytest.MonkeyPatch, options: dict[str, Any], message: str
) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # as on a GPU machine
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        CrossEncoderScorer(str(tiny_bert), **{"device": "cpu", **options})


def test_int8_with_device_auto_runs_on_the_cpu_of_a_gpu_machine(
    tiny_bert: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dtype='int8' with device='auto' must not pick CUDA, where dynamic int8 does not run."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert CrossEncoderScorer(str(tiny_bert), dtype="int8").device == "cpu"


def test_int8_with_device_auto_or_cpu_is_one_shared_scorer_on_a_gpu_machine(
    tiny_bert: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Guards against loading the int8 model twice on a GPU machine: the registry keyed
    device='auto' as 'cuda' although int8 runs on the CPU, unlike device='cpu'."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    try:
        auto = get_scorer(str(tiny_bert), dtype="int8")
        assert get_scorer(str(tiny_bert), dtype="int8", device="cpu") is auto
    finally:
        clear_scorers()


@pytest.mark.parametrize("dtype", ["int8", "bfloat16"])
def test_cli_passes_dtype_to_the_scorer(dtype: str) -> None:
    parser = argparse.ArgumentParser()
    add_model_options(parser)
    args = parser.parse_args(["--model", "m", "--dtype", dtype])
    assert model_options(args) == {"dtype": dtype}


def test_server_serves_the_int8_scorer(tiny_bert: Path) -> None:
    """``rerank-plugins serve --dtype int8`` hands dtype to get_scorer through create_app."""
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from rerank_plugins.server import create_app

    clear_scorers()
    try:
        options = {"dtype": "int8", "device": "cpu"}
        app = create_app(model=str(tiny_bert), scorer_options=options)
        with TestClient(app) as client:
            deadline = time.monotonic() + 120
            while client.get("/health").status_code == 503 and time.monotonic() < deadline:
                time.sleep(0.1)  # the model loads in the background
            reply = client.post("/v1/rerank", json={"query": QUERY, "documents": PASSAGES})
        assert reply.status_code == 200
        served = {row["index"]: row["relevance_score"] for row in reply.json()["results"]}
        expected = get_scorer(str(tiny_bert), **options).score(QUERY, PASSAGES)
        assert get_scorer(str(tiny_bert), **options).dtype == "int8"
        assert [served[i] for i in range(len(PASSAGES))] == pytest.approx(expected, abs=1e-6)
    finally:
        clear_scorers()
