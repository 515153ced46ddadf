"""Settings of the Ray Serve deployment and the ``serve run ... key=value`` arguments.

Plain Python (no Ray import): defaults, the checks :func:`~rerank_plugins.ray_serve.build_app`
and a replica's ``reconfigure`` share, and the conversion of ``serve run`` strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_MAX_BATCH_SIZE = 16
"""HTTP requests a replica gathers into one scoring batch."""
DEFAULT_BATCH_WAIT_TIMEOUT_S = 0.005
"""Seconds a replica waits for more requests before scoring a partial batch."""
DEFAULT_MAX_ONGOING_REQUESTS = 64
"""Requests a replica accepts at once; more than ``max_batch_size`` so batches can fill."""


def batch_settings(config: Mapping[str, Any]) -> tuple[int, float]:
    """Check a deployment's ``user_config``; return ``(max_batch_size, batch_wait_timeout_s)``."""
    unknown = set(config) - {"max_batch_size", "batch_wait_timeout_s"}
    if unknown:
        msg = (
            f"Unknown user_config keys {sorted(unknown)}; the rerank deployment takes "
            "'max_batch_size' and 'batch_wait_timeout_s'."
        )
        raise ValueError(msg)
    size = config.get("max_batch_size", DEFAULT_MAX_BATCH_SIZE)
    wait = config.get("batch_wait_timeout_s", DEFAULT_BATCH_WAIT_TIMEOUT_S)
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        msg = f"max_batch_size must be a positive int, got {size!r}."
        raise ValueError(msg)
    if not isinstance(wait, (int, float)) or isinstance(wait, bool) or wait < 0:
        msg = f"batch_wait_timeout_s must be a number of seconds >= 0, got {wait!r}."
        raise ValueError(msg)
    return size, float(wait)


def positive_int(name: str, value: object) -> int:
    """Return ``value`` if it is an int >= 1, else raise naming ``name``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        msg = f"{name} must be a positive int, got {value!r}."
        raise ValueError(msg)
    return value


def non_negative(name: str, value: object) -> float:
    """Return ``value`` as a float if it is a number >= 0, else raise naming ``name``."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
        msg = f"{name} must be a number >= 0, got {value!r}."
        raise ValueError(msg)
    return float(value)


# Arguments of `serve run rerank_plugins.ray_serve:app key=value ...`: name -> type.
_APP_ARGS: dict[str, type] = {
    "model": str,
    "num_replicas": int,
    "num_gpus": float,
    "num_cpus": float,
    "max_batch_size": int,
    "batch_wait_timeout_s": float,
    "max_ongoing_requests": int,
    "min_replicas": int,
    "max_replicas": int,
    "target_ongoing_requests": float,
    "api_key": str,
    "max_documents": int,
    "max_document_chars": int,
    "name": str,
}
_SCORER_ARGS: dict[str, type] = {
    "revision": str,
    "device": str,
    "dtype": str,
    "max_length": int,
    "batch_size": int,
    "max_batch_tokens": int,
    "activation": str,
    "local_files_only": bool,
    "trust_remote_code": bool,
    "long_passages": str,
    "max_wait_ms": float,
}
_AUTOSCALING_ARGS = ("min_replicas", "max_replicas", "target_ongoing_requests")


@dataclass(frozen=True)
class AppArguments:
    """The ``serve run`` arguments sorted into :func:`~rerank_plugins.ray_serve.build_app`'s."""

    model: str
    options: dict[str, Any]
    """Other keyword arguments of ``build_app``."""
    autoscaling_config: dict[str, Any] | None
    scorer_options: dict[str, Any]


def parse_app_args(args: Mapping[str, Any]) -> AppArguments:
    """Check and convert ``key=value`` arguments (strings, or native values from a config)."""
    unknown = set(args) - set(_APP_ARGS) - set(_SCORER_ARGS)
    if unknown:
        msg = (
            f"Unknown argument(s) {sorted(unknown)} for rerank_plugins.ray_serve:app. Valid: "
            f"{', '.join(sorted({**_APP_ARGS, **_SCORER_ARGS}))}."
        )
        raise ValueError(msg)
    if "model" not in args:
        msg = (
            "rerank_plugins.ray_serve:app needs model=<hub id or path>, e.g. "
            "`serve run rerank_plugins.ray_serve:app model=BAAI/bge-reranker-v2-m3`."
        )
        raise ValueError(msg)
    values: dict[str, Any] = {}
    scorer_options: dict[str, Any] = {}
    for key, value in args.items():
        if key in _APP_ARGS:
            values[key] = _convert(key, value, _APP_ARGS[key])
        else:
            scorer_options[key] = _convert(key, value, _SCORER_ARGS[key])
    autoscaling = {key: values.pop(key) for key in _AUTOSCALING_ARGS if key in values}
    model = values.pop("model")
    return AppArguments(model, values, autoscaling or None, scorer_options)


def _convert(key: str, value: Any, kind: type) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "1", "yes"):
            return True
        if text in ("false", "0", "no"):
            return False
    elif kind in (int, float) and not isinstance(value, bool):
        try:
            return kind(value)
        except (TypeError, ValueError):
            pass
    elif kind is str and isinstance(value, str):
        return value
    expected = {bool: "true or false", int: "an int", float: "a number", str: "a string"}[kind]
    msg = f"{key} must be {expected}, got {value!r}."
    raise ValueError(msg)
