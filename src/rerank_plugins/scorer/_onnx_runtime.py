"""The ONNX Runtime backend: an exported cross-encoder run by an onnxruntime session.

``CrossEncoderScorer(model, backend="onnx")`` loads through :class:`OnnxLoader`:

1. The config and tokenizer load as for the torch backend (same checks, same activation).
2. The export is looked up in the cache, or exported in a child process on a miss
   (:mod:`~rerank_plugins.scorer._onnx_files`, shared with the OpenVINO backend).

Dynamic int8 changes scores and can change rankings; measure it on your data first (see
``docs/guides/performance.md``). onnxruntime is imported only in functions, lazily.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rerank_plugins._optional import is_available, require
from rerank_plugins.scorer._backend import LoadedModel, LoadRequest, Logits
from rerank_plugins.scorer._onnx_files import auto_exports, open_export
from rerank_plugins.scorer._options import cpu_batch_layout

if TYPE_CHECKING:
    import torch


def onnx_device(requested: str | None, resolved: str) -> str:
    """Where the ONNX backend runs: ``"auto"`` picks CUDA only if onnxruntime can use it.

    ``"auto"`` resolves to ``mps`` on Apple silicon and to ``cuda`` on a GPU machine even when
    only the CPU build of onnxruntime is installed; both run on the CPU instead. An explicit
    device is kept (and checked when the session starts).
    """
    if (requested or "auto").lower() != "auto":
        return resolved
    if resolved.startswith("cuda"):
        ort = require("onnxruntime", extra=None, feature="The ONNX backend")
        if "CUDAExecutionProvider" in ort.get_available_providers():
            return resolved
    return "cpu"


class OnnxCrossEncoder:
    """An onnxruntime session that is called like a transformers model: ``net(**inputs).logits``.

    Inputs are torch tensors on the CPU; outputs are fp32 torch tensors on the CPU. On the
    CPU each call runs on ``threads_per_batch`` threads, and ``parallel_batches`` calls may run
    at once.
    """

    def __init__(self, path: Path, *, device: str) -> None:
        import torch

        ort = require("onnxruntime", extra=None, feature="The ONNX backend")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        providers: list[Any] = ["CPUExecutionProvider"]
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                msg = (
                    f"backend='onnx' with device={device!r} needs onnxruntime's CUDA provider, "
                    "which this onnxruntime lacks. Install 'onnxruntime-gpu' instead of "
                    "'onnxruntime', or use backend='torch' on the GPU."
                )
                raise ValueError(msg)
            index = int(device.split(":", 1)[1]) if ":" in device else 0
            providers = [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
        elif device != "cpu":
            msg = f"backend='onnx' runs on 'cpu' or 'cuda', got device={device!r}."
            raise ValueError(msg)
        self.path = path
        self.device = torch.device("cpu")
        # On the CPU: two batches at once, each on half of torch's threads (cpu_batch_layout).
        layout = cpu_batch_layout(torch.get_num_threads())
        on_cpu = providers == ["CPUExecutionProvider"]
        self.parallel_batches = layout.parallel_batches if on_cpu else 1
        self.threads_per_batch = layout.threads_per_batch if on_cpu else torch.get_num_threads()
        self.batch_tokens: int | None = layout.batch_tokens if on_cpu else None
        options.intra_op_num_threads = self.threads_per_batch
        # The export keeps residual adds apart from LayerNorm, faster on the CPU (_fuse says
        # why); onnxruntime would fuse them back when the session starts.
        disabled = ["SkipLayerNormFusion"] if on_cpu else []
        self._session = ort.InferenceSession(
            str(path), options, providers=providers, disabled_optimizers=disabled
        )
        self.input_names = tuple(node.name for node in self._session.get_inputs())

    def __call__(self, **inputs: torch.Tensor) -> Logits:
        """Run one padded batch; unknown inputs (e.g. unused ``token_type_ids``) are dropped."""
        import torch

        feed = {name: inputs[name].numpy() for name in self.input_names if name in inputs}
        (logits,) = self._session.run(["logits"], feed)
        return Logits(torch.from_numpy(logits))


class OnnxLoader:
    """Loads a model as an onnxruntime session, exporting (and caching) it on first use.

    With ``request.fallback`` (``backend="auto"``), declines (None) where the torch backend
    should run instead: onnxruntime is missing, the model is not a BERT/RoBERTa/XLM-R or
    ModernBERT classifier of up to 150M parameters (the exports this backend shortens and
    tests), or its export fails.
    """

    name = "onnx"

    def load(self, request: LoadRequest) -> LoadedModel | None:
        """Open the cached export of ``request.model``, exporting it first on a miss."""
        import torch

        auto = request.fallback
        if auto and not (is_available("onnxruntime") and is_available("onnx")):
            return None
        require("onnxruntime", extra=None, feature="The ONNX backend")
        require("onnx", extra=None, feature="The ONNX backend")
        if auto and not auto_exports(request.files[1]):
            return None
        return open_export(
            request,
            "model.int8.onnx" if request.quantize else "model.onnx",
            functools.partial(OnnxCrossEncoder, device=request.device),
            backend="onnxruntime",
            any_error_means_damage=True,
            device=torch.device(request.device),
            dtype=torch.int8 if request.quantize else torch.float32,
        )
