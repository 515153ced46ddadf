"""The exported ONNX file that ONNX Runtime and OpenVINO both run: from the cache, or exported.

Both backends read the same export (fused attention, [CLS]-only last layer): ONNX Runtime
as is, OpenVINO compiled from it. :func:`open_export` finds the cache entry
(:mod:`~rerank_plugins.scorer._onnx_cache`), exports it in a child process on a miss
(:mod:`~rerank_plugins.scorer._onnx_export`), and opens it with the backend's own
``open_file``; an entry found damaged is removed and exported again, once.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from rerank_plugins.errors import ModelLoadError
from rerank_plugins.scorer import _onnx_export
from rerank_plugins.scorer._backend import LoadedModel, Network
from rerank_plugins.scorer._loading import head_settings
from rerank_plugins.scorer._onnx_cache import (
    cache_key,
    cache_root,
    complete,
    files_dir,
    writable_root,
)
from rerank_plugins.scorer._packed import covers

if TYPE_CHECKING:
    import torch

    from rerank_plugins.scorer._backend import LoadRequest

logger = logging.getLogger(__name__)

# backend="auto" exports models up to this size. The export peaks at ~10x the fp32 weights
# (BERT-base, 110M parameters: 4.3 GB for ~40 s, measured), in a child process.
_AUTO_MAX_PARAMETERS = 150_000_000
_export_lock = threading.Lock()


class ExportedNetwork(Network, Protocol):
    """A network that runs the export: it names the graph's inputs."""

    input_names: tuple[str, ...]


def auto_exports(config: Any) -> bool:
    """Whether ``backend="auto"`` may export this model: a known family, up to 150M weights."""
    return _exportable(config) and _parameters(config) <= _AUTO_MAX_PARAMETERS


def open_export(
    request: LoadRequest,
    name: str,
    open_file: Callable[[Path], ExportedNetwork],
    *,
    backend: str,
    any_error_means_damage: bool,
    device: torch.device,
    dtype: torch.dtype,
) -> LoadedModel | None:
    """Open the cached export ``name`` of ``request.model`` with ``open_file``, exporting first.

    ``name`` is ``model.onnx`` or ``model.int8.onnx`` (quantized by the exporter). Returns
    the loaded model, which runs on ``device`` in ``dtype``, or None (with a warning) where
    ``backend="auto"`` should fall back to torch. A ValueError
    from ``open_file`` is a device or option it cannot use, not the cache's fault: it is
    raised (or declined in auto) without exporting again. Another error removes the entry
    and exports it again, once, if the file is damaged: any error says so when
    ``any_error_means_damage`` (onnxruntime), else only a file that onnx cannot read
    (OpenVINO may fail to compile a sound file that onnxruntime runs, from the same entry).
    """
    source = request.files[0]
    common = request.hub_options
    directory = cache_root() / cache_key(request.model, request.revision, files_dir(source, common))
    network = _open_or_export(
        request, directory, name, open_file, backend, any_error_means_damage, retried=False
    )
    if network is None:
        return None
    return LoadedModel(
        tokenizer=request.files[2],
        model=network,
        device=device,
        dtype=dtype,
        uses_token_types="token_type_ids" in network.input_names,
        **head_settings(request),
    )


def _open_or_export(
    request: LoadRequest,
    directory: Path,
    name: str,
    open_file: Callable[[Path], ExportedNetwork],
    backend: str,
    any_error_means_damage: bool,
    *,
    retried: bool,
) -> ExportedNetwork | None:
    auto = request.fallback
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
                        _onnx_export.run_export(
                            request.model,
                            request.files[0],
                            request.hub_options,
                            directory,
                            name.endswith(".int8.onnx"),
                        )
                    except ModelLoadError as err:
                        if not auto:
                            raise
                        logger.warning("%s; using the torch backend instead.", err)
                        return None
    path = directory / name
    logger.info("Loading the ONNX model %s with %s", path, backend)
    try:
        return open_file(path)
    except ValueError as err:  # a device or option the backend cannot use
        if not auto:
            raise
        logger.warning("Could not load the ONNX model %s (%s); using torch.", path, err)
        return None
    except Exception as err:
        if not (any_error_means_damage or _unreadable(path)):
            if auto:
                logger.warning("%s could not run %s (%s); using torch.", backend, path, err)
                return None
            msg = (
                f"{backend} could not run the ONNX export of {request.model!r} at {path}: "
                f"{err}. The file itself reads; use backend='onnx' or 'torch' for this model."
            )
            raise ModelLoadError(msg) from err
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
                request, directory, name, open_file, backend, any_error_means_damage, retried=True
            )
        if auto:
            logger.warning("Could not load the ONNX model %s (%s); using torch.", path, err)
            return None
        msg = f"The ONNX export of {request.model!r} at {path} could not be loaded: {err}"
        raise ModelLoadError(msg) from err


def _unreadable(path: Path) -> bool:
    """Whether onnx cannot read ``path`` (a truncated or corrupt file)."""
    import onnx

    try:
        onnx.load(str(path))
    except Exception:
        return True
    return False


def _exportable(config: Any) -> bool:
    """Tell whether this model is of a family the export shortens and tests.

    BERT/RoBERTa/XLM-R, or ModernBERT.

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
