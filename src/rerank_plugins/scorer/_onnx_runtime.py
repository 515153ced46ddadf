"""The ONNX Runtime backend: an exported cross-encoder run by an onnxruntime session.

``CrossEncoderScorer(model, backend="onnx")`` loads through :class:`OnnxLoader`:

1. The config and tokenizer load as for the torch backend (same checks, same activation).
2. The export is looked up in the cache (:mod:`~rerank_plugins.scorer._onnx_cache`); one
   that fails to load anyway is removed and exported again, once.
3. On a miss, :mod:`~rerank_plugins.scorer._onnx_export` exports it in a child process.

Dynamic int8 changes scores and can change rankings; measure it on your data first (see
``docs/guides/performance.md``). onnxruntime is imported only in functions, lazily.
"""

from __future__ import annotations

import logging
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rerank_plugins._optional import is_available, require
from rerank_plugins.errors import ModelLoadError
from rerank_plugins.scorer import _onnx_export
from rerank_plugins.scorer._backend import LoadedModel, LoadRequest
from rerank_plugins.scorer._loading import head_settings
from rerank_plugins.scorer._onnx_cache import (
    cache_key,
    cache_root,
    complete,
    files_dir,
    writable_root,
)
from rerank_plugins.scorer._options import CPU_PARALLEL_BATCH_TOKENS
from rerank_plugins.scorer._packed import covers

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

# backend="auto" exports models up to this size. The export peaks at ~10x the fp32 weights
# (BERT-base, 110M parameters: 4.3 GB for ~40 s, measured), in a child process.
_AUTO_MAX_PARAMETERS = 150_000_000
# Most batches run at once on the CPU (see OnnxCrossEncoder.__init__).
MAX_PARALLEL_BATCHES = 2
_export_lock = threading.Lock()


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


@dataclass(frozen=True, slots=True)
class _Output:
    logits: torch.Tensor


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
        # One thread count for both backends: torch.set_num_threads / OMP_NUM_THREADS. On
        # the CPU it is spent on two batches at once (the session is safe to run from several
        # threads), each on half the threads: on 2 cores, one thread per batch was about as
        # fast as one batch on both threads on a quiet machine and much faster on a busy one,
        # where the intra-op threads wait on each other (docs/guides/performance.md, "Short
        # and long passages"). More batches at once were not measured on more cores, and a
        # round with a single batch would run on 1/N of the threads, so two is the cap.
        threads = torch.get_num_threads()
        on_cpu = providers == ["CPUExecutionProvider"]
        self.parallel_batches = min(threads, MAX_PARALLEL_BATCHES) if on_cpu else 1
        self.threads_per_batch = threads // self.parallel_batches
        options.intra_op_num_threads = self.threads_per_batch
        # The scorer's default batch size here, where measured (two batches at once, one thread
        # each: ~7% less CPU time per pair than 1024 tokens); None keeps the scorer's own.
        one_thread_each = self.parallel_batches > 1 and self.threads_per_batch == 1
        self.batch_tokens: int | None = CPU_PARALLEL_BATCH_TOKENS if one_thread_each else None
        self._session = ort.InferenceSession(str(path), options, providers=providers)
        self.input_names = tuple(node.name for node in self._session.get_inputs())

    def __call__(self, **inputs: torch.Tensor) -> _Output:
        """Run one padded batch; unknown inputs (e.g. unused ``token_type_ids``) are dropped."""
        import torch

        feed = {name: inputs[name].numpy() for name in self.input_names if name in inputs}
        (logits,) = self._session.run(["logits"], feed)
        return _Output(torch.from_numpy(logits))


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
        common = request.hub_options
        source, config, tokenizer = request.files
        if auto and not (_exportable(config) and _parameters(config) <= _AUTO_MAX_PARAMETERS):
            return None
        key = cache_key(request.model, request.revision, files_dir(source, common))
        name = "model.int8.onnx" if request.quantize else "model.onnx"
        network = _open_or_export(
            request.model,
            source,
            common,
            cache_root() / key,
            name,
            quantize=request.quantize,
            device=request.device,
            auto=auto,
        )
        if network is None:
            return None
        return LoadedModel(
            tokenizer=tokenizer,
            model=network,
            device=torch.device(request.device),
            dtype=torch.int8 if request.quantize else torch.float32,
            uses_token_types="token_type_ids" in network.input_names,
            **head_settings(request),
        )


