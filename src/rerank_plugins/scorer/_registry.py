"""``get_scorer``: one shared scorer per model and options per process."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from rerank_plugins.presets import resolve_preset
from rerank_plugins.scorer._options import resolve_device, resolve_dtype
from rerank_plugins.scorer.cross_encoder import CrossEncoderScorer

_instances: dict[tuple[Any, ...], CrossEncoderScorer] = {}
_key_locks: dict[tuple[Any, ...], threading.Lock] = {}
_lock = threading.Lock()


def get_scorer(model: str | os.PathLike[str], **options: Any) -> CrossEncoderScorer:
    """Return the process-wide scorer for ``model`` and ``options``, loading it on first use.

    Every caller that asks for the same model, revision, device, dtype and other options
    (LangChain and LlamaIndex adapters, threads, server requests) gets the same instance;
    concurrent first calls load the model exactly once. ``model`` is a hub id, a local
    path (``str`` or ``os.PathLike``) or a preset name (see ``rerank-plugins models``);
    ``options`` are the keyword arguments of :class:`CrossEncoderScorer` and override a
    preset's.

    The scorer is shared: do not ``close()`` it or use it in a ``with`` block (that raises
    ``TypeError``); :func:`clear_scorers` releases shared scorers. A shared scorer that was
    closed anyway is replaced by a fresh one on the next call.
    """
    model, options = resolve_preset(model, options)
    key = _cache_key(model, options)
    with _lock:
        scorer = _instances.get(key)
        if scorer is not None and not scorer.closed:
            return scorer
        key_lock = _key_locks.setdefault(key, threading.Lock())
    # Per-key locks are never dropped (not even by clear_scorers), so a call that arrives
    # while another thread loads the same model waits for that load instead of starting a
    # second one.
    with key_lock:
        with _lock:
            scorer = _instances.get(key)
        if scorer is None or scorer.closed:
            scorer = CrossEncoderScorer(model, **options)
            scorer._shared = True
            with _lock:
                _instances[key] = scorer
    return scorer


def clear_scorers() -> None:
    """Forget (and stop) every shared scorer, e.g. to free memory or in tests.

    Calls already queued are answered first. The memory of a model is freed once nothing
    else (an adapter, a variable) refers to its scorer. A load in progress completes and
    its scorer is kept.
    """
    with _lock:
        scorers = list(_instances.values())
        _instances.clear()
    for scorer in scorers:
        scorer.close()


def _cache_key(model: str, options: dict[str, Any]) -> tuple[Any, ...]:
    """Normalise what does not change the loaded model: "auto" options, relative paths."""
    if not isinstance(model, str) or not model.strip():
        msg = f"model must be a hub id or a local path, got {model!r}."
        raise ValueError(msg)
    path = Path(model).expanduser()
    identity = str(path.resolve()) if path.exists() else model
    normalised = dict(options)
    requested_device = normalised.pop("device", "auto")
    device = resolve_device(requested_device)
    requested_auto = (requested_device or "auto").lower() == "auto"
    if normalised.get("backend") == "openvino" and requested_auto:
        device = "cpu"  # OpenVINO runs on the CPU, which "auto" then means even beside a GPU
    dtype = resolve_dtype(normalised.pop("dtype", "auto"), device)
    if normalised.pop("onnx_quantize", False) is True:
        dtype = "int8"  # backend="onnx", onnx_quantize=True is an alias of dtype="int8"
    if dtype == "int8" and requested_auto:
        device = "cpu"  # int8 runs on the CPU, which "auto" then means even beside a GPU
    if normalised.get("backend") == "auto" or (
        dtype == "int8" and normalised.get("backend") == "onnx"
    ):
        del normalised["backend"]
    rest = tuple(sorted((name, repr(value)) for name, value in normalised.items()))
    return identity, device, dtype, rest
