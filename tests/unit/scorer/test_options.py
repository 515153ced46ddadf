"""``resolve_backend_options``: device, dtype, backend and int8 resolved together, once."""

from __future__ import annotations

import re

import pytest

from rerank_plugins.scorer import _options
from rerank_plugins.scorer._options import BackendOptions, resolve_backend_options


def _on_cpu(requested: str | None, resolved: str) -> str:
    return resolved


@pytest.mark.parametrize(
    ("device", "dtype", "backend", "quantize", "expected"),
    [
        ("cpu", "auto", "auto", False, BackendOptions("auto", "cpu", "float32", False)),
        ("cpu", "bf16", "torch", False, BackendOptions("torch", "cpu", "bfloat16", False)),
        ("cpu", "int8", "auto", False, BackendOptions("onnx", "cpu", "float32", True)),
        ("auto", "auto", "onnx", True, BackendOptions("onnx", "cpu", "float32", True)),
        ("cpu", "fp32", "onnx", False, BackendOptions("onnx", "cpu", "float32", False)),
        ("cpu", "bf16", "auto", False, BackendOptions("auto", "cpu", "bfloat16", False)),
        ("auto", "auto", "openvino", False, BackendOptions("openvino", "cpu", "float32", False)),
        ("cpu", "bf16", "openvino", False, BackendOptions("openvino", "cpu", "bfloat16", False)),
    ],
    ids=[
        "auto",
        "torch-bf16",
        "int8-alias-dtype",
        "onnx-quantize",
        "onnx-fp32",
        "auto-bf16",
        "openvino-auto",
        "openvino-bf16",
    ],
)
def test_resolved_options(
    device: str, dtype: str, backend: str, quantize: bool, expected: BackendOptions
) -> None:
    got = resolve_backend_options(
        device=device, dtype=dtype, backend=backend, onnx_quantize=quantize, onnx_device=_on_cpu
    )
    assert got == expected


def test_the_dtype_is_resolved_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bug (issue 14): CrossEncoderScorer.__init__ resolved the dtype twice, once to load and
    once more to check it against backend='onnx'."""
    calls: list[tuple[str | None, str]] = []
    real = _options.resolve_dtype

    def counting(dtype: str | None, device: str) -> str:
        calls.append((dtype, device))
        return real(dtype, device)

    monkeypatch.setattr(_options, "resolve_dtype", counting)
    resolve_backend_options(
        device="cpu", dtype="float32", backend="onnx", onnx_quantize=False, onnx_device=_on_cpu
    )
    assert calls == [("float32", "cpu")]


def test_onnx_refuses_a_torch_only_dtype() -> None:
    message = (
        "backend='onnx' runs in float32 or int8, got dtype='bfloat16'. Use dtype='auto' or "
        "'int8', or backend='torch' for 'bfloat16'."
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        resolve_backend_options(
            device="cpu",
            dtype="bfloat16",
            backend="onnx",
            onnx_quantize=False,
            onnx_device=_on_cpu,
        )


@pytest.mark.parametrize(
    ("threads", "expected"),
    [
        (1, _options.CpuLayout(1, 1, None)),
        (2, _options.CpuLayout(2, 1, 512)),
        (3, _options.CpuLayout(2, 1, 512)),
        (4, _options.CpuLayout(2, 2, None)),
        (8, _options.CpuLayout(2, 4, None)),
    ],
)
def test_cpu_batch_layout(threads: int, expected: _options.CpuLayout) -> None:
    """Two batches at once at most, each on half the threads; 512 tokens only at one thread
    each (as measured), the scorer's default otherwise."""
    assert _options.cpu_batch_layout(threads) == expected


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (BackendOptions("auto", "cpu", "float32", False), ["onnx", "torch"]),
        (BackendOptions("auto", "cpu", "bfloat16", False), ["openvino", "torch"]),
        (BackendOptions("auto", "cpu", "float16", False), ["torch"]),
        (BackendOptions("auto", "cuda", "bfloat16", False), ["torch"]),
        (BackendOptions("openvino", "cpu", "float32", False), ["openvino"]),
        (BackendOptions("onnx", "cpu", "float32", True), ["onnx"]),
    ],
    ids=["fp32", "bf16", "fp16", "cuda-bf16", "openvino", "int8"],
)
def test_the_backends_tried_in_order(options: BackendOptions, expected: list[str]) -> None:
    from rerank_plugins.scorer.cross_encoder import _loaders

    assert [loader.name for loader in _loaders(options)] == expected
