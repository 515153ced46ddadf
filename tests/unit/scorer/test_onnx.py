"""The ONNX Runtime backend: same scores as torch, a cache that is reused, and clear errors."""

from __future__ import annotations

import copy
import math
import os
import re
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from rerank_plugins import CrossEncoderScorer, MissingDependencyError, ModelLoadError
from rerank_plugins._optional import is_available
from rerank_plugins.scorer import _onnx
from tests._tiny_models import RANKING_CASES

needs_ort = pytest.mark.skipif(
    not (is_available("onnxruntime") and is_available("onnx")),
    reason="onnxruntime is not installed (pip install 'rerank-plugins[onnx]')",
)

QUERY = "How long does a cat sleep each day?"
PASSAGES = [passage for _, passages, _ in RANKING_CASES for passage in passages][:12]


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test exports into its own cache, never into ~/.cache."""
    monkeypatch.setenv(_onnx.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def _no_export(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("exported again although the cache holds the model")


def _exported(cache: Path) -> list[Path]:
    return sorted(cache.glob("onnx/*/model*.onnx"))


@needs_ort
@pytest.mark.parametrize("fixture", ["tiny_bert", "tiny_xlmr", "tiny_bert_2logit"])
def test_onnx_fp32_scores_match_torch(fixture: str, request: pytest.FixtureRequest) -> None:
    model = str(request.getfixturevalue(fixture))
    torch_scores = CrossEncoderScorer(model, device="cpu").score(QUERY, PASSAGES)
    onnx_scorer = CrossEncoderScorer(model, device="cpu", backend="onnx")
    onnx_scores = onnx_scorer.score(QUERY, PASSAGES)
    assert onnx_scores == pytest.approx(torch_scores, abs=1e-5)
    assert onnx_scorer.backend == "onnx"
    assert onnx_scorer.dtype == "float32"
    assert "backend='onnx'" in repr(onnx_scorer)


@needs_ort
def test_onnx_ranks_the_tiny_cases_like_torch(tiny_bert: Path) -> None:
    torch_scorer = CrossEncoderScorer(str(tiny_bert), device="cpu")
    onnx_scorer = CrossEncoderScorer(str(tiny_bert), device="cpu", backend="onnx")
    for query, passages, relevant in RANKING_CASES:
        torch_best = torch_scorer.rank(query, passages, top_n=1)[0].index
        assert onnx_scorer.rank(query, passages, top_n=1)[0].index == torch_best == relevant


@needs_ort
def test_export_is_cached_and_reused(
    tiny_bert: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Guards against exporting on every load: the second load must not call the exporter."""
    first = CrossEncoderScorer(str(tiny_bert), device="cpu", backend="onnx").score(QUERY, PASSAGES)
    files = _exported(cache_dir)
    assert [path.name for path in files] == ["model.onnx"]

    monkeypatch.setattr(_onnx, "_torch_export", _no_export)
    again = CrossEncoderScorer(str(tiny_bert), device="cpu", backend="onnx")
    assert again.score(QUERY, PASSAGES) == pytest.approx(first, abs=1e-6)
    assert _exported(cache_dir) == files


@needs_ort
def test_int8_reuses_the_fp32_export_and_stays_close(
    tiny_bert: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fp32 = CrossEncoderScorer(str(tiny_bert), device="cpu", backend="onnx").score(QUERY, PASSAGES)
    monkeypatch.setattr(_onnx, "_torch_export", _no_export)  # quantizing starts from the cache
    int8_scorer = CrossEncoderScorer(
        str(tiny_bert), device="cpu", backend="onnx", onnx_quantize=True
    )
    int8 = int8_scorer.score(QUERY, PASSAGES)
    assert int8_scorer.dtype == "int8"
    assert [path.name for path in _exported(cache_dir)] == ["model.int8.onnx", "model.onnx"]
    assert all(math.isfinite(x) for x in int8)
    assert int8 != fp32  # really quantized
    assert int8 == pytest.approx(fp32, abs=0.1)


def test_cache_key_tracks_model_revision_and_weights(tmp_path: Path) -> None:
    """Guards against serving a stale export after a local model was retrained in place."""
    (tmp_path / "config.json").write_text("{}")
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"0" * 16)
    key = _onnx.cache_key(str(tmp_path), None, tmp_path)
    assert _onnx.cache_key(str(tmp_path), None, tmp_path) == key
    assert _onnx.cache_key(str(tmp_path), "v2", tmp_path) != key
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert _onnx.cache_key(str(tmp_path), None, tmp_path) != key
    assert _onnx.cache_key("org/model", None, None).startswith("org--model-")


