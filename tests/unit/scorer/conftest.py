"""Fixtures of the scorer tests: an ONNX export cache of the test's own, exported in-process."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from rerank_plugins import ModelLoadError
from rerank_plugins.scorer import _onnx_cache, _onnx_export


def _export_in_process(
    model: str, source: str, common: dict[str, Any], directory: Path, quantize: bool
) -> None:
    """The export child's work, run in this process: tests can patch it, and it starts faster."""
    try:
        _onnx_export.export_model(model, source, common, directory, quantize)
    except Exception as err:
        raise ModelLoadError(f"Exporting {model!r} to ONNX failed: {err}") from err


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Exports go into this test's own cache, never into ~/.cache, in this process."""
    monkeypatch.setenv(_onnx_cache.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(_onnx_export, "run_export", _export_in_process)
    return tmp_path / "cache"


@pytest.fixture
def pretend_missing(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """``pretend_missing("onnxruntime", _onnx_runtime)``: the module reads as not installed,
    to ``rerank_plugins._optional`` and to each backend module that imported its check."""
    import rerank_plugins._optional as optional

    real = optional.is_available

    def hide(module: str, *importers: ModuleType) -> None:
        def without(name: str) -> bool:
            return name != module and real(name)

        for where in (optional, *importers):
            monkeypatch.setattr(where, "is_available", without)

    return hide