def _open_or_export(
    model: str,
    source: str,
    common: dict[str, Any],
    directory: Path,
    name: str,
    *,
    quantize: bool,
    device: str,
    auto: bool,
    retried: bool = False,
) -> OnnxCrossEncoder | None:
    """Open the cached export, exporting it first if it is missing or incomplete.

    An entry that fails to load (a corrupt file) is removed and exported again, once.
    Return None (with a warning) where ``auto`` should fall back to torch.
    """
    if not complete(directory, name):
        with _export_lock:
            if not complete(directory, name):
                root = writable_root(directory.parent, auto=auto)
                if root is None:
                    return None
                directory = root / directory.name
                if not complete(directory, name):
                    if (directory / name).exists():
                        logger.warning(
                            "The cached ONNX model %s is incomplete (an interrupted export?); "
                            "exporting it again.",
                            directory / name,
                        )
                    try:
                        _onnx_export.run_export(model, source, common, directory, quantize)
                    except ModelLoadError as err:
                        if not auto:
                            raise
                        logger.warning("%s; using the torch backend instead.", err)
                        return None
    path = directory / name
    logger.info("Loading the ONNX model %s", path)
    try:
        return OnnxCrossEncoder(path, device=device)
    except ValueError as err:  # a device onnxruntime cannot use: not the cache's fault
        if not auto:
            raise
        logger.warning("Could not load the ONNX model %s (%s); using torch.", path, err)
        return None
    except Exception as err:
        if not retried:
            logger.warning(
                "The cached ONNX model %s could not be loaded (%s: %s); removing it and "
                "exporting it again.",
                path,
                type(err).__name__,
                err,
            )
            shutil.rmtree(directory, ignore_errors=True)
            return _open_or_export(
                model,
                source,
                common,
                directory,
                name,
                quantize=quantize,
                device=device,
                auto=auto,
                retried=True,
            )
        if auto:
            logger.warning("Could not load the ONNX model %s (%s); using torch.", path, err)
            return None
        msg = f"The ONNX export of {model!r} at {path} could not be loaded: {err}"
        raise ModelLoadError(msg) from err


def _exportable(config: Any) -> bool:
    """Tell whether ``backend="auto"`` exports this model: BERT/RoBERTa/XLM-R or ModernBERT.

    ModernBERT (the japanese-reranker v2 family) exports with eager attention: rotary
    positions and its local (sliding-window) attention masks trace to plain ONNX ops, and
    the export is checked against torch on pairs longer than its local window.
    """
    auto_map = getattr(config, "auto_map", None) or {}
    modernbert = getattr(config, "model_type", None) == "modernbert"
    return covers(config) or (modernbert and "AutoModelForSequenceClassification" not in auto_map)


def _parameters(config: Any) -> int:
    """About how many weights a BERT-family or ModernBERT encoder of this config has."""
    hidden, layers = config.hidden_size, config.num_hidden_layers
    if getattr(config, "model_type", None) == "modernbert":  # rotary positions, gated MLP
        per_layer = 4 * hidden * hidden + 3 * hidden * config.intermediate_size
        return int(config.vocab_size * hidden + layers * per_layer)
    positions = config.max_position_embeddings + getattr(config, "type_vocab_size", 0)
    embeddings = (config.vocab_size + positions) * hidden
    return int(embeddings + layers * (4 * hidden * hidden + 2 * hidden * config.intermediate_size))