def test_cache_root_honours_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(_onnx.CACHE_ENV, str(tmp_path))
    assert _onnx.cache_root() == tmp_path / "onnx"
    monkeypatch.delenv(_onnx.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _onnx.cache_root() == tmp_path / "xdg" / "rerank-plugins" / "onnx"


@needs_ort
def test_an_export_that_differs_from_torch_is_rejected(
    tiny_bert: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Guards against silently wrong ONNX scores (e.g. a graph exported with dropout on)."""
    real_export = _onnx._torch_export

    def export_a_different_model(weights: Any, path: Path, names: tuple[str, ...]) -> None:
        import torch

        other = copy.deepcopy(weights)
        with torch.no_grad():
            other.classifier.bias += 1.0
        real_export(other, path, names)

    monkeypatch.setattr(_onnx, "_torch_export", export_a_different_model)
    with pytest.raises(ModelLoadError, match=r"does not reproduce torch \(max logit difference"):
        CrossEncoderScorer(str(tiny_bert), device="cpu", backend="onnx")
    assert _exported(cache_dir) == []  # nothing half-done is left to be reused


@needs_ort
def test_threads_sharing_an_onnx_scorer_get_serial_results(tiny_bert: Path) -> None:
    scorer = CrossEncoderScorer(str(tiny_bert), device="cpu", backend="onnx", max_wait_ms=5)
    queries = [case[0] for case in RANKING_CASES][:8]
    serial = {q: scorer.score(q, PASSAGES) for q in queries}
    barrier = threading.Barrier(len(queries))

    def call(query: str) -> list[float]:
        barrier.wait()
        return scorer.score(query, PASSAGES)

    with ThreadPoolExecutor(len(queries)) as pool:
        results = list(pool.map(call, queries))
    for query, result in zip(queries, results, strict=True):
        assert result == pytest.approx(serial[query], abs=1e-6)


def test_missing_onnxruntime_names_the_extra(
    tiny_bert: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rerank_plugins._optional as optional

    real = optional.is_available
    monkeypatch.setattr(optional, "is_available", lambda m: m != "onnxruntime" and real(m))
    message = (
        "The ONNX backend needs 'onnxruntime', which is not installed. "
        'Install it with: pip install "rerank-plugins[onnx]"'
    )
    with pytest.raises(MissingDependencyError, match=f"^{re.escape(message)}$"):
        CrossEncoderScorer(str(tiny_bert), device="cpu", backend="onnx")


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"backend": "tensorrt"}, ValueError, "backend must be 'torch' or 'onnx', got 'tensorrt'."),
        (
            {"onnx_quantize": True},
            ValueError,
            "onnx_quantize=True needs backend='onnx'; the torch backend does not quantize.",
        ),
        (
            {"backend": "onnx", "onnx_quantize": "yes"},
            TypeError,
            "onnx_quantize must be True or False, got 'yes'.",
        ),
        (
            {"backend": "onnx", "dtype": "bfloat16"},
            ValueError,
            "backend='onnx' runs in float32 (or int8 with onnx_quantize=True), got "
            "dtype='bfloat16'. Use dtype='auto', or backend='torch' for 'bfloat16'.",
        ),
    ],
    ids=["unknown-backend", "quantize-on-torch", "quantize-not-bool", "onnx-bf16"],
)
def test_bad_backend_options(
    tiny_bert: Path, options: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        CrossEncoderScorer(str(tiny_bert), device="cpu", **options)


def test_importing_the_backend_loads_neither_onnxruntime_nor_torch() -> None:
    code = (
        "import sys, rerank_plugins.scorer._onnx; "
        "print(sorted(m for m in ('onnxruntime', 'onnx', 'torch') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("requested", "resolved", "providers", "expected"),
    [
        ("auto", "mps", ["CPUExecutionProvider"], "cpu"),
        ("auto", "cuda", ["CPUExecutionProvider"], "cpu"),
        ("auto", "cuda", ["CUDAExecutionProvider", "CPUExecutionProvider"], "cuda"),
        ("cuda:1", "cuda:1", ["CPUExecutionProvider"], "cuda:1"),
        ("cpu", "cpu", ["CPUExecutionProvider"], "cpu"),
    ],
    ids=["auto-mps", "auto-cuda-cpu-build", "auto-cuda-gpu-build", "explicit-cuda", "cpu"],
)
def test_onnx_device_falls_back_to_cpu_only_for_auto(
    requested: str,
    resolved: str,
    providers: list[str],
    expected: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Guards against backend='onnx' failing on a GPU or Mac machine with the CPU onnxruntime."""
    fake_ort = type(sys)("onnxruntime")
    fake_ort.get_available_providers = lambda: providers  # type: ignore[attr-defined]
    monkeypatch.setattr(_onnx, "require", lambda *args, **kwargs: fake_ort)
    assert _onnx.onnx_device(requested, resolved) == expected


@pytest.mark.parametrize("fixture", ["tiny_bert", "tiny_xlmr_2logit"])
def test_export_runs_a_first_token_last_layer_with_the_same_logits(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = request.getfixturevalue(fixture)
    model = AutoModelForSequenceClassification.from_pretrained(
        path, attn_implementation="eager"
    ).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    inputs = tokenizer([QUERY] * 4, PASSAGES[:4], padding=True, return_tensors="pt")
    assert int(inputs["attention_mask"].sum()) < inputs["attention_mask"].numel()  # padded
    layers = model.base_model.encoder.layer
    original = layers[-1]
    with torch.no_grad():
        expected = model(**inputs).logits
        with _onnx._first_token_last_layer(model):
            assert layers[-1] is not original
            hidden = model.base_model(**inputs).last_hidden_state
            got = model(**inputs).logits
    assert hidden.shape[1] == 1  # only the first position left the last layer
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    assert layers[-1] is original
